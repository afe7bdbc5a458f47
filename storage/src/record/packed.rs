//! A record packed into one allocation, as a group's store holds it in memory.
//!
//! A `Record` costs four allocations for a one-bin record (the shared record, its bin vector,
//! the value's bytes, the key's text) and about 340 B of resident memory for a 100-byte
//! string bin. Packed, the same record is one shared byte slice of about 150 B: the store
//! keeps millions of them, and a read or write unpacks the one record it touches. The packing
//! is private to the process: logs and snapshots carry `Record`s (bincode), so their formats
//! do not depend on it.
//!
//! Layout (integers little-endian, `len` a LEB128 varint):
//! `generation u16 | void_time u32 | last_update u64 | len set | key | len bin count | bins`,
//! key `0` (none), `1 i64`, `2 f64`, `3 len text`, `4 particle len bytes`; each bin
//! `len name | value`, value `0` nil, `1 i64`, `2 f64`, `3 len text`, `4 particle len bytes`,
//! `5 bool`, `6 len list`, `7 len map`, `8 len geojson`.

use super::{Bin, Record, UserKey, Value};
use triomphe::ThinArc;

const HEADER: usize = 14;

/// One record, packed; cloning shares the bytes (a snapshot captures the map cheaply). The
/// pointer is thin (8 bytes; the length lives in the allocation beside the count), which
/// keeps the store's map nodes small: a leaf of 11 (digest, record) entries is 320 bytes
/// instead of 408.
#[derive(Clone)]
pub struct PackedRecord(ThinArc<(), u8>);

impl PartialEq for PackedRecord {
    fn eq(&self, other: &PackedRecord) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for PackedRecord {}

impl std::fmt::Debug for PackedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.unpack().fmt(f)
    }
}

