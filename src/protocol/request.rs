//! AS_MSG → [`Request`]: what a single-record data command asks for (spec §2–§4, §11, §14).
//!
//! The decoder applies every check a real server makes *before* it looks the record up
//! (SRV `thr_tsvc.c` dispatch, `write.c write_master_preprocessing/write_master_policies`,
//! `read.c read_local`), so these errors come out identically whatever the record's state.
//! Checks that depend on the record (existence, generation, bin types) stay with `apply`.
//!
//! Two outcomes besides success:
//! - `Err(RequestError)`: the message is malformed or breaks a protocol rule; answer its code.
//! - `Ok(Request::Unsupported(code))`: a well-formed command this server does not implement
//!   (UDFs, multi-record transactions); batch and scan/query messages have decoders of their
//!   own.

use super::message::{
    field, info1, info2, info3, info4, op, AsMsg, MsgError, MsgOp, OP_FLAG_HAS_LUT,
};
use super::particle::{value_from_wire, Null, LANGUAGE_BLOBS};
use storage::command::{ExistsPolicy, Expiry, GenerationPolicy, Op, OpFamily};
use storage::record::{
    particle, Bin, Digest, ResultCode, UserKey, Value, BIN_NAME_MAX, NAMESPACE_MAX, SET_NAME_MAX,
};
use thiserror::Error;

/// Longest TTL a write may ask for: 10 years (spec §2.2).
pub const MAX_TTL: u32 = 315_360_000;
/// `record_ttl` 0: use the namespace default.
pub const TTL_NAMESPACE_DEFAULT: u32 = 0;
/// `record_ttl` 0xFFFFFFFF (-1): never expire.
pub const TTL_NEVER_EXPIRE: u32 = u32::MAX;
/// `record_ttl` 0xFFFFFFFE (-2): keep the record's current TTL (namespace default if new).
pub const TTL_DONT_UPDATE: u32 = u32::MAX - 1;
/// Most ops a write may carry (SRV `write.c MAX_N_OPS`).
pub const MAX_WRITE_OPS: usize = 32 * 1024;

/// The record a command addresses. The digest is authoritative: the server never recomputes
/// it from the user key (spec §5).
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRef {
    pub namespace: String,
    /// Empty = no set (the C client always sends the field, possibly empty; spec §3).
    pub set: String,
    pub digest: Digest,
    /// Present when the client's key policy is SEND; stored with the record.
    pub user_key: Option<UserKey>,
}

/// Strong-consistency read mode from info3 bits 0x40/0x80 (spec §11.1). Clients send the bits
/// whatever the namespace mode; only SC namespaces honour them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// No bits: the client sees its own writes in order.
    #[default]
    Session,
    /// 0x40: linearizable; the master must confirm it is still master.
    Linearize,
    /// 0x80: master or any full replica.
    AllowReplica,
    /// 0x40 | 0x80: also from unavailable partitions.
    AllowUnavailable,
}

/// Which bins a read returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadBins {
    All,
    /// Metadata only (exists / header): generation and void time, no bins.
    NoBins,
    /// These bins, in request order; missing bins are left out of the answer. An empty list
    /// (no ops, no GET_ALL) is answered 4 PARAMETER when the record exists.
    Named(Vec<String>),
    /// Bin reads and collection read operations, in request order, one answer each.
    Ops(Vec<ReadOp>),
}

/// One operation of a read that carries collection operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOp {
    Bin(String),
    /// A list or map read operation (Aerospike msgpack payload).
    Cdt {
        bin: String,
        payload: Vec<u8>,
    },
    /// A read operation of another family (expression reads: `bin` names the answer).
    Compute {
        family: OpFamily,
        bin: String,
        payload: Vec<u8>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Read {
        key: KeyRef,
        bins: ReadBins,
        mode: ReadMode,
        /// `read_touch_ttl_percent` as the read carries it in `record_ttl` (0 = the
        /// namespace's default, `u32::MAX` = never, above 100 = refused).
        touch_pct: u32,
        /// A filter expression the record must pass (27 FILTERED_OUT otherwise).
        filter: Option<Vec<u8>>,
    },
    Write {
        key: KeyRef,
        exists: ExistsPolicy,
        generation: GenerationPolicy,
        /// Raw `record_ttl` (already checked to be a valid value); resolve it with
        /// [`ttl_to_void_time`].
        record_ttl: u32,
        ops: Vec<Op>,
        respond_all_ops: bool,
        durable_delete: bool,
        /// info3 COMMIT_MASTER: the client accepts an answer after the master applied.
        commit_master: bool,
    },
    Delete {
        key: KeyRef,
        generation: GenerationPolicy,
        durable_delete: bool,
    },
    /// A batch (info1 BATCH).
    Batch,
    /// A scan or query (no DIGEST field).
    Scan,
    /// UDF, transactions, filters, etc.: answered with the code inside.
    Unsupported(ResultCode),
}

impl Request {
    /// The command this request is for (the key of the service's command table).
    pub fn name(&self) -> &'static str {
        match self {
            Request::Read { .. } => "read",
            Request::Write { .. } => "write",
            Request::Delete { .. } => "delete",
            Request::Batch => "batch",
            Request::Scan => "scan",
            Request::Unsupported(_) => "unsupported",
        }
    }
}

/// A request the server refuses; answer `code`. `message` is for logs only.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{message} (result {code:?})")]
pub struct RequestError {
    pub code: ResultCode,
    pub message: String,
}

impl RequestError {
    pub fn new(code: ResultCode, message: impl Into<String>) -> RequestError {
        RequestError {
            code,
            message: message.into(),
        }
    }

    fn parameter(message: impl Into<String>) -> RequestError {
        RequestError::new(ResultCode::Parameter, message)
    }
}

