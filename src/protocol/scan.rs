//! Scan and query requests (spec §9): a type-3 message without a DIGEST field, decoded into
//! what to read — the namespace and set, which partitions (whole, or resumed after a digest
//! and, for queries, an index value), which bins, how many records at most and how fast,
//! and for a query the index filter.

use super::message::{field, info1, info2, op, AsMsg};
use super::request::{ReadBins, RequestError};
use storage::index::{Collection, IndexKey};
use storage::record::{
    particle, partition_id, Digest, ResultCode, NAMESPACE_MAX, PARTITIONS, SET_NAME_MAX,
};

/// One partition to read: whole, or only after a resume point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionPart {
    pub pid: u16,
    /// Resume after this digest (and, for a query, this index value).
    pub after: Option<Digest>,
    pub bval: Option<u64>,
}

/// A query's index filter (INDEX_RANGE, with INDEX_TYPE and INDEX_NAME).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexFilter {
    /// The index named by the request, if any (then `bin` is empty).
    pub index_name: Option<String>,
    pub bin: String,
    /// The particle type of the range's values (1 integer, 3 string, 4 blob).
    pub particle: u8,
    pub collection: Collection,
    /// Inclusive bounds (a string or blob by its hash: `begin == end`).
    pub begin: IndexKey,
    pub end: IndexKey,
    /// The string or blob an equality asks for, which each match is checked against.
    pub exact: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanRequest {
    pub namespace: String,
    /// None: every set.
    pub set: Option<String>,
    /// In request order: the PID_ARRAY's whole partitions, then the DIGEST_ARRAY's resumed
    /// ones. Every partition when the request names none (an old-style scan).
    pub parts: Vec<PartitionPart>,
    pub bins: ReadBins,
    /// Records this node returns at most (0 = no limit).
    pub max_records: u64,
    /// Records per second at most (0 = no limit).
    pub records_per_second: u32,
    pub filter: Option<IndexFilter>,
    /// A filter expression every returned record must pass.
    pub expression: Option<Vec<u8>>,
}

fn bad(message: impl Into<String>) -> RequestError {
    RequestError {
        code: ResultCode::Parameter,
        message: message.into(),
    }
}

fn unsupported(what: &str) -> RequestError {
    RequestError {
        code: ResultCode::UnsupportedFeature,
        message: format!("{what} is not supported"),
    }
}

fn text(bytes: &[u8], what: &str) -> Result<String, RequestError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| bad(format!("{what} not UTF-8")))
}

fn be_u64(bytes: &[u8], what: &str) -> Result<u64, RequestError> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| bad(format!("{what} of {} bytes", bytes.len())))
}

/// Decode a scan or query message.
pub fn decode_scan(msg: &AsMsg) -> Result<ScanRequest, RequestError> {
    let h = &msg.header;
    // Background scans and queries (ops or UDF applied to every record), aggregations and
    // queries on expression or context indexes are not served: refusing is better than
    // ignoring them. Filter expressions are served (checked against every record).
    if h.info2 & info2::WRITE != 0 {
        return Err(unsupported("a background scan or query"));
    }
    for f in &msg.fields {
        match f.kind {
            field::UDF_FILENAME | field::UDF_FUNCTION | field::UDF_ARGLIST | field::UDF_OP => {
                return Err(unsupported("a UDF scan or query"))
            }
            field::INDEX_EXPRESSION | field::INDEX_CONTEXT => {
                return Err(unsupported("an expression or context index"))
            }
            _ => {}
        }
    }
    let namespace = match msg.field(field::NAMESPACE) {
        Some(f) if !f.data.is_empty() && f.data.len() <= NAMESPACE_MAX => {
            text(f.data, "namespace")?
        }
        _ => return Err(bad("namespace missing, empty or too long")),
    };
    let set = match msg.field(field::SET) {
        Some(f) if f.data.len() > SET_NAME_MAX => return Err(bad("set name too long")),
        Some(f) if !f.data.is_empty() => Some(text(f.data, "set name")?),
        _ => None,
    };
    let parts = parts(msg)?;
    let max_records = match msg.field(field::SAMPLE_MAX) {
        Some(f) => be_u64(f.data, "max records")?,
        None => 0,
    };
    let records_per_second = match msg.field(field::RECS_PER_SEC) {
        Some(f) => f
            .data
            .try_into()
            .map(u32::from_be_bytes)
            .map_err(|_| bad("records per second size"))?,
        None => 0,
    };
    let bins = if h.info1 & info1::GET_NO_BINS != 0 {
        ReadBins::NoBins
    } else {
        let mut names = Vec::new();
        for o in &msg.ops {
            if o.op != op::READ {
                return Err(unsupported("an operation in a scan or query"));
            }
            if !o.name.is_empty() {
                names.push(text(o.name, "bin name")?);
            }
        }
        if names.is_empty() {
            ReadBins::All
        } else {
            ReadBins::Named(names)
        }
    };
    let filter = match msg.field(field::INDEX_RANGE) {
        Some(f) => Some(index_filter(msg, f.data)?),
        None => None,
    };
    Ok(ScanRequest {
        namespace,
        set,
        parts,
        bins,
        max_records,
        records_per_second,
        filter,
        expression: msg.field(field::FILTER).map(|f| f.data.to_vec()),
    })
}

