//! [`Outcome`] → a complete type-3 response frame (spec §4.5, §13).
//!
//! Single-record responses carry `header_sz` 22, info bits 0, the result code, the record's
//! generation and void time, `transaction_ttl` 0, **no fields** (the Rust client mis-parses
//! any field in a single-record answer, spec §3) and one op per returned bin. Integers and
//! floats always take 8 bytes (spec §4.2).

use super::frame::{begin_frame, finish_frame, TYPE_MSG};
use super::message::{field, op, write_op_header, MsgError, AS_MSG_HEADER_SIZE};
use super::particle::{value_to_wire, wire_size};
use super::request::{ReadBins, ReadOp};
use storage::command::Outcome;
use storage::record::{particle, Digest, Record, ResultCode, UserKey, Value};

/// A complete frame answering a single-record command. An outcome that cannot be put on the
/// wire (more than 65535 bins, a bin name over 255 bytes — neither can come out of storage)
/// is answered with 1 SERVER_ERROR instead of a corrupt frame.
pub fn encode_response(out: &Outcome) -> Vec<u8> {
    let body_len = AS_MSG_HEADER_SIZE
        + out
            .bins
            .iter()
            .map(|(n, v)| 8 + n.len() + wire_size(v))
            .sum::<usize>();
    let mut buf = Vec::with_capacity(8 + body_len);
    let start = begin_frame(&mut buf);
    match encode_response_msg(out, &mut buf) {
        Ok(()) => {
            finish_frame(&mut buf, start, TYPE_MSG);
            buf
        }
        Err(e) => {
            tracing::error!("cannot encode a response ({e}); answering SERVER_ERROR");
            encode_error(ResultCode::ServerError)
        }
    }
}

/// A complete frame carrying only a result code (generation 0, void time 0, no bins), as the
/// server answers errors that happen before a record is found.
pub fn encode_error(code: ResultCode) -> Vec<u8> {
    encode_response(&Outcome::error(code))
}

/// A complete frame that ends a stream of answers (batch, scan, query) with `code`: no
/// record, INFO3_LAST set, so the client stops reading.
pub fn encode_stream_end(code: ResultCode) -> Vec<u8> {
    let mut buf = encode_error(code);
    // proto header (8) + header_sz, info1, info2, then info3.
    buf[8 + 3] |= super::message::info3::LAST;
    buf
}

/// Append the AS_MSG (no proto header) for `outcome` to `buf`. Batch answers will concatenate
/// several of these in one frame. On error `buf` is unchanged.
pub fn encode_response_msg(outcome: &Outcome, buf: &mut Vec<u8>) -> Result<(), MsgError> {
    let n_ops = u16::try_from(outcome.bins.len())
        .map_err(|_| MsgError::Unencodable("more than 65535 bins"))?;
    for (name, value) in &outcome.bins {
        if name.len() > usize::from(u8::MAX) {
            return Err(MsgError::Unencodable("bin name longer than 255 bytes"));
        }
        if u32::try_from(4 + name.len() + wire_size(value)).is_err() {
            return Err(MsgError::Unencodable("bin value too large"));
        }
    }
    buf.push(AS_MSG_HEADER_SIZE as u8);
    buf.extend_from_slice(&[0, 0, 0, 0, outcome.code.code()]);
    buf.extend_from_slice(&u32::from(outcome.generation).to_be_bytes());
    buf.extend_from_slice(&outcome.void_time.to_be_bytes());
    buf.extend_from_slice(&0u32.to_be_bytes());
    buf.extend_from_slice(&0u16.to_be_bytes());
    buf.extend_from_slice(&n_ops.to_be_bytes());
    for (name, value) in &outcome.bins {
        // Checked above: the name fits a u8 length and the op size fits u32.
        write_op_header(
            buf,
            op::READ,
            value.particle_type(),
            0,
            name.len() as u8,
            wire_size(value),
        );
        buf.extend_from_slice(name.as_bytes());
        value_to_wire(value, buf);
    }
    Ok(())
}

/// What a scan or query answers for one record (spec §9.2).
pub struct StreamRecord<'a> {
    pub namespace: &'a str,
    pub digest: &'a Digest,
    pub record: &'a Record,
    /// The bins to send (the record's own order for all bins).
    pub bins: &'a ReadBins,
    /// The index value a query answer carries (its resume point), none for scans.
    pub bval: Option<u64>,
}