impl From<MsgError> for RequestError {
    /// A message that does not parse is a parameter error (the frame itself was intact).
    fn from(e: MsgError) -> RequestError {
        RequestError::parameter(e.to_string())
    }
}

/// Parse an AS_MSG body and decode it.
pub fn decode_request_body(body: &[u8]) -> Result<Request, RequestError> {
    decode_request(&AsMsg::parse(body)?)
}

/// Decode a parsed AS_MSG. Dispatch follows spec §14 step 4 (SRV `thr_tsvc.c`):
/// info1 BATCH → batch; no DIGEST field → scan/query; info2 WRITE → write or delete;
/// else info1 READ → read; else 4 PARAMETER.
pub fn decode_request(msg: &AsMsg) -> Result<Request, RequestError> {
    let h = &msg.header;
    if h.info1 & info1::BATCH != 0 {
        return Ok(Request::Batch);
    }
    let Some(digest) = msg.field(field::DIGEST) else {
        return Ok(Request::Scan);
    };
    let key = decode_key_ref(msg, digest.data)?;

    // Features whose semantics cannot be ignored: skipping a filter or a transaction id would
    // silently do the wrong thing, so refuse them until they are implemented.
    if h.info4 & info4::MRT_MASK != 0 {
        return Ok(Request::Unsupported(ResultCode::UnsupportedFeature));
    }
    for f in &msg.fields {
        match f.kind {
            field::UDF_FILENAME
            | field::UDF_FUNCTION
            | field::UDF_ARGLIST
            | field::UDF_OP
            | field::RECORD_VERSION
            | field::MRT_ID
            | field::MRT_DEADLINE => {
                return Ok(Request::Unsupported(ResultCode::UnsupportedFeature))
            }
            // Everything else (socket timeout, task id, …) is skipped, as the server does.
            _ => {}
        }
    }

    if h.info2 & info2::WRITE != 0 {
        let filter = msg.field(field::FILTER).map(|f| f.data.to_vec());
        match decode_write(msg, key)? {
            // A filtered write carries its filter as its first op, so apply decides it
            // against the record it finds; a filtered delete becomes the equivalent write.
            Request::Write {
                key,
                exists,
                generation,
                record_ttl,
                mut ops,
                respond_all_ops,
                durable_delete,
                commit_master,
            } => {
                if let Some(f) = filter {
                    ops.insert(0, Op::Filter(f));
                }
                Ok(Request::Write {
                    key,
                    exists,
                    generation,
                    record_ttl,
                    ops,
                    respond_all_ops,
                    durable_delete,
                    commit_master,
                })
            }
            Request::Delete {
                key,
                generation,
                durable_delete,
            } if filter.is_some() => Ok(Request::Write {
                key,
                exists: ExistsPolicy::Update,
                generation,
                record_ttl: TTL_DONT_UPDATE,
                ops: vec![Op::Filter(filter.unwrap_or_default()), Op::DeleteAll],
                respond_all_ops: false,
                durable_delete,
                commit_master: false,
            }),
            other => Ok(other),
        }
    } else if h.info1 & info1::READ != 0 {
        decode_read(msg, key)
    } else {
        Err(RequestError::parameter("message neither reads nor writes"))
    }
}

/// Namespace, set, digest and user key (spec §3, §5).
fn decode_key_ref(msg: &AsMsg, digest: &[u8]) -> Result<KeyRef, RequestError> {
    let digest: Digest = digest
        .try_into()
        .map_err(|_| RequestError::parameter(format!("digest field of {} bytes", digest.len())))?;
    let namespace = match msg.field(field::NAMESPACE) {
        Some(f) if !f.data.is_empty() && f.data.len() <= NAMESPACE_MAX => {
            utf8(f.data, "namespace")?
        }
        Some(_) => return Err(RequestError::parameter("namespace empty or too long")),
        None => return Err(RequestError::parameter("no namespace field")),
    };
    let set = match msg.field(field::SET) {
        Some(f) if f.data.len() > SET_NAME_MAX => {
            return Err(RequestError::parameter("set name too long"))
        }
        Some(f) => utf8(f.data, "set name")?,
        None => String::new(),
    };
    let user_key = msg
        .field(field::KEY)
        .map(|f| decode_user_key(f.data))
        .transpose()?;
    Ok(KeyRef {
        namespace,
        set,
        digest,
        user_key,
    })
}

/// KEY field: `u8 particle type` + value (spec §3). Lists, maps and other types cannot be keys.
fn decode_user_key(data: &[u8]) -> Result<UserKey, RequestError> {
    let bad = |what: &str| RequestError::parameter(format!("bad key field: {what}"));
    let [t, value @ ..] = data else {
        return Err(bad("empty"));
    };
    match *t {
        particle::INTEGER => value
            .try_into()
            .map(|b| UserKey::Int(i64::from_be_bytes(b)))
            .map_err(|_| bad("integer size")),
        particle::FLOAT => value
            .try_into()
            .map(|b| UserKey::Float(f64::from_be_bytes(b)))
            .map_err(|_| bad("float size")),
        particle::STRING => String::from_utf8(value.to_vec())
            .map(UserKey::Str)
            .map_err(|_| bad("string not UTF-8")),
        t if t == particle::BLOB || LANGUAGE_BLOBS.contains(&t) => {
            Ok(UserKey::Blob(t, value.to_vec()))
        }
        _ => Err(bad("particle type")),
    }
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, RequestError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| RequestError::parameter(format!("{what} not UTF-8")))
}