/// The partitions to read: PID_ARRAY (u16 LE each) whole, DIGEST_ARRAY resumed (with
/// BVAL_ARRAY alongside for queries); no duplicates, at most 4096.
fn parts(msg: &AsMsg) -> Result<Vec<PartitionPart>, RequestError> {
    let pids = msg.field(field::PID_ARRAY).map(|f| f.data);
    let digests = msg.field(field::DIGEST_ARRAY).map(|f| f.data);
    if pids.is_none() && digests.is_none() {
        return Ok((0..PARTITIONS)
            .map(|pid| PartitionPart {
                pid,
                after: None,
                bval: None,
            })
            .collect());
    }
    let mut out = Vec::new();
    if let Some(p) = pids {
        if p.len() % 2 != 0 {
            return Err(bad("partition id array of odd length"));
        }
        for c in p.chunks_exact(2) {
            let pid = u16::from_le_bytes([c[0], c[1]]);
            if pid >= PARTITIONS {
                return Err(bad(format!("partition id {pid}")));
            }
            out.push(PartitionPart {
                pid,
                after: None,
                bval: None,
            });
        }
    }
    if let Some(d) = digests {
        if d.len() % 20 != 0 {
            return Err(bad("digest array length not a multiple of 20"));
        }
        let bvals: Vec<u64> = match msg.field(field::BVAL_ARRAY) {
            Some(f) if f.data.len() == d.len() / 20 * 8 => f
                .data
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect(),
            Some(_) => return Err(bad("bval array does not match the digest array")),
            None => Vec::new(),
        };
        for (i, c) in d.chunks_exact(20).enumerate() {
            let digest: Digest = c.try_into().map_err(|_| bad("digest size"))?;
            out.push(PartitionPart {
                pid: partition_id(&digest),
                after: Some(digest),
                bval: bvals.get(i).copied(),
            });
        }
    }
    if out.len() > usize::from(PARTITIONS) {
        return Err(bad("more than 4096 partitions"));
    }
    let mut seen = vec![false; usize::from(PARTITIONS)];
    for p in &out {
        if std::mem::replace(&mut seen[usize::from(p.pid)], true) {
            return Err(bad(format!("partition {} named twice", p.pid)));
        }
    }
    Ok(out)
}

/// INDEX_RANGE (spec §9.3): one filter `bin, particle type, begin, end`; integers are 8
/// bytes big-endian with begin ≤ end; strings and blobs are equality on `begin`.
fn index_filter(msg: &AsMsg, data: &[u8]) -> Result<IndexFilter, RequestError> {
    let mut r = Cursor { data, at: 0 };
    if r.u8()? != 1 {
        return Err(bad("a query takes exactly one filter"));
    }
    let bin_len = usize::from(r.u8()?);
    let bin = text(r.take(bin_len)?, "bin name")?;
    let particle_type = r.u8()?;
    let begin_len = r.u32()? as usize;
    let begin = r.take(begin_len)?;
    let end_len = r.u32()? as usize;
    let end = r.take(end_len)?;
    let mut exact = None;
    let (begin, end) = match particle_type {
        particle::INTEGER => {
            let b = be_u64(begin, "integer range begin")? as i64;
            let e = be_u64(end, "integer range end")? as i64;
            if b > e {
                return Err(bad("integer range begin after end"));
            }
            (IndexKey::int(b), IndexKey::int(e))
        }
        particle::STRING | particle::BLOB => {
            if begin.len() >= 2048 {
                return Err(bad("index key too long"));
            }
            exact = Some(begin.to_vec());
            (IndexKey::bytes(begin), IndexKey::bytes(begin))
        }
        particle::GEOJSON => return Err(unsupported("a geospatial query")),
        t => return Err(bad(format!("index range particle type {t}"))),
    };
    let collection = match msg.field(field::INDEX_TYPE) {
        Some(f) => match f.data {
            [c] => Collection::from_wire(*c).ok_or_else(|| bad("index type"))?,
            _ => return Err(bad("index type size")),
        },
        None => Collection::Default,
    };
    let index_name = match msg.field(field::INDEX_NAME) {
        Some(f) if !f.data.is_empty() => Some(text(f.data, "index name")?),
        _ => None,
    };
    Ok(IndexFilter {
        index_name,
        bin,
        particle: particle_type,
        collection,
        begin,
        end,
        exact,
    })
}

struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RequestError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.data.len());
        let end = end.ok_or_else(|| bad("index range truncated"))?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, RequestError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, RequestError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::message::{Field, MsgHeader, MsgOp};

    fn msg<'a>(fields: Vec<Field<'a>>, ops: Vec<MsgOp<'a>>, info1: u8) -> AsMsg<'a> {
        AsMsg {
            header: MsgHeader {
                info1,
                ..MsgHeader::default()
            },
            fields,
            ops,
        }
    }

    fn f(kind: u8, data: &[u8]) -> Field<'_> {
        Field { kind, data }
    }

    #[test]
    fn a_partition_scan_with_bins_and_limits() {
        let d = [
            0x05u8, 0x01, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
        ];
        let m = msg(
            vec![
                f(field::NAMESPACE, b"test"),
                f(field::SET, b"demo"),
                f(field::PID_ARRAY, &[1, 0, 0xff, 0x0f]),
                f(field::DIGEST_ARRAY, &d),
                f(field::SAMPLE_MAX, &[0, 0, 0, 0, 0, 0, 0, 7]),
                f(field::RECS_PER_SEC, &[0, 0, 1, 0]),
            ],
            vec![MsgOp {
                op: op::READ,
                particle: 0,
                flags: 0,
                name: b"a",
                value: b"",
            }],
            info1::READ,
        );
        let s = decode_scan(&m).unwrap();
        assert_eq!(s.set.as_deref(), Some("demo"));
        assert_eq!(
            s.parts.iter().map(|p| p.pid).collect::<Vec<_>>(),
            vec![1, 4095, 0x105]
        );
        assert_eq!(s.parts[2].after, Some(d));
        assert_eq!((s.max_records, s.records_per_second), (7, 256));
        assert_eq!(s.bins, ReadBins::Named(vec!["a".into()]));
        assert!(s.filter.is_none());
    }

    #[test]
    fn no_partitions_means_all_and_an_empty_set_means_every_set() {
        let m = msg(
            vec![f(field::NAMESPACE, b"test"), f(field::SET, b"")],
            vec![],
            info1::READ | info1::GET_NO_BINS,
        );
        let s = decode_scan(&m).unwrap();
        assert_eq!(s.parts.len(), 4096);
        assert_eq!(s.set, None);
        assert_eq!(s.bins, ReadBins::NoBins);
    }

    #[test]
    fn bad_requests_get_their_codes() {
        let code = |fields: Vec<Field<'_>>| {
            decode_scan(&msg(fields, vec![], info1::READ))
                .map(|_| ())
                .map_err(|e| e.code)
        };
        let ns = f(field::NAMESPACE, b"test");
        assert_eq!(code(vec![]), Err(ResultCode::Parameter));
        assert_eq!(
            code(vec![ns, f(field::PID_ARRAY, &[1, 0, 1, 0])]),
            Err(ResultCode::Parameter)
        );
        assert_eq!(
            code(vec![ns, f(field::PID_ARRAY, &[0, 0x10])]),
            Err(ResultCode::Parameter)
        );
        assert_eq!(
            code(vec![ns, f(field::UDF_OP, &[1])]),
            Err(ResultCode::UnsupportedFeature)
        );
    }

    #[test]
    fn index_ranges() {
        let mut range = vec![1, 3, b'a', b'g', b'e', particle::INTEGER, 0, 0, 0, 8];
        range.extend_from_slice(&5i64.to_be_bytes());
        range.extend_from_slice(&[0, 0, 0, 8]);
        range.extend_from_slice(&9i64.to_be_bytes());
        let m = msg(
            vec![
                f(field::NAMESPACE, b"test"),
                f(field::INDEX_RANGE, &range),
                f(field::INDEX_TYPE, &[1]),
            ],
            vec![],
            info1::READ,
        );
        let filter = decode_scan(&m).unwrap().filter.unwrap();
        assert_eq!(filter.bin, "age");
        assert_eq!(
            (filter.begin, filter.end),
            (IndexKey::int(5), IndexKey::int(9))
        );
        assert_eq!(filter.collection, Collection::List);
        // begin after end
        let mut bad_range = vec![1, 1, b'x', particle::INTEGER, 0, 0, 0, 8];
        bad_range.extend_from_slice(&9i64.to_be_bytes());
        bad_range.extend_from_slice(&[0, 0, 0, 8]);
        bad_range.extend_from_slice(&5i64.to_be_bytes());
        let m = msg(
            vec![
                f(field::NAMESPACE, b"test"),
                f(field::INDEX_RANGE, &bad_range),
            ],
            vec![],
            info1::READ,
        );
        assert_eq!(decode_scan(&m).unwrap_err().code, ResultCode::Parameter);
        let m = msg(
            vec![
                f(field::NAMESPACE, b"test"),
                f(field::INDEX_RANGE, &bad_range[..6]),
            ],
            vec![],
            info1::READ,
        );
        assert_eq!(decode_scan(&m).unwrap_err().code, ResultCode::Parameter);
    }
}