impl PackedRecord {
    pub fn pack(r: &Record) -> PackedRecord {
        thread_local! {
            /// Reused by every pack on this thread: the bytes are copied into the record's
            /// own allocation, so a pack allocates that one block and nothing else.
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with_borrow_mut(|out| {
            out.clear();
            Self::write(r, out);
            PackedRecord(ThinArc::from_header_and_slice((), out))
        })
    }

    fn write(r: &Record, out: &mut Vec<u8>) {
        out.extend_from_slice(&r.generation.to_le_bytes());
        out.extend_from_slice(&r.void_time.to_le_bytes());
        out.extend_from_slice(&r.last_update.to_le_bytes());
        put_bytes(out, r.set.as_bytes());
        match &r.key {
            None => out.push(0),
            Some(UserKey::Int(i)) => {
                out.push(1);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Some(UserKey::Float(x)) => {
                out.push(2);
                out.extend_from_slice(&x.to_bits().to_le_bytes());
            }
            Some(UserKey::Str(s)) => {
                out.push(3);
                put_bytes(out, s.as_bytes());
            }
            Some(UserKey::Blob(t, b)) => {
                out.push(4);
                out.push(*t);
                put_bytes(out, b);
            }
        }
        put_len(out, r.bins.len());
        for b in &r.bins {
            put_bytes(out, b.name.as_bytes());
            match &b.value {
                Value::Nil => out.push(0),
                Value::Int(i) => {
                    out.push(1);
                    out.extend_from_slice(&i.to_le_bytes());
                }
                Value::Float(x) => {
                    out.push(2);
                    out.extend_from_slice(&x.to_bits().to_le_bytes());
                }
                Value::Str(s) => {
                    out.push(3);
                    put_bytes(out, s);
                }
                Value::Blob(t, v) => {
                    out.push(4);
                    out.push(*t);
                    put_bytes(out, v);
                }
                Value::Bool(v) => {
                    out.push(5);
                    out.push(u8::from(*v));
                }
                Value::List(v) => {
                    out.push(6);
                    put_bytes(out, v);
                }
                Value::Map(v) => {
                    out.push(7);
                    put_bytes(out, v);
                }
                Value::GeoJson(v) => {
                    out.push(8);
                    put_bytes(out, v);
                }
            }
        }
    }

    /// The record, unpacked. The bytes were written by `pack` in this process, so they are
    /// well formed; a malformed tail (a bug) ends the record there rather than panicking.
    pub fn unpack(&self) -> Record {
        let mut r = Reader {
            b: self.bytes(),
            at: HEADER,
        };
        let set = r.text().unwrap_or_default().into();
        let key = match r.byte() {
            Some(1) => r.u64().map(|v| UserKey::Int(v as i64)),
            Some(2) => r.u64().map(|v| UserKey::Float(f64::from_bits(v))),
            Some(3) => r.text().map(|s| UserKey::Str(s.to_owned())),
            Some(4) => r
                .byte()
                .and_then(|t| r.bytes().map(|b| UserKey::Blob(t, b.to_vec()))),
            _ => None,
        };
        let count = r.len().unwrap_or(0);
        let mut bins = Vec::with_capacity(count.min(self.bytes().len()));
        for _ in 0..count {
            let Some(bin) = r.bin() else { break };
            bins.push(bin);
        }
        Record {
            set,
            key,
            bins,
            generation: self.generation(),
            void_time: self.void_time(),
            last_update: self.last_update(),
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.0.slice
    }

    pub fn generation(&self) -> u16 {
        let b = self.bytes();
        u16::from_le_bytes([b[0], b[1]])
    }

    pub fn void_time(&self) -> u32 {
        let b = self.bytes();
        u32::from_le_bytes([b[2], b[3], b[4], b[5]])
    }

    pub fn last_update(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.bytes()[6..HEADER]);
        u64::from_le_bytes(b)
    }

    /// As `Record::is_expired`.
    pub fn is_expired(&self, now: u32) -> bool {
        let v = self.void_time();
        v != 0 && v < now
    }

    /// The record's set name, without unpacking the rest.
    pub fn set(&self) -> &str {
        Reader {
            b: self.bytes(),
            at: HEADER,
        }
        .text()
        .unwrap_or_default()
    }

    /// Bytes the packed record occupies (its allocation, less the shared counts).
    pub fn packed_len(&self) -> usize {
        self.bytes().len()
    }
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let v = *self.b.get(self.at)?;
        self.at += 1;
        Some(v)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let v = self.b.get(self.at..end)?;
        self.at = end;
        Some(v)
    }

    fn u64(&mut self) -> Option<u64> {
        let mut v = [0u8; 8];
        v.copy_from_slice(self.take(8)?);
        Some(u64::from_le_bytes(v))
    }

    fn len(&mut self) -> Option<usize> {
        let mut n = 0usize;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= usize::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(n);
            }
        }
        None
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }

    fn text(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    fn bin(&mut self) -> Option<Bin> {
        let name = self.text()?;
        let value = match self.byte()? {
            0 => Value::Nil,
            1 => Value::Int(self.u64()? as i64),
            2 => Value::Float(f64::from_bits(self.u64()?)),
            3 => Value::Str(self.bytes()?.to_vec()),
            4 => {
                let t = self.byte()?;
                Value::Blob(t, self.bytes()?.to_vec())
            }
            5 => Value::Bool(self.byte()? != 0),
            6 => Value::List(self.bytes()?.to_vec()),
            7 => Value::Map(self.bytes()?.to_vec()),
            8 => Value::GeoJson(self.bytes()?.to_vec()),
            _ => return None,
        };
        Some(Bin::new(name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..300);
        prop_oneof![
            Just(Value::Nil),
            any::<i64>().prop_map(Value::Int),
            any::<u64>().prop_map(|b| Value::Float(f64::from_bits(b))),
            bytes().prop_map(Value::Str),
            (any::<u8>(), bytes()).prop_map(|(t, b)| Value::Blob(t, b)),
            any::<bool>().prop_map(Value::Bool),
            bytes().prop_map(Value::List),
            bytes().prop_map(Value::Map),
            bytes().prop_map(Value::GeoJson),
        ]
    }

    fn key() -> impl Strategy<Value = Option<UserKey>> {
        prop_oneof![
            Just(None),
            any::<i64>().prop_map(|i| Some(UserKey::Int(i))),
            any::<u64>().prop_map(|b| Some(UserKey::Float(f64::from_bits(b)))),
            ".{0,200}".prop_map(|s| Some(UserKey::Str(s))),
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..200))
                .prop_map(|(t, b)| Some(UserKey::Blob(t, b))),
        ]
    }

    fn record() -> impl Strategy<Value = Record> {
        (
            ".{0,70}",
            key(),
            proptest::collection::vec(("[a-z]{1,15}", value()), 0..20),
            any::<u16>(),
            any::<u32>(),
            any::<u64>(),
        )
            .prop_map(
                |(set, key, bins, generation, void_time, last_update)| Record {
                    set: set.into(),
                    key,
                    bins: bins.into_iter().map(|(n, v)| Bin::new(n, v)).collect(),
                    generation,
                    void_time,
                    last_update,
                },
            )
    }

    /// Float bits compared as bits: NaN payloads must survive too.
    fn same(a: &Record, b: &Record) -> bool {
        format!("{a:?}") == format!("{b:?}")
            && a.bins.len() == b.bins.len()
            && a.bins
                .iter()
                .zip(&b.bins)
                .all(|(x, y)| match (&x.value, &y.value) {
                    (Value::Float(p), Value::Float(q)) => p.to_bits() == q.to_bits(),
                    _ => true,
                })
    }

    proptest! {
        #[test]
        fn unpack_returns_what_was_packed(r in record()) {
            let p = PackedRecord::pack(&r);
            prop_assert!(same(&p.unpack(), &r));
            prop_assert_eq!(p.generation(), r.generation);
            prop_assert_eq!(p.void_time(), r.void_time);
            prop_assert_eq!(p.last_update(), r.last_update);
            prop_assert_eq!(p.set(), r.set.as_str());
            prop_assert_eq!(p.is_expired(r.void_time.saturating_add(1)), r.is_expired(r.void_time.saturating_add(1)));
        }

        #[test]
        fn equal_records_pack_equal(r in record()) {
            prop_assert_eq!(PackedRecord::pack(&r), PackedRecord::pack(&r.clone()));
        }
    }

    #[test]
    fn a_one_bin_record_is_about_its_payload() {
        let r = Record {
            set: "testset".into(),
            key: Some(UserKey::Int(7)),
            bins: vec![Bin::new("testbin", Value::Str(vec![b'x'; 100]))],
            generation: 1,
            void_time: 0,
            last_update: 1,
        };
        assert_eq!(
            PackedRecord::pack(&r).packed_len(),
            14 + 8 + 9 + 1 + 8 + 2 + 100
        );
    }
}
