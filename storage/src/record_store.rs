//! The in-memory records of one Raft group, and their snapshot encoding.

use crate::record::{Digest, Record};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Records of one group, ordered by digest so snapshots and scans are deterministic.
///
/// Each record is shared (`Arc`), so cloning the store copies only the map's nodes: a
/// snapshot is captured in a few milliseconds and encoded off the apply path, instead of
/// stalling the group's applies (and the async worker running them) for the whole encode.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordStore {
    records: BTreeMap<Digest, Arc<Record>>,
    /// Records this replica removed because they expired (a figure, `expired_objects`; not
    /// part of snapshots, so it counts from this process's start, as Aerospike's does).
    expired: u64,
}

/// Snapshot format version; bump it when the encoding changes.
const SNAPSHOT_VERSION: u32 = 2;

#[derive(Serialize)]
struct SnapshotBodyRef<'a> {
    version: u32,
    records: Vec<(&'a Digest, &'a Record)>,
}

#[derive(Deserialize)]
struct SnapshotBody {
    version: u32,
    records: Vec<(Digest, Record)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot cannot be decoded: {0}")]
    Decode(String),
    #[error("snapshot format version {0} is not supported")]
    Version(u32),
}

impl RecordStore {
    pub fn new() -> RecordStore {
        RecordStore::default()
    }

    /// The record under `digest`, unless it is missing or past its void time at `now`.
    pub fn get(&self, digest: &Digest, now: u32) -> Option<&Record> {
        self.records
            .get(digest)
            .map(|r| &**r)
            .filter(|r| !r.is_expired(now))
    }

    pub fn insert(&mut self, digest: Digest, record: Record) {
        self.records.insert(digest, Arc::new(record));
    }

    /// Whether a record was stored under `digest` (expired or not).
    pub fn remove(&mut self, digest: &Digest) -> bool {
        self.records.remove(digest).is_some()
    }

    /// Remove every record of `set`; answers how many were removed.
    pub fn remove_set(&mut self, set: &str) -> usize {
        let before = self.records.len();
        self.records.retain(|_, r| r.set != set);
        before - self.records.len()
    }

    /// Remove the records (of `set`, or all) last updated strictly before `before`; answers
    /// how many went.
    pub fn truncate(&mut self, set: Option<&str>, before: u64) -> usize {
        let len = self.records.len();
        self.records
            .retain(|_, r| r.last_update >= before || set.is_some_and(|s| r.set != s));
        len - self.records.len()
    }

    /// Up to `limit` digests of records past their void time at `now`, for the expiry sweep.
    pub fn expired_digests(&self, now: u32, limit: usize) -> Vec<Digest> {
        self.records
            .iter()
            .filter(|(_, r)| r.is_expired(now))
            .map(|(d, _)| *d)
            .take(limit)
            .collect()
    }

    /// Remove these records where they are still past their void time at `now` (a write may
    /// have renewed one since the sweep found it); answers how many went.
    pub fn expire(&mut self, digests: &[Digest], now: u32) -> usize {
        let mut removed = 0;
        for d in digests {
            if self.records.get(d).is_some_and(|r| r.is_expired(now)) {
                self.records.remove(d);
                removed += 1;
            }
        }
        self.expired += removed as u64;
        removed
    }

    /// Records this replica removed by expiry since it started.
    pub fn expired_count(&self) -> u64 {
        self.expired
    }

    /// Stored records, including expired ones not yet removed.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Digest, &Record)> {
        self.records.iter().map(|(d, r)| (d, &**r))
    }

    /// Encode every record (expired ones too: expiry is decided by replicated deletes).
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let body = SnapshotBodyRef {
            version: SNAPSHOT_VERSION,
            records: self.iter().collect(),
        };
        // Encoding into a Vec cannot fail for these plain types.
        bincode::serde::encode_to_vec(&body, bincode::config::standard()).unwrap_or_default()
    }

    pub fn decode_snapshot(bytes: &[u8]) -> Result<RecordStore, SnapshotError> {
        let (body, _): (SnapshotBody, usize) =
            bincode::serde::decode_from_slice(bytes, bincode::config::standard())
                .map_err(|e| SnapshotError::Decode(e.to_string()))?;
        if body.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version(body.version));
        }
        Ok(RecordStore {
            expired: 0,
            records: body
                .records
                .into_iter()
                .map(|(d, r)| (d, Arc::new(r)))
                .collect(),
        })
    }
}
