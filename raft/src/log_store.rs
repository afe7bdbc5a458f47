//! openraft's log storage over the node's shared [`LogStore`]: one adapter per group, all
//! writing into one database whose single flusher gives group commit across groups.

use crate::log_tail::LogTail;
use crate::read_index::VoteCell;
use crate::types::{decode, encode, Entry, LogId, TypeConfig, Vote};
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use storage::log_store::{GroupId, LogStore};

const META_VOTE: &str = "vote";
const META_COMMITTED: &str = "committed";
const META_PURGED: &str = "purged";

/// Shortest interval between two stores of the committed log id of a group. openraft reports
/// every advance of the commit index, and storing each one was a sled insert per commit
/// batch (about 3% of a node's CPU under write load). A stale committed id is still a
/// committed id: a restart just re-applies a little less from the log before the leader
/// tells it the rest.
const SAVE_COMMITTED_EVERY: Duration = Duration::from_millis(100);

fn io_err(e: storage::error::Error) -> io::Error {
    io::Error::other(e)
}

/// One group's view of the node's log store. Clones (the log readers openraft hands to
/// replication) share the tail of recent entries.
#[derive(Clone)]
pub struct GroupLogStore {
    group: GroupId,
    store: Arc<dyn LogStore>,
    tail: Arc<Mutex<LogTail>>,
    /// The vote last stored, for peers' leadership confirmations (`crate::read_index`).
    vote: Arc<VoteCell>,
    /// When the committed log id was last stored (by this handle; only the one openraft
    /// writes through ever stores it).
    committed_saved_at: Option<Instant>,
    /// Store every advance of the committed log id, not one per [`SAVE_COMMITTED_EVERY`].
    every_commit: bool,
}

impl GroupLogStore {
    pub fn new(group: GroupId, store: Arc<dyn LogStore>, vote: Arc<VoteCell>) -> GroupLogStore {
        GroupLogStore {
            group,
            store,
            vote,
            tail: Arc::default(),
            committed_saved_at: None,
            every_commit: false,
        }
    }

    /// Keeps the tail of recent entries within this group's share of the node's `budget`.
    pub fn sharing_tail_budget(
        mut self,
        budget: Arc<crate::log_tail::TailBudget>,
    ) -> GroupLogStore {
        self.tail = Arc::new(Mutex::new(LogTail::sharing(budget)));
        self
    }

    /// Stores every advance of the committed log id: for the metadata group, whose commits
    /// are rare, so the last of a burst (a namespace created just after formation) would
    /// otherwise stay unstored until the next one, and a restarted node would not know the
    /// catalog it applied until a leader told it the commit index again.
    pub fn storing_every_commit(mut self) -> GroupLogStore {
        self.every_commit = true;
        self
    }

    fn tail(&self) -> MutexGuard<'_, LogTail> {
        // The tail is only a cache: after a panic elsewhere, forget it rather than trust it.
        self.tail.lock().unwrap_or_else(|e| {
            let mut t = e.into_inner();
            t.clear();
            t
        })
    }

    /// Runs a change of the stored log and mirrors it in the tail if it succeeded; a failed
    /// change leaves the store in an unknown state, so the tail is emptied.
    fn change<T>(
        &self,
        op: impl FnOnce() -> storage::error::Result<T>,
        mirror: impl FnOnce(&mut LogTail),
    ) -> io::Result<T> {
        let mut tail = self.tail();
        match op() {
            Ok(v) => {
                mirror(&mut tail);
                Ok(v)
            }
            Err(e) => {
                tail.clear();
                Err(io_err(e))
            }
        }
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> io::Result<Option<T>> {
        match self.store.get_meta(self.group, key).map_err(io_err)? {
            Some(b) => Ok(Some(decode(&b)?)),
            None => Ok(None),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, key: &str, v: &T) -> io::Result<()> {
        self.store
            .put_meta(self.group, key, encode(v)?)
            .map_err(io_err)
    }

    /// Wait for one group-commit flush covering everything written so far.
    async fn sync(&self) -> io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.store.sync(Box::new(move |r| {
            let _ = tx.send(r);
        }));
        match rx.await {
            Ok(r) => r.map_err(io_err),
            Err(_) => Err(io::Error::other("log store flusher stopped")),
        }
    }
}

