//! [`LogStore`] on sled 0.34: one database per node, shared by every group.
//!
//! Layout (see the research notes, sled §5.5):
//! - tree `raft_log`: key `group u32 BE ‖ first index u64 BE` (12 bytes), value = a
//!   [run](super::run): the entries of one `append`, consecutive from the key's index.
//!   Big-endian keys make sled's byte order equal to `(group, index)` order, so one group's
//!   log is one contiguous key range, "last entry" is a reverse range scan, and the run
//!   holding index `i` is the last key at or below `(group, i)`.
//! - tree `raft_meta`: key `group u32 BE ‖ key bytes`, value = the metadata bytes.
//!
//! One database (not one per group) because a flush is page-cache wide: a single fsync then
//! covers every group, which is what makes group commit work; and because many sled trees or
//! databases bloat the disk (sled issue #1484).
//!
//! sled 0.34.7 behaviour this code is shaped by (read in its source, measured in
//! `examples/wal_bench.rs`):
//! - `Tree::apply_batch` takes a *process-wide* write lock that `flush` holds (shared) for
//!   its whole duration, fsync included; once any batch was used, every other operation
//!   takes the shared side too. A batch therefore waits for the flush in progress and stalls
//!   everyone behind it. Appends are therefore one plain `insert` of a whole run (about 5x
//!   the throughput of batches with 16 appenders); only truncate and purge use batches.
//! - The on-disk layout is versioned ([`LOG_FORMAT`]): a log written in another layout is
//!   refused at open rather than misread.
//! - `flush` is not an fsync on Linux, and blob files are never fsynced: see
//!   [`DurableFlush`].
//! - Dropping the last handle flushes and fsyncs, but background jobs on sled's global
//!   thread pool may keep the file (and its lock) for a moment longer: see [`ReleaseWait`].

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::log_store::flusher::{FlushFn, Flusher, Shared};
use crate::log_store::run;
use crate::log_store::{
    check_contiguous, check_continues, GroupId, LogIndex, LogStore, LogStoreStats, SyncCallback,
    NODE_META_GROUP,
};

const LOG_TREE: &str = "raft_log";
const META_TREE: &str = "raft_meta";

/// Node metadata key holding the log layout version.
const META_LOG_FORMAT: &str = "log_format";
/// Layout version 3: one run of entries per key, whose write commands carry the leader's
/// last-update time (version 2's entries did not decode as today's commands). Version 1,
/// one entry per key, had no marker.
const LOG_FORMAT: u32 = 3;

/// Keys removed per sled batch by truncate and purge. sled has no range delete, and a batch
/// holds sled's process-wide write lock while it is applied (blocking every other write and
/// flush), so huge deletes are split; removing from the right end keeps every intermediate
/// state (and thus every crash state) a contiguous log.
const DELETE_CHUNK: usize = 1024;

/// Number of per-group write locks (groups are hashed onto them).
const STRIPES: usize = 64;

type LastIndexCache = HashMap<GroupId, Option<LogIndex>>;

/// What the flusher thread runs: sled's flush, plus the fsyncs sled 0.34 leaves out.
///
/// sled 0.34.7's `flush()` promises that "all previous writes will be recovered if the
/// system crashes", but on Linux it makes its log stable with `sync_file_range(2)` only, which
/// neither flushes the drive's write cache nor persists file metadata (the file grows as
/// segments are added). Only its periodic background flusher, which we disable, calls
/// `fsync`. Values larger than about a quarter of a segment (~128 KiB) go to separate blob
/// files that sled writes without any fsync. Surviving kill -9 does not need more (the
/// page cache survives a process crash), but surviving power loss does, so this adds:
///
/// 1. before the flush: fsync every blob file that is new or grew since we last synced it,
///    then the blob directory. Blobs are written while the insert that references them
///    runs, so every blob of a write covered by this flush is complete at this point, and
///    no record this flush acknowledges can point at a blob that a power loss may drop.
///    (sled may write a record earlier on its own, when an I/O buffer fills; a power loss
///    can then leave a dangling pointer of an unacknowledged write. That is sled's
///    weakness, not fixable from outside; the crash test covers kill -9 only);
/// 2. `db.flush()`;
/// 3. `fdatasync` of sled's `db` file (fsync acts on the inode, so our own handle covers
///    sled's writes).
struct DurableFlush {
    db: sled::Db,
    db_file: File,
    blob_dir: PathBuf,
    /// Blob files and their size when we last fsynced them. A size seen *before* an fsync
    /// is covered by it; a file that grew since is synced again.
    synced_blobs: HashMap<OsString, u64>,
}

