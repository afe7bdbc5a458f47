//! The batch-index request (spec §8): the BATCH_INDEX field of a batch message, parsed into
//! rows, each of which becomes the single-record AS_MSG it stands for. A batch is answered
//! by answering every row as a single-record command, so batch rows get exactly the
//! routing, consistency and error codes single-record commands get.

use super::message::{
    field, info3, parse_fields_and_ops, AsMsg, Field, MsgError, MsgHeader, MsgOp, Reader,
};

/// Parent flag: keep going after a row error (every row is answered either way here).
pub const RESPOND_ALL_KEYS: u8 = 0x04;

/// Row flags.
mod row_flag {
    pub const REPEAT: u8 = 0x01;
    pub const INFO: u8 = 0x02;
    pub const GEN: u8 = 0x04;
    pub const TTL: u8 = 0x08;
    pub const INFO4: u8 = 0x10;
}

/// A batch request too malformed to answer row by row.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("the batch message has no BATCH_INDEX field")]
    NoRows,
    #[error("batch field truncated")]
    Truncated,
    #[error("row {0} repeats a previous row, but it is the first")]
    RepeatFirst(u32),
    #[error("row {index}: {source}")]
    Row { index: u32, source: MsgError },
    #[error("{0} rows claimed, more than the field can hold")]
    TooManyRows(u32),
}

/// One row: the client's index, the key's digest and the single-record message it asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRow<'a> {
    pub index: u32,
    pub digest: &'a [u8],
    pub header: MsgHeader,
    pub fields: Vec<Field<'a>>,
    pub ops: Vec<MsgOp<'a>>,
}

impl<'a> BatchRow<'a> {
    /// The single-record message this row stands for: its header, its fields plus the
    /// digest, its ops.
    pub fn to_msg(&self) -> AsMsg<'a> {
        let mut fields = self.fields.clone();
        fields.push(Field {
            kind: field::DIGEST,
            data: self.digest,
        });
        AsMsg {
            header: self.header,
            fields,
            ops: self.ops.clone(),
        }
    }
}

/// Smallest encoded row: index, digest, flags.
const ROW_MIN: usize = 4 + 20 + 1;

