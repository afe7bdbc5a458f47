//! AS_MSG: the body of a type-3 frame (spec §2–§4).
//!
//! ```text
//! 22-byte header · n_fields × (u32 size incl. type byte · u8 type · data)
//!                · n_ops × (u32 op_sz · u8 op · u8 particle · u8 flags · u8 name_len · name · value)
//! ```
//!
//! The parser borrows from the frame body and is bounded: every count and length is checked
//! against the bytes that remain before anything is allocated, so a hostile header cannot make
//! it reserve more than the body already occupies.

use thiserror::Error;

/// `header_sz`: requests must carry 22, and responses must too (the Rust client computes the
/// body length as `size - header_sz`, spec §2).
pub const AS_MSG_HEADER_SIZE: usize = 22;
/// Smallest encoded field: size word + type byte.
const FIELD_MIN: usize = 5;
/// Smallest encoded op: size word + op, particle, flags, name_len.
const OP_MIN: usize = 8;

/// `info1` bits (spec §2.1).
pub mod info1 {
    pub const READ: u8 = 0x01;
    pub const GET_ALL: u8 = 0x02;
    pub const SHORT_QUERY: u8 = 0x04;
    pub const BATCH: u8 = 0x08;
    pub const XDR: u8 = 0x10;
    pub const GET_NO_BINS: u8 = 0x20;
    pub const CONSISTENCY_LEVEL_ALL: u8 = 0x40;
    pub const COMPRESS_RESPONSE: u8 = 0x80;
}

/// `info2` bits (spec §2.1).
pub mod info2 {
    pub const WRITE: u8 = 0x01;
    pub const DELETE: u8 = 0x02;
    pub const GENERATION: u8 = 0x04;
    pub const GENERATION_GT: u8 = 0x08;
    pub const DURABLE_DELETE: u8 = 0x10;
    pub const CREATE_ONLY: u8 = 0x20;
    pub const RELAX_AP_LONG_QUERY: u8 = 0x40;
    pub const RESPOND_ALL_OPS: u8 = 0x80;
}

/// `info3` bits (spec §2.1).
pub mod info3 {
    pub const LAST: u8 = 0x01;
    pub const COMMIT_MASTER: u8 = 0x02;
    pub const PARTITION_DONE: u8 = 0x04;
    pub const UPDATE_ONLY: u8 = 0x08;
    pub const CREATE_OR_REPLACE: u8 = 0x10;
    pub const REPLACE_ONLY: u8 = 0x20;
    pub const SC_READ_TYPE: u8 = 0x40;
    pub const SC_READ_RELAX: u8 = 0x80;
}

/// `info4` bits (spec §2.1): transaction (MRT) bits. Bits 0x60 are the newer C client's
/// error-verbosity and carry no request semantics.
pub mod info4 {
    pub const MRT_VERIFY_READ: u8 = 0x01;
    pub const MRT_ROLL_FORWARD: u8 = 0x02;
    pub const MRT_ROLL_BACK: u8 = 0x04;
    pub const MRT_MONITOR_DRIVEN: u8 = 0x08;
    pub const MRT_ON_LOCKING_ONLY: u8 = 0x10;
    /// Every transaction bit.
    pub const MRT_MASK: u8 = 0x1F;
}

/// Field types (spec §3).
pub mod field {
    pub const NAMESPACE: u8 = 0;
    pub const SET: u8 = 1;
    pub const KEY: u8 = 2;
    pub const RECORD_VERSION: u8 = 3;
    pub const DIGEST: u8 = 4;
    pub const MRT_ID: u8 = 5;
    pub const MRT_DEADLINE: u8 = 6;
    pub const TRID: u8 = 7;
    pub const SOCKET_TIMEOUT: u8 = 9;
    pub const RECS_PER_SEC: u8 = 10;
    pub const PID_ARRAY: u8 = 11;
    pub const DIGEST_ARRAY: u8 = 12;
    pub const SAMPLE_MAX: u8 = 13;
    pub const BVAL_ARRAY: u8 = 15;
    pub const INDEX_NAME: u8 = 21;
    pub const INDEX_RANGE: u8 = 22;
    pub const INDEX_CONTEXT: u8 = 23;
    pub const INDEX_EXPRESSION: u8 = 24;
    pub const INDEX_TYPE: u8 = 26;
    pub const UDF_FILENAME: u8 = 30;
    pub const UDF_FUNCTION: u8 = 31;
    pub const UDF_ARGLIST: u8 = 32;
    pub const UDF_OP: u8 = 33;
    pub const BATCH: u8 = 41;
    pub const FILTER: u8 = 43;
}

