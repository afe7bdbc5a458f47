//! A first latency/throughput probe with the Rust `aerospike` client against a running cluster:
//! single-client put and get latency (median, p99) and N-client put throughput.
//!
//!     cargo run --release --example quick_bench -- 127.0.0.1:3000 [value_bytes] [clients] [seconds]
//!
//! `scripts/bench-quick` starts a local 3-node cluster (fsync on) and runs this against it.

use aerospike::{as_bin, as_key, Bins, Client, ClientPolicy, ReadPolicy, WritePolicy};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let host = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let size: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(256);
    let clients: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(64);
    let secs: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(10);
    let client = Arc::new(
        Client::new(&ClientPolicy::default(), &host)
            .await
            .expect("connect"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.nodes().len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let value = "x".repeat(size);
    let wp = WritePolicy::default();
    let rp = ReadPolicy::default();

    // Warm up connections and leaders.
    for i in 0..200i64 {
        let _ = client
            .put(
                &wp,
                &as_key!("test", "bench", i),
                &[as_bin!("v", value.clone())],
            )
            .await;
    }
    let n = 3000i64;
    let mut puts = Vec::with_capacity(n as usize);
    for i in 0..n {
        let t = Instant::now();
        client
            .put(
                &wp,
                &as_key!("test", "bench", i),
                &[as_bin!("v", value.clone())],
            )
            .await
            .expect("put");
        puts.push(t.elapsed());
    }
    let mut gets = Vec::with_capacity(n as usize);
    for i in 0..n {
        let t = Instant::now();
        client
            .get(&rp, &as_key!("test", "bench", i), Bins::All)
            .await
            .expect("get");
        gets.push(t.elapsed());
    }
    puts.sort();
    gets.sort();

    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, done, errors, value) =
            (client.clone(), done.clone(), errors.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            let wp = WritePolicy::default();
            let mut i = 0i64;
            while Instant::now() < stop_at {
                let key = as_key!("test", "bench", (c as i64) * 1_000_000 + (i % 10_000));
                match client.put(&wp, &key, &[as_bin!("v", value.clone())]).await {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
                i += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let tput = done.load(Ordering::Relaxed) as f64 / secs as f64;

    println!("| test | value | clients | fsync | groups | median ms | p99 ms | ops/s |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| put | {size} B string | 1 | on | 16 | {:.3} | {:.3} | {:.0} |",
        pct(&puts, 0.5),
        pct(&puts, 0.99),
        n as f64 / puts.iter().sum::<Duration>().as_secs_f64()
    );
    println!(
        "| get (linearizable) | {size} B string | 1 | on | 16 | {:.3} | {:.3} | {:.0} |",
        pct(&gets, 0.5),
        pct(&gets, 0.99),
        n as f64 / gets.iter().sum::<Duration>().as_secs_f64()
    );
    println!(
        "| put | {size} B string | {clients} | on | 16 | - | - | {tput:.0} (errors {}) |",
        errors.load(Ordering::Relaxed)
    );
    client.close().await.ok();
}
