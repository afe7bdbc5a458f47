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