fn push_field(buf: &mut Vec<u8>, kind: u8, data: &[&[u8]]) {
    let len: usize = data.iter().map(|d| d.len()).sum();
    buf.extend_from_slice(&((len + 1) as u32).to_be_bytes());
    buf.push(kind);
    for d in data {
        buf.extend_from_slice(d);
    }
}

/// The KEY field's payload: particle type, then the value (integers and floats 8 bytes).
fn key_field(key: &UserKey) -> (u8, Vec<u8>) {
    match key {
        UserKey::Int(i) => (particle::INTEGER, i.to_be_bytes().to_vec()),
        UserKey::Float(f) => (particle::FLOAT, f.to_be_bytes().to_vec()),
        UserKey::Str(s) => (particle::STRING, s.as_bytes().to_vec()),
        UserKey::Blob(t, b) => (*t, b.clone()),
    }
}

/// Append one record of a scan or query answer: generation and void time in the header,
/// the fields NAMESPACE, DIGEST, SET (if any), KEY (if stored), BVAL (queries) — exactly
/// these, which every client parses — and the selected bins. A record that cannot be
/// encoded (names over 255 bytes, more than 65535 bins: neither can be stored) is skipped.
pub fn encode_record_msg(r: &StreamRecord<'_>, buf: &mut Vec<u8>) {
    let bins: Vec<(&str, &Value)> = match r.bins {
        ReadBins::All => r
            .record
            .bins
            .iter()
            .map(|b| (b.name.as_str(), &b.value))
            .collect(),
        ReadBins::NoBins => Vec::new(),
        ReadBins::Named(names) => names
            .iter()
            .filter_map(|n| r.record.bin(n).map(|v| (n.as_str(), v)))
            .collect(),
        // Scans select bins by name only; collection ops never reach a stream record.
        ReadBins::Ops(ops) => ops
            .iter()
            .filter_map(|o| match o {
                ReadOp::Bin(n) => r.record.bin(n).map(|v| (n.as_str(), v)),
                ReadOp::Cdt { .. } | ReadOp::Compute { .. } => None,
            })
            .collect(),
    };
    let Ok(n_ops) = u16::try_from(bins.len()) else {
        return;
    };
    if bins.iter().any(|(n, _)| n.len() > usize::from(u8::MAX)) {
        return;
    }
    let set = (!r.record.set.is_empty()).then_some(r.record.set.as_bytes());
    let key = r.record.key.as_ref().map(key_field);
    let n_fields =
        2 + u16::from(set.is_some()) + u16::from(key.is_some()) + u16::from(r.bval.is_some());
    let info1 = if matches!(r.bins, ReadBins::NoBins) {
        super::message::info1::GET_NO_BINS
    } else {
        0
    };
    buf.push(AS_MSG_HEADER_SIZE as u8);
    buf.extend_from_slice(&[info1, 0, 0, 0, ResultCode::Ok.code()]);
    buf.extend_from_slice(&u32::from(r.record.generation).to_be_bytes());
    buf.extend_from_slice(&r.record.void_time.to_be_bytes());
    buf.extend_from_slice(&0u32.to_be_bytes());
    buf.extend_from_slice(&n_fields.to_be_bytes());
    buf.extend_from_slice(&n_ops.to_be_bytes());
    push_field(buf, field::NAMESPACE, &[r.namespace.as_bytes()]);
    push_field(buf, field::DIGEST, &[r.digest]);
    if let Some(set) = set {
        push_field(buf, field::SET, &[set]);
    }
    if let Some((t, v)) = &key {
        push_field(buf, field::KEY, &[&[*t], v]);
    }
    if let Some(bval) = r.bval {
        push_field(buf, field::BVAL_ARRAY, &[&bval.to_le_bytes()]);
    }
    for (name, value) in bins {
        write_op_header(
            buf,
            op::READ,
            value.particle_type(),
            0,
            name.len() as u8,
            wire_size(value),
        );
        buf.extend_from_slice(name.as_bytes());
        value_to_wire(value, buf);
    }
}