impl DurableFlush {
    fn new(db: sled::Db, path: &Path) -> Result<Self> {
        let db_file = File::open(path.join("db"))?;
        let blob_dir = path.join("blobs");
        // Make the files sled just created reachable after a power loss.
        sync_dir(path)?;
        if blob_dir.is_dir() {
            sync_dir(&blob_dir)?;
        }
        let mut this = Self {
            db,
            db_file,
            blob_dir,
            synced_blobs: HashMap::new(),
        };
        this.sync_blobs()?;
        Ok(this)
    }

    fn flush(&mut self) -> std::result::Result<usize, sled::Error> {
        self.sync_blobs().map_err(io_of)?;
        let bytes = self.db.flush()?;
        self.db_file.sync_data()?;
        Ok(bytes)
    }

    fn sync_blobs(&mut self) -> Result<()> {
        let entries = match std::fs::read_dir(&self.blob_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut seen = HashMap::with_capacity(self.synced_blobs.len());
        let mut new_file = false;
        for entry in entries {
            let entry = entry?;
            let len = match entry.metadata() {
                Ok(m) => m.len(),
                // sled removed it (garbage collection) while we looked: nothing to sync.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let name = entry.file_name();
            let synced = self.synced_blobs.get(&name) == Some(&len);
            if !synced {
                match File::open(entry.path()) {
                    Ok(f) => f.sync_data()?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                }
                new_file |= !self.synced_blobs.contains_key(&name);
            }
            seen.insert(name, len);
        }
        if new_file {
            sync_dir(&self.blob_dir)?;
        }
        // Forget removed blobs so the map does not grow forever.
        self.synced_blobs = seen;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// The flusher reports sled errors; our own I/O errors travel as sled's `Io` variant.
fn io_of(e: Error) -> sled::Error {
    match e {
        Error::Io(e) => sled::Error::Io(e),
        Error::Sled(e) => e,
        other => sled::Error::Io(std::io::Error::other(other.to_string())),
    }
}

/// sled's on-disk trade-off, see [`SledLogStoreOptions::mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SledMode {
    /// Favour write throughput (sled `Mode::HighThroughput`).
    HighThroughput,
    /// Favour a smaller disk footprint (sled `Mode::LowSpace`, sled's own default).
    LowSpace,
}

/// How to open a [`SledLogStore`].
#[derive(Debug, Clone)]
pub struct SledLogStoreOptions {
    /// sled's page cache size. Set explicitly because sled's default (1 GiB) competes with
    /// the in-memory records, which are the real working set of a node; the log is mostly
    /// written and rarely read back. The default, 16 MiB, holds the log's working set (each
    /// group's tail and the runs a purge deletes): against 64 MiB it left write and read
    /// throughput unchanged in `scripts/bench-ab` and took 62 B per record copy off a node
    /// loaded with 1,000,000 records (`scripts/bench-restart`).
    pub cache_capacity_bytes: u64,
    /// sled's space/throughput trade-off. The log is append + purge heavy; measure disk
    /// growth under purge before switching (research notes sled §5.4).
    pub mode: SledMode,
    /// Optional pause of the flusher after the first sync request arrives, to let more
    /// requests share the fsync. Zero flushes at once (lowest latency at low load).
    pub flush_linger: Duration,
    /// Add real fsyncs to sled's flush (see `DurableFlush`): needed to survive power loss
    /// and OS crashes. `false` keeps only sled's own flush, which survives a process crash
    /// (kill -9) but not power loss; it is 2-10x cheaper per flush (measured), so tests and
    /// simulations may turn it off. Never turn it off in production.
    pub fsync: bool,
}

impl Default for SledLogStoreOptions {
    fn default() -> Self {
        Self {
            cache_capacity_bytes: 16 * 1024 * 1024,
            mode: SledMode::HighThroughput,
            flush_linger: Duration::ZERO,
            fsync: true,
        }
    }
}

/// The production [`LogStore`]: sled plus a group-commit flusher thread.
///
/// Dropping it completes pending syncs, stops the flusher thread, closes sled (which
/// flushes) and waits until sled released the directory, so the same path can be opened
/// again as soon as the drop returns.
pub struct SledLogStore {
    // Field order matters for Drop: the flusher (which owns a database handle) stops first.
    flusher: Flusher,
    shared: Arc<Shared>,
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    /// Serializes writes per group so the contiguity check of `append` and the
    /// read-then-delete of truncate/purge are atomic with respect to each other. Each stripe
    /// also caches the last index of its groups (`None` inside = empty log; missing = not
    /// known), because finding it in sled is a reverse range scan that cost a quarter of the
    /// append throughput.
    stripes: Box<[Mutex<LastIndexCache>]>,
    path: PathBuf,
    /// Declared last so it is dropped after every sled handle above.
    _release: ReleaseWait,
}

/// Makes dropping the store wait until sled has really let go of the database.
///
/// sled runs some work (I/O buffer writes, segment truncation) on a process-wide thread
/// pool, and those jobs keep the database file open, and its lock held, for a moment after
/// the last handle is dropped (seen as "could not acquire lock" when a test reopened a path
/// right after dropping it). Worse, a late job of the old instance could still write the
/// file while a new instance uses it. So the drop polls the same `flock` that sled takes until
/// it is free, bounded by [`RELEASE_WAIT`].
struct ReleaseWait {
    db_file: PathBuf,
}

/// Longest a drop waits for sled's background jobs to release the database.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

impl Drop for ReleaseWait {
    fn drop(&mut self) {
        let Ok(file) = File::open(&self.db_file) else {
            return;
        };
        let deadline = std::time::Instant::now() + RELEASE_WAIT;
        loop {
            match file.try_lock() {
                // Closing `file` releases our lock again.
                Ok(()) => return,
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => {
                    tracing::warn!(error = %e, "cannot check that sled released its lock");
                    return;
                }
            }
            if std::time::Instant::now() >= deadline {
                tracing::warn!(path = %self.db_file.display(), "sled still holds its lock after the store was dropped");
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl std::fmt::Debug for SledLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledLogStore")
            .field("path", &self.path)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn log_key(group: GroupId, index: LogIndex) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&group.to_be_bytes());
    k[4..].copy_from_slice(&index.to_be_bytes());
    k
}

fn meta_key(group: GroupId, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + key.len());
    k.extend_from_slice(&group.to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

/// Splits a log key; a key of the wrong size means the tree holds something we never wrote.
fn decode_log_key(key: &[u8]) -> Result<(GroupId, LogIndex)> {
    let bytes: [u8; 12] = key
        .try_into()
        .map_err(|_| Error::Corruption(format!("log key of {} bytes, want 12", key.len())))?;
    let mut g = [0u8; 4];
    let mut i = [0u8; 8];
    g.copy_from_slice(&bytes[..4]);
    i.copy_from_slice(&bytes[4..]);
    Ok((GroupId::from_be_bytes(g), LogIndex::from_be_bytes(i)))
}

/// Refuses a log in another layout; marks a new one with ours. The marker is inserted
/// before any run, so sled's prefix recovery never keeps a run without it.
fn check_format(log: &sled::Tree, meta: &sled::Tree) -> Result<()> {
    let key = meta_key(NODE_META_GROUP, META_LOG_FORMAT);
    let found = meta
        .get(&key)?
        .map(|v| <[u8; 4]>::try_from(v.as_ref()).map_or(u32::MAX, u32::from_le_bytes));
    match found {
        Some(LOG_FORMAT) => Ok(()),
        None if log.is_empty() => {
            meta.insert(key, LOG_FORMAT.to_le_bytes().to_vec())?;
            Ok(())
        }
        other => Err(Error::Corruption(format!(
            "the log was written in layout {} and this build reads layout {LOG_FORMAT}; \
             start from an empty data directory (or an older build) instead",
            other.map_or("1".to_string(), |v| v.to_string())
        ))),
    }
}

fn decode_group_prefix(key: &[u8]) -> Result<GroupId> {
    let g: [u8; 4] = key
        .get(..4)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| Error::Corruption(format!("key of {} bytes, want >= 4", key.len())))?;
    Ok(GroupId::from_be_bytes(g))
}

impl SledLogStore {
    /// Opens (or creates) the store at `path`, recovering whatever sled recovers.
    ///
    /// Only one store may have a path open at a time (sled takes a file lock); opening it
    /// twice fails instead of corrupting it.
    pub fn open(path: impl AsRef<Path>, options: SledLogStoreOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mode = match options.mode {
            SledMode::HighThroughput => sled::Mode::HighThroughput,
            SledMode::LowSpace => sled::Mode::LowSpace,
        };
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(options.cache_capacity_bytes)
            // We flush ourselves: a background flush would only add fsyncs nobody waits for.
            .flush_every_ms(None)
            .mode(mode)
            .open()?;
        let log = db.open_tree(LOG_TREE)?;
        let meta = db.open_tree(META_TREE)?;
        check_format(&log, &meta)?;
        let shared = Arc::new(Shared::default());
        let flush: FlushFn = if options.fsync {
            let mut durable = DurableFlush::new(db.clone(), &path)?;
            Box::new(move || durable.flush())
        } else {
            let flush_db = db.clone();
            Box::new(move || flush_db.flush())
        };
        let flusher = Flusher::start(Arc::clone(&shared), flush, options.flush_linger)?;
        Ok(Self {
            flusher,
            shared,
            db,
            log,
            meta,
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
            _release: ReleaseWait {
                db_file: path.join("db"),
            },
            path,
        })
    }

    /// Bytes sled uses on disk; worth exporting because sled's space amplification under
    /// insert+delete workloads is a known problem (research notes sled §5.4).
    pub fn size_on_disk(&self) -> Result<u64> {
        self.shared.check()?;
        let size = self.db.size_on_disk();
        self.sled(size)
    }

    /// Why the store was poisoned, if it was.
    pub fn poison_cause(&self) -> Option<String> {
        self.shared.cause()
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Test hook: the next flush fails as if the disk returned an I/O error, so fail-stop
    /// handling can be tested without a broken disk.
    #[doc(hidden)]
    pub fn inject_flush_failure(&self) {
        self.shared.inject_flush_failure();
    }

    /// Maps a sled result, poisoning the store on error: sled errors are fail-stop, and after
    /// one we no longer know what is on disk.
    fn sled<T>(&self, res: sled::Result<T>) -> Result<T> {
        res.map_err(|e| {
            self.shared.poison(&e);
            Error::Sled(e)
        })
    }

    fn lock_group(&self, group: GroupId) -> MutexGuard<'_, LastIndexCache> {
        let stripe = &self.stripes[group as usize % STRIPES];
        stripe.lock().unwrap_or_else(|e| {
            // A panic while holding the lock may have left a stale cache entry: forget it.
            let mut cache = e.into_inner();
            cache.clear();
            cache
        })
    }

    /// The group's last index, from the cache or (once) from sled. Call with the stripe held.
    fn cached_last_index(
        &self,
        cache: &mut LastIndexCache,
        group: GroupId,
    ) -> Result<Option<LogIndex>> {
        if let Some(last) = cache.get(&group) {
            return Ok(*last);
        }
        let last = self.last_index(group)?;
        cache.insert(group, last);
        Ok(last)
    }

    /// The first index and the bytes of a range item's run (None for no item).
    fn run_of(
        &self,
        item: Option<sled::Result<(sled::IVec, sled::IVec)>>,
    ) -> Result<Option<(LogIndex, sled::IVec)>> {
        match item {
            None => Ok(None),
            Some(kv) => {
                let (k, v) = self.sled(kv)?;
                Ok(Some((decode_log_key(&k)?.1, v)))
            }
        }
    }

    /// The group's last run (its first index and bytes).
    fn last_run(&self, group: GroupId) -> Result<Option<(LogIndex, sled::IVec)>> {
        let mut range = self
            .log
            .range(log_key(group, 0)..=log_key(group, LogIndex::MAX));
        self.run_of(range.next_back())
    }

    /// The run holding `index`, or the last run before it.
    fn run_at_or_before(
        &self,
        group: GroupId,
        index: LogIndex,
    ) -> Result<Option<(LogIndex, sled::IVec)>> {
        let mut range = self.log.range(log_key(group, 0)..=log_key(group, index));
        self.run_of(range.next_back())
    }

    fn last_index(&self, group: GroupId) -> Result<Option<LogIndex>> {
        match self.last_run(group)? {
            None => Ok(None),
            Some((first, run)) => Ok(Some(run::last_index(first, &run)?)),
        }
    }

    /// Removes the keys of `range`, in chunks, starting from the high end if `from_end`.
    fn delete_range(&self, from: [u8; 12], to: [u8; 12], from_end: bool) -> Result<()> {
        loop {
            let mut keys = Vec::with_capacity(DELETE_CHUNK);
            let range = self.log.range(from..=to);
            if from_end {
                for kv in range.rev().take(DELETE_CHUNK) {
                    keys.push(self.sled(kv)?.0);
                }
            } else {
                for kv in range.take(DELETE_CHUNK) {
                    keys.push(self.sled(kv)?.0);
                }
            }
            if keys.is_empty() {
                return Ok(());
            }
            let done = keys.len() < DELETE_CHUNK;
            let mut batch = sled::Batch::default();
            for k in keys {
                batch.remove(k);
            }
            let res = self.log.apply_batch(batch);
            self.sled(res)?;
            if done {
                return Ok(());
            }
        }
    }

    /// Distinct group prefixes of `tree`, found by skipping from one group to the next
    /// (O(groups · log n), not a full scan).
    fn tree_groups(&self, tree: &sled::Tree, out: &mut Vec<GroupId>) -> Result<()> {
        let mut next: Option<GroupId> = Some(0);
        while let Some(g) = next {
            let first = tree.range(g.to_be_bytes()..).next();
            let Some(kv) = first else { break };
            let (k, _) = self.sled(kv)?;
            let found = decode_group_prefix(&k)?;
            out.push(found);
            next = found.checked_add(1);
        }
        Ok(())
    }
}

impl LogStore for SledLogStore {
    fn stats(&self) -> LogStoreStats {
        self.shared.stats()
    }

    fn append(&self, group: GroupId, entries: Vec<(LogIndex, Vec<u8>)>) -> Result<()> {
        self.shared.check()?;
        check_contiguous(&entries)?;
        let (Some(&(first, _)), Some(&(new_last, _))) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        let value = run::encode(entries.iter().map(|(_, data)| data.as_slice()))?;
        let mut cache = self.lock_group(group);
        check_continues(group, self.cached_last_index(&mut cache, group)?, first)?;
        // Forget the cached value until the write is known to have succeeded.
        cache.remove(&group);
        // One insert, atomic by itself, and clear of the flush lock `apply_batch` takes.
        let res = self.log.insert(log_key(group, first), value);
        self.sled(res)?;
        cache.insert(group, Some(new_last));
        Ok(())
    }

    fn truncate_after(&self, group: GroupId, after: Option<LogIndex>) -> Result<()> {
        self.shared.check()?;
        let from = match after {
            None => 0,
            Some(LogIndex::MAX) => return Ok(()),
            Some(a) => a + 1,
        };
        let mut cache = self.lock_group(group);
        // Rare: simply re-read the last index on the next append.
        cache.remove(&group);
        // Whole runs from the right end first, then the run that straddles `from` is cut
        // down (one insert): every crash state in between is a contiguous log.
        self.delete_range(log_key(group, from), log_key(group, LogIndex::MAX), true)?;
        if let Some(prev) = from.checked_sub(1) {
            if let Some((first, run)) = self.run_at_or_before(group, prev)? {
                if run::last_index(first, &run)? >= from {
                    let value = run::slice(first, &run, ..from)?;
                    let res = self.log.insert(log_key(group, first), value);
                    self.sled(res)?;
                }
            }
        }
        Ok(())
    }

    fn remove_group(&self, group: GroupId) -> Result<()> {
        self.truncate_after(group, None)?;
        let keys: Vec<sled::IVec> = self
            .meta
            .scan_prefix(group.to_be_bytes())
            .keys()
            .collect::<sled::Result<_>>()
            .map_err(|e| {
                self.shared.poison(&e);
                Error::Sled(e)
            })?;
        for k in keys {
            let res = self.meta.remove(k);
            self.sled(res)?;
        }
        Ok(())
    }

    fn purge_upto(&self, group: GroupId, upto: LogIndex) -> Result<()> {
        self.shared.check()?;
        let mut cache = self.lock_group(group);
        cache.remove(&group);
        let Some((first, run)) = self.run_at_or_before(group, upto)? else {
            return Ok(());
        };
        if run::last_index(first, &run)? <= upto {
            // Every run up to and including this one goes, lowest first.
            return self.delete_range(log_key(group, 0), log_key(group, first), false);
        }
        // This run straddles `upto`: the runs before it go, lowest first, then it is replaced
        // by its suffix under the suffix's first index, atomically.
        if let Some(before) = first.checked_sub(1) {
            self.delete_range(log_key(group, 0), log_key(group, before), false)?;
        }
        let mut batch = sled::Batch::default();
        batch.remove(&log_key(group, first));
        batch.insert(
            &log_key(group, upto + 1),
            run::slice(first, &run, upto + 1..)?,
        );
        let res = self.log.apply_batch(batch);
        self.sled(res)
    }

    fn entries(
        &self,
        group: GroupId,
        start: LogIndex,
        end: LogIndex,
    ) -> Result<Vec<(LogIndex, Vec<u8>)>> {
        self.shared.check()?;
        if start >= end {
            return Ok(Vec::new());
        }
        // Begin with the run holding `start`, which may begin before it.
        let from = match self.run_at_or_before(group, start)? {
            Some((first, _)) => first,
            None => start,
        };
        let mut out = Vec::new();
        for kv in self.log.range(log_key(group, from)..log_key(group, end)) {
            let (k, v) = self.sled(kv)?;
            out.extend(run::decode(decode_log_key(&k)?.1, &v, start..end)?);
        }
        Ok(out)
    }

    fn last_entry(&self, group: GroupId) -> Result<Option<(LogIndex, Vec<u8>)>> {
        self.shared.check()?;
        match self.last_run(group)? {
            None => Ok(None),
            Some((first, run)) => {
                let last = run::last_index(first, &run)?;
                Ok(run::decode(first, &run, last..)?.pop())
            }
        }
    }

    fn first_index(&self, group: GroupId) -> Result<Option<LogIndex>> {
        self.shared.check()?;
        let mut range = self
            .log
            .range(log_key(group, 0)..=log_key(group, LogIndex::MAX));
        Ok(self.run_of(range.next())?.map(|(first, _)| first))
    }

    fn put_meta(&self, group: GroupId, key: &str, value: Vec<u8>) -> Result<()> {
        self.shared.check()?;
        let res = self.meta.insert(meta_key(group, key), value);
        self.sled(res)?;
        Ok(())
    }

    fn get_meta(&self, group: GroupId, key: &str) -> Result<Option<Vec<u8>>> {
        self.shared.check()?;
        let res = self.meta.get(meta_key(group, key));
        Ok(self.sled(res)?.map(|v| v.to_vec()))
    }

    fn groups(&self) -> Result<Vec<GroupId>> {
        self.shared.check()?;
        let mut out = Vec::new();
        self.tree_groups(&self.log, &mut out)?;
        self.tree_groups(&self.meta, &mut out)?;
        out.retain(|&g| g != NODE_META_GROUP);
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn sync(&self, done: SyncCallback) {
        self.flusher.submit(done);
    }
}
