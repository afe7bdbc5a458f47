//! The durable Raft log of a node: the write-ahead log of every Raft group it hosts.
//!
//! Records live in memory; this log (plus the per-group snapshot files) is what survives a
//! crash, so its contract is the durability contract of the whole system (design §5).
//! The Raft layer talks only to the [`LogStore`] trait, so the backend can be replaced (sled
//! has open corruption reports) without touching Raft code; [`crate::conformance`] pins the
//! behaviour every backend must have.
//!
//! Two implementations:
//! - [`SledLogStore`]: one sled database per node shared by all groups, with group commit
//!   (one fsync covers every group's pending writes).
//! - [`MemLogStore`]: the reference model, with an explicit durability model so tests and
//!   simulations can model power loss.

mod flusher;
mod mem_store;
mod run;
mod sled_store;

pub use mem_store::{MemDisk, MemLogStore};
pub use sled_store::{SledLogStore, SledLogStoreOptions, SledMode};

use crate::error::{Error, Result};

/// Identifies a Raft group on this node. Groups share one store, so every operation names one.
pub type GroupId = u32;

/// Position of an entry in one group's Raft log.
pub type LogIndex = u64;

/// Reserved group id for node-level metadata (e.g. the roster, cluster id).
///
/// It never collides with a real group and is left out of [`LogStore::groups`], so
/// recovery code that restarts "every group found on disk" does not try to start a Raft
/// group for it.
pub const NODE_META_GROUP: GroupId = u32::MAX;

/// Completion of a [`LogStore::sync`] request.
///
/// It runs on the store's flusher thread (or inline), so it must be quick and must never
/// block on the store itself (calling [`LogStore::sync_blocking`] from it would deadlock;
/// calling [`LogStore::sync`] is fine).
pub type SyncCallback = Box<dyn FnOnce(Result<()>) + Send + 'static>;

/// Counters for metrics. They only grow, so a scraper can compute rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStoreStats {
    /// fsyncs performed (one per group-commit batch).
    pub flushes: u64,
    /// `sync` requests completed with `Ok`. `synced_requests / flushes` is the batching ratio.
    pub synced_requests: u64,
    /// `sync` requests completed with an error.
    pub failed_requests: u64,
    /// Bytes written by the fsyncs, as reported by the backend.
    pub flushed_bytes: u64,
    /// The store has failed and refuses all further work.
    pub poisoned: bool,
}

