//! The scalar elements of a list or map bin (Aerospike msgpack, stored as the client sent
//! it), for list and map indexes. Only the top level is read; nested containers and values an
//! index cannot hold are skipped. A malformed buffer yields the elements before the fault
//! (values are validated on the way in, so this never happens to stored data).

/// One top-level scalar: an integer, or bytes with their particle type (strings and blobs
/// carry it as their first payload byte, Aerospike's convention).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Element<'a> {
    Int(i64),
    Bytes(u8, &'a [u8]),
    Other,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn be(&mut self, n: usize) -> Option<u64> {
        Some(
            self.take(n)?
                .iter()
                .fold(0u64, |v, b| (v << 8) | u64::from(*b)),
        )
    }

    /// Read one value: a scalar is decoded, a container is skipped whole (and answered as
    /// `Other` with the number of children it had, for the caller's header handling).
    fn value(&mut self) -> Option<(Element<'a>, Option<u64>)> {
        let m = self.byte()?;
        let scalar = |e| Some((e, None));
        match m {
            0x00..=0x7f => scalar(Element::Int(i64::from(m))),
            0xe0..=0xff => scalar(Element::Int(i64::from(m as i8))),
            0xcc => scalar(Element::Int(self.be(1)? as i64)),
            0xcd => scalar(Element::Int(self.be(2)? as i64)),
            0xce => scalar(Element::Int(self.be(4)? as i64)),
            // Above i64::MAX: not a value Aerospike integers can hold.
            0xcf => {
                let v = self.be(8)?;
                scalar(i64::try_from(v).map_or(Element::Other, Element::Int))
            }
            0xd0 => scalar(Element::Int(i64::from(self.be(1)? as u8 as i8))),
            0xd1 => scalar(Element::Int(i64::from(self.be(2)? as u16 as i16))),
            0xd2 => scalar(Element::Int(i64::from(self.be(4)? as u32 as i32))),
            0xd3 => scalar(Element::Int(self.be(8)? as i64)),
            0xa0..=0xbf => self.bytes(usize::from(m & 0x1f)),
            0xc4 | 0xd9 => {
                let n = self.be(1)? as usize;
                self.bytes(n)
            }
            0xc5 | 0xda => {
                let n = self.be(2)? as usize;
                self.bytes(n)
            }
            0xc6 | 0xdb => {
                let n = self.be(4)? as usize;
                self.bytes(n)
            }
            0xc0 | 0xc2 | 0xc3 => scalar(Element::Other),
            0xca => self.take(4).map(|_| (Element::Other, None)),
            0xcb => self.take(8).map(|_| (Element::Other, None)),
            0xd4 => self.take(2).map(|_| (Element::Other, None)),
            0xd5 => self.take(3).map(|_| (Element::Other, None)),
            0xd6 => self.take(5).map(|_| (Element::Other, None)),
            0xd7 => self.take(9).map(|_| (Element::Other, None)),
            0xd8 => self.take(17).map(|_| (Element::Other, None)),
            0xc7..=0xc9 => {
                let n = self.be(1 << (m - 0xc7))? as usize;
                self.take(n.checked_add(1)?).map(|_| (Element::Other, None))
            }
            0x80..=0x8f => self.skip_children(2 * u64::from(m & 0x0f)),
            0x90..=0x9f => self.skip_children(u64::from(m & 0x0f)),
            0xdc => {
                let n = self.be(2)?;
                self.skip_children(n)
            }
            0xdd => {
                let n = self.be(4)?;
                self.skip_children(n)
            }
            0xde => {
                let n = self.be(2)?;
                self.skip_children(2 * n)
            }
            0xdf => {
                let n = self.be(4)?;
                self.skip_children(2 * n)
            }
            _ => None,
        }
    }

    fn bytes(&mut self, n: usize) -> Option<(Element<'a>, Option<u64>)> {
        let s = self.take(n)?;
        Some(match s.split_first() {
            Some((t, rest)) => (Element::Bytes(*t, rest), None),
            None => (Element::Other, None),
        })
    }

    /// Skip `n` values (and everything inside them) without recursion.
    fn skip_children(&mut self, n: u64) -> Option<(Element<'a>, Option<u64>)> {
        let mut owed = n;
        while owed > 0 {
            owed -= 1;
            // A value is at least one byte: a count beyond the bytes left is malformed.
            if owed > (self.buf.len() - self.pos) as u64 {
                return None;
            }
            owed = owed.checked_add(self.value_header()?)?;
        }
        Some((Element::Other, Some(n)))
    }

    /// Like [`Cursor::value`], but a container only has its header read: answers the number
    /// of children still to skip (0 for a scalar, which is read whole).
    fn value_header(&mut self) -> Option<u64> {
        let m = *self.buf.get(self.pos)?;
        let (len_bytes, per_entry) = match m {
            0x80..=0x8f => (0, 2 * u64::from(m & 0x0f)),
            0x90..=0x9f => (0, u64::from(m & 0x0f)),
            0xdc => (2, 1),
            0xdd => (4, 1),
            0xde => (2, 2),
            0xdf => (4, 2),
            _ => return self.value().map(|_| 0),
        };
        self.pos += 1;
        if len_bytes == 0 {
            return Some(per_entry);
        }
        Some(per_entry * self.be(len_bytes)?)
    }

    /// The number of children of the container at the cursor (maps count pairs), reading
    /// its header.
    fn container(&mut self, map: bool) -> Option<u64> {
        let m = self.byte()?;
        match (map, m) {
            (false, 0x90..=0x9f) => Some(u64::from(m & 0x0f)),
            (false, 0xdc) => self.be(2),
            (false, 0xdd) => self.be(4),
            (true, 0x80..=0x8f) => Some(u64::from(m & 0x0f)),
            (true, 0xde) => self.be(2),
            (true, 0xdf) => self.be(4),
            _ => None,
        }
    }

    /// Whether the next value is Aerospike's order ext (`0xc7 0x00 flags`), which leads
    /// ordered lists and maps and is not an element.
    fn at_order_ext(&self) -> bool {
        self.buf.get(self.pos..self.pos + 2) == Some(&[0xc7, 0x00])
    }
}