/// A bin name: at most 15 bytes (21 BIN_NAME otherwise, spec §4), and UTF-8 because bins are
/// keyed by `String`.
fn bin_name(o: &MsgOp) -> Result<String, RequestError> {
    if o.name.len() > BIN_NAME_MAX {
        return Err(RequestError::new(
            ResultCode::BinName,
            format!("bin name of {} bytes", o.name.len()),
        ));
    }
    utf8(o.name, "bin name")
}

/// The family of an op type computed on a bin other than lists and maps, and whether it is
/// the write form.
fn compute_family(t: u8) -> Option<(OpFamily, bool)> {
    match t {
        op::EXP_READ => Some((OpFamily::Exp, false)),
        op::EXP_MODIFY => Some((OpFamily::Exp, true)),
        op::BITS_READ => Some((OpFamily::Bit, false)),
        op::BITS_MODIFY => Some((OpFamily::Bit, true)),
        op::HLL_READ => Some((OpFamily::Hll, false)),
        op::HLL_MODIFY => Some((OpFamily::Hll, true)),
        _ => None,
    }
}

/// Exists policy from info2 CREATE_ONLY / info3 UPDATE_ONLY, REPLACE_ONLY, CREATE_OR_REPLACE
/// (spec §2.1). Clients set at most one; more than one is contradictory.
fn exists_policy(info2: u8, info3: u8) -> Result<ExistsPolicy, RequestError> {
    let candidates = [
        (info2 & info2::CREATE_ONLY != 0, ExistsPolicy::Create),
        (info3 & info3::UPDATE_ONLY != 0, ExistsPolicy::Update),
        (info3 & info3::REPLACE_ONLY != 0, ExistsPolicy::Replace),
        (
            info3 & info3::CREATE_OR_REPLACE != 0,
            ExistsPolicy::CreateOrReplace,
        ),
    ];
    let mut set = candidates.iter().filter(|(on, _)| *on).map(|(_, p)| *p);
    match (set.next(), set.next()) {
        (None, _) => Ok(ExistsPolicy::Ignore),
        (Some(p), None) => Ok(p),
        (Some(_), Some(_)) => Err(RequestError::parameter("conflicting exists flags")),
    }
}

/// Generation policy from info2 GENERATION / GENERATION_GT and the header generation, which
/// clients fill with a u16 record generation (spec §2, §2.1).
fn generation_policy(info2: u8, generation: u32) -> Result<GenerationPolicy, RequestError> {
    let eq = info2 & info2::GENERATION != 0;
    let gt = info2 & info2::GENERATION_GT != 0;
    if !eq && !gt {
        return Ok(GenerationPolicy::None);
    }
    let g =
        u16::try_from(generation).map_err(|_| RequestError::parameter("generation above 65535"))?;
    match (eq, gt) {
        (true, true) => Err(RequestError::parameter("both GENERATION and GENERATION_GT")),
        (true, false) => Ok(GenerationPolicy::Eq(g)),
        _ => Ok(GenerationPolicy::Gt(g)),
    }
}

fn is_valid_ttl(ttl: u32) -> bool {
    ttl <= MAX_TTL || ttl == TTL_NEVER_EXPIRE || ttl == TTL_DONT_UPDATE
}

/// info2 WRITE. With info2 DELETE the command is a delete whatever ops it carries: the server
/// dispatches on the DELETE bit alone (SRV `as_transaction_is_delete`) and ignores the ops.
fn decode_write(msg: &AsMsg, key: KeyRef) -> Result<Request, RequestError> {
    let h = &msg.header;
    let exists = exists_policy(h.info2, h.info3)?;
    let generation = generation_policy(h.info2, h.generation)?;
    let durable_delete = h.info2 & info2::DURABLE_DELETE != 0;
    if h.info2 & info2::DELETE != 0 {
        return Ok(Request::Delete {
            key,
            generation,
            durable_delete,
        });
    }

    // SRV write_master_preprocessing / write_master_policies, in their order.
    if !is_valid_ttl(h.record_ttl) {
        return Err(RequestError::parameter(format!(
            "invalid ttl {}",
            h.record_ttl
        )));
    }
    if msg.ops.is_empty() {
        return Err(RequestError::parameter("write without ops"));
    }
    if msg.ops.len() > MAX_WRITE_OPS {
        return Err(RequestError::parameter("too many ops"));
    }
    let respond_all_ops = h.info2 & info2::RESPOND_ALL_OPS != 0;
    // Record-level replace cannot be combined with ops that need the old bins.
    let replace = matches!(
        exists,
        ExistsPolicy::Replace | ExistsPolicy::CreateOrReplace
    );
    let replace_conflict =
        |what: &str| RequestError::parameter(format!("{what} with a replace policy"));

    let mut ops = Vec::with_capacity(msg.ops.len());
    let (mut read_all, mut named_read) = (false, false);
    for o in &msg.ops {
        if o.flags & OP_FLAG_HAS_LUT != 0 {
            return Err(RequestError::parameter("op with an XDR last-update time"));
        }
        match o.op {
            op::TOUCH => {
                if replace {
                    return Err(replace_conflict("touch"));
                }
                ops.push(Op::Touch);
                continue;
            }
            t if compute_family(t).is_some() => {}
            op::READ
            | op::WRITE
            | op::INCR
            | op::APPEND
            | op::PREPEND
            | op::DELETE_ALL
            | op::CDT_READ
            | op::CDT_MODIFY => {}
            t => return Err(RequestError::parameter(format!("unknown op type {t}"))),
        }
        let name = bin_name(o)?;
        if let Some((family, modify)) = compute_family(o.op) {
            if replace && modify {
                return Err(replace_conflict("bin computing op"));
            }
            named_read |= !modify;
            ops.push(Op::Compute {
                family,
                bin: name,
                payload: o.value.to_vec(),
                modify,
            });
            continue;
        }
        let op = match o.op {
            op::CDT_READ | op::CDT_MODIFY => {
                if replace && o.op == op::CDT_MODIFY {
                    return Err(replace_conflict("collection op"));
                }
                Op::Cdt {
                    bin: name,
                    payload: o.value.to_vec(),
                    modify: o.op == op::CDT_MODIFY,
                }
            }
            op::READ if name.is_empty() => {
                // A read-all inside a write answers with every bin; it cannot also answer one
                // entry per op, and only one is allowed.
                if respond_all_ops {
                    return Err(RequestError::parameter("read-all op with RESPOND_ALL_OPS"));
                }
                if read_all {
                    return Err(RequestError::parameter("more than one read-all op"));
                }
                read_all = true;
                Op::ReadAll
            }
            op::READ => {
                named_read = true;
                Op::Read(name)
            }
            op::WRITE => {
                let value =
                    value_from_wire(o.particle, o.value, Null::Allowed).map_err(value_error)?;
                if replace && value == Value::Nil {
                    return Err(replace_conflict("bin delete"));
                }
                Op::Write(Bin {
                    name: name.into(),
                    value,
                })
            }
            op::DELETE_ALL => {
                if replace {
                    return Err(replace_conflict("delete-all"));
                }
                Op::DeleteAll
            }
            // INCR, APPEND, PREPEND: operand type vs bin type is checked at apply time.
            kind => {
                if replace {
                    return Err(replace_conflict("modify op"));
                }
                let value =
                    value_from_wire(o.particle, o.value, Null::Rejected).map_err(value_error)?;
                let bin = Bin {
                    name: name.into(),
                    value,
                };
                match kind {
                    op::INCR => Op::Incr(bin),
                    op::APPEND => Op::Append(bin),
                    _ => Op::Prepend(bin),
                }
            }
        };
        ops.push(op);
    }
    if (read_all || named_read) && h.info1 & info1::READ == 0 {
        return Err(RequestError::parameter(
            "read op without the info1 READ flag",
        ));
    }
    if read_all && named_read {
        return Err(RequestError::parameter("read-all op mixed with bin reads"));
    }
    if h.info1 & info1::GET_ALL != 0 && !read_all {
        return Err(RequestError::parameter("GET_ALL without a read-all op"));
    }

    Ok(Request::Write {
        key,
        exists,
        generation,
        record_ttl: h.record_ttl,
        ops,
        respond_all_ops,
        durable_delete,
        commit_master: h.info3 & info3::COMMIT_MASTER != 0,
    })
}

