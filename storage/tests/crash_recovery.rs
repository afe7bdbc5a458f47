//! kill -9 crash loop for `SledLogStore` (design §5: nothing acknowledged is lost).
//!
//! The parent test re-executes this test binary as a child (`crash_child`, selected by the
//! `STRATO_CRASH_CHILD_DIR` environment variable). The child appends to 4 groups from 4
//! threads, entries whose bytes are a function of (group, index), and prints
//! `ack <group> <index>` only after the sync covering the entry reported `Ok`. The parent
//! SIGKILLs it at a random moment, reopens the store and checks that sled opens, every
//! acknowledged entry is there with the right bytes, and each group's log is a contiguous
//! prefix `1..=last` of correct entries. Five rounds run on the same directory; each child
//! continues after what was recovered.
//!
//! Set `STRATO_CRASH_SEED` to replay a failing run (the seed is printed).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use storage::log_store::{GroupId, LogIndex, LogStore, SledLogStore, SledLogStoreOptions};

const CHILD_ENV: &str = "STRATO_CRASH_CHILD_DIR";
const SEED_ENV: &str = "STRATO_CRASH_SEED";
const GROUPS: GroupId = 4;
const ROUNDS: usize = 5;
/// The child gives up on its own after this, in case the parent died without killing it.
const CHILD_LIFETIME: Duration = Duration::from_secs(20);
/// Most sync requests a child thread keeps in flight (pipelining, as openraft does).
const WINDOW: usize = 4;
/// Longest a child may take to reach its kill point (it is killed then anyway).
const ACK_WAIT: Duration = Duration::from_secs(10);
/// Longest the parent's reopen + check may take before the test fails instead of hanging.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(60);

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The exact bytes of entry (group, index): a 12-byte header naming it, then pseudo-random
/// bytes. About every 8th entry is large (up to 64 KiB), and about one in 128 is larger
/// than sled's blob threshold, so sled's separate blob files are crashed too.
fn content(group: GroupId, index: LogIndex) -> Vec<u8> {
    let h = splitmix((u64::from(group) << 48) ^ index);
    let len = if h % 128 == 1 {
        // Above sled's blob threshold (~128 KiB with 512 KiB segments): stored in its own file.
        (130 << 10) + (h >> 8) as usize % (130 << 10)
    } else if h.is_multiple_of(8) {
        12 + (h >> 8) as usize % (64 * 1024 - 12)
    } else {
        12 + (h >> 8) as usize % 500
    };
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&group.to_be_bytes());
    out.extend_from_slice(&index.to_be_bytes());
    let mut x = h;
    while out.len() < len {
        x = splitmix(x);
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&x.to_le_bytes()[..take]);
    }
    out
}

fn open(dir: &Path) -> SledLogStore {
    SledLogStore::open(dir, SledLogStoreOptions::default()).expect("sled must open after kill -9")
}

/// Child mode: a no-op unless the parent selected it through the environment.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Arc::new(open(Path::new(&dir)));
    let deadline = Instant::now() + CHILD_LIFETIME;
    let threads: Vec<_> = (0..GROUPS)
        .map(|g| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || child_writer(&store, g, deadline))
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    // Only reached if nobody killed us.
    std::process::exit(3);
}

fn child_writer(store: &SledLogStore, g: GroupId, deadline: Instant) {
    let mut next = store
        .last_entry(g)
        .expect("last_entry")
        .map_or(1, |(i, _)| i + 1);
    let (tx, rx) = mpsc::channel::<()>();
    let mut in_flight = 0usize;
    while Instant::now() < deadline {
        // Batches of 1..=3 entries: multi-entry batches must be atomic across the crash.
        let n = 1 + splitmix(u64::from(g) ^ next) % 3;
        let batch: Vec<_> = (next..next + n).map(|i| (i, content(g, i))).collect();
        store.append(g, batch).expect("append");
        let last = next + n - 1;
        next += n;
        let tx = tx.clone();
        store.sync(Box::new(move |res| {
            if let Err(e) = res {
                eprintln!("child: sync failed: {e}");
                std::process::exit(2);
            }
            // The ack leaves the process only after the fsync covering `last` succeeded.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "ack {g} {last}");
            let _ = out.flush();
            let _ = tx.send(());
        }));
        in_flight += 1;
        while in_flight >= WINDOW {
            if rx.recv_timeout(Duration::from_secs(5)).is_err() {
                eprintln!("child: sync did not complete in 5 s");
                std::process::exit(2);
            }
            in_flight -= 1;
        }
    }
}

/// Small deterministic RNG for the parent's choices, so a seed replays a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = splitmix(self.0);
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// Right after spawning: the child may be anywhere in exec, sled open or recovery.
    Immediately,
    /// After a short random delay, acks or not.
    After(Duration),
    /// Once this many acks arrived.
    Acks(usize),
}