/// Top-level elements of a list.
pub fn list_elements(buf: &[u8]) -> Vec<Element<'_>> {
    let mut c = Cursor { buf, pos: 0 };
    let mut out = Vec::new();
    let Some(n) = c.container(false) else {
        return out;
    };
    for i in 0..n {
        if i == 0 && c.at_order_ext() {
            if c.value().is_none() {
                return out;
            }
            continue;
        }
        match c.value() {
            Some((e, _)) => out.push(e),
            None => return out,
        }
    }
    out
}

/// Top-level keys (`keys` true) or values of a map.
pub fn map_elements(buf: &[u8], keys: bool) -> Vec<Element<'_>> {
    let mut c = Cursor { buf, pos: 0 };
    let mut out = Vec::new();
    let Some(n) = c.container(true) else {
        return out;
    };
    for i in 0..n {
        let ext = i == 0 && c.at_order_ext();
        let Some((k, _)) = c.value() else { return out };
        let Some((v, _)) = c.value() else { return out };
        if !ext {
            out.push(if keys { k } else { v });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_scalars_and_nested_values() {
        // [1, -3, "ab", [5, [6]], {1: 2}, 300]
        let buf = [
            0x96, 0x01, 0xfd, 0xa3, 0x03, b'a', b'b', 0x92, 0x05, 0x91, 0x06, 0x81, 0x01, 0x02,
            0xcd, 0x01, 0x2c,
        ];
        assert_eq!(
            list_elements(&buf),
            vec![
                Element::Int(1),
                Element::Int(-3),
                Element::Bytes(3, b"ab"),
                Element::Other,
                Element::Other,
                Element::Int(300),
            ]
        );
    }

    #[test]
    fn ordered_list_skips_its_ext() {
        let buf = [0x93, 0xc7, 0x00, 0x01, 0x07, 0x08];
        assert_eq!(list_elements(&buf), vec![Element::Int(7), Element::Int(8)]);
    }

    #[test]
    fn map_keys_and_values() {
        // k-ordered {ext: nil, "a": 1, "b": [2]}
        let buf = [
            0x83, 0xc7, 0x00, 0x01, 0xc0, 0xa2, 0x03, b'a', 0x01, 0xa2, 0x03, b'b', 0x91, 0x02,
        ];
        assert_eq!(
            map_elements(&buf, true),
            vec![Element::Bytes(3, b"a"), Element::Bytes(3, b"b")]
        );
        assert_eq!(
            map_elements(&buf, false),
            vec![Element::Int(1), Element::Other]
        );
    }

    #[test]
    fn malformed_buffers_end_early_without_panicking() {
        assert_eq!(list_elements(&[0x93, 0x01]), vec![Element::Int(1)]);
        assert!(list_elements(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_empty());
        assert!(list_elements(&[0x91, 0x9f]).is_empty());
        assert!(map_elements(&[0x81], true).is_empty());
        assert!(list_elements(&[]).is_empty());
    }
}
