//! The in-memory records of one Raft group, and their snapshot encoding.

use crate::index::{GroupIndex, IndexState, SindexDef};
use crate::record::{Digest, PackedRecord, Record, PARTITIONS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Bound;

/// Records of one group, ordered by digest so snapshots and scans are deterministic.
///
/// Each record is packed into one shared allocation (`PackedRecord`): a third of the memory
/// of a `Record`, and cloning the store copies only the map's nodes, so a snapshot is
/// captured in a few milliseconds and encoded off the apply path, instead of stalling the
/// group's applies (and the async worker running them) for the whole encode. Readers get an
/// unpacked copy of the one record they ask for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordStore {
    records: BTreeMap<Digest, PackedRecord>,
    /// Records this replica removed because they expired (a figure, `expired_objects`; not
    /// part of snapshots, so it counts from this process's start, as Aerospike's does).
    expired: u64,
    /// The namespace's secondary indexes over these records, by name.
    indexes: BTreeMap<String, GroupIndex>,
    /// The namespace is being dropped (`Command::Close`): writes are refused.
    closed: bool,
}

/// Snapshot format version; bump it when the encoding changes. 4: the closed flag.
const SNAPSHOT_VERSION: u32 = 4;

#[derive(Serialize)]
struct SnapshotBodyRef<'a> {
    version: u32,
    records: RecordsRef<'a>,
    indexes: Vec<(&'a String, &'a IndexState)>,
    closed: bool,
}

/// The records as a sequence of `(digest, record)`, serialized straight from the map.
struct RecordsRef<'a>(&'a BTreeMap<Digest, PackedRecord>);

impl Serialize for RecordsRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (d, r) in self.0 {
            seq.serialize_element(&(d, &r.unpack()))?;
        }
        seq.end()
    }
}

/// The records of the current format after the version, decoded straight into the map (no
/// intermediate list of every record).
#[derive(Deserialize)]
struct SnapshotBody {
    records: RecordMap,
    indexes: Vec<(String, IndexState)>,
    closed: bool,
}

struct RecordMap(BTreeMap<Digest, PackedRecord>);

impl<'de> Deserialize<'de> for RecordMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RecordMap;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sequence of (digest, record)")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RecordMap, A::Error> {
                let mut map = BTreeMap::new();
                while let Some((d, r)) = seq.next_element::<(Digest, Record)>()? {
                    map.insert(d, PackedRecord::pack(&r));
                }
                Ok(RecordMap(map))
            }
        }
        d.deserialize_seq(Visit)
    }
}

/// Version 3: records and index cursors (before the closed flag); still loaded.
#[derive(Deserialize)]
struct SnapshotBodyV3 {
    records: Vec<(Digest, Record)>,
    indexes: Vec<(String, IndexState)>,
}

/// Version 2: records only (before secondary indexes); still loaded.
#[derive(Deserialize)]
struct SnapshotBodyV2 {
    records: Vec<(Digest, Record)>,
}