/// Op types (spec §4.1).
pub mod op {
    pub const READ: u8 = 1;
    pub const WRITE: u8 = 2;
    pub const CDT_READ: u8 = 3;
    pub const CDT_MODIFY: u8 = 4;
    pub const INCR: u8 = 5;
    pub const EXP_READ: u8 = 7;
    pub const EXP_MODIFY: u8 = 8;
    pub const APPEND: u8 = 9;
    pub const PREPEND: u8 = 10;
    pub const TOUCH: u8 = 11;
    pub const BITS_READ: u8 = 12;
    pub const BITS_MODIFY: u8 = 13;
    pub const DELETE_ALL: u8 = 14;
    pub const HLL_READ: u8 = 15;
    pub const HLL_MODIFY: u8 = 16;
}

/// Op `flags` bit 0: an 8-byte last-update time follows the name (XDR only, spec §4).
pub const OP_FLAG_HAS_LUT: u8 = 0x01;

/// Why an AS_MSG could not be parsed or encoded. Requests that fail here are answered with
/// 4 PARAMETER; the connection stays usable because the frame boundary is intact.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MsgError {
    #[error("AS_MSG body of {0} bytes is shorter than its 22-byte header")]
    ShortHeader(usize),
    #[error("AS_MSG header_sz is {0}, expected 22")]
    BadHeaderSize(u8),
    #[error("{n_fields} fields and {n_ops} ops cannot fit in {remaining} bytes")]
    CountsTooLarge {
        n_fields: u16,
        n_ops: u16,
        remaining: usize,
    },
    #[error("field {index} is truncated or overruns the message")]
    FieldOverrun { index: usize },
    #[error("field {index} has size 0 (no type byte)")]
    EmptyField { index: usize },
    #[error("op {index} is truncated or overruns the message")]
    OpOverrun { index: usize },
    #[error("op {index} is malformed (op_sz {op_sz}, name_len {name_len})")]
    BadOpSize {
        index: usize,
        op_sz: u32,
        name_len: u8,
    },
    #[error("{0} trailing bytes after the last op")]
    TrailingBytes(usize),
    #[error("cannot encode: {0}")]
    Unencodable(&'static str),
}

/// The 22-byte AS_MSG header minus `header_sz`, `n_fields` and `n_ops`, which are derived
/// from the message itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgHeader {
    pub info1: u8,
    pub info2: u8,
    pub info3: u8,
    pub info4: u8,
    pub result_code: u8,
    pub generation: u32,
    pub record_ttl: u32,
    pub transaction_ttl: u32,
}

/// One field: its type and data (the size word's extra byte is the type byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    pub kind: u8,
    pub data: &'a [u8],
}

/// One op (bin operation). `value` is everything after the name, LUT included if
/// `flags & OP_FLAG_HAS_LUT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgOp<'a> {
    pub op: u8,
    pub particle: u8,
    pub flags: u8,
    pub name: &'a [u8],
    pub value: &'a [u8],
}

/// A parsed (or to-be-encoded) AS_MSG, borrowing from the frame body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AsMsg<'a> {
    pub header: MsgHeader,
    pub fields: Vec<Field<'a>>,
    pub ops: Vec<MsgOp<'a>>,
}

/// Parse a whole AS_MSG body: exactly one message, no trailing bytes.
pub fn parse_as_msg(body: &[u8]) -> Result<AsMsg<'_>, MsgError> {
    AsMsg::parse(body)
}

