//! Per-group snapshot files: `<dir>/snap-<group>`, the latest snapshot of each group.
//!
//! Snapshots live outside sled on purpose: whole-partition blobs bloat sled and a snapshot
//! is written once and read once (research notes, sled §5.5). Each file is replaced
//! atomically (write `snap-<group>.tmp`, fsync, rename, fsync the directory), so after a crash
//! a group has either its old snapshot or its new one, never a mix; the header checksum turns
//! any other damage into [`Error::Corruption`] instead of a silently wrong state machine.
//!
//! File format (all integers big-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `STRSNAP\0` |
//! | 4 | format version (1) |
//! | 4 | group id (must match the file name: catches a file copied to the wrong place) |
//! | 8 | meta length M |
//! | 8 | data length D |
//! | 4 | crc32 of the 32 bytes above, then meta, then data |
//! | M | meta |
//! | D | data |
//!
//! The file length must be exactly 36 + M + D, so truncation and trailing garbage are caught
//! before the checksum is even computed.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::log_store::GroupId;

const MAGIC: &[u8; 8] = b"STRSNAP\0";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 36;
const PREFIX: &str = "snap-";
const TMP_SUFFIX: &str = ".tmp";

/// The snapshot directory of a node.
///
/// Saves of one group must not run concurrently (they share the `.tmp` name); the Raft layer
/// builds at most one snapshot per group at a time. Different groups are independent.
#[derive(Debug, Clone)]
pub struct SnapshotFiles {
    dir: PathBuf,
}

impl SnapshotFiles {
    /// Opens (creating if needed) the directory and removes leftover `.tmp` files: they are
    /// saves that crashed before their rename, so they never became a snapshot. Create one
    /// `SnapshotFiles` per directory, at startup, before any save runs.
    pub fn new(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(PREFIX) && name.ends_with(TMP_SUFFIX) {
                match fs::remove_file(entry.path()) {
                    Ok(()) => tracing::info!(file = name, "removed unfinished snapshot"),
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(Self { dir })
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, group: GroupId) -> PathBuf {
        self.dir.join(format!("{PREFIX}{group}"))
    }

    fn tmp_path(&self, group: GroupId) -> PathBuf {
        self.dir.join(format!("{PREFIX}{group}{TMP_SUFFIX}"))
    }

    /// Replaces the group's snapshot with `(meta, data)`, durably, when this returns `Ok`.
    ///
    /// Only then may the caller purge the log entries the snapshot covers: the rename and the
    /// directory fsync are what make the new file survive a crash.
    pub fn save(&self, group: GroupId, meta: &[u8], data: &[u8]) -> Result<()> {
        let header = header(group, meta, data);
        let tmp = self.tmp_path(group);
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(&header)?;
            f.write_all(meta)?;
            f.write_all(data)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.path(group))?;
        sync_dir(&self.dir)
    }

    /// The group's latest snapshot as `(meta, data)`, or `None` if it never saved one.
    ///
    /// Fails with [`Error::Corruption`] if the file does not pass every check: a damaged
    /// snapshot must never be installed, and "no snapshot" would be wrong too (the log
    /// before it may already be purged), so the caller has to recover from another replica.
    pub fn load(&self, group: GroupId) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let path = self.path(group);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let file_len = f.metadata()?.len();
        let corrupt = |what: String| Error::Corruption(format!("{}: {what}", path.display()));

        let mut header = [0u8; HEADER_LEN];
        if file_len < HEADER_LEN as u64 {
            return Err(corrupt(format!(
                "{file_len} bytes, shorter than the header"
            )));
        }
        f.read_exact(&mut header)?;
        if &header[0..8] != MAGIC {
            return Err(corrupt("bad magic".into()));
        }
        let version = be_u32(&header[8..12]);
        if version != VERSION {
            return Err(corrupt(format!("format version {version}, want {VERSION}")));
        }
        let file_group = be_u32(&header[12..16]);
        if file_group != group {
            return Err(corrupt(format!("holds group {file_group}, want {group}")));
        }
        let meta_len = be_u64(&header[16..24]);
        let data_len = be_u64(&header[24..32]);
        let want_crc = be_u32(&header[32..36]);
        let expected_len = (HEADER_LEN as u64)
            .checked_add(meta_len)
            .and_then(|n| n.checked_add(data_len));
        if expected_len != Some(file_len) {
            return Err(corrupt(format!(
                "{file_len} bytes, header says {HEADER_LEN} + {meta_len} + {data_len}"
            )));
        }
        // The lengths now match the real file size, so these allocations are bounded by it.
        let mut meta = vec![0u8; to_usize(meta_len)?];
        let mut data = vec![0u8; to_usize(data_len)?];
        f.read_exact(&mut meta)?;
        f.read_exact(&mut data)?;

        let mut crc = crc32fast::Hasher::new();
        crc.update(&header[..32]);
        crc.update(&meta);
        crc.update(&data);
        let got_crc = crc.finalize();
        if got_crc != want_crc {
            return Err(corrupt(format!(
                "checksum {got_crc:#010x}, header says {want_crc:#010x}"
            )));
        }
        Ok(Some((meta, data)))
    }

    /// Deletes the group's snapshot (for example when the group is removed from this node).
    /// Missing is fine. Durable when this returns.
    pub fn remove(&self, group: GroupId) -> Result<()> {
        match fs::remove_file(self.path(group)) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Groups that have a snapshot file, ascending. Recovery uses it next to
    /// `LogStore::groups`, since a group whose log is fully purged may only have a snapshot.
    pub fn groups(&self) -> Result<Vec<GroupId>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(g) = name.strip_prefix(PREFIX).and_then(|g| g.parse().ok()) {
                out.push(g);
            }
        }
        out.sort_unstable();
        Ok(out)
    }
}

fn header(group: GroupId, meta: &[u8], data: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_be_bytes());
    h[12..16].copy_from_slice(&group.to_be_bytes());
    h[16..24].copy_from_slice(&(meta.len() as u64).to_be_bytes());
    h[24..32].copy_from_slice(&(data.len() as u64).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[..32]);
    crc.update(meta);
    crc.update(data);
    h[32..36].copy_from_slice(&crc.finalize().to_be_bytes());
    h
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_be_bytes(a)
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

fn to_usize(n: u64) -> Result<usize> {
    usize::try_from(n).map_err(|_| Error::Corruption(format!("length {n} does not fit in memory")))
}

/// Makes a rename (or removal) in `dir` durable: the new directory entry is only on disk
/// once the directory itself is fsynced.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}
