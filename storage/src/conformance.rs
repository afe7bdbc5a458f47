//! Conformance suite for [`LogStore`] implementations.
//!
//! The Raft layer relies only on the trait's contract, so any backend (sled today, maybe
//! RocksDB or a dedicated log later, if sled fails the crash tests) must pass this suite
//! before it replaces another. Every case panics with a message on failure, as tests do.
//!
//! Backends are given as an `open(path)` function. A case that needs a restart drops the
//! store and calls `open` again on the same path; an in-memory backend emulates this by
//! mapping the path to a [`crate::log_store::MemDisk`] (see `storage/tests`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::log_store::{GroupId, LogIndex, LogStore, NODE_META_GROUP};

/// One conformance case: takes the `open` function of the backend under test.
pub type Case<S> = fn(&dyn Fn(&Path) -> S);

/// Every case with its name, so a harness can run or report them one by one.
pub fn cases<S: LogStore>() -> Vec<(&'static str, Case<S>)> {
    vec![
        ("append_and_read_ranges", append_and_read_ranges::<S>),
        ("first_and_last", first_and_last::<S>),
        ("append_contract", append_contract::<S>),
        ("truncate_after", truncate_after::<S>),
        ("purge_upto", purge_upto::<S>),
        ("groups_isolated", groups_isolated::<S>),
        ("remove_group", remove_group::<S>),
        ("key_edges", key_edges::<S>),
        ("meta_per_group", meta_per_group::<S>),
        ("sync_callback_once", sync_callback_once::<S>),
        ("concurrent_groups", concurrent_groups::<S>),
        ("reopen_after_sync", reopen_after_sync::<S>),
        ("large_payloads", large_payloads::<S>),
    ]
}

/// Runs every case, each in its own fresh directory.
pub fn run_all<S: LogStore>(open: &dyn Fn(&Path) -> S) {
    for (name, case) in cases::<S>() {
        let start = Instant::now();
        case(open);
        eprintln!("conformance {name}: ok in {:?}", start.elapsed());
    }
}

/// A fresh directory under the system temp dir, removed on drop. (The library cannot use the
/// `tempfile` dev-dependency.)
struct TempDir(PathBuf);

