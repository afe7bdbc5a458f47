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
//!
//! Snapshots are streamed, never held whole in memory: a save encodes straight into the file
//! (the header is filled in last), a transfer to another node sends the file as it is, in
//! chunks ([`SnapshotHandle::read_chunk`]), the receiver appends them to a file of its own
//! ([`SnapshotFiles::receive_chunk`]) and checks it with the same header and checksum, and
//! installing decodes from the file ([`SnapshotHandle::data`]).

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::log_store::GroupId;

const MAGIC: &[u8; 8] = b"STRSNAP\0";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 36;
const PREFIX: &str = "snap-";
/// Suffixes of files that are not (yet) a group's snapshot: a save before its rename, a
/// snapshot arriving from a leader, one fully received and waiting to be installed. Any of
/// them found at start-up is left over from a crash and removed.
const TMP_SUFFIX: &str = ".tmp";
const RECV_SUFFIX: &str = ".recv";
const READY_INFIX: &str = ".ready-";
/// Buffer size for streaming a snapshot through the checksum or to disk.
const IO_BUF: usize = 1 << 20;

/// The snapshot directory of a node.
///
/// Saves of one group must not run concurrently (they share the `.tmp` name); the Raft layer
/// builds at most one snapshot per group at a time. Receives of one group must not run
/// concurrently either (they share the `.recv` name); the Raft layer serializes them per
/// group. Different groups are independent.
#[derive(Debug)]
pub struct SnapshotFiles {
    dir: PathBuf,
    /// Names received snapshots uniquely, so installing one never races the next transfer.
    next_ready: AtomicU64,
}

/// One snapshot file, opened and verified: the small meta in memory, the data read on
/// demand. Reads are positioned (`pread`), so clones share the file without sharing a
/// cursor, and a newer snapshot replacing the file by rename does not change what an older
/// handle reads: a transfer in progress keeps the snapshot it started with.
#[derive(Debug, Clone)]
pub struct SnapshotHandle {
    file: Arc<File>,
    path: PathBuf,
    meta: Vec<u8>,
    len: u64,
}

impl SnapshotHandle {
    /// The meta stored with the data (opaque to this crate).
    pub fn meta(&self) -> &[u8] {
        &self.meta
    }