/// Append the message that tells a client one partition could not be read here (it retries
/// it, perhaps on another node): PARTITION_DONE, result 11, the partition in `generation`.
pub fn encode_partition_unavailable(pid: u16, buf: &mut Vec<u8>) {
    buf.push(AS_MSG_HEADER_SIZE as u8);
    buf.extend_from_slice(&[0, 0, super::message::info3::PARTITION_DONE, 0]);
    buf.push(ResultCode::Unavailable.code());
    buf.extend_from_slice(&u32::from(pid).to_be_bytes());
    buf.extend_from_slice(&[0; 12]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_end_carries_info3_last() {
        let f = encode_stream_end(ResultCode::UnsupportedFeature);
        assert_eq!(f[8], 22, "header size");
        assert_eq!(f[8 + 3] & crate::protocol::message::info3::LAST, 1);
        assert_eq!(f[8 + 5], ResultCode::UnsupportedFeature.code());
        assert_eq!(f[..8], encode_error(ResultCode::UnsupportedFeature)[..8]);
    }
    use crate::protocol::test_util::hex;
    use storage::record::Value;

    #[test]
    fn matches_the_spec_put_reply() {
        // §4.8: OK, generation 1, never expires.
        let want =
            hex("02 03 00 00 00 00 00 16  16 00 00 00 00 00 00000001 00000000 00000000 0000 0000");
        assert_eq!(encode_response(&Outcome::ok(1, 0)), want);
    }

    #[test]
    fn matches_the_spec_get_reply() {
        let want = hex("02 03 00 00 00 00 00 27
                        16 00 00 00 00 00 00000001 00000000 00000000 0000 0001
                        0000000d 01 01 00 01 61 0000000000000001");
        let outcome = Outcome {
            bins: vec![("a".into(), Value::Int(1))],
            ..Outcome::ok(1, 0)
        };
        assert_eq!(encode_response(&outcome), want);
    }

    #[test]
    fn errors_and_values() {
        assert_eq!(
            encode_error(ResultCode::NotFound),
            hex("02 03 00 00 00 00 00 16 16 00 00 00 00 02 00000000 00000000 00000000 0000 0000")
        );
        let outcome = Outcome {
            code: ResultCode::Ok,
            generation: 65535,
            void_time: 0x0102_0304,
            bins: vec![
                ("n".into(), Value::Nil),
                ("b".into(), Value::Blob(9, vec![7, 8])),
                ("t".into(), Value::Bool(true)),
            ],
        };
        let want = hex("02 03 00 00 00 00 00 34
                        16 00 00 00 00 00 0000ffff 01020304 00000000 0000 0003
                        00000005 01 00 00 01 6e
                        00000007 01 09 00 01 62 0708
                        00000006 01 11 00 01 74 01");
        assert_eq!(encode_response(&outcome), want);
    }

    #[test]
    fn unencodable_outcomes_become_server_errors() {
        let outcome = Outcome {
            bins: vec![("x".repeat(300), Value::Int(1))],
            ..Outcome::ok(1, 0)
        };
        assert_eq!(
            encode_response(&outcome),
            encode_error(ResultCode::ServerError)
        );
        let outcome = Outcome {
            bins: vec![("a".into(), Value::Nil); 65536],
            ..Outcome::ok(1, 0)
        };
        assert_eq!(
            encode_response(&outcome),
            encode_error(ResultCode::ServerError)
        );
    }

    #[test]
    fn stream_records_carry_their_fields() {
        use crate::protocol::message::AsMsg;
        let record = Record {
            set: "demo".into(),
            key: Some(UserKey::Int(7)),
            bins: vec![storage::record::Bin {
                name: "a".into(),
                value: Value::Int(1),
            }],
            generation: 3,
            void_time: 9,
            last_update: 0,
        };
        let digest = [4u8; 20];
        let mut buf = Vec::new();
        encode_record_msg(
            &StreamRecord {
                namespace: "test",
                digest: &digest,
                record: &record,
                bins: &ReadBins::All,
                bval: Some(7),
            },
            &mut buf,
        );
        encode_partition_unavailable(300, &mut buf);
        let (m, rest) = AsMsg::parse_prefix(&buf).unwrap();
        assert_eq!(m.header.generation, 3);
        assert_eq!(m.header.record_ttl, 9);
        let kinds: Vec<u8> = m.fields.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, vec![0, 4, 1, 2, 15]);
        assert_eq!(
            m.field(field::KEY).unwrap().data,
            &[1, 0, 0, 0, 0, 0, 0, 0, 7]
        );
        assert_eq!(m.ops.len(), 1);
        let p = AsMsg::parse(rest).unwrap();
        assert_eq!(
            p.header.info3,
            crate::protocol::message::info3::PARTITION_DONE
        );
        assert_eq!(p.header.result_code, 11);
        assert_eq!(p.header.generation, 300);
    }
}