impl TempDir {
    fn new(case: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "strato-conformance-{}-{}-{nanos}-{case}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create conformance temp dir");
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic payload for `(group, index)`, so every read can be checked exactly.
pub fn payload(group: GroupId, index: LogIndex, len: usize) -> Vec<u8> {
    let mut x = (u64::from(group) << 40) ^ index ^ 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn batch(group: GroupId, range: std::ops::Range<LogIndex>) -> Vec<(LogIndex, Vec<u8>)> {
    range
        .map(|i| (i, payload(group, i, 16 + (i % 7) as usize * 10)))
        .collect()
}

fn append<S: LogStore>(s: &S, group: GroupId, range: std::ops::Range<LogIndex>) {
    let r = range.clone();
    s.append(group, batch(group, range))
        .unwrap_or_else(|e| panic!("append {r:?} to group {group}: {e}"));
}

fn read<S: LogStore>(s: &S, g: GroupId, start: LogIndex, end: LogIndex) -> Vec<LogIndex> {
    let got = s.entries(g, start, end).expect("entries");
    for (i, v) in &got {
        assert_eq!(*v, payload(g, *i, v.len()), "payload of {g}/{i}");
        assert_eq!(v.len(), 16 + (i % 7) as usize * 10, "length of {g}/{i}");
    }
    got.into_iter().map(|(i, _)| i).collect()
}

fn span(start: LogIndex, end: LogIndex) -> Vec<LogIndex> {
    (start..end).collect()
}

fn bounds<S: LogStore>(s: &S, g: GroupId) -> (Option<LogIndex>, Option<LogIndex>) {
    (
        s.first_index(g).expect("first_index"),
        s.last_entry(g).expect("last_entry").map(|(i, _)| i),
    )
}

/// Entries come back in order with exactly the requested half-open range.
pub fn append_and_read_ranges<S: LogStore>(open: &dyn Fn(&Path) -> S) {
    let dir = TempDir::new("ranges");
    let s = open(dir.path());
    append(&s, 1, 1..2); // single entry
    append(&s, 1, 2..5);
    append(&s, 1, 5..11);
    assert_eq!(read(&s, 1, 1, 11), span(1, 11));
    assert_eq!(read(&s, 1, 0, LogIndex::MAX), span(1, 11));
    assert_eq!(read(&s, 1, 3, 7), span(3, 7));
    assert_eq!(read(&s, 1, 10, 11), vec![10]);
    assert_eq!(read(&s, 1, 11, 20), Vec::<LogIndex>::new());
    assert_eq!(read(&s, 1, 5, 5), Vec::<LogIndex>::new());
    assert_eq!(read(&s, 1, 7, 3), Vec::<LogIndex>::new());
    assert_eq!(read(&s, 2, 0, LogIndex::MAX), Vec::<LogIndex>::new());
    let (i, v) = s.last_entry(1).expect("last").expect("some last");
    assert_eq!((i, v), (10, payload(1, 10, 16 + 3 * 10)));
}

/// first_index/last_entry follow appends, truncates and purges, and are None when empty.
pub fn first_and_last<S: LogStore>(open: &dyn Fn(&Path) -> S) {
    let dir = TempDir::new("first-last");
    let s = open(dir.path());
    assert_eq!(bounds(&s, 3), (None, None));
    append(&s, 3, 1..4);
    assert_eq!(bounds(&s, 3), (Some(1), Some(3)));
    append(&s, 3, 4..6);
    assert_eq!(bounds(&s, 3), (Some(1), Some(5)));
    s.purge_upto(3, 2).expect("purge");
    assert_eq!(bounds(&s, 3), (Some(3), Some(5)));
    s.truncate_after(3, Some(4)).expect("truncate");
    assert_eq!(bounds(&s, 3), (Some(3), Some(4)));
}

/// Holes, overwrites and non-contiguous batches are refused without writing anything;
/// an empty group accepts any start (a log may begin after a snapshot).
pub fn append_contract<S: LogStore>(open: &dyn Fn(&Path) -> S) {
    let dir = TempDir::new("contract");
    let s = open(dir.path());
    s.append(1, Vec::new()).expect("empty batch is a no-op");
    assert_eq!(bounds(&s, 1), (None, None));
    append(&s, 1, 100..103);
    assert_eq!(bounds(&s, 1), (Some(100), Some(102)));

    let hole = s.append(1, batch(1, 104..106));
    assert!(hole.is_err(), "append with a hole must fail");
    let overwrite = s.append(1, batch(1, 102..104));
    assert!(
        overwrite.is_err(),
        "append over an existing entry must fail"
    );
    let mut gap = batch(1, 103..106);
    gap.remove(1);
    assert!(s.append(1, gap).is_err(), "non-contiguous batch must fail");
    let backwards = vec![(104, vec![1]), (103, vec![2])];
    assert!(
        s.append(1, backwards).is_err(),
        "descending batch must fail"
    );
    assert_eq!(
        read(&s, 1, 0, LogIndex::MAX),
        span(100, 103),
        "nothing written"
    );

    append(&s, 1, 103..105);
    assert_eq!(read(&s, 1, 0, LogIndex::MAX), span(100, 105));
    // After the whole log is purged, the next append may start anywhere.
    s.purge_upto(1, 200).expect("purge");
    assert_eq!(bounds(&s, 1), (None, None));
    append(&s, 1, 201..203);
    assert_eq!(bounds(&s, 1), (Some(201), Some(202)));
    // The store keeps working after refused calls.
    s.sync_blocking().expect("sync after refused appends");
}

/// truncate_after(Some(i)) keeps 1..=i; None removes everything; appends resume after it.
pub fn truncate_after<S: LogStore>(open: &dyn Fn(&Path) -> S) {
    let dir = TempDir::new("truncate");
    let s = open(dir.path());
    append(&s, 1, 1..11);
    s.truncate_after(1, Some(100)).expect("truncate past end");
    assert_eq!(read(&s, 1, 0, 100), span(1, 11));
    s.truncate_after(1, Some(LogIndex::MAX))
        .expect("truncate at MAX");
    assert_eq!(read(&s, 1, 0, 100), span(1, 11));
    s.truncate_after(1, Some(7)).expect("truncate");
    assert_eq!(read(&s, 1, 0, 100), span(1, 8));
    assert_eq!(bounds(&s, 1), (Some(1), Some(7)));
    // A conflicting suffix is replaced: truncate, then append from the cut.
    append(&s, 1, 8..10);
    assert_eq!(read(&s, 1, 0, 100), span(1, 10));
    s.truncate_after(1, Some(0)).expect("truncate below first");
    assert_eq!(bounds(&s, 1), (None, None));
    append(&s, 1, 1..4);
    s.truncate_after(1, None).expect("truncate all");
    assert_eq!(bounds(&s, 1), (None, None));
    assert_eq!(read(&s, 1, 0, LogIndex::MAX), Vec::<LogIndex>::new());
    s.truncate_after(1, None).expect("truncate empty");
    append(&s, 1, 50..52);
    assert_eq!(bounds(&s, 1), (Some(50), Some(51)));
    // Truncating more than one delete chunk.
    s.truncate_after(1, None).expect("truncate all");
    append(&s, 1, 1..3001);
    s.truncate_after(1, Some(10)).expect("large truncate");
    assert_eq!(read(&s, 1, 0, LogIndex::MAX), span(1, 11));
}

/// purge_upto(i) keeps i+1..; purging past the end empties the log.
pub fn purge_upto<S: LogStore>(open: &dyn Fn(&Path) -> S) {
    let dir = TempDir::new("purge");
    let s = open(dir.path());
    s.purge_upto(1, 10).expect("purge empty");
    append(&s, 1, 1..11);
    s.purge_upto(1, 0).expect("purge nothing");
    assert_eq!(read(&s, 1, 0, 100), span(1, 11));
    s.purge_upto(1, 4).expect("purge");
    assert_eq!(read(&s, 1, 0, 100), span(5, 11));
    assert_eq!(bounds(&s, 1), (Some(5), Some(10)));
    s.purge_upto(1, 4).expect("purge again is a no-op");
    assert_eq!(bounds(&s, 1), (Some(5), Some(10)));
    append(&s, 1, 11..13);
    s.purge_upto(1, 12).expect("purge all");
    assert_eq!(bounds(&s, 1), (None, None));
    // Purging more than one delete chunk.
    append(&s, 1, 13..3013);
    s.purge_upto(1, 3000).expect("large purge");
    assert_eq!(read(&s, 1, 0, LogIndex::MAX), span(3001, 3013));
    s.purge_upto(1, LogIndex::MAX).expect("purge to MAX");
    assert_eq!(bounds(&s, 1), (None, None));
}

/// Two groups with interleaved, equal indexes never see each other's entries.
pub fn groups_isolated<S: LogStore>(open: &dyn Fn(&Path) -> S) {
    let dir = TempDir::new("groups");
    let s = open(dir.path());
    for i in 1..21 {
        append(&s, 1, i..i + 1);
        append(&s, 2, i..i + 1);
    }
    append(&s, 256, 5..8); // shares the low key byte with group 0 in little-endian
    assert_eq!(read(&s, 1, 0, 100), span(1, 21));
    assert_eq!(read(&s, 2, 0, 100), span(1, 21));
    s.truncate_after(1, Some(10)).expect("truncate 1");
    s.purge_upto(2, 15).expect("purge 2");
    assert_eq!(read(&s, 1, 0, 100), span(1, 11));
    assert_eq!(read(&s, 2, 0, 100), span(16, 21));
    assert_eq!(read(&s, 256, 0, 100), span(5, 8));
    assert_eq!(bounds(&s, 1), (Some(1), Some(10)));
    assert_eq!(bounds(&s, 2), (Some(16), Some(20)));
    assert_eq!(bounds(&s, 0), (None, None));
    assert_eq!(bounds(&s, 3), (None, None));
    assert_eq!(s.groups().expect("groups"), vec![1, 2, 256]);
    s.truncate_after(2, None).expect("truncate all of 2");
    assert_eq!(s.groups().expect("groups"), vec![1, 256]);
    assert_eq!(read(&s, 1, 0, 100), span(1, 11));
}

/// Removing a group forgets its entries and metadata, durably, and leaves its neighbours.
pub fn remove_group<S: LogStore>(open: &dyn Fn(&Path) -> S) {
    let dir = TempDir::new("remove-group");
    {
        let s = open(dir.path());
        for g in [4095, 4096, 4097] {
            append(&s, g, 1..30);
            s.put_meta(g, "vote", vec![g as u8]).expect("put_meta");
        }
        s.remove_group(4096).expect("remove_group");
        assert_eq!(bounds(&s, 4096), (None, None));
        assert_eq!(s.get_meta(4096, "vote").expect("get_meta"), None);
        assert_eq!(s.groups().expect("groups"), vec![4095, 4097]);
        s.remove_group(77)
            .expect("removing an absent group is a no-op");
        s.sync_blocking().expect("sync");
    }
    let s = open(dir.path());
    assert_eq!(s.groups().expect("groups"), vec![4095, 4097]);
    assert_eq!(read(&s, 4095, 0, 100), span(1, 30));
    assert_eq!(
        s.get_meta(4097, "vote").expect("get_meta"),
        Some(vec![4097u32 as u8])
    );
    // The group can be written again from scratch.
    append(&s, 4096, 1..3);
    assert_eq!(bounds(&s, 4096), (Some(1), Some(2)));
}

/// Extreme group ids and indexes: the key encoding must not wrap or mix neighbours.
pub fn key_edges<S: LogStore>(open: &dyn Fn(&Path) -> S) {
    let dir = TempDir::new("edges");
    let s = open(dir.path());
    let top = NODE_META_GROUP - 1;
    append(&s, 0, 1..3);
    append(&s, top, LogIndex::MAX - 2..LogIndex::MAX);
    s.append(top, vec![(LogIndex::MAX, b"max".to_vec())])
        .expect("append at u64::MAX");
    append(&s, NODE_META_GROUP, 1..3);
    assert_eq!(
        bounds(&s, top),
        (Some(LogIndex::MAX - 2), Some(LogIndex::MAX))
    );
    assert_eq!(
        s.last_entry(top).expect("last"),
        Some((LogIndex::MAX, b"max".to_vec()))
    );
    assert!(
        s.append(top, vec![(0, vec![])]).is_err(),
        "nothing follows u64::MAX"
    );
    assert_eq!(bounds(&s, 0), (Some(1), Some(2)));
    assert_eq!(bounds(&s, NODE_META_GROUP), (Some(1), Some(2)));
    assert_eq!(s.groups().expect("groups"), vec![0, top]);
    s.truncate_after(top, Some(LogIndex::MAX - 1))
        .expect("truncate");
    assert_eq!(
        bounds(&s, top),
        (Some(LogIndex::MAX - 2), Some(LogIndex::MAX - 1))
    );
    s.purge_upto(top, LogIndex::MAX).expect("purge");
    assert_eq!(bounds(&s, top), (None, None));
    assert_eq!(bounds(&s, NODE_META_GROUP), (Some(1), Some(2)));
    assert_eq!(bounds(&s, 0), (Some(1), Some(2)));
}

/// Metadata is per group, keys are exact (no prefix matching), NODE_META_GROUP is hidden.
pub fn meta_per_group<S: LogStore>(open: &dyn Fn(&Path) -> S) {
    let dir = TempDir::new("meta");
    let s = open(dir.path());
    assert_eq!(s.get_meta(1, "vote").expect("get"), None);
    s.put_meta(1, "vote", b"v1".to_vec()).expect("put");
    s.put_meta(2, "vote", b"v2".to_vec()).expect("put");
    s.put_meta(1, "vote_extra", b"x".to_vec()).expect("put");
    s.put_meta(1, "", b"empty key".to_vec()).expect("put");
    s.put_meta(NODE_META_GROUP, "roster", b"r".to_vec())
        .expect("put");
    assert_eq!(s.get_meta(1, "vote").expect("get"), Some(b"v1".to_vec()));
    assert_eq!(s.get_meta(2, "vote").expect("get"), Some(b"v2".to_vec()));
    assert_eq!(
        s.get_meta(1, "vote_extra").expect("get"),
        Some(b"x".to_vec())
    );
    assert_eq!(s.get_meta(1, "").expect("get"), Some(b"empty key".to_vec()));
    assert_eq!(s.get_meta(1, "vot").expect("get"), None);
    assert_eq!(s.get_meta(3, "vote").expect("get"), None);
    assert_eq!(
        s.get_meta(NODE_META_GROUP, "roster").expect("get"),
        Some(b"r".to_vec())
    );
    s.put_meta(1, "vote", b"v1b".to_vec()).expect("overwrite");
    s.put_meta(2, "vote", Vec::new()).expect("empty value");
    assert_eq!(s.get_meta(1, "vote").expect("get"), Some(b"v1b".to_vec()));
    assert_eq!(s.get_meta(2, "vote").expect("get"), Some(Vec::new()));
    // Metadata alone makes a group visible; the log alone does too; the node group never.
    append(&s, 7, 1..2);
    assert_eq!(s.groups().expect("groups"), vec![1, 2, 7]);
    // The log and the metadata are independent.
    s.truncate_after(1, None).expect("truncate");
    s.purge_upto(2, LogIndex::MAX).expect("purge");
    assert_eq!(s.get_meta(1, "vote").expect("get"), Some(b"v1b".to_vec()));
    assert_eq!(s.groups().expect("groups"), vec![1, 2, 7]);
}

/// Every sync callback runs exactly once with Ok, including many concurrent ones.
pub fn sync_callback_once<S: LogStore>(open: &dyn Fn(&Path) -> S) {
    let dir = TempDir::new("sync");
    let s = Arc::new(open(dir.path()));
    s.sync_blocking().expect("sync of an empty store");
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let s = Arc::clone(&s);
            let calls = Arc::clone(&calls);
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 1..=25u64 {
                    append(&*s, t, i..i + 1);
                    let calls = Arc::clone(&calls);
                    let tx = tx.clone();
                    s.sync(Box::new(move |res| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let _ = tx.send(res.is_ok());
                    }));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("appender thread");
    }
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut oks = 0;
    while oks < 200 {
        let left = deadline.saturating_duration_since(Instant::now());
        let ok = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("only {oks} of 200 sync callbacks ran: {e}"));
        assert!(ok, "sync callback got an error");
        oks += 1;
    }
    s.sync_blocking().expect("final sync");
    // Any extra (duplicate) call would have been counted by now: callbacks run before the
    // final sync completes because they are completed in order.
    assert_eq!(
        calls.load(Ordering::SeqCst),
        200,
        "each callback exactly once"
    );
    assert!(rx.try_recv().is_err(), "no callback ran twice");
}