impl RaftLogReader<TypeConfig> for GroupLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => e.saturating_add(1),
            Bound::Excluded(e) => *e,
            Bound::Unbounded => u64::MAX,
        };
        if let Some(hit) = self.tail().get(start, end) {
            return Ok(hit);
        }
        let raw = self.store.entries(self.group, start, end).map_err(io_err)?;
        raw.iter().map(|(_, b)| decode::<Entry>(b)).collect()
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        let vote: Option<Vote> = self.meta(META_VOTE)?;
        if let Some(v) = &vote {
            self.vote.set(v);
        }
        Ok(vote)
    }
}

impl RaftLogStorage<TypeConfig> for GroupLogStore {
    type LogReader = GroupLogStore;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId> = self.meta(META_PURGED)?;
        let last = match self.store.last_entry(self.group).map_err(io_err)? {
            Some((_, b)) => Some(decode::<Entry>(&b)?.log_id),
            None => None,
        };
        let last_log_id = last.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> GroupLogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        // Shown to peers' confirmation requests before openraft can act on it (grant it,
        // count it, accept the newer leader): it does so only after this returns.
        self.vote.set(vote);
        self.put_meta(META_VOTE, vote)?;
        // A vote must be durable before it is acted upon: wait for the shared flush.
        self.sync().await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        // Durable with the next flush; losing it only means re-applying less at restart.
        let now = Instant::now();
        if !self.every_commit
            && self
                .committed_saved_at
                .is_some_and(|at| now.duration_since(at) < SAVE_COMMITTED_EVERY)
        {
            return Ok(());
        }
        self.committed_saved_at = Some(now);
        self.put_meta(META_COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.meta::<Option<LogId>>(META_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = Vec::new();
        let mut kept = Vec::new();
        for e in entries {
            let (index, bytes) = (e.log_id.index, encode(&e)?);
            kept.push((e, bytes.len()));
            batch.push((index, bytes));
        }
        // Readable as soon as this returns (openraft's contract); acknowledged only after the
        // flush that covers it, shared with every other group on the node.
        self.change(
            || self.store.append(self.group, batch),
            |tail| tail.append(kept),
        )?;
        self.store
            .sync(Box::new(move |r| callback.io_completed(r.map_err(io_err))));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let last = last_log_id.map(|l| l.index);
        self.change(
            || self.store.truncate_after(self.group, last),
            |tail| tail.truncate_after(last),
        )
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        // Record the purge point first, so a crash in between never leaves a hole unexplained.
        self.put_meta(META_PURGED, &log_id)?;
        self.change(
            || self.store.purge_upto(self.group, log_id.index),
            |tail| tail.purge_upto(log_id.index),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_index::LeaderId;
    use openraft::vote::RaftLeaderId;
    use storage::log_store::MemLogStore;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn the_vote_cell_shows_every_stored_vote_and_the_one_read_at_start() {
        let store: Arc<dyn LogStore> = Arc::new(MemLogStore::new());
        let cell = Arc::new(VoteCell::default());
        let mut log = GroupLogStore::new(7, store.clone(), cell.clone());
        assert_eq!(cell.leader(), None);
        block_on(log.save_vote(&Vote::new(3, 2))).expect("save");
        assert_eq!(cell.leader(), Some(LeaderId::new(3, 2)));
        block_on(log.save_vote(&Vote::new(4, 1))).expect("save");
        assert_eq!(cell.leader(), Some(LeaderId::new(4, 1)));

        // A restarted group's cell learns the stored vote as openraft reads it.
        let restarted = Arc::new(VoteCell::default());
        let mut log = GroupLogStore::new(7, store, restarted.clone());
        assert_eq!(
            block_on(log.read_vote()).expect("read"),
            Some(Vote::new(4, 1))
        );
        assert_eq!(restarted.leader(), Some(LeaderId::new(4, 1)));
    }
}
