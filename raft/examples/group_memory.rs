//! What one idle group replica costs in memory: opens N groups on one node (in-memory log
//! store, no peers) and reports the live heap bytes and resident memory they added, per
//! group, at each step of a group's life.
//!
//!     cargo run --release -p raft --example group_memory [N]

use futures::future::BoxFuture;
use raft::config::RaftConfig;
use raft::{GroupId, MultiRaft, NodeId, Transport, TransportError};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use storage::log_store::MemLogStore;
use storage::snapshot_file::SnapshotFiles;

/// The system allocator, counting live bytes.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// While set, every allocation of at least 4 KiB is tallied in `BIG` (bytes) and `BIG_N`.
static TRACE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static BIG: AtomicIsize = AtomicIsize::new(0);
static BIG_N: AtomicIsize = AtomicIsize::new(0);
static SIZES: [AtomicIsize; 16] = [const { AtomicIsize::new(0) }; 16];

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        if l.size() >= 4096 && TRACE.load(Ordering::Relaxed) {
            BIG.fetch_add(l.size() as isize, Ordering::Relaxed);
            let i = BIG_N.fetch_add(1, Ordering::Relaxed);
            if let Some(slot) = SIZES.get(i as usize) {
                slot.store(l.size() as isize, Ordering::Relaxed);
            }
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// No peers: every call fails.
struct Nowhere;
impl Transport for Nowhere {
    fn call(
        &self,
        _: NodeId,
        _: GroupId,
        _: Vec<u8>,
        _: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>> {
        Box::pin(async { Err(TransportError::Unreachable("no peers".into())) })
    }
}

extern "C" {
    fn malloc_trim(pad: usize) -> i32;
}

fn rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

struct Mark {
    live: isize,
    rss: i64,
}

fn mark() -> Mark {
    Mark {
        live: LIVE.load(Ordering::Relaxed),
        rss: rss_kib(),
    }
}

fn report(what: &str, from: &Mark, n: usize) -> Mark {
    let now = mark();
    println!(
        "| {what} | {:.1} | {:.1} |",
        (now.live - from.live) as f64 / 1024.0 / n as f64,
        (now.rss - from.rss) as f64 / n as f64
    );
    now
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir()?;
    let snapshots = Arc::new(SnapshotFiles::new(dir.path()).map_err(std::io::Error::other)?);
    let log = Arc::new(MemLogStore::new());
    // Evict idle instances as soon as allowed (two leader leases), to measure what stays.
    let config = RaftConfig {
        evict_idle_ms: 1,
        ..RaftConfig::default()
    };
    let multi = Arc::new(MultiRaft::new(
        1,
        &config,
        log,
        snapshots,
        Arc::new(Nowhere),
    )?);
    println!("{n} groups on one node, in-memory log, no peers (KiB per group)");
    println!();
    println!("| step | live heap | resident |");
    println!("|---|---:|---:|");
    // One group alone (after a first one, which also sets up what the process shares), its
    // large allocations traced.
    multi.open_group(100_000).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = LIVE.load(Ordering::Relaxed);
    TRACE.store(true, Ordering::Relaxed);
    multi.open_group(100_001).await?;
    TRACE.store(false, Ordering::Relaxed);
    let one = LIVE.load(Ordering::Relaxed) - before;
    let sizes: Vec<String> = SIZES
        .iter()
        .map(|s| s.load(Ordering::Relaxed))
        .filter(|s| *s > 0)
        .map(|s| format!("{:.0} KiB", s as f64 / 1024.0))
        .collect();
    println!(
        "one group: {:.0} KiB allocated, of which {:.0} KiB in {} allocations of 4 KiB or more ({})",
        one as f64 / 1024.0,
        BIG.load(Ordering::Relaxed) as f64 / 1024.0,
        BIG_N.load(Ordering::Relaxed),
        sizes.join(", ")
    );
    println!();
    let start = mark();
    for g in 0..n {
        multi.open_group(g as GroupId + 1).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let opened = report(
        "opened (openraft instance, record store, log view)",
        &start,
        n,
    );
    for g in 0..n {
        multi
            .initialize(g as GroupId + 1, [1].into_iter().collect())
            .await?;
    }
    // Single-voter groups elect themselves; wait for every one to lead.
    for _ in 0..200 {
        if (0..n).all(|g| multi.leads(g as GroupId + 1)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let leading = report(
        "initialized and leading (first entries, leader state)",
        &opened,
        n,
    );
    report("total while running", &start, n);
    // The supervisor puts the groups to sleep and evicts their instances once idle.
    let supervisor = tokio::spawn(raft::supervisor::run(multi.clone()));
    for _ in 0..200 {
        if multi.sleep_figures().evicted as usize >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // glibc's malloc keeps freed pages unless asked (the server's mimalloc returns them
    // by itself after a short delay).
    // SAFETY: malloc_trim only releases free memory held by glibc's allocator.
    unsafe { malloc_trim(0) };
    println!("evicted: {} of {n}", multi.sleep_figures().evicted);
    report("evicted (instance stopped)", &leading, n);
    report("total once evicted", &start, n);
    // What starting an evicted instance again costs (the first request to an idle group).
    let t = std::time::Instant::now();
    for g in 0..n {
        multi
            .wait_applied(g as GroupId + 1, 0, Duration::from_secs(5))
            .await;
    }
    println!(
        "started again: {:.0} µs per group, one after another",
        t.elapsed().as_micros() as f64 / n as f64
    );
    supervisor.abort();
    multi.shutdown().await;
    Ok(())
}