/// Appends and syncs from several threads on different groups land intact.
pub fn concurrent_groups<S: LogStore>(open: &dyn Fn(&Path) -> S) {
    let dir = TempDir::new("concurrent");
    let s = Arc::new(open(dir.path()));
    let threads: Vec<_> = (0..6u32)
        .map(|g| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                let mut next = 1;
                while next <= 300 {
                    let n = 1 + next % 4;
                    append(&*s, g, next..next + n);
                    next += n;
                    if next % 3 == 0 {
                        s.sync_blocking().expect("sync");
                    }
                    if next % 50 < 4 {
                        s.put_meta(g, "progress", next.to_be_bytes().to_vec())
                            .expect("meta");
                    }
                }
                next
            })
        })
        .collect();
    let ends: Vec<LogIndex> = threads
        .into_iter()
        .map(|t| t.join().expect("appender thread"))
        .collect();
    s.sync_blocking().expect("sync");
    for (g, end) in ends.into_iter().enumerate() {
        let g = g as GroupId;
        assert_eq!(read(&*s, g, 0, LogIndex::MAX), span(1, end), "group {g}");
    }
    assert_eq!(s.groups().expect("groups"), vec![0, 1, 2, 3, 4, 5]);
}

/// A full observation of the store, to compare across a restart.
type Observed = (
    Vec<GroupId>,
    Vec<(GroupId, Vec<(LogIndex, Vec<u8>)>)>,
    Vec<Option<Vec<u8>>>,
);