/// A bounds-checked cursor over the body.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl<'a> AsMsg<'a> {
    /// Parse exactly one AS_MSG filling `body`.
    pub fn parse(body: &'a [u8]) -> Result<AsMsg<'a>, MsgError> {
        let (msg, rest) = AsMsg::parse_prefix(body)?;
        if !rest.is_empty() {
            return Err(MsgError::TrailingBytes(rest.len()));
        }
        Ok(msg)
    }

    /// Parse one AS_MSG at the start of `buf` and return the bytes after it. Batch and
    /// scan responses concatenate several messages in one frame (spec §8, §9.2).
    pub fn parse_prefix(buf: &'a [u8]) -> Result<(AsMsg<'a>, &'a [u8]), MsgError> {
        if buf.len() < AS_MSG_HEADER_SIZE {
            return Err(MsgError::ShortHeader(buf.len()));
        }
        let mut r = Reader { buf, pos: 0 };
        let short = MsgError::ShortHeader(buf.len());
        let header_sz = r.u8().ok_or(short.clone())?;
        if usize::from(header_sz) != AS_MSG_HEADER_SIZE {
            return Err(MsgError::BadHeaderSize(header_sz));
        }
        let header = MsgHeader {
            info1: r.u8().ok_or(short.clone())?,
            info2: r.u8().ok_or(short.clone())?,
            info3: r.u8().ok_or(short.clone())?,
            info4: r.u8().ok_or(short.clone())?,
            result_code: r.u8().ok_or(short.clone())?,
            generation: r.u32().ok_or(short.clone())?,
            record_ttl: r.u32().ok_or(short.clone())?,
            transaction_ttl: r.u32().ok_or(short.clone())?,
        };
        let n_fields = r.u16().ok_or(short.clone())?;
        let n_ops = r.u16().ok_or(short)?;
        let (fields, ops) = parse_fields_and_ops(&mut r, n_fields, n_ops)?;
        Ok((
            AsMsg {
                header,
                fields,
                ops,
            },
            &buf[r.pos..],
        ))
    }
}

/// A message's fields and ops, borrowing from its body.
pub(crate) type FieldsAndOps<'a> = (Vec<Field<'a>>, Vec<MsgOp<'a>>);

/// The fields then the ops of a message (or of a batch row, which encodes them the same way).
pub(crate) fn parse_fields_and_ops<'a>(
    r: &mut Reader<'a>,
    n_fields: u16,
    n_ops: u16,
) -> Result<FieldsAndOps<'a>, MsgError> {
    // Both counts are u16, but check them against the bytes present before reserving.
    let min_needed = usize::from(n_fields) * FIELD_MIN + usize::from(n_ops) * OP_MIN;
    if min_needed > r.remaining() {
        return Err(MsgError::CountsTooLarge {
            n_fields,
            n_ops,
            remaining: r.remaining(),
        });
    }

    let mut fields = Vec::with_capacity(usize::from(n_fields));
    for index in 0..usize::from(n_fields) {
        let size = r.u32().ok_or(MsgError::FieldOverrun { index })?;
        if size == 0 {
            return Err(MsgError::EmptyField { index });
        }
        let kind = r.u8().ok_or(MsgError::FieldOverrun { index })?;
        let len = usize::try_from(size - 1).map_err(|_| MsgError::FieldOverrun { index })?;
        let data = r.take(len).ok_or(MsgError::FieldOverrun { index })?;
        fields.push(Field { kind, data });
    }

    let mut ops = Vec::with_capacity(usize::from(n_ops));
    for index in 0..usize::from(n_ops) {
        let op_sz = r.u32().ok_or(MsgError::OpOverrun { index })?;
        let op = r.u8().ok_or(MsgError::OpOverrun { index })?;
        let particle = r.u8().ok_or(MsgError::OpOverrun { index })?;
        let flags = r.u8().ok_or(MsgError::OpOverrun { index })?;
        let name_len = r.u8().ok_or(MsgError::OpOverrun { index })?;
        // op_sz counts the 4 bytes op/particle/flags/name_len, the name and the value.
        let value_len = op_sz
            .checked_sub(4 + u32::from(name_len))
            .ok_or(MsgError::BadOpSize {
                index,
                op_sz,
                name_len,
            })?;
        let name = r
            .take(usize::from(name_len))
            .ok_or(MsgError::OpOverrun { index })?;
        let value_len = usize::try_from(value_len).map_err(|_| MsgError::OpOverrun { index })?;
        let value = r.take(value_len).ok_or(MsgError::OpOverrun { index })?;
        ops.push(MsgOp {
            op,
            particle,
            flags,
            name,
            value,
        });
    }
    Ok((fields, ops))
}