fn value_error(code: ResultCode) -> RequestError {
    RequestError::new(code, "bad bin value")
}

/// info1 READ without info2 WRITE (SRV `read.c read_local`): GET_NO_BINS wins, then GET_ALL;
/// both ignore the ops, as the server does. A read with neither flag nor ops names no bins,
/// which the read answers with 4 once the record is found, as Aerospike does.
fn decode_read(msg: &AsMsg, key: KeyRef) -> Result<Request, RequestError> {
    let h = &msg.header;
    let mode = match h.info3 & (info3::SC_READ_TYPE | info3::SC_READ_RELAX) {
        0 => ReadMode::Session,
        info3::SC_READ_TYPE => ReadMode::Linearize,
        info3::SC_READ_RELAX => ReadMode::AllowReplica,
        _ => ReadMode::AllowUnavailable,
    };
    let bins = if h.info1 & info1::GET_NO_BINS != 0 {
        ReadBins::NoBins
    } else if h.info1 & info1::GET_ALL != 0 {
        ReadBins::All
    } else {
        let mut names = Vec::with_capacity(msg.ops.len());
        let mut read_ops = Vec::new();
        let mut all = false;
        for o in &msg.ops {
            match o.op {
                op::READ => {
                    let name = bin_name(o)?;
                    if name.is_empty() {
                        all = true;
                    } else {
                        read_ops.push(ReadOp::Bin(name.clone()));
                        names.push(name);
                    }
                }
                op::CDT_READ => read_ops.push(ReadOp::Cdt {
                    bin: bin_name(o)?,
                    payload: o.value.to_vec(),
                }),
                t if matches!(compute_family(t), Some((_, false))) => {
                    if let Some((family, _)) = compute_family(t) {
                        read_ops.push(ReadOp::Compute {
                            family,
                            bin: bin_name(o)?,
                            payload: o.value.to_vec(),
                        });
                    }
                }
                t => return Err(RequestError::parameter(format!("op type {t} in a read"))),
            }
        }
        let collection_ops = read_ops.len() > names.len();
        match (all, collection_ops) {
            (true, true) => {
                return Err(RequestError::parameter(
                    "read-all op mixed with collection ops",
                ))
            }
            (true, false) => ReadBins::All,
            (false, true) => ReadBins::Ops(read_ops),
            (false, false) => ReadBins::Named(names),
        }
    };
    Ok(Request::Read {
        key,
        bins,
        mode,
        touch_pct: h.record_ttl,
        filter: msg.field(field::FILTER).map(|f| f.data.to_vec()),
    })
}

