//! Resident memory of one group's records: RECORDS (default 1,000,000) records shaped like
//! `strato bench --value string:100` (set `testset`, integer key, one 100-byte string bin
//! `testbin`) inserted into a `RecordStore` under the server's allocator, and the process's
//! resident memory per record read from /proc before and after.
//!
//!   cargo run --release -p storage --example record_memory

use storage::record::{Bin, Record, UserKey, Value};
use storage::record_store::RecordStore;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let records: u64 = std::env::var("RECORDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1_000_000);
    let mut store = RecordStore::new();
    let before = rss_bytes();
    for k in 0..records {
        let key = UserKey::Int(k as i64);
        let d = key.digest("testset");
        let rec = Record {
            set: "testset".into(),
            key: Some(key),
            bins: vec![Bin::new("testbin", Value::Str(vec![b'x'; 100]))],
            generation: 1,
            void_time: 0,
            last_update: 1,
        };
        store.insert(d, rec);
    }
    let after = rss_bytes();
    println!(
        "records={records} rss_per_record={}",
        (after - before) / records
    );
}