impl<'a> AsMsg<'a> {
    /// The last field of type `kind` (the server keeps the last one when a type repeats).
    pub fn field(&self, kind: u8) -> Option<&Field<'a>> {
        self.fields.iter().rev().find(|f| f.kind == kind)
    }

    /// Bytes [`AsMsg::encode_into`] appends.
    pub fn encoded_len(&self) -> usize {
        AS_MSG_HEADER_SIZE
            + self
                .fields
                .iter()
                .map(|f| FIELD_MIN + f.data.len())
                .sum::<usize>()
            + self
                .ops
                .iter()
                .map(|o| OP_MIN + o.name.len() + o.value.len())
                .sum::<usize>()
    }

    /// Append the encoded message (no proto header) to `out`. Fails, leaving `out` unchanged,
    /// if a count or length does not fit its wire width.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), MsgError> {
        let n_fields = u16::try_from(self.fields.len())
            .map_err(|_| MsgError::Unencodable("more than 65535 fields"))?;
        let n_ops = u16::try_from(self.ops.len())
            .map_err(|_| MsgError::Unencodable("more than 65535 ops"))?;
        for f in &self.fields {
            if u32::try_from(f.data.len())
                .ok()
                .and_then(|n| n.checked_add(1))
                .is_none()
            {
                return Err(MsgError::Unencodable("field too large"));
            }
        }
        for o in &self.ops {
            if o.name.len() > usize::from(u8::MAX) {
                return Err(MsgError::Unencodable("op name longer than 255 bytes"));
            }
            if u32::try_from(4 + o.name.len() + o.value.len()).is_err() {
                return Err(MsgError::Unencodable("op too large"));
            }
        }
        out.reserve(self.encoded_len());
        let h = &self.header;
        out.push(AS_MSG_HEADER_SIZE as u8);
        out.extend_from_slice(&[h.info1, h.info2, h.info3, h.info4, h.result_code]);
        out.extend_from_slice(&h.generation.to_be_bytes());
        out.extend_from_slice(&h.record_ttl.to_be_bytes());
        out.extend_from_slice(&h.transaction_ttl.to_be_bytes());
        out.extend_from_slice(&n_fields.to_be_bytes());
        out.extend_from_slice(&n_ops.to_be_bytes());
        for f in &self.fields {
            // Checked above: fits in u32.
            out.extend_from_slice(&((f.data.len() as u32) + 1).to_be_bytes());
            out.push(f.kind);
            out.extend_from_slice(f.data);
        }
        for o in &self.ops {
            write_op_header(
                out,
                o.op,
                o.particle,
                o.flags,
                o.name.len() as u8,
                o.value.len(),
            );
            out.extend_from_slice(o.name);
            out.extend_from_slice(o.value);
        }
        Ok(())
    }
}

