//! Runs the LogStore conformance suite on both stores, checks sled against the in-memory
//! model with random operation sequences, and tests fail-stop behaviour.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use storage::conformance;
use storage::error::Error;
use storage::log_store::{
    GroupId, LogIndex, LogStore, MemDisk, MemLogStore, SledLogStore, SledLogStoreOptions,
    NODE_META_GROUP,
};

fn open_sled(path: &Path) -> SledLogStore {
    SledLogStore::open(path, SledLogStoreOptions::default()).expect("open sled store")
}

/// The in-memory store "reopens" by mapping each path to a disk that outlives the store.
fn mem_opener() -> impl Fn(&Path) -> MemLogStore {
    let disks: Mutex<HashMap<PathBuf, MemDisk>> = Mutex::default();
    move |path| {
        let disk = disks
            .lock()
            .unwrap()
            .entry(path.to_path_buf())
            .or_default()
            .clone();
        MemLogStore::open(disk)
    }
}

#[test]
fn conformance_sled() {
    conformance::run_all(&open_sled);
}

#[test]
fn conformance_sled_without_fsync() {
    conformance::run_all(&|path: &Path| {
        let options = SledLogStoreOptions {
            fsync: false,
            ..SledLogStoreOptions::default()
        };
        SledLogStore::open(path, options).expect("open sled store")
    });
}

#[test]
fn conformance_mem() {
    conformance::run_all(&mem_opener());
}

#[test]
fn sled_flush_failure_poisons_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_sled(dir.path());
    s.append(1, vec![(1, b"a".to_vec())]).unwrap();
    s.sync_blocking().unwrap();
    s.append(1, vec![(2, b"b".to_vec())]).unwrap();
    s.inject_flush_failure();
    let err = s.sync_blocking().unwrap_err();
    assert!(
        matches!(err, Error::Sled(_)),
        "failing batch gets the cause: {err}"
    );
    assert!(s.stats().poisoned);
    assert!(s.poison_cause().unwrap().contains("injected"));
    // Fail-stop: every later operation and sync fails, even though the disk is fine.
    assert!(matches!(s.sync_blocking(), Err(Error::Poisoned)));
    assert!(matches!(
        s.append(1, vec![(3, b"c".to_vec())]),
        Err(Error::Poisoned)
    ));
    assert!(matches!(s.entries(1, 0, 10), Err(Error::Poisoned)));
    assert!(matches!(s.last_entry(1), Err(Error::Poisoned)));
    assert!(matches!(s.put_meta(1, "k", vec![]), Err(Error::Poisoned)));
    assert!(matches!(s.groups(), Err(Error::Poisoned)));
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    s.sync(Box::new(move |r| {
        assert!(r.is_err());
        c.fetch_add(1, Ordering::SeqCst);
    }));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "poisoned sync completes at once"
    );
    let stats = s.stats();
    assert_eq!(stats.synced_requests, 1);
    assert_eq!(stats.failed_requests, 3);
}

#[test]
fn mem_sync_failure_poisons_store() {
    let s = MemLogStore::new();
    s.append(1, vec![(1, b"a".to_vec())]).unwrap();
    s.inject_sync_failure();
    assert!(s.sync_blocking().is_err());
    assert!(matches!(s.sync_blocking(), Err(Error::Poisoned)));
    assert!(matches!(s.entries(1, 0, 10), Err(Error::Poisoned)));
    assert!(s.stats().poisoned);
}

#[test]
fn mem_crash_keeps_only_synced_or_a_prefix() {
    let disk = MemDisk::new();
    let s = MemLogStore::open(disk.clone());
    s.append(1, vec![(1, b"a".to_vec())]).unwrap();
    s.put_meta(1, "vote", b"v".to_vec()).unwrap();
    s.sync_blocking().unwrap();
    s.append(1, vec![(2, b"b".to_vec()), (3, b"c".to_vec())])
        .unwrap();
    s.put_meta(1, "vote", b"w".to_vec()).unwrap();
    assert_eq!(s.pending_writes(), 2);
    s.crash();
    assert_eq!(s.last_entry(1).unwrap(), Some((1, b"a".to_vec())));
    assert_eq!(s.get_meta(1, "vote").unwrap(), Some(b"v".to_vec()));

    s.append(1, vec![(2, b"b".to_vec()), (3, b"c".to_vec())])
        .unwrap();
    s.put_meta(1, "vote", b"w".to_vec()).unwrap();
    s.crash_keeping(1); // the batch made it, the vote did not
    assert_eq!(s.last_entry(1).unwrap(), Some((3, b"c".to_vec())));
    assert_eq!(s.get_meta(1, "vote").unwrap(), Some(b"v".to_vec()));
    // A clean drop persists everything.
    s.put_meta(1, "vote", b"x".to_vec()).unwrap();
    drop(s);
    let s = MemLogStore::open(disk);
    assert_eq!(s.get_meta(1, "vote").unwrap(), Some(b"x".to_vec()));
}