/// The durable, multi-group Raft log of a node.
///
/// Writes are split into "visible" and "durable" on purpose: Raft may replicate an entry as
/// soon as it is stored locally, but may only count the local copy towards a commit quorum
/// (or answer a vote) once it is durable. Separating the two lets one fsync (group commit)
/// cover the writes of many groups and many requests, which is where the throughput of a
/// node hosting hundreds of groups comes from.
///
/// Writes to one group must be issued by one caller at a time (Raft's per-group core does
/// this); different groups may be written concurrently.
///
/// Failure model: an error from the backend is fail-stop. After one, the store is poisoned
/// and every later call fails, because a store that lost a write cannot know which of its
/// earlier promises still hold.
pub trait LogStore: Send + Sync + 'static {
    /// Append entries with contiguous indexes. Visible to `entries`/`last_entry` when this returns;
    /// durable only once a `sync` requested after it has completed. Batches are atomic after a crash.
    ///
    /// If the group already has entries, the first new index must be `last + 1`; otherwise any
    /// start index is accepted (the log may start after a snapshot). A hole or an overwrite
    /// means the caller's idea of the log diverged from the store's, so it is refused with
    /// [`Error::InvalidArgument`] and nothing is written; Raft must `truncate_after` first.
    /// An empty batch is a no-op.
    fn append(&self, group: GroupId, entries: Vec<(LogIndex, Vec<u8>)>) -> Result<()>;

    /// Remove every entry with index > after (None = remove all entries of the group).
    ///
    /// Used when a new leader overwrites uncommitted entries. Durable after the next sync; a
    /// crash before it may leave a suffix of the removed entries (never a hole), which Raft
    /// truncates again because those entries were never committed.
    fn truncate_after(&self, group: GroupId, after: Option<LogIndex>) -> Result<()>;

    /// Remove every entry with index <= upto.
    ///
    /// Used once a snapshot covers the prefix. Durable after the next sync; a crash before it
    /// may leave a prefix of the removed entries (never a hole), which is harmless because the
    /// snapshot already covers them. Purging past the last entry empties the group's log.
    fn purge_upto(&self, group: GroupId, upto: LogIndex) -> Result<()>;

    /// Forget the group entirely: every entry and every metadata key (used when its namespace
    /// is dropped). Durable after the next sync; a crash before it may leave part of the
    /// group, which the caller removes again on restart.
    fn remove_group(&self, group: GroupId) -> Result<()>;

    /// Entries with start <= index < end, in order.
    ///
    /// Returns only what is stored: purged or never-written indexes are simply absent, so the
    /// caller can detect a read below `first_index`.
    fn entries(
        &self,
        group: GroupId,
        start: LogIndex,
        end: LogIndex,
    ) -> Result<Vec<(LogIndex, Vec<u8>)>>;

    /// The entry with the highest index, if any.
    fn last_entry(&self, group: GroupId) -> Result<Option<(LogIndex, Vec<u8>)>>;

    /// The lowest index still stored, if any.
    fn first_index(&self, group: GroupId) -> Result<Option<LogIndex>>;

    /// Small per-group metadata (vote, committed, last purged...). Durable after the next sync completes.
    ///
    /// Ordered with the log: a crash never keeps a later write while losing an earlier one
    /// (of any group), so for example a vote saved before an append is on disk whenever the
    /// append is.
    fn put_meta(&self, group: GroupId, key: &str, value: Vec<u8>) -> Result<()>;

    /// The last value `put_meta` stored for `(group, key)`, if any.
    fn get_meta(&self, group: GroupId, key: &str) -> Result<Option<Vec<u8>>>;

    /// Every group (other than NODE_META_GROUP) that has any log entry or metadata.
    ///
    /// Recovery uses it to find which groups to restart; sorted ascending.
    fn groups(&self) -> Result<Vec<GroupId>>;

    /// Counters for metrics (fsyncs, requests they covered, bytes).
    fn stats(&self) -> LogStoreStats;

    /// Ask for everything written so far to become durable; `done` runs after one fsync that
    /// covers it. Many concurrent requests share one fsync (group commit across all groups).
    ///
    /// `done` is called exactly once, also when the store is poisoned or closing (with an
    /// error). `Ok` means every write that returned before `sync` was called survives a crash.
    fn sync(&self, done: SyncCallback);

    /// Blocking convenience over `sync` (provided method).
    ///
    /// Waits for the fsync on the calling thread; use `sync` from async code instead.
    fn sync_blocking(&self) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.sync(Box::new(move |res| {
            // The receiver only disappears if this thread is gone; nothing to report then.
            let _ = tx.send(res);
        }));
        rx.recv().unwrap_or(Err(Error::Closed))
    }
}

/// Checks the `append` contract that does not depend on stored state: strictly consecutive
/// indexes without overflow. Shared by every implementation so they refuse the same input.
pub(crate) fn check_contiguous(entries: &[(LogIndex, Vec<u8>)]) -> Result<()> {
    for pair in entries.windows(2) {
        if pair[0].0.checked_add(1) != Some(pair[1].0) {
            return Err(Error::InvalidArgument(format!(
                "append: indexes not contiguous ({} followed by {})",
                pair[0].0, pair[1].0
            )));
        }
    }
    Ok(())
}

/// Checks that a batch starting at `first` continues a log whose last index is `last`.
pub(crate) fn check_continues(
    group: GroupId,
    last: Option<LogIndex>,
    first: LogIndex,
) -> Result<()> {
    match last {
        Some(last) if last.checked_add(1) != Some(first) => Err(Error::InvalidArgument(format!(
            "append: group {group} ends at index {last}, batch starts at {first} \
             (a hole or an overwrite; truncate first)"
        ))),
        _ => Ok(()),
    }
}
