//! A bounded msgpack structure validator for list (20) and map (19) particles (spec §4.2–§4.3).
//!
//! Lists and maps are stored as the msgpack bytes the client sent, so they round-trip exactly
//! (ordering ext headers, particle-type prefixes inside strings). The server never decodes
//! them here, but it must not store something that later crashes a client's decoder or a
//! future CDT implementation, so every value is walked once on the way in.
//!
//! The walk allocates nothing: an explicit fixed-size stack holds the element counts still
//! owed by each open container, nesting is capped at [`MAX_DEPTH`], and every length and count
//! is checked against the bytes left before moving on (a container claiming 2^32 elements in
//! a 10-byte buffer is rejected at once, since every element takes at least one byte).

use thiserror::Error;

/// Most containers that may be open at once (a list holding a list is depth 2). Aerospike's own CDT code caps context depth far lower;
/// 64 is plenty for real documents and keeps the walker's stack at 512 bytes.
pub const MAX_DEPTH: usize = 64;

/// The container a particle must hold at its top level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    List,
    Map,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MsgpackError {
    #[error("msgpack value truncated at byte {0}")]
    Truncated(usize),
    #[error("invalid msgpack marker 0xc1 at byte {0}")]
    InvalidMarker(usize),
    #[error("msgpack containers nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("msgpack container at byte {0} claims more elements than bytes remain")]
    CountTooLarge(usize),
    #[error("{0} trailing bytes after the msgpack value")]
    TrailingBytes(usize),
    #[error("msgpack top level is not a {0:?}")]
    WrongContainer(Container),
}

/// What one marker (plus its length bytes) introduces.
enum Item {
    /// A scalar whose payload is this many bytes after the marker/length bytes.
    Scalar(usize),
    /// A container with this many direct children (maps count keys and values).
    Container(u64),
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, MsgpackError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(MsgpackError::Truncated(self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    /// A big-endian unsigned length of `n` (1, 2 or 4) bytes.
    fn len(&mut self, n: usize) -> Result<u64, MsgpackError> {
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 8) | u64::from(self.byte()?);
        }
        Ok(v)
    }

    fn skip(&mut self, n: u64) -> Result<(), MsgpackError> {
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => {
                self.pos += n;
                Ok(())
            }
            _ => Err(MsgpackError::Truncated(self.pos)),
        }
    }

    /// Read one marker and its length bytes.
    fn item(&mut self) -> Result<Item, MsgpackError> {
        let at = self.pos;
        let m = self.byte()?;
        Ok(match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => Item::Scalar(0),
            0x80..=0x8f => Item::Container(2 * u64::from(m & 0x0f)),
            0x90..=0x9f => Item::Container(u64::from(m & 0x0f)),
            0xa0..=0xbf => Item::Scalar(usize::from(m & 0x1f)),
            0xc1 => return Err(MsgpackError::InvalidMarker(at)),
            // bin 8/16/32, str 8/16/32
            0xc4 | 0xd9 => Item::Scalar(self.len_usize(1)?),
            0xc5 | 0xda => Item::Scalar(self.len_usize(2)?),
            0xc6 | 0xdb => Item::Scalar(self.len_usize(4)?),
            // ext 8/16/32: length, then a type byte, then the data
            0xc7 => Item::Scalar(self.len_usize(1)?.saturating_add(1)),
            0xc8 => Item::Scalar(self.len_usize(2)?.saturating_add(1)),
            0xc9 => Item::Scalar(self.len_usize(4)?.saturating_add(1)),
            0xca => Item::Scalar(4),
            0xcb => Item::Scalar(8),
            0xcc | 0xd0 => Item::Scalar(1),
            0xcd | 0xd1 => Item::Scalar(2),
            0xce | 0xd2 => Item::Scalar(4),
            0xcf | 0xd3 => Item::Scalar(8),
            // fixext 1/2/4/8/16: a type byte, then the data
            0xd4 => Item::Scalar(2),
            0xd5 => Item::Scalar(3),
            0xd6 => Item::Scalar(5),
            0xd7 => Item::Scalar(9),
            0xd8 => Item::Scalar(17),
            0xdc => Item::Container(self.len(2)?),
            0xdd => Item::Container(self.len(4)?),
            0xde => Item::Container(2 * self.len(2)?),
            0xdf => Item::Container(2 * self.len(4)?),
        })
    }

    fn len_usize(&mut self, n: usize) -> Result<usize, MsgpackError> {
        // A 32-bit length always fits usize on the 64-bit targets this server runs on; on
        // smaller targets an unrepresentable length is simply too long for the buffer.
        Ok(usize::try_from(self.len(n)?).unwrap_or(usize::MAX))
    }
}

/// Check that `buf` is exactly one well-formed msgpack value.
pub fn validate(buf: &[u8]) -> Result<(), MsgpackError> {
    walk(buf, None)
}