#[test]
fn sled_drop_completes_pending_syncs_and_releases_path() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    for round in 0..3u64 {
        let s = open_sled(dir.path());
        assert_eq!(
            s.last_entry(1).unwrap().map(|e| e.0),
            round.checked_sub(1).map(|r| r * 100 + 99)
        );
        let entries = (round * 100..round * 100 + 100)
            .map(|i| (i, vec![round as u8; 64]))
            .collect();
        s.append(1, entries).unwrap();
        for _ in 0..10 {
            let c = Arc::clone(&calls);
            s.sync(Box::new(move |r| {
                r.unwrap();
                c.fetch_add(1, Ordering::SeqCst);
            }));
        }
        drop(s); // must complete the ten callbacks and let the path be reopened at once
        assert_eq!(calls.load(Ordering::SeqCst) as u64, (round + 1) * 10);
    }
}

/// A log written in the old one-entry-per-key layout (no layout marker) must be refused,
/// not misread as runs; a log in the current layout reopens.
#[test]
fn sled_refuses_a_log_in_another_layout() {
    let old = tempfile::tempdir().unwrap();
    {
        let db = sled::open(old.path()).unwrap();
        let mut key = 1u32.to_be_bytes().to_vec();
        key.extend_from_slice(&1u64.to_be_bytes());
        db.open_tree("raft_log")
            .unwrap()
            .insert(key, b"entry".to_vec())
            .unwrap();
        db.flush().unwrap();
    }
    match SledLogStore::open(old.path(), SledLogStoreOptions::default()) {
        Err(Error::Corruption(msg)) => assert!(msg.contains("layout"), "{msg}"),
        other => panic!("expected a layout error, got {other:?}"),
    }

    let new = tempfile::tempdir().unwrap();
    {
        let s = open_sled(new.path());
        s.append(1, vec![(1, b"a".to_vec()), (2, b"b".to_vec())])
            .unwrap();
        s.sync_blocking().unwrap();
    }
    let s = open_sled(new.path());
    assert_eq!(s.last_entry(1).unwrap(), Some((2, b"b".to_vec())));
}

#[test]
fn sled_path_cannot_be_opened_twice() {
    let dir = tempfile::tempdir().unwrap();
    let _s = open_sled(dir.path());
    assert!(SledLogStore::open(dir.path(), SledLogStoreOptions::default()).is_err());
}

