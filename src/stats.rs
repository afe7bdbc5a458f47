//! Counters reported by the `statistics` info command.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Stats {
    pub client_connections: AtomicU64,
    pub reads: AtomicU64,
    pub read_not_found: AtomicU64,
    pub writes: AtomicU64,
    pub deletes: AtomicU64,
    pub errors: AtomicU64,
    pub in_doubt: AtomicU64,
    pub forwarded: AtomicU64,
    /// Read touches (`read_touch_ttl_percent`): applied, skipped (record changed, not the
    /// leader any more), failed or in doubt.
    pub read_touch_success: AtomicU64,
    pub read_touch_skip: AtomicU64,
    pub read_touch_error: AtomicU64,
    /// Expiry commands this node's sweeps committed.
    pub expiry_sweeps: AtomicU64,
    pub info_requests: AtomicU64,
    /// Scans and (secondary-index) queries started.
    pub scans: AtomicU64,
    pub queries: AtomicU64,
}

impl Stats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
