//! The newest entries of one group's log, kept decoded in memory.
//!
//! Replication reads back every entry it sends, right after the entry was appended. Serving
//! those reads from the log store cost a sled range scan plus a bincode decode per entry
//! (about 7% of a node's CPU under 64 writing clients); serving them from here costs a clone.
//!
//! Invariant: the tail is always a suffix of the stored log, entry for entry. Every change to
//! the stored log (append, truncate, purge) is mirrored here after it succeeded, a failed
//! change empties the tail, and the tail only ever forgets entries from its front. Reads that
//! start before the tail's first entry go to the store.

use crate::types::Entry;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Most entries kept per group; a follower further behind is served from the store.
pub const MAX_ENTRIES: usize = 1024;
/// Most encoded bytes kept per group, so large records do not pin much memory.
pub const MAX_BYTES: usize = 1 << 20;
/// Fewest encoded bytes a group may keep, however many groups share the node's budget.
pub const MIN_BYTES: usize = 16 << 10;
/// Encoded bytes the tails of all a node's groups keep together. A fixed [`MAX_BYTES`] per
/// group suited 16 groups; at 4,096 a node's memory grew by hundreds of MiB within a minute
/// of writes, on its way to gigabytes.
pub const NODE_BYTES: usize = 64 << 20;

/// What one tail may keep when `tails` share the node's budget (pure).
pub fn bytes_per_tail(tails: usize) -> usize {
    (NODE_BYTES / tails.max(1)).clamp(MIN_BYTES, MAX_BYTES)
}

/// The tails of one node, which share [`NODE_BYTES`].
#[derive(Default)]
pub struct TailBudget {
    tails: AtomicUsize,
}

impl TailBudget {
    fn share(&self) -> usize {
        bytes_per_tail(self.tails.load(Ordering::Relaxed))
    }
}

#[derive(Default)]
pub struct LogTail {
    /// Entries with consecutive indexes, each with its encoded size.
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
    /// The node's budget this tail counts in (None: [`MAX_BYTES`] alone).
    budget: Option<Arc<TailBudget>>,
}

impl Drop for LogTail {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.tails.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl LogTail {
    /// A tail that keeps its share of the node's `budget`.
    pub fn sharing(budget: Arc<TailBudget>) -> LogTail {
        budget.tails.fetch_add(1, Ordering::Relaxed);
        LogTail {
            entries: VecDeque::new(),
            bytes: 0,
            budget: Some(budget),
        }
    }

    fn max_bytes(&self) -> usize {
        self.budget.as_ref().map_or(MAX_BYTES, |b| b.share())
    }

    /// Mirrors a successful append of `new` (consecutive indexes, with encoded sizes).
    pub fn append(&mut self, new: Vec<(Entry, usize)>) {
        let Some((first, _)) = new.first() else {
            return;
        };
        if self
            .last_index()
            .is_some_and(|last| last.checked_add(1) != Some(first.log_id.index))
        {
            // Not a continuation (cannot happen while the invariant holds): start over
            // rather than ever serve a tail with a hole.
            self.clear();
        }
        for (entry, size) in new {
            self.bytes += size;
            self.entries.push_back((entry, size));
        }
        let max_bytes = self.max_bytes();
        while self.entries.len() > MAX_ENTRIES || self.bytes > max_bytes {
            self.pop_front();
        }
    }

    /// Mirrors a successful removal of every entry after `last` (None: all of them).
    pub fn truncate_after(&mut self, last: Option<u64>) {
        while let Some((e, size)) = self.entries.back() {
            if last.is_some_and(|l| e.log_id.index <= l) {
                break;
            }
            self.bytes -= size;
            self.entries.pop_back();
        }
    }

    /// Mirrors a successful removal of every entry up to and including `upto`.
    pub fn purge_upto(&mut self, upto: u64) {
        while self
            .entries
            .front()
            .is_some_and(|(e, _)| e.log_id.index <= upto)
        {
            self.pop_front();
        }
    }