fn observe<S: LogStore>(s: &S, groups: &[GroupId], keys: &[&str]) -> Observed {
    let logs = groups
        .iter()
        .map(|&g| (g, s.entries(g, 0, LogIndex::MAX).expect("entries")))
        .collect();
    let meta = groups
        .iter()
        .flat_map(|&g| keys.iter().map(move |k| (g, *k)))
        .map(|(g, k)| s.get_meta(g, k).expect("get_meta"))
        .collect();
    (s.groups().expect("groups"), logs, meta)
}

/// Everything written before a completed sync is there after a restart.
pub fn reopen_after_sync<S: LogStore>(open: &dyn Fn(&Path) -> S) {
    let dir = TempDir::new("reopen");
    let groups = [1, 2, 3, NODE_META_GROUP];
    let keys = ["vote", "committed", "purged"];
    let before = {
        let s = open(dir.path());
        append(&s, 1, 1..51);
        append(&s, 2, 10..20);
        s.put_meta(1, "vote", b"term 3".to_vec()).expect("meta");
        s.put_meta(3, "committed", b"7".to_vec()).expect("meta");
        s.put_meta(NODE_META_GROUP, "purged", b"node".to_vec())
            .expect("meta");
        s.truncate_after(1, Some(40)).expect("truncate");
        s.purge_upto(1, 5).expect("purge");
        s.purge_upto(2, 12).expect("purge");
        s.sync_blocking().expect("sync");
        observe(&s, &groups, &keys)
    };
    assert_eq!(before.0, vec![1, 2, 3]);
    let s = open(dir.path());
    assert_eq!(observe(&s, &groups, &keys), before, "state after reopen");
    // And the reopened store continues the logs.
    append(&s, 1, 41..43);
    append(&s, 2, 20..21);
    s.sync_blocking().expect("sync");
    drop(s);
    let s = open(dir.path());
    assert_eq!(bounds(&s, 1), (Some(6), Some(42)));
    assert_eq!(bounds(&s, 2), (Some(13), Some(20)));
}