/// Write the fixed part of an op; the caller has checked `4 + name_len + value_len` fits u32.
pub(crate) fn write_op_header(
    out: &mut Vec<u8>,
    op: u8,
    particle: u8,
    flags: u8,
    name_len: u8,
    value_len: usize,
) {
    let op_sz = 4 + usize::from(name_len) + value_len;
    out.extend_from_slice(&(op_sz as u32).to_be_bytes());
    out.extend_from_slice(&[op, particle, flags, name_len]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::test_util::hex;

    /// §4.8 put `{"a": 1}` for key ("test","demo","k1"), without the proto header.
    fn put_body() -> Vec<u8> {
        hex("16 00 01 00 00 00 00000000 00000000 000003e8 0003 0001
             00000005 00 74657374
             00000005 01 64656d6f
             00000015 04 b747f5854d0b33259928d0cfab7fad81d6abfbf6
             0000000d 02 01 00 01 61 0000000000000001")
    }

    #[test]
    fn parses_the_spec_put() {
        let body = put_body();
        let msg = AsMsg::parse(&body).unwrap();
        assert_eq!(
            msg.header,
            MsgHeader {
                info2: info2::WRITE,
                transaction_ttl: 1000,
                ..MsgHeader::default()
            }
        );
        assert_eq!(msg.fields.len(), 3);
        assert_eq!(msg.field(field::NAMESPACE).unwrap().data, b"test");
        assert_eq!(msg.field(field::SET).unwrap().data, b"demo");
        assert_eq!(msg.field(field::DIGEST).unwrap().data.len(), 20);
        assert_eq!(
            msg.ops,
            vec![MsgOp {
                op: op::WRITE,
                particle: 1,
                flags: 0,
                name: b"a",
                value: &[0, 0, 0, 0, 0, 0, 0, 1]
            }]
        );
        let mut again = Vec::new();
        msg.encode_into(&mut again).unwrap();
        assert_eq!(again, body);
        assert_eq!(msg.encoded_len(), body.len());
    }

    #[test]
    fn rejects_malformed_messages() {
        let body = put_body();
        assert_eq!(AsMsg::parse(&body[..21]), Err(MsgError::ShortHeader(21)));
        let mut bad = body.clone();
        bad[0] = 23;
        assert_eq!(AsMsg::parse(&bad), Err(MsgError::BadHeaderSize(23)));
        // Cut inside the op.
        assert_eq!(
            AsMsg::parse(&body[..body.len() - 1]),
            Err(MsgError::OpOverrun { index: 0 })
        );
        // Trailing garbage.
        let mut long = body.clone();
        long.push(0);
        assert_eq!(AsMsg::parse(&long), Err(MsgError::TrailingBytes(1)));
        // n_ops claims more than fits.
        let mut many = body.clone();
        many[20] = 0xFF;
        many[21] = 0xFF;
        assert!(matches!(
            AsMsg::parse(&many),
            Err(MsgError::CountsTooLarge { .. })
        ));
        // A field size of 0 has no type byte.
        let mut zero = body.clone();
        zero[22..26].copy_from_slice(&[0, 0, 0, 0]);
        assert_eq!(AsMsg::parse(&zero), Err(MsgError::EmptyField { index: 0 }));
        // A field claiming 4 GiB.
        let mut huge = body.clone();
        huge[22..26].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(
            AsMsg::parse(&huge),
            Err(MsgError::FieldOverrun { index: 0 })
        );
        // op_sz smaller than its own fixed part plus name.
        let op_at = body.len() - 17;
        let mut small = body.clone();
        small[op_at..op_at + 4].copy_from_slice(&[0, 0, 0, 4]);
        assert!(matches!(
            AsMsg::parse(&small),
            Err(MsgError::BadOpSize {
                index: 0,
                op_sz: 4,
                name_len: 1
            })
        ));
    }

    #[test]
    fn parse_prefix_returns_the_rest() {
        let mut two = put_body();
        two.extend(put_body());
        let (first, rest) = AsMsg::parse_prefix(&two).unwrap();
        assert_eq!(first.ops.len(), 1);
        assert_eq!(rest, &put_body()[..]);
    }

    #[test]
    fn encode_refuses_impossible_messages() {
        let name = [b'x'; 256];
        let msg = AsMsg {
            ops: vec![MsgOp {
                op: 1,
                particle: 0,
                flags: 0,
                name: &name,
                value: &[],
            }],
            ..AsMsg::default()
        };
        let mut out = vec![1, 2];
        assert!(msg.encode_into(&mut out).is_err());
        assert_eq!(out, vec![1, 2]);
    }
}
