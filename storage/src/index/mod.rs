//! Secondary indexes of one group: for every index of the namespace, the entries
//! `(partition, key, digest)` of the group's records, kept in step with the records inside
//! apply, so every replica holds the same entries.
//!
//! An index created over existing records is built by replicated steps
//! ([`crate::command::Command::BuildIndex`]), each indexing the next records in digest order
//! after a cursor; writes keep flowing between steps. Invariant: an index's entries are
//! exactly the keys of the records whose digest is at or before its cursor (all of them once
//! it is ready), so a write beyond the cursor is left to the build, and a snapshot need only
//! carry the cursor: entries are rebuilt from the records when it is loaded.
//!
//! Entries are ordered by partition first, so a partition's slice of an index is one range,
//! and within it by key then digest, which is the resume point (BVAL and digest) Aerospike's
//! clients send to continue a query.

pub mod def;
pub mod elements;

pub use def::{Collection, KeyType, SindexDef};

use crate::record::{partition_id, Digest, Record, Value};
use elements::{list_elements, map_elements, Element};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::ops::Bound;

/// A value as an index holds it, in 8 bytes as Aerospike's entries do: an integer itself,
/// a string or blob by a 64-bit hash (FNV-1a; equal on every node and version, since query
/// resume points travel through clients). A query on bytes re-checks the record's real
/// value, so a hash collision never returns a wrong record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexKey(i64);

impl IndexKey {
    pub fn int(v: i64) -> IndexKey {
        IndexKey(v)
    }

    pub fn bytes(b: &[u8]) -> IndexKey {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in b {
            h ^= u64::from(*byte);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        IndexKey(h as i64)
    }

    /// The BVAL a query answer carries for this key (Aerospike's resume value).
    pub fn bval(self) -> u64 {
        self.0 as u64
    }

    pub fn from_bval(bval: u64) -> IndexKey {
        IndexKey(bval as i64)
    }

    /// The integer an integer index's key is.
    pub fn as_int(self) -> i64 {
        self.0
    }
}

/// One entry: partition, key, digest (32 bytes).
pub type Entry = (u16, IndexKey, Digest);

const DIGEST_MIN: Digest = [0; 20];
const DIGEST_MAX: Digest = [0xff; 20];

/// A value of a bin as an index of `t` reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scalar<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl Scalar<'_> {
    fn key(self) -> IndexKey {
        match self {
            Scalar::Int(i) => IndexKey::int(i),
            Scalar::Bytes(b) => IndexKey::bytes(b),
        }
    }
}

/// The bin's own value, if the index holds values of its type.
fn scalar(t: KeyType, v: &Value) -> Option<Scalar<'_>> {
    match (t, v) {
        (KeyType::Numeric, Value::Int(i)) => Some(Scalar::Int(*i)),
        (KeyType::String, Value::Str(s)) => Some(Scalar::Bytes(s)),
        (KeyType::Blob, Value::Blob(_, b)) => Some(Scalar::Bytes(b)),
        _ => None,
    }
}

/// One list or map element, if the index holds values of its type.
fn element(t: KeyType, e: Element<'_>) -> Option<Scalar<'_>> {
    use crate::record::particle;
    match (t, e) {
        (KeyType::Numeric, Element::Int(i)) => Some(Scalar::Int(i)),
        (KeyType::String, Element::Bytes(particle::STRING, s))
        | (KeyType::Blob, Element::Bytes(particle::BLOB, s)) => Some(Scalar::Bytes(s)),
        _ => None,
    }
}

/// The values `record` offers an index defined by `def`.
fn values<'a>(def: &SindexDef, record: &'a Record) -> Vec<Scalar<'a>> {
    if def.set.as_ref().is_some_and(|s| *s != record.set) {
        return Vec::new();
    }
    let Some(v) = record.bin(&def.bin) else {
        return Vec::new();
    };
    let t = def.key_type;
    let elements = match (def.collection, v) {
        (Collection::Default, v) => return scalar(t, v).into_iter().collect(),
        (Collection::List, Value::List(b)) => list_elements(b),
        (Collection::MapKeys, Value::Map(b)) => map_elements(b, true),
        (Collection::MapValues, Value::Map(b)) => map_elements(b, false),
        _ => return Vec::new(),
    };
    elements.into_iter().filter_map(|e| element(t, e)).collect()
}

