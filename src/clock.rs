//! The one place that reads wall-clock time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Aerospike's epoch: 2010-01-01T00:00:00Z in Unix seconds.
pub const CITRUSLEAF_EPOCH: u64 = 1_262_304_000;

/// Seconds since 2010-01-01, as record void times are expressed.
pub fn now_since_2010() -> u32 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(CITRUSLEAF_EPOCH);
    u32::try_from(unix.saturating_sub(CITRUSLEAF_EPOCH)).unwrap_or(u32::MAX)
}

/// The wall clock as a node sees it: handed to the node, so a simulation can hand it another.
/// Only leaders read it (to stamp `now` and void times into commands); apply never does.
pub trait Clock: Send + Sync + 'static {
    /// Seconds since 2010-01-01 (Aerospike's epoch).
    fn now_since_2010(&self) -> u32;
}

/// The operating system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_since_2010(&self) -> u32 {
        now_since_2010()
    }
}
