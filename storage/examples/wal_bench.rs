//! WAL microbenchmark: durable appends/s and appends per fsync of `SledLogStore` with group
//! commit, for 1, 16 and 64 concurrent appenders (each its own group, 256-byte entries, every
//! append followed by a blocking sync, as a Raft follower acknowledging an append does).
//! Then a disk-growth check under append + purge for both sled modes.
//!
//! ```text
//! cargo run --release -p storage --example wal_bench \
//!     [-- --secs 3 --threads 1,16,64 --linger-us 0 --low-space --no-fsync]
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use storage::log_store::{LogStore, SledLogStore, SledLogStoreOptions, SledMode};

const ENTRY: usize = 256;

struct Args {
    secs: f64,
    linger: Duration,
    mode: SledMode,
    fsync: bool,
    threads: Vec<u32>,
}

fn parse_args() -> Args {
    let mut args = Args {
        secs: 3.0,
        linger: Duration::ZERO,
        mode: SledMode::HighThroughput,
        fsync: true,
        threads: vec![1, 16, 64],
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--secs" => args.secs = it.next().and_then(|v| v.parse().ok()).unwrap_or(3.0),
            "--linger-us" => {
                let us = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                args.linger = Duration::from_micros(us);
            }
            "--low-space" => args.mode = SledMode::LowSpace,
            "--no-fsync" => args.fsync = false,
            "--threads" => {
                args.threads = it
                    .next()
                    .map(|v| v.split(',').filter_map(|t| t.parse().ok()).collect())
                    .unwrap_or_default();
            }
            other => eprintln!("ignoring unknown argument {other}"),
        }
    }
    args
}

fn bench(threads: u32, args: &Args) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        SledLogStore::open(
            dir.path(),
            SledLogStoreOptions {
                mode: args.mode,
                flush_linger: args.linger,
                fsync: args.fsync,
                ..SledLogStoreOptions::default()
            },
        )
        .expect("open"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|g| {
            let (store, stop, measuring, done) = (
                Arc::clone(&store),
                Arc::clone(&stop),
                Arc::clone(&measuring),
                Arc::clone(&done),
            );
            std::thread::spawn(move || {
                let payload = vec![0xab_u8; ENTRY];
                let mut i = 1;
                while !stop.load(Ordering::Relaxed) {
                    store.append(g, vec![(i, payload.clone())]).expect("append");
                    store.sync_blocking().expect("sync");
                    i += 1;
                    if measuring.load(Ordering::Relaxed) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300)); // warm up
    let before = store.stats();
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.secs));
    measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let after = store.stats();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    let appends = done.load(Ordering::Relaxed) as f64;
    let flushes = (after.flushes - before.flushes) as f64;
    let synced = (after.synced_requests - before.synced_requests) as f64;
    let per_fsync = if flushes > 0.0 { synced / flushes } else { 0.0 };
    let fsync_ms = if flushes > 0.0 {
        elapsed * 1000.0 / flushes
    } else {
        0.0
    };
    (appends / elapsed, per_fsync, fsync_ms)
}

/// Disk use after writing 100k entries and purging 90k of them, per mode: the log is a
/// sliding window, so what matters is whether space comes back after a purge.
fn space(mode: SledMode) -> (f64, f64, f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledLogStore::open(
        dir.path(),
        SledLogStoreOptions {
            mode,
            ..SledLogStoreOptions::default()
        },
    )
    .expect("open");
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    let payload = vec![0x5a_u8; ENTRY];
    let mut next = 1;
    let mut append = |n: u64| {
        for chunk in 0..n / 100 {
            let _ = chunk;
            let batch = (next..next + 100).map(|i| (i, payload.clone())).collect();
            store.append(1, batch).expect("append");
            next += 100;
        }
        store.sync_blocking().expect("sync");
    };
    append(100_000);
    let full = mb(store.size_on_disk().expect("size"));
    let start = Instant::now();
    store.purge_upto(1, 90_000).expect("purge");
    store.sync_blocking().expect("sync");
    let purge_s = start.elapsed().as_secs_f64();
    let purged = mb(store.size_on_disk().expect("size"));
    // Keep the window sliding: 5 more rounds of append 20k + purge 20k.
    let mut upto = 90_000;
    for _ in 0..5 {
        append(20_000);
        upto += 20_000;
        store.purge_upto(1, upto).expect("purge");
        store.sync_blocking().expect("sync");
    }
    let slid = mb(store.size_on_disk().expect("size"));
    (full, purged, slid, purge_s)
}

fn main() {
    let args = parse_args();
    println!(
        "sled 0.34.7 {:?}, fsync {}, {ENTRY}-byte entries, one group per appender, linger {:?}, {} s per row",
        args.mode, args.fsync, args.linger, args.secs
    );
    println!();
    println!(
        "| concurrent appenders | durable appends/s | appends per fsync | ms per flush cycle |"
    );
    println!("|--:|--:|--:|--:|");
    for &t in &args.threads {
        let (rate, per_fsync, fsync_ms) = bench(t, &args);
        println!("| {t} | {rate:.0} | {per_fsync:.1} | {fsync_ms:.3} |");
    }
    println!();
    println!(
        "Disk use, 100k x {ENTRY} B appended, then purge 90k, then 5 x (append 20k, purge 20k):"
    );
    println!();
    println!("| mode | MiB after 100k | MiB after purge | MiB after sliding | purge 90k took |");
    println!("|--|--:|--:|--:|--:|");
    for mode in [SledMode::HighThroughput, SledMode::LowSpace] {
        let (full, purged, slid, purge_s) = space(mode);
        println!("| {mode:?} | {full:.1} | {purged:.1} | {slid:.1} | {purge_s:.2} s |");
    }
}