    /// Forget everything (after a failed store operation).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Entries with `start <= index < end`, or None if `start` lies before the tail (the
    /// caller then reads the store). Indexes past the tail do not exist in the store either.
    pub fn get(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        let first = self.entries.front()?.0.log_id.index;
        if start < first {
            return None;
        }
        let skip = usize::try_from(start - first).ok()?;
        let want = end.saturating_sub(start);
        Some(
            self.entries
                .iter()
                .skip(skip)
                .take(usize::try_from(want).unwrap_or(usize::MAX))
                .map(|(e, _)| e.clone())
                .collect(),
        )
    }

    fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|(e, _)| e.log_id.index)
    }

    fn pop_front(&mut self) {
        if let Some((_, size)) = self.entries.pop_front() {
            self.bytes -= size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::TypeConfig;

    fn entry(index: u64) -> Entry {
        openraft::testing::blank_ent::<TypeConfig>(1, 1, index)
    }

    fn indexes(v: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        v.map(|v| v.iter().map(|e| e.log_id.index).collect())
    }

    fn tail(range: std::ops::Range<u64>, size: usize) -> LogTail {
        let mut t = LogTail::default();
        t.append(range.map(|i| (entry(i), size)).collect());
        t
    }

    #[test]
    fn serves_ranges_inside_the_tail_and_refuses_ranges_before_it() {
        let t = tail(5..10, 1);
        assert_eq!(indexes(t.get(5, 10)), Some(vec![5, 6, 7, 8, 9]));
        assert_eq!(indexes(t.get(7, 9)), Some(vec![7, 8]));
        assert_eq!(indexes(t.get(8, u64::MAX)), Some(vec![8, 9]));
        assert_eq!(indexes(t.get(10, 20)), Some(vec![]));
        assert_eq!(indexes(t.get(4, 8)), None);
        assert_eq!(indexes(LogTail::default().get(0, 5)), None);
    }

    #[test]
    fn mirrors_truncate_and_purge() {
        let mut t = tail(1..11, 1);
        t.truncate_after(Some(7));
        assert_eq!(indexes(t.get(1, 100)), Some((1..8).collect()));
        t.purge_upto(3);
        assert_eq!(indexes(t.get(1, 100)), None);
        assert_eq!(indexes(t.get(4, 100)), Some(vec![4, 5, 6, 7]));
        t.append(vec![(entry(8), 1)]);
        assert_eq!(indexes(t.get(4, 100)), Some(vec![4, 5, 6, 7, 8]));
        t.truncate_after(None);
        assert_eq!(indexes(t.get(0, 100)), None);
        assert_eq!(t.bytes, 0);
    }

    #[test]
    fn a_non_continuation_restarts_the_tail() {
        let mut t = tail(1..5, 1);
        t.append(vec![(entry(9), 1)]);
        assert_eq!(indexes(t.get(1, 100)), None);
        assert_eq!(indexes(t.get(9, 100)), Some(vec![9]));
    }

    #[test]
    fn tails_share_the_nodes_budget() {
        assert_eq!(bytes_per_tail(0), MAX_BYTES);
        assert_eq!(bytes_per_tail(16), MAX_BYTES);
        assert_eq!(bytes_per_tail(4096), NODE_BYTES / 4096);
        assert_eq!(bytes_per_tail(1 << 20), MIN_BYTES);
        let budget = Arc::new(TailBudget::default());
        let tails: Vec<LogTail> = (0..4096)
            .map(|_| LogTail::sharing(budget.clone()))
            .collect();
        let mut t = LogTail::sharing(budget.clone());
        t.append((0..64).map(|i| (entry(i), 1024)).collect());
        assert_eq!(t.bytes, bytes_per_tail(4097) / 1024 * 1024);
        drop(tails);
        drop(t);
        assert_eq!(budget.tails.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn stays_within_its_bounds() {
        let t = tail(0..(MAX_ENTRIES as u64 + 10), 1);
        assert_eq!(t.entries.len(), MAX_ENTRIES);
        assert_eq!(indexes(t.get(9, 11)), None);
        assert_eq!(indexes(t.get(10, 11)), Some(vec![10]));

        let t = tail(0..8, MAX_BYTES / 4);
        assert_eq!(t.entries.len(), 4);
        assert_eq!(t.bytes, MAX_BYTES);
    }
}