    /// Length of the whole file (header, meta and data): what a transfer sends.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never true: a valid file holds at least its header.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Up to `max` bytes of the whole file from `offset`: a transfer sends the file as it is
    /// on disk, so the receiver checks it with the same header and checksum.
    pub fn read_chunk(&self, offset: u64, max: usize) -> std::io::Result<Vec<u8>> {
        let n = usize::try_from(self.len.saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(max);
        let mut buf = vec![0u8; n];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// A reader over the data, for decoding it without loading it whole.
    pub fn data(&self) -> impl Read + '_ {
        std::io::BufReader::with_capacity(
            IO_BUF,
            PositionedReader {
                file: &self.file,
                pos: HEADER_LEN as u64 + self.meta.len() as u64,
                end: self.len,
            },
        )
    }

    /// The whole data in memory (small snapshots, tests).
    pub fn read_data(&self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.data().read_to_end(&mut out)?;
        Ok(out)
    }
}

/// Reads `file[pos..end]` with positioned reads.
struct PositionedReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = usize::try_from(self.end.saturating_sub(self.pos)).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Counts and checksums what passes through to the file.
struct Tee<W> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl SnapshotFiles {
    /// Opens (creating if needed) the directory and removes leftover temporary files: saves
    /// that crashed before their rename and transfers that never completed, so none of them
    /// became a snapshot. Create one `SnapshotFiles` per directory, at startup, before any
    /// save runs.
    pub fn new(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let leftover = name.ends_with(TMP_SUFFIX)
                || name.ends_with(RECV_SUFFIX)
                || name.contains(READY_INFIX);
            if name.starts_with(PREFIX) && leftover {
                match fs::remove_file(entry.path()) {
                    Ok(()) => tracing::info!(file = name, "removed unfinished snapshot"),
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(Self {
            dir,
            next_ready: AtomicU64::new(0),
        })
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

    fn recv_path(&self, group: GroupId) -> PathBuf {
        self.dir.join(format!("{PREFIX}{group}{RECV_SUFFIX}"))
    }

    /// Replaces the group's snapshot with `(meta, data)`, durably, when this returns `Ok`.
    pub fn save(&self, group: GroupId, meta: &[u8], data: &[u8]) -> Result<()> {
        self.write(group, meta, |w| w.write_all(data)).map(|_| ())
    }

    /// Replaces the group's snapshot with `meta` and whatever `data` writes, streamed to the
    /// file (the encoded data is never held in memory whole), durably when this returns
    /// `Ok`. Only then may the caller purge the log entries the snapshot covers: the rename
    /// and the directory fsync are what make the new file survive a crash.
    pub fn write(
        &self,
        group: GroupId,
        meta: &[u8],
        data: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<SnapshotHandle> {
        let tmp = self.tmp_path(group);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        // The header needs the data's length and checksum: write the data after a blank
        // header, checksumming on the way, and fill the header in last.
        let (crc, len) = {
            let mut out = Tee {
                inner: BufWriter::with_capacity(IO_BUF, &file),
                crc: crc32fast::Hasher::new(),
                len: 0,
            };
            out.inner.write_all(&[0u8; HEADER_LEN])?;
            out.inner.write_all(meta)?;
            data(&mut out)?;
            out.flush()?;
            (out.crc, out.len)
        };
        let mut body_crc = crc32fast::Hasher::new();
        body_crc.update(meta);
        body_crc.combine(&crc);
        let h = header(group, meta.len() as u64, len, body_crc);
        file.write_all_at(&h, 0)?;
        file.sync_all()?;
        let path = self.path(group);
        fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)?;
        Ok(SnapshotHandle {
            file: Arc::new(file),
            path,
            meta: meta.to_vec(),
            len: (HEADER_LEN + meta.len()) as u64 + len,
        })
    }

    /// The group's latest snapshot as `(meta, data)`, or `None` if it never saved one.
    pub fn load(&self, group: GroupId) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        match self.open(group)? {
            Some(h) => Ok(Some((h.meta.clone(), h.read_data()?))),
            None => Ok(None),
        }
    }

    /// The group's latest snapshot, verified, or `None` if it never saved one.
    ///
    /// Fails with [`Error::Corruption`] if the file does not pass every check: a damaged
    /// snapshot must never be installed, and "no snapshot" would be wrong too (the log
    /// before it may already be purged), so the caller has to recover from another replica.
    pub fn open(&self, group: GroupId) -> Result<Option<SnapshotHandle>> {
        let path = self.path(group);
        match File::open(&path) {
            Ok(f) => verify(f, path, group).map(Some),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores one chunk of a snapshot file arriving from another node: `bytes` at `offset`
    /// of a file of `total` bytes. Chunks come in order from offset 0 (which starts over);
    /// a gap or overlap is refused, so the sender starts again. The last chunk makes the file
    /// durable and checks it whole, then returns it under a name of its own, ready for
    /// [`SnapshotFiles::install`]; a damaged transfer is [`Error::Corruption`].
    pub fn receive_chunk(
        &self,
        group: GroupId,
        offset: u64,
        total: u64,
        bytes: &[u8],
    ) -> Result<Option<SnapshotHandle>> {
        let end = offset.checked_add(bytes.len() as u64);
        if end.is_none_or(|end| end > total) {
            return Err(Error::InvalidArgument(format!(
                "snapshot chunk at {offset} of {} bytes passes the end ({total})",
                bytes.len()
            )));
        }
        let recv = self.recv_path(group);
        let file = if offset == 0 {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&recv)?
        } else {
            let f = match OpenOptions::new().read(true).write(true).open(&recv) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(Error::InvalidArgument(format!(
                        "snapshot chunk at {offset} without its start"
                    )))
                }
                Err(e) => return Err(e.into()),
            };
            let have = f.metadata()?.len();
            if have != offset {
                return Err(Error::InvalidArgument(format!(
                    "snapshot chunk at {offset}, {have} bytes received"
                )));
            }
            f
        };
        file.write_all_at(bytes, offset)?;
        if end != Some(total) {
            return Ok(None);
        }
        file.sync_all()?;
        drop(file);
        let ready = self.dir.join(format!(
            "{PREFIX}{group}{READY_INFIX}{}",
            self.next_ready.fetch_add(1, Ordering::Relaxed)
        ));
        fs::rename(&recv, &ready)?;
        let f = File::open(&ready)?;
        match verify(f, ready.clone(), group) {
            Ok(h) => Ok(Some(h)),
            Err(e) => {
                let _ = fs::remove_file(&ready);
                Err(e)
            }
        }
    }

    /// Whether `handle` is the group's own snapshot file (one it saved or opened at
    /// start-up), rather than one received from another node.
    pub fn is_installed(&self, group: GroupId, handle: &SnapshotHandle) -> bool {
        handle.path == self.path(group)
    }

    /// Makes a received snapshot the group's snapshot, durably when this returns `Ok`. A
    /// handle that already is the group's snapshot is left alone.
    pub fn install(&self, group: GroupId, handle: &SnapshotHandle) -> Result<()> {
        if self.is_installed(group, handle) {
            return Ok(());
        }
        fs::rename(&handle.path, self.path(group))?;
        sync_dir(&self.dir)
    }

    /// Deletes a received snapshot that was not installed (its leader was deposed, say).
    /// One that was installed, or is the group's own, is left alone.
    pub fn discard(&self, group: GroupId, handle: &SnapshotHandle) -> Result<()> {
        if self.is_installed(group, handle) {
            return Ok(());
        }
        match fs::remove_file(&handle.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
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

/// Checks a snapshot file of `group` whole (header, lengths against the real size, the
/// checksum streamed through a bounded buffer) and returns it opened.
fn verify(mut f: File, path: PathBuf, group: GroupId) -> Result<SnapshotHandle> {
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
    // The lengths now match the real file size, so this allocation is bounded by it.
    let mut meta = vec![0u8; to_usize(meta_len)?];
    f.read_exact(&mut meta)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[..32]);
    crc.update(&meta);
    let mut buf = vec![0u8; IO_BUF.min(to_usize(data_len)?.max(1))];
    let mut left = data_len;
    while left > 0 {
        let n = to_usize(left)?.min(buf.len());
        f.read_exact(&mut buf[..n])?;
        crc.update(&buf[..n]);
        left -= n as u64;
    }
    let got_crc = crc.finalize();
    if got_crc != want_crc {
        return Err(corrupt(format!(
            "checksum {got_crc:#010x}, header says {want_crc:#010x}"
        )));
    }
    Ok(SnapshotHandle {
        file: Arc::new(f),
        path,
        meta,
        len: file_len,
    })
}

/// The header of a file with `meta_len` bytes of meta and `data_len` of data, whose
/// checksum over meta and data is `body`: the checksum it carries covers the first 32
/// header bytes, then meta, then data.
fn header(
    group: GroupId,
    meta_len: u64,
    data_len: u64,
    body: crc32fast::Hasher,
) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_be_bytes());
    h[12..16].copy_from_slice(&group.to_be_bytes());
    h[16..24].copy_from_slice(&meta_len.to_be_bytes());
    h[24..32].copy_from_slice(&data_len.to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[..32]);
    crc.combine(&body);
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