/// Resolve a write's `record_ttl` into the void time it leaves (spec §2.2), given the
/// leader's clock in seconds since 2010-01-01 and the namespace default TTL in seconds
/// (0 = never expire).
///
/// - 0 → namespace default; 1..=315360000 → now + ttl; 0xFFFFFFFF → never (void time 0);
/// - 0xFFFFFFFE → keep the record's void time, or the namespace default for a new record;
/// - anything else → 4 PARAMETER.
pub fn ttl_to_void_time(
    record_ttl: u32,
    now_since_2010: u32,
    default_ttl: u32,
) -> Result<Expiry, ResultCode> {
    let default_void_time = match default_ttl {
        0 => 0,
        ttl => now_since_2010.saturating_add(ttl),
    };
    match record_ttl {
        TTL_NAMESPACE_DEFAULT => Ok(Expiry::Set(default_void_time)),
        TTL_NEVER_EXPIRE => Ok(Expiry::Set(0)),
        TTL_DONT_UPDATE => Ok(Expiry::Keep {
            if_new: default_void_time,
        }),
        ttl if ttl <= MAX_TTL => Ok(Expiry::Set(now_since_2010.saturating_add(ttl))),
        _ => Err(ResultCode::Parameter),
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::{Field, MsgHeader};
    use super::*;
    use crate::protocol::test_util::hex;

    const DIGEST: &str = "b747f5854d0b33259928d0cfab7fad81d6abfbf6";

    fn k1() -> KeyRef {
        KeyRef {
            namespace: "test".into(),
            set: "demo".into(),
            digest: hex(DIGEST).try_into().unwrap(),
            user_key: None,
        }
    }

    #[test]
    fn decodes_the_spec_put() {
        // §4.8, proto header included.
        let frame = hex(&format!(
            "02 03 00 00 00 00 00 52
             16 00 01 00 00 00 00000000 00000000 000003e8 0003 0001
             00000005 00 74657374
             00000005 01 64656d6f
             00000015 04 {DIGEST}
             0000000d 02 01 00 01 61 0000000000000001"
        ));
        assert_eq!(frame.len(), 8 + 0x52);
        let req = decode_request_body(&frame[8..]).unwrap();
        assert_eq!(
            req,
            Request::Write {
                key: k1(),
                exists: ExistsPolicy::Ignore,
                generation: GenerationPolicy::None,
                record_ttl: 0,
                ops: vec![Op::Write(Bin::new("a", Value::Int(1)))],
                respond_all_ops: false,
                durable_delete: false,
                commit_master: false,
            }
        );
    }

    #[test]
    fn decodes_the_spec_get() {
        let body = hex(&format!(
            "16 03 00 00 00 00 00000000 00000000 000003e8 0003 0000
             00000005 00 74657374
             00000005 01 64656d6f
             00000015 04 {DIGEST}"
        ));
        let req = decode_request_body(&body).unwrap();
        assert_eq!(
            req,
            Request::Read {
                key: k1(),
                bins: ReadBins::All,
                mode: ReadMode::Session,
                touch_pct: 0,
                filter: None,
            }
        );
    }

    /// A message for k1 with the given header bits and ops.
    fn msg<'a>(info: [u8; 4], generation: u32, ttl: u32, ops: Vec<MsgOp<'a>>) -> AsMsg<'a> {
        AsMsg {
            header: MsgHeader {
                info1: info[0],
                info2: info[1],
                info3: info[2],
                info4: info[3],
                generation,
                record_ttl: ttl,
                ..MsgHeader::default()
            },
            fields: vec![
                Field {
                    kind: field::NAMESPACE,
                    data: b"test",
                },
                Field {
                    kind: field::SET,
                    data: b"demo",
                },
                Field {
                    kind: field::DIGEST,
                    data: &DIGEST_BYTES,
                },
            ],
            ops,
        }
    }

    const DIGEST_BYTES: [u8; 20] = [
        0xb7, 0x47, 0xf5, 0x85, 0x4d, 0x0b, 0x33, 0x25, 0x99, 0x28, 0xd0, 0xcf, 0xab, 0x7f, 0xad,
        0x81, 0xd6, 0xab, 0xfb, 0xf6,
    ];
    const ONE: [u8; 8] = [0, 0, 0, 0, 0, 0, 0, 1];

    fn mop<'a>(op: u8, particle: u8, name: &'a [u8], value: &'a [u8]) -> MsgOp<'a> {
        MsgOp {
            op,
            particle,
            flags: 0,
            name,
            value,
        }
    }

    fn write_int(name: &[u8]) -> MsgOp<'_> {
        mop(op::WRITE, 1, name, &ONE)
    }

    fn code(r: Result<Request, RequestError>) -> ResultCode {
        match r {
            Ok(Request::Unsupported(c)) => c,
            Ok(other) => panic!("expected an error, got {other:?}"),
            Err(e) => e.code,
        }
    }

    /// Round-trip through the encoder so every test also exercises it.
    fn decode(m: &AsMsg) -> Result<Request, RequestError> {
        let mut body = Vec::new();
        m.encode_into(&mut body).unwrap();
        decode_request_body(&body)
    }

    #[test]
    fn dispatch() {
        let batch = msg([info1::BATCH | info1::READ, 0, 0, 0], 0, 0, vec![]);
        assert_eq!(decode(&batch).unwrap().name(), "batch");
        let mut scan = msg([info1::READ, 0, 0, 0], 0, 0, vec![]);
        scan.fields.retain(|f| f.kind != field::DIGEST);
        assert_eq!(decode(&scan).unwrap().name(), "scan");
        let neither = msg([0, 0, 0, 0], 0, 0, vec![]);
        assert_eq!(code(decode(&neither)), ResultCode::Parameter);
        let mut udf = msg([0, info2::WRITE, 0, 0], 0, 0, vec![]);
        udf.fields.push(Field {
            kind: field::UDF_FILENAME,
            data: b"m",
        });
        assert_eq!(code(decode(&udf)), ResultCode::UnsupportedFeature);
        let mut filtered = msg([info1::READ | info1::GET_ALL, 0, 0, 0], 0, 0, vec![]);
        filtered.fields.push(Field {
            kind: field::FILTER,
            data: &[0x93, 1, 2, 3],
        });
        assert!(matches!(
            decode(&filtered),
            Ok(Request::Read {
                filter: Some(_),
                ..
            })
        ));
        let mrt = msg([info1::READ, 0, 0, info4::MRT_VERIFY_READ], 0, 0, vec![]);
        assert_eq!(code(decode(&mrt)), ResultCode::UnsupportedFeature);
        // Unknown fields and info4 verbosity bits are ignored.
        let mut extra = msg([info1::READ | info1::GET_ALL, 0, 0, 0x60], 0, 0, vec![]);
        extra.fields.push(Field {
            kind: field::SOCKET_TIMEOUT,
            data: &[0, 0, 0, 1],
        });
        extra.fields.push(Field {
            kind: 200,
            data: b"whatever",
        });
        assert!(matches!(
            decode(&extra),
            Ok(Request::Read {
                bins: ReadBins::All,
                ..
            })
        ));
    }

    #[test]
    fn key_fields() {
        let mut m = msg([info1::READ, 0, 0, 0], 0, 0, vec![]);
        let digest_at = m
            .fields
            .iter()
            .position(|f| f.kind == field::DIGEST)
            .unwrap();
        m.fields[digest_at].data = &DIGEST_BYTES[..19];
        assert_eq!(code(decode(&m)), ResultCode::Parameter);

        let with = |kind: u8, data: &'static [u8]| {
            let mut m = msg([info1::READ, 0, 0, 0], 0, 0, vec![]);
            m.fields.push(Field { kind, data });
            decode(&m)
        };
        assert_eq!(code(with(field::NAMESPACE, b"")), ResultCode::Parameter);
        assert_eq!(
            code(with(field::NAMESPACE, &[b'n'; 32])),
            ResultCode::Parameter
        );
        assert!(with(field::NAMESPACE, &[b'n'; 31]).is_ok());
        assert_eq!(code(with(field::NAMESPACE, b"\xff")), ResultCode::Parameter);
        assert_eq!(code(with(field::SET, &[b's'; 64])), ResultCode::Parameter);
        assert_eq!(code(with(field::SET, b"\xc3")), ResultCode::Parameter);
        let Ok(Request::Read { key, .. }) = with(field::SET, b"") else {
            panic!()
        };
        assert_eq!(key.set, "");
        let mut no_ns = msg([info1::READ, 0, 0, 0], 0, 0, vec![]);
        no_ns.fields.retain(|f| f.kind != field::NAMESPACE);
        assert_eq!(code(decode(&no_ns)), ResultCode::Parameter);
        let mut no_set = msg([info1::READ, 0, 0, 0], 0, 0, vec![]);
        no_set.fields.retain(|f| f.kind != field::SET);
        let Ok(Request::Read { key, .. }) = decode(&no_set) else {
            panic!()
        };
        assert_eq!(key.set, "");

        let user_key = |data: &'static [u8]| match with(field::KEY, data) {
            Ok(Request::Read { key, .. }) => Ok(key.user_key.unwrap()),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.code),
        };
        assert_eq!(user_key(&[1, 0, 0, 0, 0, 0, 0, 0, 7]), Ok(UserKey::Int(7)));
        assert_eq!(user_key(&[1, 7]), Err(ResultCode::Parameter));
        assert_eq!(user_key(b"\x03k1"), Ok(UserKey::Str("k1".into())));
        assert_eq!(user_key(b"\x03\xff"), Err(ResultCode::Parameter));
        assert_eq!(user_key(b"\x04\xff"), Ok(UserKey::Blob(4, vec![0xff])));
        assert_eq!(user_key(b"\x09\xff"), Ok(UserKey::Blob(9, vec![0xff])));
        assert_eq!(
            user_key(&[2, 0x40, 0, 0, 0, 0, 0, 0, 0]),
            Ok(UserKey::Float(2.0))
        );
        assert_eq!(user_key(b"\x14\x90"), Err(ResultCode::Parameter));
        assert_eq!(user_key(b""), Err(ResultCode::Parameter));
    }

    #[test]
    fn reads() {
        let read =
            |info1: u8, info3: u8, ops: Vec<MsgOp>| decode(&msg([info1, 0, info3, 0], 0, 0, ops));
        let bins = |r: Result<Request, RequestError>| match r {
            Ok(Request::Read { bins, .. }) => bins,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            bins(read(info1::READ | info1::GET_ALL, 0, vec![])),
            ReadBins::All
        );
        assert_eq!(bins(read(info1::READ, 0, vec![])), ReadBins::Named(vec![]));
        assert_eq!(
            bins(read(info1::READ | info1::GET_NO_BINS, 0, vec![])),
            ReadBins::NoBins
        );
        assert_eq!(
            bins(read(
                info1::READ,
                0,
                vec![mop(op::READ, 0, b"a", b""), mop(op::READ, 0, b"b", b"")]
            )),
            ReadBins::Named(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            bins(read(
                info1::READ,
                0,
                vec![mop(op::READ, 0, b"a", b""), mop(op::READ, 0, b"", b"")]
            )),
            ReadBins::All
        );
        assert_eq!(
            code(read(
                info1::READ,
                0,
                vec![mop(op::READ, 0, &[b'x'; 16], b"")]
            )),
            ResultCode::BinName
        );
        assert_eq!(
            code(read(info1::READ, 0, vec![mop(op::READ, 0, b"\xff", b"")])),
            ResultCode::Parameter
        );
        assert!(matches!(
            read(
                info1::READ,
                0,
                vec![mop(op::CDT_READ, 4, b"l", b"\x91\x10")]
            ),
            Ok(Request::Read {
                bins: ReadBins::Ops(_),
                ..
            })
        ));
        assert_eq!(
            code(read(info1::READ, 0, vec![write_int(b"a")])),
            ResultCode::Parameter
        );
        assert_eq!(
            code(read(
                info1::READ,
                0,
                vec![mop(op::CDT_MODIFY, 4, b"l", b"\x91\x01")]
            )),
            ResultCode::Parameter
        );

        let mode = |info3: u8| match read(info1::READ, info3, vec![]) {
            Ok(Request::Read { mode, .. }) => mode,
            other => panic!("{other:?}"),
        };
        assert_eq!(mode(0), ReadMode::Session);
        assert_eq!(mode(0x40), ReadMode::Linearize);
        assert_eq!(mode(0x80), ReadMode::AllowReplica);
        assert_eq!(mode(0xC0), ReadMode::AllowUnavailable);
    }

    fn write(
        info: [u8; 4],
        generation: u32,
        ttl: u32,
        ops: Vec<MsgOp>,
    ) -> Result<Request, RequestError> {
        decode(&msg(info, generation, ttl, ops))
    }

    #[test]
    fn write_ops() {
        let Ok(Request::Write { ops, .. }) = write(
            [info1::READ, info2::WRITE, 0, 0],
            0,
            0,
            vec![
                mop(op::WRITE, 0, b"gone", b""),
                mop(op::INCR, 1, b"n", &[5]),
                mop(op::APPEND, 3, b"s", b"xy"),
                mop(op::PREPEND, 4, b"b", b"\x00"),
                mop(op::TOUCH, 0, b"", b""),
                mop(op::READ, 0, b"n", b""),
                mop(op::DELETE_ALL, 0, b"", b""),
            ],
        ) else {
            panic!()
        };
        assert_eq!(
            ops,
            vec![
                Op::Write(Bin::new("gone", Value::Nil)),
                Op::Incr(Bin::new("n", Value::Int(5))),
                Op::Append(Bin::new("s", Value::Str(b"xy".to_vec()))),
                Op::Prepend(Bin::new("b", Value::Blob(4, vec![0]))),
                Op::Touch,
                Op::Read("n".into()),
                Op::DeleteAll,
            ]
        );
        let Ok(Request::Write { ops, .. }) = write(
            [info1::READ | info1::GET_ALL, info2::WRITE, 0, 0],
            0,
            0,
            vec![write_int(b"a"), mop(op::READ, 0, b"", b"")],
        ) else {
            panic!()
        };
        assert_eq!(
            ops,
            vec![Op::Write(Bin::new("a", Value::Int(1))), Op::ReadAll]
        );
    }

    #[test]
    fn write_rules() {
        let w = [0, info2::WRITE, 0, 0];
        assert_eq!(code(write(w, 0, 0, vec![])), ResultCode::Parameter);
        assert_eq!(
            code(write(w, 0, 0, vec![write_int(&[b'x'; 16])])),
            ResultCode::BinName
        );
        assert!(write(w, 0, 0, vec![write_int(&[b'x'; 15])]).is_ok());
        assert_eq!(
            code(write(w, 0, 0, vec![write_int(b"\xff")])),
            ResultCode::Parameter
        );
        assert_eq!(
            code(write(w, 0, 0, vec![mop(op::WRITE, 1, b"a", &[0; 3])])),
            ResultCode::Parameter
        );
        assert_eq!(
            code(write(w, 0, 0, vec![mop(op::INCR, 0, b"a", b"")])),
            ResultCode::Parameter
        );
        for (t, family) in [
            (op::BITS_MODIFY, OpFamily::Bit),
            (op::HLL_MODIFY, OpFamily::Hll),
            (op::EXP_MODIFY, OpFamily::Exp),
        ] {
            let Ok(Request::Write { ops, .. }) = write(w, 0, 0, vec![mop(t, 4, b"a", b"\x91\x01")])
            else {
                panic!("op {t}")
            };
            assert_eq!(
                ops,
                vec![Op::Compute {
                    family,
                    bin: "a".into(),
                    payload: b"\x91\x01".to_vec(),
                    modify: true
                }]
            );
        }
        for unknown in [0u8, 6, 17, 18, 19, 255] {
            assert_eq!(
                code(write(w, 0, 0, vec![mop(unknown, 0, b"a", b"")])),
                ResultCode::Parameter,
                "op {unknown}"
            );
        }
        let mut lut = write_int(b"a");
        lut.flags = OP_FLAG_HAS_LUT;
        assert_eq!(code(write(w, 0, 0, vec![lut])), ResultCode::Parameter);
        // Reads inside a write need info1 READ; read-all rules.
        assert_eq!(
            code(write(w, 0, 0, vec![mop(op::READ, 0, b"a", b"")])),
            ResultCode::Parameter
        );
        let rw = [info1::READ, info2::WRITE, 0, 0];
        let read_all = || mop(op::READ, 0, b"", b"");
        assert_eq!(
            code(write(rw, 0, 0, vec![read_all(), read_all()])),
            ResultCode::Parameter
        );
        assert_eq!(
            code(write(
                rw,
                0,
                0,
                vec![read_all(), mop(op::READ, 0, b"a", b"")]
            )),
            ResultCode::Parameter
        );
        let rao = [info1::READ, info2::WRITE | info2::RESPOND_ALL_OPS, 0, 0];
        assert_eq!(
            code(write(rao, 0, 0, vec![write_int(b"a"), read_all()])),
            ResultCode::Parameter
        );
        let get_all = [info1::READ | info1::GET_ALL, info2::WRITE, 0, 0];
        assert_eq!(
            code(write(get_all, 0, 0, vec![write_int(b"a")])),
            ResultCode::Parameter
        );
        // TTL values (§2.2).
        for ttl in [0, 1, MAX_TTL, TTL_DONT_UPDATE, TTL_NEVER_EXPIRE] {
            assert!(write(w, 0, ttl, vec![write_int(b"a")]).is_ok(), "ttl {ttl}");
        }
        for ttl in [MAX_TTL + 1, u32::MAX - 2] {
            assert_eq!(
                code(write(w, 0, ttl, vec![write_int(b"a")])),
                ResultCode::Parameter,
                "ttl {ttl}"
            );
        }
    }

    #[test]
    fn policies() {
        let policy = |info2: u8, info3: u8, gen: u32| match write(
            [0, info2::WRITE | info2, info3, 0],
            gen,
            0,
            vec![write_int(b"a")],
        ) {
            Ok(Request::Write {
                exists, generation, ..
            }) => Ok((exists, generation)),
            other => Err(code(other)),
        };
        assert_eq!(
            policy(0, 0, 9),
            Ok((ExistsPolicy::Ignore, GenerationPolicy::None))
        );
        assert_eq!(
            policy(info2::CREATE_ONLY, 0, 0).unwrap().0,
            ExistsPolicy::Create
        );
        assert_eq!(
            policy(0, info3::UPDATE_ONLY, 0).unwrap().0,
            ExistsPolicy::Update
        );
        assert_eq!(
            policy(0, info3::REPLACE_ONLY, 0).unwrap().0,
            ExistsPolicy::Replace
        );
        assert_eq!(
            policy(0, info3::CREATE_OR_REPLACE, 0).unwrap().0,
            ExistsPolicy::CreateOrReplace
        );
        assert_eq!(
            policy(info2::CREATE_ONLY, info3::UPDATE_ONLY, 0),
            Err(ResultCode::Parameter)
        );
        assert_eq!(
            policy(0, info3::REPLACE_ONLY | info3::CREATE_OR_REPLACE, 0),
            Err(ResultCode::Parameter)
        );
        assert_eq!(
            policy(info2::GENERATION, 0, 7).unwrap().1,
            GenerationPolicy::Eq(7)
        );
        assert_eq!(
            policy(info2::GENERATION_GT, 0, 65535).unwrap().1,
            GenerationPolicy::Gt(65535)
        );
        assert_eq!(
            policy(info2::GENERATION, 0, 65536),
            Err(ResultCode::Parameter)
        );
        assert_eq!(
            policy(info2::GENERATION | info2::GENERATION_GT, 0, 1),
            Err(ResultCode::Parameter)
        );

        // Replace policies refuse ops that need the old record.
        let replace = [0, info2::WRITE, info3::REPLACE_ONLY, 0];
        for bad in [
            mop(op::TOUCH, 0, b"", b""),
            mop(op::WRITE, 0, b"a", b""),
            mop(op::INCR, 1, b"a", &ONE),
            mop(op::APPEND, 3, b"a", b"x"),
            mop(op::PREPEND, 3, b"a", b"x"),
            mop(op::DELETE_ALL, 0, b"", b""),
        ] {
            assert_eq!(
                code(write(replace, 0, 0, vec![bad])),
                ResultCode::Parameter,
                "{bad:?}"
            );
        }
        assert!(write(replace, 0, 0, vec![write_int(b"a")]).is_ok());

        // Flags carried through.
        let Ok(Request::Write {
            respond_all_ops,
            durable_delete,
            commit_master,
            record_ttl,
            ..
        }) = write(
            [
                0,
                info2::WRITE | info2::RESPOND_ALL_OPS | info2::DURABLE_DELETE,
                info3::COMMIT_MASTER,
                0,
            ],
            0,
            25000,
            vec![write_int(b"a")],
        )
        else {
            panic!()
        };
        assert!(respond_all_ops && durable_delete && commit_master);
        assert_eq!(record_ttl, 25000);
    }

    #[test]
    fn deletes() {
        let del = write(
            [0, info2::WRITE | info2::DELETE | info2::GENERATION, 0, 0],
            3,
            0,
            vec![],
        );
        assert_eq!(
            del,
            Ok(Request::Delete {
                key: k1(),
                generation: GenerationPolicy::Eq(3),
                durable_delete: false
            })
        );
        // The DELETE bit decides; ops are ignored as the server ignores them.
        let del = write(
            [
                0,
                info2::WRITE | info2::DELETE | info2::DURABLE_DELETE,
                0,
                0,
            ],
            0,
            0,
            vec![write_int(b"a")],
        );
        assert_eq!(
            del,
            Ok(Request::Delete {
                key: k1(),
                generation: GenerationPolicy::None,
                durable_delete: true
            })
        );
    }

    #[test]
    fn ttl_resolution() {
        let now = 1_000;
        assert_eq!(ttl_to_void_time(0, now, 0), Ok(Expiry::Set(0)));
        assert_eq!(ttl_to_void_time(0, now, 50), Ok(Expiry::Set(1_050)));
        assert_eq!(ttl_to_void_time(1, now, 50), Ok(Expiry::Set(1_001)));
        assert_eq!(
            ttl_to_void_time(MAX_TTL, now, 0),
            Ok(Expiry::Set(now + MAX_TTL))
        );
        assert_eq!(
            ttl_to_void_time(MAX_TTL + 1, now, 0),
            Err(ResultCode::Parameter)
        );
        assert_eq!(ttl_to_void_time(u32::MAX, now, 50), Ok(Expiry::Set(0)));
        assert_eq!(
            ttl_to_void_time(u32::MAX - 1, now, 50),
            Ok(Expiry::Keep { if_new: 1_050 })
        );
        assert_eq!(
            ttl_to_void_time(u32::MAX - 1, now, 0),
            Ok(Expiry::Keep { if_new: 0 })
        );
        assert_eq!(
            ttl_to_void_time(u32::MAX - 2, now, 0),
            Err(ResultCode::Parameter)
        );
        assert_eq!(
            ttl_to_void_time(10, u32::MAX - 5, 0),
            Ok(Expiry::Set(u32::MAX))
        );
    }
}
