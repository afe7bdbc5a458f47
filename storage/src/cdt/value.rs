//! Values inside lists and maps: Aerospike's msgpack (wire spec §4.3) decoded into a tree,
//! Aerospike's cross-type order, and the canonical encoding back.
//!
//! Decoding is bounded: nesting is capped at [`MAX_DEPTH`] and every count is checked against
//! the bytes left (an element takes at least one byte), so a hostile buffer costs at most its
//! own size in memory.

use std::cmp::Ordering;

/// Deepest nesting accepted (Aerospike's contexts are far shallower).
pub const MAX_DEPTH: usize = 64;

/// List flag: the list is kept sorted.
pub const LIST_ORDERED: u8 = 0x01;
/// Map flags: kept sorted by key; by key then value (stored as by key).
pub const MAP_KEY_ORDERED: u8 = 0x01;
pub const MAP_KEY_VALUE_ORDERED: u8 = 0x03;

#[derive(Clone, Debug)]
pub enum CdtValue {
    Nil,
    Bool(bool),
    Int(i64),
    /// A string's bytes (the particle-type prefix stripped).
    Str(Vec<u8>),
    /// A blob (or other byte particle: 4 blob, 7..=12 language blobs, 23 GeoJSON) and its type.
    Bytes(u8, Vec<u8>),
    Float(f64),
    List(List),
    Map(Map),
    /// Matches anything (operation arguments only).
    Wildcard,
    /// Above everything (operation arguments only).
    Infinity,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct List {
    /// Order flags (0 unordered, [`LIST_ORDERED`]).
    pub flags: u8,
    pub items: Vec<CdtValue>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Map {
    /// Order flags (0 unordered, [`MAP_KEY_ORDERED`], [`MAP_KEY_VALUE_ORDERED`]).
    pub flags: u8,
    pub entries: Vec<(CdtValue, CdtValue)>,
}

impl List {
    pub fn ordered(&self) -> bool {
        self.flags & LIST_ORDERED != 0
    }
}

impl Map {
    pub fn key_ordered(&self) -> bool {
        self.flags & MAP_KEY_ORDERED != 0
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("msgpack truncated at byte {0}")]
    Truncated(usize),
    #[error("unsupported msgpack marker 0x{0:02x}")]
    Marker(u8),
    #[error("nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// The rank of a value's type in Aerospike's order.
fn type_rank(v: &CdtValue) -> u8 {
    match v {
        CdtValue::Nil => 1,
        CdtValue::Bool(_) => 2,
        CdtValue::Int(_) => 3,
        CdtValue::Str(_) => 4,
        CdtValue::List(_) => 5,
        CdtValue::Map(_) => 6,
        CdtValue::Bytes(t, _) if *t == 23 => 9,
        CdtValue::Bytes(..) => 7,
        CdtValue::Float(_) => 8,
        CdtValue::Infinity => 10,
        CdtValue::Wildcard => 0,
    }
}

/// Aerospike's total order: nil < bool < int < string < list < map < bytes < float < geojson
/// < infinity; lists element by element then by length; maps by size, then keys in stored
/// order, then values. A wildcard equals anything.
pub fn compare(a: &CdtValue, b: &CdtValue) -> Ordering {
    use CdtValue::*;
    match (a, b) {
        (Wildcard, _) | (_, Wildcard) => Ordering::Equal,
        (Bool(x), Bool(y)) => x.cmp(y),
        (Int(x), Int(y)) => x.cmp(y),
        (Str(x), Str(y)) => x.cmp(y),
        // A GeoJSON value is bytes on the wire but sorts after floats; other blobs compare
        // as their particle byte followed by their content.
        (Bytes(t1, x), Bytes(t2, y)) => type_rank(a)
            .cmp(&type_rank(b))
            .then(t1.cmp(t2))
            .then_with(|| x.cmp(y)),
        (Float(x), Float(y)) => x.total_cmp(y),
        (List(x), List(y)) => {
            for (p, q) in x.items.iter().zip(&y.items) {
                match compare(p, q) {
                    Ordering::Equal => {}
                    o => return o,
                }
            }
            x.items.len().cmp(&y.items.len())
        }
        (Map(x), Map(y)) => x.entries.len().cmp(&y.entries.len()).then_with(|| {
            for ((k1, _), (k2, _)) in x.entries.iter().zip(&y.entries) {
                match compare(k1, k2) {
                    Ordering::Equal => {}
                    o => return o,
                }
            }
            for ((_, v1), (_, v2)) in x.entries.iter().zip(&y.entries) {
                match compare(v1, v2) {
                    Ordering::Equal => {}
                    o => return o,
                }
            }
            Ordering::Equal
        }),
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

impl PartialEq for CdtValue {
    fn eq(&self, other: &Self) -> bool {
        compare(self, other) == Ordering::Equal
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(DecodeError::Truncated(self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |v, b| (v << 8) | u64::from(*b)))
    }

    fn count(&mut self, n: u64, per: u64) -> Result<usize, DecodeError> {
        let left = (self.buf.len() - self.pos) as u64;
        if n.saturating_mul(per) > left {
            return Err(DecodeError::Truncated(self.pos));
        }
        Ok(n as usize)
    }

    fn bytes(&mut self, n: usize) -> Result<CdtValue, DecodeError> {
        let s = self.take(n)?;
        Ok(match s.split_first() {
            Some((3, rest)) => CdtValue::Str(rest.to_vec()),
            Some((t, rest)) => CdtValue::Bytes(*t, rest.to_vec()),
            None => CdtValue::Str(Vec::new()),
        })
    }

    /// Whether an order ext (`0xc7 0x00 flags`) is next; reads it if so.
    fn order_ext(&mut self) -> Option<u8> {
        match self.buf.get(self.pos..self.pos + 3) {
            Some([0xc7, 0x00, flags]) => {
                self.pos += 3;
                Some(*flags)
            }
            _ => None,
        }
    }

    fn list(&mut self, n: usize, depth: usize) -> Result<CdtValue, DecodeError> {
        let mut l = List::default();
        let mut n = n;
        if n > 0 {
            if let Some(flags) = self.order_ext() {
                l.flags = flags;
                n -= 1;
            }
        }
        l.items.reserve(n);
        for _ in 0..n {
            l.items.push(self.value(depth + 1)?);
        }
        Ok(CdtValue::List(l))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<CdtValue, DecodeError> {
        let mut m = Map::default();
        let mut n = n;
        if n > 0 {
            if let Some(flags) = self.order_ext() {
                m.flags = flags;
                self.value(depth + 1)?; // the ext key's value (nil)
                n -= 1;
            }
        }
        m.entries.reserve(n);
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            m.entries.push((k, v));
        }
        Ok(CdtValue::Map(m))
    }

    fn value(&mut self, depth: usize) -> Result<CdtValue, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let m = self.byte()?;
        Ok(match m {
            0x00..=0x7f => CdtValue::Int(i64::from(m)),
            0xe0..=0xff => CdtValue::Int(i64::from(m as i8)),
            0xc0 => CdtValue::Nil,
            0xc2 => CdtValue::Bool(false),
            0xc3 => CdtValue::Bool(true),
            0xcc => CdtValue::Int(self.be(1)? as i64),
            0xcd => CdtValue::Int(self.be(2)? as i64),
            0xce => CdtValue::Int(self.be(4)? as i64),
            0xcf => CdtValue::Int(self.be(8)? as i64),
            0xd0 => CdtValue::Int(i64::from(self.be(1)? as u8 as i8)),
            0xd1 => CdtValue::Int(i64::from(self.be(2)? as u16 as i16)),
            0xd2 => CdtValue::Int(i64::from(self.be(4)? as u32 as i32)),
            0xd3 => CdtValue::Int(self.be(8)? as i64),
            0xca => CdtValue::Float(f64::from(f32::from_bits(self.be(4)? as u32))),
            0xcb => CdtValue::Float(f64::from_bits(self.be(8)?)),
            0xa0..=0xbf => self.bytes(usize::from(m & 0x1f))?,
            0xc4 | 0xd9 => {
                let n = self.be(1)? as usize;
                self.bytes(n)?
            }
            0xc5 | 0xda => {
                let n = self.be(2)? as usize;
                self.bytes(n)?
            }
            0xc6 | 0xdb => {
                let n = self.be(4)? as usize;
                self.bytes(n)?
            }
            0x90..=0x9f => self.list(usize::from(m & 0x0f), depth)?,
            0xdc => {
                let n = self.be(2)?;
                let n = self.count(n, 1)?;
                self.list(n, depth)?
            }
            0xdd => {
                let n = self.be(4)?;
                let n = self.count(n, 1)?;
                self.list(n, depth)?
            }
            0x80..=0x8f => self.map(usize::from(m & 0x0f), depth)?,
            0xde => {
                let n = self.be(2)?;
                let n = self.count(n, 2)?;
                self.map(n, depth)?
            }
            0xdf => {
                let n = self.be(4)?;
                let n = self.count(n, 2)?;
                self.map(n, depth)?
            }
            // fixext 1: Aerospike's wildcard (0xff 0x00) and infinity (0xff 0x01).
            0xd4 => match self.take(2)? {
                [0xff, 0x00] => CdtValue::Wildcard,
                [0xff, 0x01] => CdtValue::Infinity,
                _ => return Err(DecodeError::Marker(m)),
            },
            _ => return Err(DecodeError::Marker(m)),
        })
    }
}

/// Decode exactly one value.
pub fn decode(buf: &[u8]) -> Result<CdtValue, DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let v = r.value(0)?;
    if r.pos != buf.len() {
        return Err(DecodeError::Trailing(buf.len() - r.pos));
    }
    Ok(v)
}

/// Decode a sequence of values filling `buf` (an operation's arguments after its header).
pub fn decode_prefix(buf: &[u8]) -> Result<(CdtValue, usize), DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let v = r.value(0)?;
    Ok((v, r.pos))
}

fn header(out: &mut Vec<u8>, n: usize, fix: u8, m16: u8, m32: u8) {
    if n < 16 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(m16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(m32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn str_header(out: &mut Vec<u8>, n: usize) {
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else if n <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Encode in Aerospike's canonical form (smallest integer forms, strings and blobs in the
/// str family with their particle-type byte, order exts on ordered lists and maps).
pub fn encode(v: &CdtValue, out: &mut Vec<u8>) {
    match v {
        CdtValue::Nil => out.push(0xc0),
        CdtValue::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        CdtValue::Int(i) => encode_int(*i, out),
        CdtValue::Float(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        CdtValue::Str(s) => {
            str_header(out, s.len() + 1);
            out.push(3);
            out.extend_from_slice(s);
        }
        CdtValue::Bytes(t, b) => {
            str_header(out, b.len() + 1);
            out.push(*t);
            out.extend_from_slice(b);
        }
        CdtValue::List(l) => {
            let ext = l.flags != 0;
            header(out, l.items.len() + usize::from(ext), 0x90, 0xdc, 0xdd);
            if ext {
                out.extend_from_slice(&[0xc7, 0x00, l.flags]);
            }
            for i in &l.items {
                encode(i, out);
            }
        }
        CdtValue::Map(m) => {
            let ext = m.flags != 0;
            header(out, m.entries.len() + usize::from(ext), 0x80, 0xde, 0xdf);
            if ext {
                out.extend_from_slice(&[0xc7, 0x00, m.flags, 0xc0]);
            }
            for (k, v) in &m.entries {
                encode(k, out);
                encode(v, out);
            }
        }
        CdtValue::Wildcard => out.extend_from_slice(&[0xd4, 0xff, 0x00]),
        CdtValue::Infinity => out.extend_from_slice(&[0xd4, 0xff, 0x01]),
    }
}

fn encode_int(i: i64, out: &mut Vec<u8>) {
    if (0..128).contains(&i) {
        out.push(i as u8);
    } else if (-32..0).contains(&i) {
        out.push(i as i8 as u8);
    } else if i >= 0 {
        if i <= 0xff {
            out.extend_from_slice(&[0xcc, i as u8]);
        } else if i <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(i as u16).to_be_bytes());
        } else if i <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(i as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(i as u64).to_be_bytes());
        }
    } else if i >= i64::from(i8::MIN) {
        out.extend_from_slice(&[0xd0, i as i8 as u8]);
    } else if i >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

pub fn to_bytes(v: &CdtValue) -> Vec<u8> {
    let mut out = Vec::new();
    encode(v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_canonical_encodings() {
        let v = CdtValue::List(List {
            flags: LIST_ORDERED,
            items: vec![
                CdtValue::Int(-1),
                CdtValue::Int(300),
                CdtValue::Int(-40_000),
                CdtValue::Str(b"ab".to_vec()),
                CdtValue::Bytes(4, vec![1, 2]),
                CdtValue::Float(1.5),
                CdtValue::Map(Map {
                    flags: MAP_KEY_ORDERED,
                    entries: vec![(CdtValue::Str(b"k".to_vec()), CdtValue::Nil)],
                }),
            ],
        });
        let bytes = to_bytes(&v);
        assert_eq!(&bytes[..4], &[0x98, 0xc7, 0x00, 0x01]);
        let back = decode(&bytes).unwrap();
        assert_eq!(to_bytes(&back), bytes);
    }

    #[test]
    fn aerospike_cross_type_order() {
        use CdtValue::*;
        let ordered = [
            Nil,
            Bool(false),
            Bool(true),
            Int(-5),
            Int(7),
            Str(b"a".to_vec()),
            Str(b"ab".to_vec()),
            Str(b"b".to_vec()),
            List(super::List {
                flags: 0,
                items: vec![Int(1)],
            }),
            Map(super::Map::default()),
            Bytes(4, vec![0]),
            Bytes(4, vec![0xff]),
            Bytes(7, vec![0]),
            Float(-1.0),
            Bytes(23, vec![]),
            Bytes(23, vec![0]),
            Infinity,
        ];
        // Every pair, not only neighbours: a GeoJSON value with small bytes still sorts
        // after a blob with large ones.
        for (i, x) in ordered.iter().enumerate() {
            for y in &ordered[i + 1..] {
                assert_eq!(compare(x, y), Ordering::Less, "{x:?} < {y:?}");
                assert_eq!(compare(y, x), Ordering::Greater, "{y:?} > {x:?}");
            }
        }
        assert_eq!(compare(&Wildcard, &Int(3)), Ordering::Equal);
    }

    #[test]
    fn hostile_buffers_are_refused_cheaply() {
        assert!(decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode(&[0xdf, 0x7f, 0xff, 0xff, 0xff, 0x01]).is_err());
        let deep = vec![0x91; 100];
        assert_eq!(decode(&deep), Err(DecodeError::TooDeep));
        assert_eq!(decode(&[0x01, 0x02]), Err(DecodeError::Trailing(1)));
        assert_eq!(decode(&[0xc1]), Err(DecodeError::Marker(0xc1)));
    }
}