/// The digest range of partition `pid` whose second byte's high nibble is `hi`: a
/// partition's records lie in 16 such ranges (its id is the first 12 bits, little-endian).
fn partition_range(pid: u16, hi: u8) -> (Digest, Digest) {
    let mut lo = [0u8; 20];
    lo[0] = (pid & 0xff) as u8;
    lo[1] = (hi << 4) | (pid >> 8) as u8;
    let mut top = [0xffu8; 20];
    top[0] = lo[0];
    top[1] = lo[1];
    (lo, top)
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

    /// Refuse every later change of records (the namespace is being dropped).
    pub fn close(&mut self) {
        self.closed = true;
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The record under `digest`, unless it is missing or past its void time at `now`.
    pub fn get(&self, digest: &Digest, now: u32) -> Option<Record> {
        self.records
            .get(digest)
            .filter(|r| !r.is_expired(now))
            .map(PackedRecord::unpack)
    }

    pub fn insert(&mut self, digest: Digest, record: Record) {
        let old = self.records.insert(digest, PackedRecord::pack(&record));
        if self.indexes.is_empty() {
            return;
        }
        let old = old.map(|o| o.unpack());
        for ix in self.indexes.values_mut() {
            ix.update(&digest, old.as_ref(), Some(&record));
        }
    }

    /// Whether a record was stored under `digest` (expired or not).
    pub fn remove(&mut self, digest: &Digest) -> bool {
        let Some(old) = self.records.remove(digest) else {
            return false;
        };
        if !self.indexes.is_empty() {
            let old = old.unpack();
            for ix in self.indexes.values_mut() {
                ix.update(digest, Some(&old), None);
            }
        }
        true
    }

    /// Remove every record matching `doomed`; answers how many went.
    fn remove_where(&mut self, doomed: impl Fn(&PackedRecord) -> bool) -> usize {
        let digests: Vec<Digest> = self
            .records
            .iter()
            .filter(|(_, r)| doomed(r))
            .map(|(d, _)| *d)
            .collect();
        for d in &digests {
            self.remove(d);
        }
        digests.len()
    }

    /// Remove every record of `set`; answers how many were removed.
    pub fn remove_set(&mut self, set: &str) -> usize {
        self.remove_where(|r| r.set() == set)
    }

    /// Remove the records (of `set`, or all) last updated strictly before `before`; answers
    /// how many went.
    pub fn truncate(&mut self, set: Option<&str>, before: u64) -> usize {
        self.remove_where(|r| r.last_update() < before && set.is_none_or(|s| r.set() == s))
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
                self.remove(d);
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

    /// Every record as stored (metadata and set read without unpacking).
    pub fn iter(&self) -> impl Iterator<Item = (&Digest, &PackedRecord)> {
        self.records.iter()
    }

    /// The records of partition `pid` in digest order, strictly after `after` when given (a
    /// scan's resume point), expired ones included (the caller decides with its clock).
    pub fn partition(
        &self,
        pid: u16,
        after: Option<Digest>,
    ) -> impl Iterator<Item = (&Digest, &PackedRecord)> {
        debug_assert!(pid < PARTITIONS);
        (0..16u8).flat_map(move |hi| {
            let (lo, top) = partition_range(pid, hi);
            let start = match after {
                Some(a) if a >= top => None,
                Some(a) if a >= lo => Some(Bound::Excluded(a)),
                _ => Some(Bound::Included(lo)),
            };
            start
                .map(|s| self.records.range((s, Bound::Included(top))))
                .into_iter()
                .flatten()
        })
    }

    /// The group's indexes, by name.
    pub fn indexes(&self) -> &BTreeMap<String, GroupIndex> {
        &self.indexes
    }

    pub fn index(&self, name: &str) -> Option<&GroupIndex> {
        self.indexes.get(name)
    }

    /// Add the index `name` (deterministic, idempotent): the same definition under the same
    /// name changes nothing; the same definition under another name is renamed (Aerospike's
    /// rule), keeping its entries; another definition under this name replaces it. A new
    /// index over existing records starts unbuilt (see [`RecordStore::build_index`]).
    pub fn create_index(&mut self, name: &str, def: &SindexDef) {
        if self
            .indexes
            .get(name)
            .is_some_and(|ix| ix.state.def == *def)
        {
            return;
        }
        let same_def = self
            .indexes
            .iter()
            .find(|(_, ix)| ix.state.def == *def)
            .map(|(n, _)| n.clone());
        let ix = match same_def.and_then(|old| self.indexes.remove(&old)) {
            Some(ix) => ix,
            None => GroupIndex::new(IndexState::new(def.clone(), self.records.len())),
        };
        self.indexes.insert(name.to_string(), ix);
    }

    /// Forget the index `name` (nothing if it does not exist).
    pub fn drop_index(&mut self, name: &str) {
        self.indexes.remove(name);
    }

    /// One build step of index `name`: index up to `limit` records after its cursor; it is
    /// ready once a step finds fewer. Answers how many records were indexed.
    pub fn build_index(&mut self, name: &str, limit: usize) -> usize {
        let Some(ix) = self.indexes.get_mut(name) else {
            return 0;
        };
        if ix.state.ready {
            return 0;
        }
        let start = match ix.state.built_through {
            Some(d) => Bound::Excluded(d),
            None => Bound::Unbounded,
        };
        let mut n = 0;
        for (d, r) in self.records.range((start, Bound::Unbounded)).take(limit) {
            ix.add(d, &r.unpack());
            ix.state.built_through = Some(*d);
            n += 1;
        }
        ix.state.built += n as u64;
        if n < limit {
            ix.state.ready = true;
        }
        n
    }

    /// A copy for a snapshot: the records (shared) and each index's state, without entries
    /// (a snapshot never carries them, and copying them would stall applies).
    pub fn capture(&self) -> RecordStore {
        RecordStore {
            records: self.records.clone(),
            expired: self.expired,
            closed: self.closed,
            indexes: self
                .indexes
                .iter()
                .map(|(n, ix)| (n.clone(), GroupIndex::new(ix.state.clone())))
                .collect(),
        }
    }

    /// Encode every record (expired ones too: expiry is decided by replicated deletes).
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for these plain types.
        let _ = self.encode_snapshot_into(&mut out);
        out
    }

    /// Encode every record into `w` as it goes: a snapshot is streamed to its file, never
    /// held in memory whole.
    pub fn encode_snapshot_into(&self, mut w: &mut dyn std::io::Write) -> std::io::Result<()> {
        let body = SnapshotBodyRef {
            version: SNAPSHOT_VERSION,
            records: RecordsRef(&self.records),
            indexes: self.indexes.iter().map(|(n, ix)| (n, &ix.state)).collect(),
            closed: self.closed,
        };
        bincode::serde::encode_into_std_write(&body, &mut w, bincode::config::standard())
            .map(|_| ())
            .map_err(std::io::Error::other)
    }

    pub fn decode_snapshot(mut bytes: &[u8]) -> Result<RecordStore, SnapshotError> {
        Self::decode_snapshot_from(&mut bytes)
    }

    /// Decode a snapshot read from `r` (a file, as it streams in).
    pub fn decode_snapshot_from(r: &mut impl std::io::Read) -> Result<RecordStore, SnapshotError> {
        let config = bincode::config::standard();
        let decode_error = |e: bincode::error::DecodeError| SnapshotError::Decode(e.to_string());
        let version: u32 = bincode::serde::decode_from_std_read(r, config).map_err(decode_error)?;
        let body = match version {
            2 => {
                let v2: SnapshotBodyV2 =
                    bincode::serde::decode_from_std_read(r, config).map_err(decode_error)?;
                SnapshotBody {
                    records: RecordMap(
                        v2.records
                            .into_iter()
                            .map(|(d, r)| (d, PackedRecord::pack(&r)))
                            .collect(),
                    ),
                    indexes: Vec::new(),
                    closed: false,
                }
            }
            3 => {
                let v3: SnapshotBodyV3 =
                    bincode::serde::decode_from_std_read(r, config).map_err(decode_error)?;
                SnapshotBody {
                    records: RecordMap(
                        v3.records
                            .into_iter()
                            .map(|(d, r)| (d, PackedRecord::pack(&r)))
                            .collect(),
                    ),
                    indexes: v3.indexes,
                    closed: false,
                }
            }
            SNAPSHOT_VERSION => {
                bincode::serde::decode_from_std_read(r, config).map_err(decode_error)?
            }
            v => return Err(SnapshotError::Version(v)),
        };
        let mut store = RecordStore {
            expired: 0,
            closed: body.closed,
            records: body.records.0,
            indexes: BTreeMap::new(),
        };
        // Entries are a function of the records and each index's cursor: rebuild them, each
        // record unpacked once for all its indexes.
        store.indexes = body
            .indexes
            .into_iter()
            .map(|(name, state)| (name, GroupIndex::new(state)))
            .collect();
        if !store.indexes.is_empty() {
            for (d, r) in store.records.iter() {
                let mut unpacked = None;
                for ix in store.indexes.values_mut().filter(|ix| ix.state.covers(d)) {
                    ix.add(d, unpacked.get_or_insert_with(|| r.unpack()));
                }
            }
        }
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{Collection, IndexKey, KeyType};
    use crate::record::{partition_id, Bin, Value};

    fn record(set: &str, v: i64, last_update: u64) -> Record {
        Record {
            set: set.into(),
            key: None,
            bins: vec![Bin {
                name: "b".into(),
                value: Value::Int(v),
            }],
            generation: 1,
            void_time: 0,
            last_update,
        }
    }

    fn digest(n: u32) -> Digest {
        crate::record::UserKey::Int(i64::from(n)).digest("s")
    }

    fn def() -> SindexDef {
        SindexDef {
            set: None,
            bin: "b".into(),
            key_type: KeyType::Numeric,
            collection: Collection::Default,
        }
    }

    #[test]
    fn a_partition_yields_exactly_its_records_in_digest_order() {
        let mut s = RecordStore::new();
        for n in 0..3000 {
            s.insert(digest(n), record("s", 0, 0));
        }
        let mut seen = 0;
        for pid in 0..PARTITIONS {
            let got: Vec<Digest> = s.partition(pid, None).map(|(d, _)| *d).collect();
            assert!(got.iter().all(|d| partition_id(d) == pid));
            assert!(got.windows(2).all(|w| w[0] < w[1]));
            seen += got.len();
            if let Some(mid) = got.get(got.len() / 2) {
                let rest: Vec<Digest> = s.partition(pid, Some(*mid)).map(|(d, _)| *d).collect();
                assert_eq!(rest, got[got.len() / 2 + 1..]);
            }
        }
        assert_eq!(seen, 3000);
    }

    /// Entries of every index must equal the keys of the records its cursor covers, whatever
    /// mix of writes, deletes, build steps, truncates and snapshot round trips led there.
    fn assert_consistent(s: &RecordStore) {
        let fresh = RecordStore::decode_snapshot(&s.encode_snapshot()).unwrap();
        assert_eq!(&fresh, s);
    }

    #[test]
    fn indexes_follow_writes_builds_and_snapshots() {
        let mut s = RecordStore::new();
        for n in 0..100 {
            s.insert(digest(n), record("s", i64::from(n % 10), u64::from(n)));
        }
        s.create_index("ix", &def());
        assert!(!s.index("ix").unwrap().state.ready);
        assert_eq!(s.build_index("ix", 40), 40);
        assert_eq!(s.index("ix").unwrap().state.load_pct(), 40);
        assert_consistent(&s);
        // Writes inside and beyond the cursor, and deletes, while building.
        for n in (0..100).step_by(7) {
            s.insert(digest(n), record("s", 99, 1000));
        }
        s.remove(&digest(3));
        assert_consistent(&s);
        while !s.index("ix").unwrap().state.ready {
            s.build_index("ix", 40);
        }
        assert_eq!(s.index("ix").unwrap().entries(), 99);
        let count = |s: &RecordStore, v: i64| -> usize {
            (0..PARTITIONS)
                .map(|p| {
                    s.index("ix")
                        .unwrap()
                        .range(p, IndexKey::int(v), IndexKey::int(v), None)
                        .count()
                })
                .sum()
        };
        assert_eq!(count(&s, 99), 15);
        s.truncate(None, 1000);
        assert_eq!(count(&s, 99), 15);
        assert_eq!(s.index("ix").unwrap().entries(), 15);
        assert_consistent(&s);
        // Same definition under a new name: a rename keeping the entries.
        s.create_index("renamed", &def());
        assert!(s.index("ix").is_none());
        assert_eq!(s.index("renamed").unwrap().entries(), 15);
        s.drop_index("renamed");
        assert!(s.indexes().is_empty());
    }

    #[test]
    fn a_snapshot_rebuilds_several_indexes_at_their_own_cursors() {
        let mut s = RecordStore::new();
        for n in 0..50 {
            s.insert(digest(n), record("s", i64::from(n), 1));
        }
        s.create_index("all", &def());
        s.build_index("all", 50);
        let in_set = SindexDef {
            set: Some("s".into()),
            ..def()
        };
        s.create_index("part", &in_set);
        s.build_index("part", 20);
        assert_eq!(s.index("all").unwrap().entries(), 50);
        assert_eq!(s.index("part").unwrap().entries(), 20);
        assert_consistent(&s);
    }

    #[test]
    fn an_index_on_an_empty_group_is_ready_at_once() {
        let mut s = RecordStore::new();
        s.create_index("ix", &def());
        assert!(s.index("ix").unwrap().state.ready);
        s.insert(digest(1), record("s", 5, 0));
        assert_eq!(s.index("ix").unwrap().entries(), 1);
        assert_eq!(s.capture().index("ix").unwrap().entries(), 0);
    }
}