/// Runs one child until `kill_at`, SIGKILLs it, and returns the highest acked index per group.
fn run_child(dir: &Path, kill_at: KillAt) -> [LogIndex; GROUPS as usize] {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut acked = [0; GROUPS as usize];
    let mut acks = 0usize;
    let record = |line: &str, acked: &mut [LogIndex; GROUPS as usize]| {
        let mut parts = line.split_whitespace();
        if parts.next() != Some("ack") {
            return false; // libtest's own chatter
        }
        let g: usize = parts
            .next()
            .and_then(|p| p.parse().ok())
            .expect("ack group");
        let i: LogIndex = parts
            .next()
            .and_then(|p| p.parse().ok())
            .expect("ack index");
        acked[g] = acked[g].max(i);
        true
    };

    let wait_until = |stop: &mut dyn FnMut(&str) -> bool, limit: Duration| {
        let deadline = Instant::now() + limit;
        loop {
            // Checked before receiving: a chatty child must not keep us past the deadline.
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if stop(&line) {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => return,
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("child exited before it was killed (see its stderr)")
                }
            }
        }
    };

    match kill_at {
        KillAt::Immediately => {}
        KillAt::After(delay) => wait_until(
            &mut |line| {
                record(line, &mut acked);
                false
            },
            delay,
        ),
        KillAt::Acks(target) => wait_until(
            &mut |line| {
                if record(line, &mut acked) {
                    acks += 1;
                }
                acks >= target
            },
            ACK_WAIT,
        ),
    }
    if let Some(status) = child.try_wait().expect("try_wait") {
        panic!("child exited on its own with {status} before the kill");
    }
    child.kill().expect("SIGKILL child");
    let status = child.wait().expect("wait child");
    assert!(!status.success(), "child must die from the signal");
    reader.join().expect("reader thread");
    // Lines already written before the kill are acknowledgements too.
    for line in rx.try_iter() {
        record(&line, &mut acked);
    }
    acked
}

/// Checks the recovered store against the acknowledgements; returns the last index per group.
/// Also returns how many entries were big enough to live in sled blob files.
fn verify(dir: &Path, acked: &[LogIndex; GROUPS as usize]) -> ([LogIndex; GROUPS as usize], usize) {
    let store = open(dir);
    let mut lasts = [0; GROUPS as usize];
    let mut blobs = 0;
    for g in 0..GROUPS {
        let entries = store.entries(g, 0, LogIndex::MAX).expect("entries");
        blobs += entries.iter().filter(|e| e.1.len() > 128 << 10).count();
        for (pos, (i, bytes)) in entries.iter().enumerate() {
            assert_eq!(
                *i,
                pos as LogIndex + 1,
                "group {g}: hole or bad start at index {i}"
            );
            assert!(
                *bytes == content(g, *i),
                "group {g}: wrong bytes at index {i}"
            );
        }
        let last = entries.last().map_or(0, |e| e.0);
        assert!(
            last >= acked[g as usize],
            "group {g}: acknowledged index {} lost, recovered only up to {last}",
            acked[g as usize]
        );
        let tail = store.last_entry(g).expect("last_entry").map_or(0, |e| e.0);
        assert_eq!(tail, last, "group {g}: last_entry disagrees with entries");
        lasts[g as usize] = last;
    }
    let groups = store.groups().expect("groups");
    assert!(
        groups.iter().all(|&g| g < GROUPS),
        "unexpected groups {groups:?}"
    );
    (lasts, blobs)
}

/// `verify` on a helper thread, failing the test if sled's recovery or the reads hang
/// (normally they take well under a second; the bound is generous for loaded machines).
fn verify_bounded(
    dir: &Path,
    acked: &[LogIndex; GROUPS as usize],
) -> ([LogIndex; GROUPS as usize], usize) {
    let (tx, rx) = mpsc::channel();
    let (dir, acked) = (dir.to_path_buf(), *acked);
    std::thread::spawn(move || {
        let res = std::panic::catch_unwind(|| verify(&dir, &acked));
        let _ = tx.send(res);
    });
    match rx.recv_timeout(VERIFY_TIMEOUT) {
        Ok(Ok(found)) => found,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("reopening and reading the store took more than {VERIFY_TIMEOUT:?}"),
    }
}

#[test]
fn kill9_loses_no_acknowledged_entry() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return; // never recurse from inside a child
    }
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("crash_recovery seed: {SEED_ENV}={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let mut acked_total = [0; GROUPS as usize];
    for round in 0..ROUNDS {
        // Round 0 always runs long enough to ack something, so every run checks data.
        let kill_at = match (round, rng.below(4)) {
            (0, _) | (_, 2 | 3) => KillAt::Acks(1 + rng.below(400) as usize),
            (_, 0) => KillAt::Immediately,
            _ => KillAt::After(Duration::from_millis(rng.below(150))),
        };
        let t0 = Instant::now();
        let acked = run_child(dir.path(), kill_at);
        for g in 0..GROUPS as usize {
            acked_total[g] = acked_total[g].max(acked[g]);
        }
        let t1 = Instant::now();
        let (lasts, blobs) = verify_bounded(dir.path(), &acked_total);
        eprintln!(
            "round {round}: kill {kill_at:?}, acked {acked:?}, recovered {lasts:?} \
             ({blobs} blob-sized entries); child {:?}, verify {:?}",
            t1 - t0,
            t1.elapsed()
        );
    }
    assert!(
        acked_total.iter().any(|&a| a > 0),
        "no acknowledgement was ever checked"
    );
    eprintln!("crash loop took {:?}", started.elapsed());
}
