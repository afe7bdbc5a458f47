//! The one place that reads wall-clock time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Aerospike's epoch: 2010-01-01T00:00:00Z in Unix seconds.
pub const CITRUSLEAF_EPOCH: u64 = 1_262_304_000;

/// Seconds since 2010-01-01, as record void times are expressed.
pub fn now_since_2010() -> u32 {
    u32::try_from(now_ms_since_2010() / 1000).unwrap_or(u32::MAX)
}

/// Milliseconds since 2010-01-01, as record last-update times are expressed.
pub fn now_ms_since_2010() -> u64 {
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(CITRUSLEAF_EPOCH * 1000);
    unix_ms.saturating_sub(CITRUSLEAF_EPOCH * 1000)
}

/// The wall clock as a node sees it: handed to the node, so a simulation can hand it another.
/// Only leaders read it (to stamp `now` and void times into commands); apply never does.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since 2010-01-01 (Aerospike's epoch).
    fn now_ms_since_2010(&self) -> u64;

    /// Seconds since 2010-01-01.
    fn now_since_2010(&self) -> u32 {
        u32::try_from(self.now_ms_since_2010() / 1000).unwrap_or(u32::MAX)
    }
}

/// The operating system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms_since_2010(&self) -> u64 {
        now_ms_since_2010()
    }
}