/// The keys `record` contributes to an index defined by `def`: sorted, without duplicates.
pub fn keys_of(def: &SindexDef, record: &Record) -> Vec<IndexKey> {
    let mut keys: Vec<IndexKey> = values(def, record).into_iter().map(Scalar::key).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// What a query asks of a record: an integer in a range, or exactly these bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wanted<'a> {
    IntRange(i64, i64),
    Bytes(&'a [u8]),
}

/// Whether `record` really holds a wanted value where the index looks: the check every
/// query match goes through, as Aerospike re-checks, and what makes a hashed string key's
/// collision harmless.
pub fn holds(def: &SindexDef, record: &Record, wanted: Wanted<'_>) -> bool {
    values(def, record).into_iter().any(|v| match (v, wanted) {
        (Scalar::Int(i), Wanted::IntRange(lo, hi)) => lo <= i && i <= hi,
        (Scalar::Bytes(b), Wanted::Bytes(w)) => b == w,
        _ => false,
    })
}

/// An index's build progress: what snapshots carry (entries are rebuilt from records).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexState {
    pub def: SindexDef,
    /// Records at or before this digest are indexed (None: none yet).
    pub built_through: Option<Digest>,
    /// Every record is indexed: the index answers queries.
    pub ready: bool,
    /// Records indexed by the build so far, and the group's size when it began (`load_pct`).
    pub built: u64,
    pub to_build: u64,
}

impl IndexState {
    pub fn new(def: SindexDef, records: usize) -> IndexState {
        IndexState {
            def,
            built_through: None,
            ready: records == 0,
            built: 0,
            to_build: records as u64,
        }
    }

    /// Whether the record under `digest` is covered by the entries.
    pub fn covers(&self, digest: &Digest) -> bool {
        self.ready || self.built_through.is_some_and(|t| *digest <= t)
    }

    /// Aerospike's `load_pct`: 100 once ready, else the share of the build done (at most 99).
    pub fn load_pct(&self) -> u64 {
        if self.ready {
            100
        } else {
            (self.built * 100)
                .checked_div(self.to_build)
                .map_or(99, |p| p.min(99))
        }
    }
}

/// One index of one group: its state and entries.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupIndex {
    pub state: IndexState,
    entries: BTreeSet<Entry>,
}

impl GroupIndex {
    pub fn new(state: IndexState) -> GroupIndex {
        GroupIndex {
            state,
            entries: BTreeSet::new(),
        }
    }

