//! [`MemLogStore`]: the reference model of [`LogStore`], with a durability model.
//!
//! It exists so that (a) the conformance suite and the property test have an obviously
//! correct oracle to compare sled against, and (b) Raft tests and simulations can model
//! power loss deterministically: [`MemLogStore::crash`] keeps exactly what a completed sync
//! covered, [`MemLogStore::crash_keeping`] also keeps a prefix of later writes, as sled may.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::log_store::{
    check_contiguous, check_continues, GroupId, LogIndex, LogStore, LogStoreStats, SyncCallback,
    NODE_META_GROUP,
};

/// The whole logical content of a store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct State {
    logs: BTreeMap<GroupId, BTreeMap<LogIndex, Vec<u8>>>,
    meta: BTreeMap<(GroupId, String), Vec<u8>>,
}

/// One write, recorded until a sync makes it durable.
#[derive(Debug, Clone)]
enum Op {
    Append(GroupId, Vec<(LogIndex, Vec<u8>)>),
    Truncate(GroupId, Option<LogIndex>),
    Purge(GroupId, LogIndex),
    PutMeta(GroupId, String, Vec<u8>),
    RemoveGroup(GroupId),
}

impl State {
    fn apply(&mut self, op: Op) {
        match op {
            Op::Append(g, entries) => {
                self.logs.entry(g).or_default().extend(entries);
            }
            Op::Truncate(g, after) => {
                if let Some(log) = self.logs.get_mut(&g) {
                    match after {
                        None => log.clear(),
                        Some(a) => {
                            if let Some(from) = a.checked_add(1) {
                                log.split_off(&from);
                            }
                        }
                    }
                    if log.is_empty() {
                        self.logs.remove(&g);
                    }
                }
            }
            Op::Purge(g, upto) => {
                if let Some(log) = self.logs.get_mut(&g) {
                    *log = match upto.checked_add(1) {
                        Some(from) => log.split_off(&from),
                        None => BTreeMap::new(),
                    };
                    if log.is_empty() {
                        self.logs.remove(&g);
                    }
                }
            }
            Op::PutMeta(g, k, v) => {
                self.meta.insert((g, k), v);
            }
            Op::RemoveGroup(g) => {
                self.logs.remove(&g);
                self.meta.retain(|(mg, _), _| *mg != g);
            }
        }
    }

    fn last_index(&self, g: GroupId) -> Option<LogIndex> {
        self.logs
            .get(&g)
            .and_then(|l| l.last_key_value())
            .map(|(i, _)| *i)
    }
}

/// The "disk" of a [`MemLogStore`]: what survives a crash or a drop.
///
/// Cloning it shares the same disk, so a test can drop a store and open a new one on the same
/// `MemDisk` to emulate a restart (the conformance suite's reopen cases do this).
#[derive(Debug, Clone, Default)]
pub struct MemDisk(Arc<Mutex<State>>);

impl MemDisk {
    /// A new, empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// What reads see.
    current: State,
    /// Writes not yet covered by a completed sync, in order.
    pending: Vec<Op>,
    poisoned: bool,
    fail_next_sync: bool,
    stats: LogStoreStats,
}

/// In-memory [`LogStore`] with an explicit durability model.
///
/// `sync` completes synchronously (inside the call). A clean drop makes everything durable,
/// like closing sled does; only [`MemLogStore::crash`] loses data.
#[derive(Debug)]
pub struct MemLogStore {
    disk: MemDisk,
    inner: Mutex<Inner>,
}

impl Default for MemLogStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemLogStore {
    /// A store on a fresh private disk.
    pub fn new() -> Self {
        Self::open(MemDisk::new())
    }