/// Check that `buf` is exactly one well-formed msgpack value whose top level is `container`,
/// as a list or map particle requires.
pub fn validate_container(buf: &[u8], container: Container) -> Result<(), MsgpackError> {
    walk(buf, Some(container))
}

fn walk(buf: &[u8], top: Option<Container>) -> Result<(), MsgpackError> {
    if let (Some(want), Some(&m)) = (top, buf.first()) {
        let ok = match want {
            Container::List => matches!(m, 0x90..=0x9f | 0xdc | 0xdd),
            Container::Map => matches!(m, 0x80..=0x8f | 0xde | 0xdf),
        };
        if !ok {
            return Err(MsgpackError::WrongContainer(want));
        }
    }
    let mut cur = Cursor { buf, pos: 0 };
    // owed[i]: children still to read in the i-th open container.
    let mut owed = [0u64; MAX_DEPTH];
    let mut depth = 0usize;
    loop {
        let at = cur.pos;
        match cur.item()? {
            Item::Scalar(n) => cur.skip(n as u64)?,
            Item::Container(0) => {}
            Item::Container(n) => {
                if n > cur.remaining() as u64 {
                    return Err(MsgpackError::CountTooLarge(at));
                }
                if depth == MAX_DEPTH {
                    return Err(MsgpackError::TooDeep);
                }
                owed[depth] = n;
                depth += 1;
                continue;
            }
        }
        // One value finished: settle it against its parents, closing every container it
        // completes.
        loop {
            if depth == 0 {
                return match cur.remaining() {
                    0 => Ok(()),
                    n => Err(MsgpackError::TrailingBytes(n)),
                };
            }
            owed[depth - 1] -= 1;
            if owed[depth - 1] > 0 {
                break;
            }
            depth -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_aerospike_shapes() {
        // [1, "\x03ab"] and an ordered list: count+1 with a leading ext 0xc7 0x00 0x01.
        assert_eq!(
            validate_container(&[0x92, 0x01, 0xa3, 0x03, b'a', b'b'], Container::List),
            Ok(())
        );
        assert_eq!(
            validate_container(&[0x92, 0xc7, 0x00, 0x01, 0x05], Container::List),
            Ok(())
        );
        // {"\x03k": 1.5}
        let mut m = vec![0x81, 0xa2, 0x03, b'k', 0xcb];
        m.extend_from_slice(&1.5f64.to_be_bytes());
        assert_eq!(validate_container(&m, Container::Map), Ok(()));
        // Empty containers, nested empties, wildcard fixext.
        assert_eq!(validate_container(&[0x90], Container::List), Ok(()));
        assert_eq!(validate_container(&[0x80], Container::Map), Ok(()));
        assert_eq!(validate(&[0x92, 0x90, 0x80]), Ok(()));
        assert_eq!(validate(&[0x91, 0xd4, 0xff, 0x00]), Ok(()));
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(validate(&[]), Err(MsgpackError::Truncated(0)));
        assert_eq!(validate(&[0xc1]), Err(MsgpackError::InvalidMarker(0)));
        assert_eq!(
            validate(&[0x92, 0xa2, 0x01]),
            Err(MsgpackError::Truncated(2))
        );
        assert_eq!(validate(&[0x92, 0x01]), Err(MsgpackError::CountTooLarge(0)));
        assert_eq!(validate(&[0x01, 0x02]), Err(MsgpackError::TrailingBytes(1)));
        assert_eq!(validate(&[0xa5, b'a']), Err(MsgpackError::Truncated(1)));
        assert_eq!(
            validate(&[0xdb, 0xff, 0xff, 0xff, 0xff]),
            Err(MsgpackError::Truncated(5))
        );
        assert_eq!(
            validate(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(MsgpackError::CountTooLarge(0))
        );
        assert_eq!(
            validate(&[0xdf, 0x00, 0x00, 0x00, 0x01, 0x01]),
            Err(MsgpackError::CountTooLarge(0))
        );
        assert_eq!(
            validate_container(&[0x80], Container::List),
            Err(MsgpackError::WrongContainer(Container::List))
        );
        assert_eq!(
            validate_container(&[0x01], Container::Map),
            Err(MsgpackError::WrongContainer(Container::Map))
        );
    }

    #[test]
    fn depth_is_capped() {
        let mut ok = vec![0x91; MAX_DEPTH];
        ok.push(0x01);
        assert_eq!(validate(&ok), Ok(()));
        let mut deep = vec![0x91; MAX_DEPTH + 1];
        deep.push(0x01);
        assert_eq!(validate(&deep), Err(MsgpackError::TooDeep));
        // A million nested lists fail fast without recursion.
        let mut huge = vec![0x91; 1_000_000];
        huge.push(0x01);
        assert_eq!(validate(&huge), Err(MsgpackError::TooDeep));
    }
}