    pub fn entries(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Approximate memory the entries take: each entry's size times 1.5 for the B-tree's
    /// partly filled nodes (a node holds at most 11 entries and splits when full).
    pub fn used_bytes(&self) -> u64 {
        const PER_ENTRY: u64 = std::mem::size_of::<Entry>() as u64 * 3 / 2;
        self.entries() * PER_ENTRY
    }

    /// Replace `old`'s keys by `new`'s for the record under `digest` (either may be absent).
    pub fn update(&mut self, digest: &Digest, old: Option<&Record>, new: Option<&Record>) {
        if !self.state.covers(digest) {
            return;
        }
        let pid = partition_id(digest);
        let old_keys = old.map(|r| keys_of(&self.state.def, r)).unwrap_or_default();
        let new_keys = new.map(|r| keys_of(&self.state.def, r)).unwrap_or_default();
        if old_keys == new_keys {
            return;
        }
        for k in old_keys {
            self.entries.remove(&(pid, k, *digest));
        }
        for k in new_keys {
            self.entries.insert((pid, k, *digest));
        }
    }

    /// Index `record` (a build step): add its keys.
    pub fn add(&mut self, digest: &Digest, record: &Record) {
        let pid = partition_id(digest);
        for k in keys_of(&self.state.def, record) {
            self.entries.insert((pid, k, *digest));
        }
    }

    /// Entries of partition `pid` with a key in `[lo, hi]`, in (key, digest) order, strictly
    /// after `after` when given (a query's resume point).
    pub fn range<'a>(
        &'a self,
        pid: u16,
        lo: IndexKey,
        hi: IndexKey,
        after: Option<(IndexKey, Digest)>,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        let low = match after {
            Some((k, d)) if (k, d) >= (lo, DIGEST_MIN) => Bound::Excluded((pid, k, d)),
            _ => Bound::Included((pid, lo, DIGEST_MIN)),
        };
        let high = Bound::Included((pid, hi, DIGEST_MAX));
        let empty = match (&low, &high) {
            (Bound::Excluded(l) | Bound::Included(l), Bound::Included(h)) => l > h,
            _ => false,
        };
        let range = if empty {
            None
        } else {
            Some(self.entries.range((low, high)))
        };
        range.into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(set: &str, bins: Vec<(&str, Value)>) -> Record {
        Record {
            set: set.into(),
            key: None,
            bins: bins
                .into_iter()
                .map(|(n, v)| crate::record::Bin {
                    name: n.into(),
                    value: v,
                })
                .collect(),
            generation: 1,
            void_time: 0,
            last_update: 0,
        }
    }

    fn def(set: Option<&str>, t: KeyType, c: Collection) -> SindexDef {
        SindexDef {
            set: set.map(Into::into),
            bin: "b".into(),
            key_type: t,
            collection: c,
        }
    }

    #[test]
    fn keys_follow_set_type_and_collection() {
        let r = record("s", vec![("b", Value::Int(5))]);
        assert_eq!(
            keys_of(&def(None, KeyType::Numeric, Collection::Default), &r),
            vec![IndexKey::int(5)]
        );
        assert!(keys_of(&def(Some("t"), KeyType::Numeric, Collection::Default), &r).is_empty());
        assert!(keys_of(&def(None, KeyType::String, Collection::Default), &r).is_empty());
        // [3, "x", 3, 1]
        let l = record(
            "s",
            vec![("b", Value::List(vec![0x94, 3, 0xa2, 3, b'x', 3, 1]))],
        );
        assert_eq!(
            keys_of(&def(None, KeyType::Numeric, Collection::List), &l),
            vec![IndexKey::int(1), IndexKey::int(3)]
        );
        assert_eq!(
            keys_of(&def(None, KeyType::String, Collection::List), &l),
            vec![IndexKey::bytes(b"x")]
        );
        let def_s = def(None, KeyType::String, Collection::List);
        assert!(holds(&def_s, &l, Wanted::Bytes(b"x")));
        assert!(!holds(&def_s, &l, Wanted::Bytes(b"y")));
        let def_n = def(None, KeyType::Numeric, Collection::List);
        assert!(holds(&def_n, &l, Wanted::IntRange(2, 3)));
        assert!(!holds(&def_n, &l, Wanted::IntRange(4, 9)));
    }

    #[test]
    fn ranges_stay_in_their_partition_and_resume_after_a_point() {
        let mut ix = GroupIndex::new(IndexState::new(
            def(None, KeyType::Numeric, Collection::Default),
            0,
        ));
        let d = |p: u16, n: u8| {
            let mut d = [n; 20];
            d[0] = (p & 0xff) as u8;
            d[1] = (p >> 8) as u8;
            d
        };
        for (p, n, v) in [(1, 1, 10), (1, 2, 20), (1, 3, 20), (2, 4, 20), (1, 5, 30)] {
            ix.update(
                &d(p, n),
                None,
                Some(&record("", vec![("b", Value::Int(v))])),
            );
        }
        let found = |ix: &GroupIndex, after| {
            ix.range(1, IndexKey::int(15), IndexKey::int(30), after)
                .map(|e| e.2[2])
                .collect::<Vec<_>>()
        };
        assert_eq!(found(&ix, None), vec![2, 3, 5]);
        assert_eq!(found(&ix, Some((IndexKey::int(20), d(1, 2)))), vec![3, 5]);
        assert_eq!(
            found(&ix, Some((IndexKey::int(30), d(1, 5)))),
            Vec::<u8>::new()
        );
        assert_eq!(found(&ix, Some((IndexKey::int(0), d(1, 0)))), vec![2, 3, 5]);
        // An update moves the entry; a delete removes it.
        let old = record("", vec![("b", Value::Int(20))]);
        let new = record("", vec![("b", Value::Int(40))]);
        ix.update(&d(1, 2), Some(&old), Some(&new));
        assert_eq!(found(&ix, None), vec![3, 5]);
        ix.update(
            &d(1, 5),
            Some(&record("", vec![("b", Value::Int(30))])),
            None,
        );
        assert_eq!(found(&ix, None), vec![3]);
        assert_eq!(ix.entries(), 4);
    }

    #[test]
    fn load_pct_rises_to_100_when_ready() {
        let mut s = IndexState::new(def(None, KeyType::Numeric, Collection::Default), 200);
        assert_eq!(s.load_pct(), 0);
        s.built = 100;
        assert_eq!(s.load_pct(), 50);
        s.built = 300;
        assert_eq!(s.load_pct(), 99);
        s.ready = true;
        assert_eq!(s.load_pct(), 100);
        assert_eq!(
            IndexState::new(def(None, KeyType::Numeric, Collection::Default), 0).load_pct(),
            100
        );
    }
}