#[test]
fn sled_group_commit_shares_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(
        SledLogStore::open(
            dir.path(),
            SledLogStoreOptions {
                flush_linger: Duration::from_millis(2),
                ..SledLogStoreOptions::default()
            },
        )
        .unwrap(),
    );
    let threads: Vec<_> = (0..16u32)
        .map(|g| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for i in 1..=20u64 {
                    s.append(g, vec![(i, vec![0; 256])]).unwrap();
                    s.sync_blocking().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = s.stats();
    assert_eq!(stats.synced_requests, 320);
    assert!(
        stats.flushes < 320,
        "16 concurrent appenders should share fsyncs: {stats:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Model check: random operations give identical observations on sled and on the model.

const GROUPS: [GroupId; 4] = [0, 1, 2, NODE_META_GROUP];

#[derive(Debug, Clone)]
enum Op {
    /// Append `len` entries; `shift` moves the start away from last+1 (0 = valid append).
    Append {
        g: usize,
        len: u64,
        shift: i8,
        size: usize,
    },
    /// Truncate after `last - back` (None = everything).
    Truncate {
        g: usize,
        back: Option<u64>,
    },
    /// Purge up to `first + fwd`.
    Purge {
        g: usize,
        fwd: u64,
    },
    PutMeta {
        g: usize,
        key: u8,
        value: Vec<u8>,
    },
    Sync,
    Reopen,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let g = 0..GROUPS.len();
    prop_oneof![
        8 => (g.clone(), 0..6u64, prop_oneof![6 => Just(0i8), 1 => -3..4i8], 0..300usize)
            .prop_map(|(g, len, shift, size)| Op::Append { g, len, shift, size }),
        2 => (g.clone(), proptest::option::weighted(0.9, 0..8u64))
            .prop_map(|(g, back)| Op::Truncate { g, back }),
        2 => (g.clone(), 0..8u64).prop_map(|(g, fwd)| Op::Purge { g, fwd }),
        2 => (g, 0..3u8, proptest::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(g, key, value)| Op::PutMeta { g, key, value }),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
    ]
}

/// Everything observable about one group.
type GroupView = (
    Option<LogIndex>,
    Option<(LogIndex, Vec<u8>)>,
    Result<Vec<(LogIndex, Vec<u8>)>, String>,
    Vec<Option<Vec<u8>>>,
);

fn view(s: &dyn LogStore, g: GroupId) -> GroupView {
    let first = s.first_index(g).unwrap();
    let last = s.last_entry(g).unwrap();
    let all = s.entries(g, 0, LogIndex::MAX).map_err(|e| e.to_string());
    let meta = (0..3u8)
        .map(|k| s.get_meta(g, &format!("k{k}")).unwrap())
        .collect();
    (first, last, all, meta)
}

/// The model check is about logic, not durability: skip the real fsyncs to run more cases.
fn open_sled_fast(path: &Path) -> SledLogStore {
    let options = SledLogStoreOptions {
        fsync: false,
        ..SledLogStoreOptions::default()
    };
    SledLogStore::open(path, options).expect("open sled store")
}

fn run_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut sled = Some(open_sled_fast(dir.path()));
    let disk = MemDisk::new();
    let mut mem = Some(MemLogStore::open(disk.clone()));
    for (step, op) in ops.into_iter().enumerate() {
        let (s, m) = (sled.as_ref().unwrap(), mem.as_ref().unwrap());
        match &op {
            Op::Append {
                g,
                len,
                shift,
                size,
            } => {
                let g = GROUPS[*g];
                let last = m.last_entry(g).unwrap().map(|e| e.0);
                let start = last
                    .map_or(1, |l| l + 1)
                    .saturating_add_signed(*shift as i64);
                let entries: Vec<_> = (start..start + len)
                    .map(|i| (i, conformance::payload(g, i, (size + i as usize) % 300)))
                    .collect();
                let rs = s.append(g, entries.clone());
                let rm = m.append(g, entries);
                prop_assert_eq!(
                    rs.is_ok(),
                    rm.is_ok(),
                    "step {} {:?}: {:?} vs {:?}",
                    step,
                    op,
                    rs,
                    rm
                );
            }
            Op::Truncate { g, back } => {
                let g = GROUPS[*g];
                let last = m.last_entry(g).unwrap().map_or(0, |e| e.0);
                let after = back.map(|b| last.saturating_sub(b));
                s.truncate_after(g, after).unwrap();
                m.truncate_after(g, after).unwrap();
            }
            Op::Purge { g, fwd } => {
                let g = GROUPS[*g];
                let first = m.first_index(g).unwrap().unwrap_or(0);
                s.purge_upto(g, first + fwd).unwrap();
                m.purge_upto(g, first + fwd).unwrap();
            }
            Op::PutMeta { g, key, value } => {
                let g = GROUPS[*g];
                s.put_meta(g, &format!("k{key}"), value.clone()).unwrap();
                m.put_meta(g, &format!("k{key}"), value.clone()).unwrap();
            }
            Op::Sync => {
                s.sync_blocking().unwrap();
                m.sync_blocking().unwrap();
            }
            Op::Reopen => {
                s.sync_blocking().unwrap();
                m.sync_blocking().unwrap();
                drop(sled.take());
                drop(mem.take());
                sled = Some(open_sled_fast(dir.path()));
                mem = Some(MemLogStore::open(disk.clone()));
            }
        }
        let (s, m) = (sled.as_ref().unwrap(), mem.as_ref().unwrap());
        prop_assert_eq!(
            s.groups().unwrap(),
            m.groups().unwrap(),
            "groups after step {} {:?}",
            step,
            op
        );
        for g in GROUPS {
            prop_assert_eq!(
                view(s, g),
                view(m, g),
                "group {} after step {} {:?}",
                g,
                step,
                op
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn sled_matches_model(ops in proptest::collection::vec(op_strategy(), 1..60)) {
        run_model(ops)?;
    }
}
