//! The Aerospike data model: keys and digests, typed bin values, records, result codes.
//! Pure types: no I/O, no clock.

pub mod key;
pub mod packed;
pub mod result;
pub mod touch;
pub mod value;

pub use key::{partition_id, Digest, UserKey, PARTITIONS};
pub use packed::PackedRecord;
pub use result::ResultCode;
pub use value::{particle, Bin, Value};

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Longest bin name Aerospike accepts (the server's 16 bytes include a NUL).
pub const BIN_NAME_MAX: usize = 15;
/// Longest namespace name (the `replicas` info answer and the clients cap it at 31 bytes).
pub const NAMESPACE_MAX: usize = 31;
/// Longest set name (Aerospike's limit is 63 bytes).
pub const SET_NAME_MAX: usize = 63;
/// Default largest record (Aerospike's default `write-block-size`-like cap): 1 MiB.
pub const RECORD_SIZE_MAX: usize = 1024 * 1024;
/// Most bins a record may hold (Aerospike allows 32,767 bins per record).
pub const BINS_MAX: usize = 32_767;

/// A stored record. Bins keep their insertion order, as Aerospike returns them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub set: CompactString,
    pub key: Option<UserKey>,
    pub bins: Vec<Bin>,
    /// 1..=65535; wraps to 1, never 0 (0 on the wire means "no record").
    pub generation: u16,
    /// Seconds since 2010-01-01 UTC after which the record no longer exists; 0 = never.
    pub void_time: u32,
    /// When the record was last written or touched: the leader's clock in milliseconds since
    /// 2010-01-01 (Aerospike's last-update time). A read touch uses it to learn the TTL the
    /// record was written with.
    pub last_update: u64,
}

impl Record {
    pub fn bin(&self, name: &str) -> Option<&Value> {
        self.bins.iter().find(|b| b.name == name).map(|b| &b.value)
    }

    /// Whether the record is past its void time at `now` (seconds since 2010). Strictly
    /// past, as Aerospike decides it: a record lives through its void-time second, so a TTL
    /// of N seconds never expires before N seconds have passed.
    pub fn is_expired(&self, now: u32) -> bool {
        self.void_time != 0 && self.void_time < now
    }

    /// Approximate stored size, used for the record-size limit (names + values + overhead).
    pub fn size(&self) -> usize {
        let key = self.key.as_ref().map_or(0, |k| k.size());
        self.set.len()
            + key
            + self
                .bins
                .iter()
                .map(|b| b.name.len() + b.value.size() + 2)
                .sum::<usize>()
            + 16
    }
}

/// The generation after `g`: wraps from 65535 to 1, skipping 0.
pub fn next_generation(g: u16) -> u16 {
    if g == u16::MAX {
        1
    } else {
        g + 1
    }
}