    /// A store that recovers from, and persists to, `disk`. Open at most one store per disk
    /// at a time (as with sled); two would overwrite each other's durable state.
    pub fn open(disk: MemDisk) -> Self {
        let current = disk.lock().clone();
        Self {
            disk,
            inner: Mutex::new(Inner {
                current,
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Power loss: every write not covered by a completed sync is lost. The store then
    /// behaves like a freshly restarted one (not poisoned).
    pub fn crash(&self) {
        self.crash_keeping(0);
    }

    /// Power loss where the backend managed to persist the first `ops` unsynced writes
    /// (each append batch, truncate, purge or meta put is one write). sled recovers a
    /// prefix of its log, so a correct caller must tolerate any `ops` in
    /// `0..=pending_writes()`, not only the "lose everything" case.
    pub fn crash_keeping(&self, ops: usize) {
        let mut inner = self.lock();
        let mut disk = self.disk.lock();
        let pending = std::mem::take(&mut inner.pending);
        for op in pending.into_iter().take(ops) {
            disk.apply(op);
        }
        inner.current = disk.clone();
        inner.poisoned = false;
        inner.fail_next_sync = false;
    }

    /// Writes not yet covered by a completed sync.
    pub fn pending_writes(&self) -> usize {
        self.lock().pending.len()
    }

    /// Fault injection: the next sync fails and poisons the store, as a failed fsync does in
    /// [`super::SledLogStore`].
    pub fn inject_sync_failure(&self) {
        self.lock().fail_next_sync = true;
    }

    /// Runs a write: checks poison, applies it to the visible state and records it.
    fn write(&self, op: Op) -> Result<()> {
        let mut inner = self.lock();
        if inner.poisoned {
            return Err(Error::Poisoned);
        }
        if let Op::Append(g, entries) = &op {
            let Some(&(first, _)) = entries.first() else {
                return Ok(());
            };
            check_continues(*g, inner.current.last_index(*g), first)?;
        }
        inner.current.apply(op.clone());
        inner.pending.push(op);
        Ok(())
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> Result<T> {
        let inner = self.lock();
        if inner.poisoned {
            return Err(Error::Poisoned);
        }
        Ok(f(&inner.current))
    }
}

impl Drop for MemLogStore {
    /// A clean shutdown persists everything, like dropping sled (which flushes).
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        if inner.poisoned {
            return;
        }
        let mut disk = self.disk.lock();
        for op in inner.pending.drain(..) {
            disk.apply(op);
        }
    }
}

impl LogStore for MemLogStore {
    /// One "flush" per successful sync.
    fn stats(&self) -> LogStoreStats {
        let inner = self.lock();
        LogStoreStats {
            poisoned: inner.poisoned,
            ..inner.stats
        }
    }

    fn append(&self, group: GroupId, entries: Vec<(LogIndex, Vec<u8>)>) -> Result<()> {
        check_contiguous(&entries)?;
        self.write(Op::Append(group, entries))
    }

    fn truncate_after(&self, group: GroupId, after: Option<LogIndex>) -> Result<()> {
        self.write(Op::Truncate(group, after))
    }

    fn remove_group(&self, group: GroupId) -> Result<()> {
        self.write(Op::RemoveGroup(group))
    }

    fn purge_upto(&self, group: GroupId, upto: LogIndex) -> Result<()> {
        self.write(Op::Purge(group, upto))
    }

    fn entries(
        &self,
        group: GroupId,
        start: LogIndex,
        end: LogIndex,
    ) -> Result<Vec<(LogIndex, Vec<u8>)>> {
        self.read(|s| {
            if start >= end {
                return Vec::new();
            }
            s.logs
                .get(&group)
                .map(|l| l.range(start..end).map(|(i, v)| (*i, v.clone())).collect())
                .unwrap_or_default()
        })
    }

    fn last_entry(&self, group: GroupId) -> Result<Option<(LogIndex, Vec<u8>)>> {
        self.read(|s| {
            s.logs
                .get(&group)
                .and_then(|l| l.last_key_value())
                .map(|(i, v)| (*i, v.clone()))
        })
    }

    fn first_index(&self, group: GroupId) -> Result<Option<LogIndex>> {
        self.read(|s| {
            s.logs
                .get(&group)
                .and_then(|l| l.first_key_value())
                .map(|(i, _)| *i)
        })
    }

    fn put_meta(&self, group: GroupId, key: &str, value: Vec<u8>) -> Result<()> {
        self.write(Op::PutMeta(group, key.to_owned(), value))
    }

    fn get_meta(&self, group: GroupId, key: &str) -> Result<Option<Vec<u8>>> {
        self.read(|s| s.meta.get(&(group, key.to_owned())).cloned())
    }

    fn groups(&self) -> Result<Vec<GroupId>> {
        self.read(|s| {
            let mut out: Vec<GroupId> = s
                .logs
                .keys()
                .copied()
                .chain(s.meta.keys().map(|(g, _)| *g))
                .filter(|&g| g != NODE_META_GROUP)
                .collect();
            out.sort_unstable();
            out.dedup();
            out
        })
    }

    fn sync(&self, done: SyncCallback) {
        let res = {
            let mut inner = self.lock();
            if inner.poisoned {
                Err(Error::Poisoned)
            } else if inner.fail_next_sync {
                inner.fail_next_sync = false;
                inner.poisoned = true;
                Err(Error::Io(std::io::Error::other("injected sync failure")))
            } else {
                let mut disk = self.disk.lock();
                for op in inner.pending.drain(..) {
                    disk.apply(op);
                }
                drop(disk);
                inner.stats.flushes += 1;
                Ok(())
            }
        };
        {
            let mut inner = self.lock();
            if res.is_ok() {
                inner.stats.synced_requests += 1;
            } else {
                inner.stats.failed_requests += 1;
            }
        }
        // Outside the lock: the callback may call back into the store.
        done(res);
    }
}