/// Parse the BATCH_INDEX field of `parent`: its parent flags and rows. Rows without their own
/// info2/info3 take info2 0 and the parent's consistency bits; every row inherits the
/// parent's timeout.
pub fn parse_batch<'a>(parent: &AsMsg<'a>) -> Result<(u8, Vec<BatchRow<'a>>), BatchError> {
    let data = parent.field(field::BATCH).ok_or(BatchError::NoRows)?.data;
    let mut r = Reader::new(data);
    let n = r.u32().ok_or(BatchError::Truncated)?;
    let flags = r.u8().ok_or(BatchError::Truncated)?;
    let count = usize::try_from(n).map_err(|_| BatchError::TooManyRows(n))?;
    if count.saturating_mul(ROW_MIN) > r.remaining() {
        return Err(BatchError::TooManyRows(n));
    }
    let sc_bits = parent.header.info3 & (info3::SC_READ_TYPE | info3::SC_READ_RELAX);
    let mut rows: Vec<BatchRow<'a>> = Vec::with_capacity(count);
    for _ in 0..count {
        let index = r.u32().ok_or(BatchError::Truncated)?;
        let digest = r.take(20).ok_or(BatchError::Truncated)?;
        let rf = r.u8().ok_or(BatchError::Truncated)?;
        if rf & row_flag::REPEAT != 0 {
            let prev = rows.last().ok_or(BatchError::RepeatFirst(index))?;
            let row = BatchRow {
                index,
                digest,
                ..prev.clone()
            };
            rows.push(row);
            continue;
        }
        let mut header = MsgHeader {
            info1: r.u8().ok_or(BatchError::Truncated)?,
            info3: sc_bits,
            transaction_ttl: parent.header.transaction_ttl,
            ..MsgHeader::default()
        };
        if rf & row_flag::INFO != 0 {
            header.info2 = r.u8().ok_or(BatchError::Truncated)?;
            header.info3 = r.u8().ok_or(BatchError::Truncated)?;
        }
        if rf & row_flag::INFO4 != 0 {
            header.info4 = r.u8().ok_or(BatchError::Truncated)?;
        }
        if rf & row_flag::GEN != 0 {
            header.generation = u32::from(r.u16().ok_or(BatchError::Truncated)?);
        }
        if rf & row_flag::TTL != 0 {
            header.record_ttl = r.u32().ok_or(BatchError::Truncated)?;
        }
        let n_fields = r.u16().ok_or(BatchError::Truncated)?;
        let n_ops = r.u16().ok_or(BatchError::Truncated)?;
        let (fields, ops) = parse_fields_and_ops(&mut r, n_fields, n_ops)
            .map_err(|source| BatchError::Row { index, source })?;
        rows.push(BatchRow {
            index,
            digest,
            header,
            fields,
            ops,
        });
    }
    Ok((flags, rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::message::{info1, op};

    fn field_bytes(kind: u8, data: &[u8]) -> Vec<u8> {
        let mut v = ((data.len() + 1) as u32).to_be_bytes().to_vec();
        v.push(kind);
        v.extend_from_slice(data);
        v
    }

    fn parent(rows: &[u8], n: u32) -> Vec<u8> {
        let mut data = n.to_be_bytes().to_vec();
        data.push(0x0D);
        data.extend_from_slice(rows);
        data
    }

    #[test]
    fn rows_repeat_and_inherit_the_parent() {
        let mut rows = Vec::new();
        // Row 0: read all bins, INFO + TTL, namespace and set.
        rows.extend_from_slice(&0u32.to_be_bytes());
        rows.extend_from_slice(&[1; 20]);
        rows.push(row_flag::INFO | row_flag::TTL);
        rows.extend_from_slice(&[info1::READ | info1::GET_ALL, 0, 0]);
        rows.extend_from_slice(&0u32.to_be_bytes());
        rows.extend_from_slice(&2u16.to_be_bytes());
        rows.extend_from_slice(&1u16.to_be_bytes());
        rows.extend(field_bytes(field::NAMESPACE, b"test"));
        rows.extend(field_bytes(field::SET, b"s"));
        // one READ op for bin "a"
        rows.extend_from_slice(&5u32.to_be_bytes());
        rows.extend_from_slice(&[op::READ, 0, 0, 1, b'a']);
        // Row 7: repeat with another digest.
        rows.extend_from_slice(&7u32.to_be_bytes());
        rows.extend_from_slice(&[2; 20]);
        rows.push(row_flag::REPEAT);
        let data = parent(&rows, 2);
        let msg = AsMsg {
            header: MsgHeader {
                info1: info1::BATCH,
                info3: info3::SC_READ_TYPE,
                transaction_ttl: 1000,
                ..MsgHeader::default()
            },
            fields: vec![Field {
                kind: field::BATCH,
                data: &data,
            }],
            ops: vec![],
        };
        let (flags, rows) = parse_batch(&msg).unwrap();
        assert_eq!(flags, 0x0D);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].index, 7);
        assert_eq!(rows[1].digest, &[2; 20]);
        assert_eq!(rows[1].ops, rows[0].ops);
        assert_eq!(rows[0].header.transaction_ttl, 1000);
        let single = rows[1].to_msg();
        assert_eq!(single.field(field::DIGEST).unwrap().data, &[2; 20]);
        assert_eq!(single.field(field::NAMESPACE).unwrap().data, b"test");
    }

    #[test]
    fn malformed_batches_are_errors() {
        let msg = |data: &'static [u8]| AsMsg {
            header: MsgHeader::default(),
            fields: vec![Field {
                kind: field::BATCH,
                data,
            }],
            ops: vec![],
        };
        assert_eq!(
            parse_batch(&AsMsg::default()).unwrap_err(),
            BatchError::NoRows
        );
        assert_eq!(
            parse_batch(&msg(&[0, 0, 0, 9, 0])).unwrap_err(),
            BatchError::TooManyRows(9)
        );
        let mut repeat_first = vec![0, 0, 0, 1, 0, 0, 0, 0, 0];
        repeat_first.extend_from_slice(&[0; 20]);
        repeat_first.push(row_flag::REPEAT);
        let leaked: &'static [u8] = Box::leak(repeat_first.into_boxed_slice());
        assert_eq!(
            parse_batch(&msg(leaked)).unwrap_err(),
            BatchError::RepeatFirst(0)
        );
        assert_eq!(
            parse_batch(&msg(&[0, 0, 0, 0])).unwrap_err(),
            BatchError::Truncated
        );
    }
}