/// A 1 MiB entry next to small ones, before and after a restart.
pub fn large_payloads<S: LogStore>(open: &dyn Fn(&Path) -> S) {
    let dir = TempDir::new("large");
    let big = payload(9, 2, 1 << 20);
    let mid = payload(9, 3, 64 << 10);
    {
        let s = open(dir.path());
        s.append(9, vec![(1, b"small".to_vec())]).expect("append");
        s.append(9, vec![(2, big.clone()), (3, mid.clone())])
            .expect("append big");
        s.append(9, vec![(4, b"after".to_vec())]).expect("append");
        s.put_meta(9, "blob", big.clone()).expect("big meta");
        let got = s.entries(9, 2, 4).expect("entries");
        assert!(
            got == vec![(2, big.clone()), (3, mid.clone())],
            "big entries"
        );
        s.sync_blocking().expect("sync");
    }
    let s = open(dir.path());
    let got = s.entries(9, 0, LogIndex::MAX).expect("entries");
    let want = vec![
        (1, b"small".to_vec()),
        (2, big.clone()),
        (3, mid),
        (4, b"after".to_vec()),
    ];
    assert!(got == want, "entries after reopen differ");
    assert!(
        s.get_meta(9, "blob").expect("meta") == Some(big),
        "big meta"
    );
    s.truncate_after(9, Some(1)).expect("truncate big");
    assert_eq!(bounds(&s, 9), (Some(1), Some(1)));
}
