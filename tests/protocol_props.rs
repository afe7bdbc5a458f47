//! Property tests for the wire codec (`strato::protocol`).
//!
//! - Hostile input: random bytes (and mutated valid requests) through the frame reader, the
//!   AS_MSG parser, `decode_request` and the msgpack validator never panic, and the largest
//!   single allocation they make stays proportional to the input actually supplied (a header
//!   announcing 2^40 bytes is an error, not an allocation). A counting global allocator
//!   measures this per thread.
//! - Round trips: requests built the way the C client builds them decode to the same key,
//!   policies and ops; any `Outcome` encodes to a frame that parses back to the same values;
//!   msgpack produced by `rmp` passes the validator.

use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use storage::command::{ExistsPolicy, GenerationPolicy, Op, OpFamily, Outcome};
use storage::record::{Bin, ResultCode, UserKey, Value};
use strato::protocol::message::{field, info1, info2, info3, op, AsMsg};
use strato::protocol::particle::{value_from_wire, Null};
use strato::protocol::{
    decode_request, decode_request_body, encode_response, msgpack, read_frame, KeyRef, ReadBins,
    ReadMode, Request, MAX_MSG_BODY,
};

// ---------------------------------------------------------------------------------------------
// Allocation tracking: the largest single allocation made on this thread since the last reset.

struct PeakAlloc;

thread_local! {
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = PEAK.try_with(|p| {
        if size > p.get() {
            p.set(size)
        }
    });
}

unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: PeakAlloc = PeakAlloc;

/// Run `f` and return its result with the largest single allocation it made.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    PEAK.with(|p| p.set(0));
    let out = f();
    (out, PEAK.with(|p| p.get()))
}

/// Readers over `&[u8]` are always ready: polling once with a no-op waker completes.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

const CHUNK: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// A request builder mirroring the C client (`as_command_write_header_*`, `as_command_write_key`,
// `as_command_write_bin`): NAMESPACE, SET (always, possibly empty), KEY (key policy SEND),
// DIGEST; ops with 8-byte integers. Written byte by byte, independent of the crate's encoder.

#[derive(Clone, Debug, Default)]
struct RequestBuilder {
    info1: u8,
    info2: u8,
    info3: u8,
    generation: u32,
    record_ttl: u32,
    timeout_ms: u32,
    fields: Vec<(u8, Vec<u8>)>,
    ops: Vec<(u8, u8, Vec<u8>, Vec<u8>)>,
}

impl RequestBuilder {
    fn key(mut self, namespace: &str, set: &str, key: &UserKey, send_key: bool) -> Self {
        self.fields
            .push((field::NAMESPACE, namespace.as_bytes().to_vec()));
        self.fields.push((field::SET, set.as_bytes().to_vec()));
        if send_key {
            let mut data = Vec::new();
            match key {
                UserKey::Int(i) => {
                    data.push(1);
                    data.extend_from_slice(&i.to_be_bytes());
                }
                UserKey::Float(f) => {
                    data.push(2);
                    data.extend_from_slice(&f.to_be_bytes());
                }
                UserKey::Str(s) => {
                    data.push(3);
                    data.extend_from_slice(s.as_bytes());
                }
                UserKey::Blob(t, b) => {
                    data.push(*t);
                    data.extend_from_slice(b);
                }
            }
            self.fields.push((field::KEY, data));
        }
        self.fields.push((field::DIGEST, key.digest(set).to_vec()));
        self
    }

    fn op(mut self, op: u8, name: &str, value: &Value) -> Self {
        let (particle, bytes) = match value {
            Value::Nil => (0, vec![]),
            Value::Int(i) => (1, i.to_be_bytes().to_vec()),
            Value::Float(f) => (2, f.to_be_bytes().to_vec()),
            Value::Str(b) => (3, b.clone()),
            Value::Blob(t, b) => (*t, b.clone()),
            Value::Bool(b) => (17, vec![u8::from(*b)]),
            Value::List(b) => (20, b.clone()),
            Value::Map(b) => (19, b.clone()),
            Value::GeoJson(b) => (23, b.clone()),
        };
        self.ops
            .push((op, particle, name.as_bytes().to_vec(), bytes));
        self
    }

    fn push_op(self, o: &Op) -> Self {
        match o {
            Op::Read(name) => self.op(op::READ, name, &Value::Nil),
            Op::ReadAll => self.op(op::READ, "", &Value::Nil),
            Op::Write(b) => self.op(op::WRITE, &b.name, &b.value),
            Op::Incr(b) => self.op(op::INCR, &b.name, &b.value),
            Op::Append(b) => self.op(op::APPEND, &b.name, &b.value),
            Op::Prepend(b) => self.op(op::PREPEND, &b.name, &b.value),
            Op::Touch => self.op(op::TOUCH, "", &Value::Nil),
            Op::DeleteAll => self.op(op::DELETE_ALL, "", &Value::Nil),
            Op::Cdt {
                bin,
                payload,
                modify,
            } => {
                let kind = if *modify {
                    op::CDT_MODIFY
                } else {
                    op::CDT_READ
                };
                self.op(kind, bin, &Value::Blob(4, payload.clone()))
            }
            Op::Compute {
                family,
                bin,
                payload,
                modify,
            } => {
                let kind = match (family, modify) {
                    (OpFamily::Exp, false) => op::EXP_READ,
                    (OpFamily::Exp, true) => op::EXP_MODIFY,
                    (OpFamily::Bit, false) => op::BITS_READ,
                    (OpFamily::Bit, true) => op::BITS_MODIFY,
                    (OpFamily::Hll, false) => op::HLL_READ,
                    (OpFamily::Hll, true) => op::HLL_MODIFY,
                };
                self.op(kind, bin, &Value::Blob(4, payload.clone()))
            }
            // A filter travels as the FILTER field, never as an op.
            Op::Filter(_) => unreachable!("not generated"),
        }
    }

    /// The whole frame, proto header included.
    fn build(&self) -> Vec<u8> {
        let mut body = vec![22, self.info1, self.info2, self.info3, 0, 0];
        body.extend_from_slice(&self.generation.to_be_bytes());
        body.extend_from_slice(&self.record_ttl.to_be_bytes());
        body.extend_from_slice(&self.timeout_ms.to_be_bytes());
        body.extend_from_slice(&(self.fields.len() as u16).to_be_bytes());
        body.extend_from_slice(&(self.ops.len() as u16).to_be_bytes());
        for (kind, data) in &self.fields {
            body.extend_from_slice(&(data.len() as u32 + 1).to_be_bytes());
            body.push(*kind);
            body.extend_from_slice(data);
        }
        for (o, particle, name, value) in &self.ops {
            body.extend_from_slice(&((4 + name.len() + value.len()) as u32).to_be_bytes());
            body.extend_from_slice(&[*o, *particle, 0, name.len() as u8]);
            body.extend_from_slice(name);
            body.extend_from_slice(value);
        }
        let mut frame = ((2u64 << 56) | (3u64 << 48) | body.len() as u64)
            .to_be_bytes()
            .to_vec();
        frame.extend(body);
        frame
    }
}

fn decode_frame(frame: &[u8]) -> Result<Request, ResultCode> {
    let mut cursor = frame;
    let f = block_on(read_frame(&mut cursor, MAX_MSG_BODY))
        .expect("frame")
        .expect("not EOF");
    assert!(cursor.is_empty());
    assert_eq!(f.kind, 3);
    decode_request_body(&f.body).map_err(|e| e.code)
}

// ---------------------------------------------------------------------------------------------
// Strategies.

/// A msgpack value tree, encoded with rmp.
#[derive(Clone, Debug)]
enum Mp {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    F32(f32),
    F64(f64),
    Str(Vec<u8>),
    Bin(Vec<u8>),
    Ext(i8, Vec<u8>),
    Array(Vec<Mp>),
    Map(Vec<(Mp, Mp)>),
}

fn arb_mp() -> impl Strategy<Value = Mp> {
    let leaf = prop_oneof![
        Just(Mp::Nil),
        any::<bool>().prop_map(Mp::Bool),
        any::<i64>().prop_map(Mp::Int),
        any::<u64>().prop_map(Mp::UInt),
        any::<f32>().prop_map(Mp::F32),
        any::<f64>().prop_map(Mp::F64),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Mp::Str),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Mp::Bin),
        (any::<i8>(), proptest::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(t, d)| Mp::Ext(t, d)),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Mp::Array),
            proptest::collection::vec((inner.clone(), inner), 0..8).prop_map(Mp::Map),
        ]
    })
}

fn encode_mp(v: &Mp, out: &mut Vec<u8>) {
    use rmp::encode::*;
    match v {
        Mp::Nil => write_nil(out).unwrap(),
        Mp::Bool(b) => write_bool(out, *b).unwrap(),
        Mp::Int(i) => {
            write_sint(out, *i).unwrap();
        }
        Mp::UInt(u) => {
            write_uint(out, *u).unwrap();
        }
        Mp::F32(f) => write_f32(out, *f).unwrap(),
        Mp::F64(f) => write_f64(out, *f).unwrap(),
        Mp::Str(s) => {
            write_str_len(out, s.len() as u32).unwrap();
            out.extend_from_slice(s);
        }
        Mp::Bin(b) => {
            write_bin_len(out, b.len() as u32).unwrap();
            out.extend_from_slice(b);
        }
        Mp::Ext(t, d) => {
            write_ext_meta(out, d.len() as u32, *t).unwrap();
            out.extend_from_slice(d);
        }
        Mp::Array(items) => {
            write_array_len(out, items.len() as u32).unwrap();
            items.iter().for_each(|i| encode_mp(i, out));
        }
        Mp::Map(pairs) => {
            write_map_len(out, pairs.len() as u32).unwrap();
            for (k, v) in pairs {
                encode_mp(k, out);
                encode_mp(v, out);
            }
        }
    }
}

fn mp_bytes(v: &Mp) -> Vec<u8> {
    let mut out = Vec::new();
    encode_mp(v, &mut out);
    out
}

fn finite_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1e300..1e300f64,
        Just(0.0),
        Just(-0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE)
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// A non-NULL bin value as a client may send it.
fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Int),
        finite_f64().prop_map(Value::Float),
        bytes(64).prop_map(Value::Str),
        (prop_oneof![Just(4u8), 7u8..=12, Just(18u8)], bytes(64))
            .prop_map(|(t, b)| Value::Blob(t, b)),
        any::<bool>().prop_map(Value::Bool),
        proptest::collection::vec(arb_mp(), 0..6)
            .prop_map(|items| Value::List(mp_bytes(&Mp::Array(items)))),
        proptest::collection::vec((arb_mp(), arb_mp()), 0..6)
            .prop_map(|pairs| Value::Map(mp_bytes(&Mp::Map(pairs)))),
        "[a-z0-9 ,:{}\\[\\]\"]{0,40}".prop_map(|json| {
            let mut b = vec![0, 0, 0];
            b.extend_from_slice(json.as_bytes());
            Value::GeoJson(b)
        }),
    ]
}

fn bin_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_]{1,15}"
}

fn arb_user_key() -> impl Strategy<Value = UserKey> {
    prop_oneof![
        any::<i64>().prop_map(UserKey::Int),
        finite_f64().prop_map(UserKey::Float),
        ".{0,20}".prop_map(UserKey::Str),
        (prop_oneof![Just(4u8), 7u8..=12], bytes(32)).prop_map(|(t, b)| UserKey::Blob(t, b)),
    ]
}

#[derive(Clone, Debug)]
struct KeySpec {
    namespace: String,
    set: String,
    key: UserKey,
    send_key: bool,
}

impl KeySpec {
    fn expected(&self) -> KeyRef {
        KeyRef {
            namespace: self.namespace.clone(),
            set: self.set.clone(),
            digest: self.key.digest(&self.set),
            user_key: self.send_key.then(|| self.key.clone()),
        }
    }
}

fn arb_key() -> impl Strategy<Value = KeySpec> {
    (
        "[a-z][a-z0-9_-]{0,30}",
        "[a-zA-Z0-9_]{0,63}",
        arb_user_key(),
        any::<bool>(),
    )
        .prop_map(|(namespace, set, key, send_key)| KeySpec {
            namespace,
            set,
            key,
            send_key,
        })
}

fn arb_exists() -> impl Strategy<Value = ExistsPolicy> {
    prop_oneof![
        Just(ExistsPolicy::Ignore),
        Just(ExistsPolicy::Create),
        Just(ExistsPolicy::Update),
        Just(ExistsPolicy::Replace),
        Just(ExistsPolicy::CreateOrReplace),
    ]
}

fn arb_generation() -> impl Strategy<Value = GenerationPolicy> {
    prop_oneof![
        Just(GenerationPolicy::None),
        any::<u16>().prop_map(GenerationPolicy::Eq),
        any::<u16>().prop_map(GenerationPolicy::Gt),
    ]
}

fn arb_ttl() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        1u32..=315_360_000,
        Just(u32::MAX),
        Just(u32::MAX - 1)
    ]
}

/// A write op valid under any exists policy (`replace = true`) or under the merging ones.
fn arb_write_op(replace: bool) -> BoxedStrategy<Op> {
    let write = (bin_name(), arb_value()).prop_map(|(n, v)| Op::Write(Bin::new(n, v)));
    if replace {
        return write.boxed();
    }
    prop_oneof![
        4 => write,
        1 => bin_name().prop_map(|n| Op::Write(Bin::new(n, Value::Nil))),
        1 => (bin_name(), arb_value()).prop_map(|(n, v)| Op::Incr(Bin::new(n, v))),
        1 => (bin_name(), arb_value()).prop_map(|(n, v)| Op::Append(Bin::new(n, v))),
        1 => (bin_name(), arb_value()).prop_map(|(n, v)| Op::Prepend(Bin::new(n, v))),
        1 => Just(Op::Touch),
        1 => Just(Op::DeleteAll),
        1 => (
            bin_name(),
            prop_oneof![Just(OpFamily::Exp), Just(OpFamily::Bit), Just(OpFamily::Hll)],
            proptest::collection::vec(any::<u8>(), 0..16),
        )
            .prop_map(|(bin, family, payload)| Op::Compute {
                family,
                bin,
                payload,
                modify: true,
            }),
    ]
    .boxed()
}

#[derive(Clone, Debug)]
enum Reads {
    None,
    All,
    Named(Vec<String>),
}

#[derive(Clone, Debug)]
struct WriteSpec {
    key: KeySpec,
    exists: ExistsPolicy,
    generation: GenerationPolicy,
    ttl: u32,
    ops: Vec<Op>,
    respond_all_ops: bool,
    durable_delete: bool,
    commit_master: bool,
}

fn arb_write() -> impl Strategy<Value = WriteSpec> {
    (
        arb_key(),
        arb_exists(),
        arb_generation(),
        arb_ttl(),
        any::<[bool; 3]>(),
    )
        .prop_flat_map(
            |(key, exists, generation, ttl, [respond_all_ops, durable_delete, commit_master])| {
                let replace = matches!(
                    exists,
                    ExistsPolicy::Replace | ExistsPolicy::CreateOrReplace
                );
                let reads = if respond_all_ops {
                    prop_oneof![
                        Just(Reads::None),
                        proptest::collection::vec(bin_name(), 1..4).prop_map(Reads::Named)
                    ]
                    .boxed()
                } else {
                    prop_oneof![
                        Just(Reads::None),
                        Just(Reads::All),
                        proptest::collection::vec(bin_name(), 1..4).prop_map(Reads::Named)
                    ]
                    .boxed()
                };
                (
                    proptest::collection::vec(arb_write_op(replace), 1..8),
                    reads,
                    any::<prop::sample::Index>(),
                )
                    .prop_map(move |(mut ops, reads, at)| {
                        let read_ops = match reads {
                            Reads::None => vec![],
                            Reads::All => vec![Op::ReadAll],
                            Reads::Named(names) => names.into_iter().map(Op::Read).collect(),
                        };
                        let at = at.index(ops.len() + 1);
                        ops.splice(at..at, read_ops);
                        WriteSpec {
                            key: key.clone(),
                            exists,
                            generation,
                            ttl,
                            ops,
                            respond_all_ops,
                            durable_delete,
                            commit_master,
                        }
                    })
            },
        )
}

/// Header bits exactly as the C client sets them for a write (`as_command_write_header_write`
/// plus the operate read bits).
fn write_builder(w: &WriteSpec) -> RequestBuilder {
    let mut b = RequestBuilder {
        info2: info2::WRITE,
        record_ttl: w.ttl,
        timeout_ms: 1000,
        ..Default::default()
    };
    match w.exists {
        ExistsPolicy::Ignore => {}
        ExistsPolicy::Create => b.info2 |= info2::CREATE_ONLY,
        ExistsPolicy::Update => b.info3 |= info3::UPDATE_ONLY,
        ExistsPolicy::Replace => b.info3 |= info3::REPLACE_ONLY,
        ExistsPolicy::CreateOrReplace => b.info3 |= info3::CREATE_OR_REPLACE,
    }
    match w.generation {
        GenerationPolicy::None => {}
        GenerationPolicy::Eq(g) => {
            b.info2 |= info2::GENERATION;
            b.generation = u32::from(g);
        }
        GenerationPolicy::Gt(g) => {
            b.info2 |= info2::GENERATION_GT;
            b.generation = u32::from(g);
        }
    }
    if w.respond_all_ops {
        b.info2 |= info2::RESPOND_ALL_OPS;
    }
    if w.durable_delete {
        b.info2 |= info2::DURABLE_DELETE;
    }
    if w.commit_master {
        b.info3 |= info3::COMMIT_MASTER;
    }
    for o in &w.ops {
        match o {
            Op::ReadAll => b.info1 |= info1::READ | info1::GET_ALL,
            Op::Read(_) => b.info1 |= info1::READ,
            _ => {}
        }
    }
    let mut b = b.key(&w.key.namespace, &w.key.set, &w.key.key, w.key.send_key);
    for o in &w.ops {
        b = b.push_op(o);
    }
    b
}

fn arb_result_code() -> impl Strategy<Value = ResultCode> {
    use ResultCode::*;
    prop::sample::select(vec![
        Ok,
        ServerError,
        NotFound,
        Generation,
        Parameter,
        RecordExists,
        BinExists,
        Timeout,
        Unavailable,
        IncompatibleType,
        RecordTooBig,
        KeyBusy,
        UnsupportedFeature,
        BinNotFound,
        DeviceOverload,
        KeyMismatch,
        Namespace,
        BinName,
        Forbidden,
        EnterpriseOnly,
        OpNotApplicable,
        FilteredOut,
        SecurityNotEnabled,
    ])
}

// ---------------------------------------------------------------------------------------------
// Hostile input.

/// Bound on the largest single allocation while handling `input_len` hostile bytes: parsed
/// fields/ops vectors cost a few words per 5–8 input bytes; the frame reader may run one
/// 64 KiB chunk ahead of the data.
fn alloc_bound(input_len: usize) -> usize {
    8 * input_len + CHUNK + 1024
}

/// Frame headers worth fuzzing: random, plus valid ones announcing any size.
fn arb_frame_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        bytes(512),
        (0u8..=6, any::<u64>(), bytes(512)).prop_map(|(kind, size, body)| {
            let size = size & 0xFFFF_FFFF_FFFF;
            let mut v = ((2u64 << 56) | (u64::from(kind) << 48) | size)
                .to_be_bytes()
                .to_vec();
            v.extend(body);
            v
        }),
        (1u8..=4, 0u64..=(2 * MAX_MSG_BODY as u64), bytes(4096)).prop_map(|(kind, size, body)| {
            let mut v = ((2u64 << 56) | (u64::from(kind) << 48) | size)
                .to_be_bytes()
                .to_vec();
            v.extend(body);
            v
        }),
    ]
}

/// Flip a few bytes of a valid request frame's body.
fn mutate(mut frame: Vec<u8>, edits: &[(prop::sample::Index, u8)]) -> Vec<u8> {
    let body_len = frame.len() - 8;
    for (at, byte) in edits {
        let i = 8 + at.index(body_len);
        frame[i] = *byte;
    }
    frame
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn frame_reader_survives_anything(input in arb_frame_input(), max in prop_oneof![Just(usize::MAX), 0usize..100_000]) {
        let mut cursor = &input[..];
        let (result, peak) = peak_during(|| block_on(read_frame(&mut cursor, max)));
        prop_assert!(peak <= alloc_bound(input.len()), "peak {} for {} input bytes", peak, input.len());
        if let Ok(Some(frame)) = result {
            prop_assert!(frame.body.len() <= max);
            prop_assert_eq!(&frame.body[..], &input[8..8 + frame.body.len()]);
        }
    }

    #[test]
    fn message_parser_and_decoder_survive_anything(body in prop_oneof![
        bytes(256),
        // A plausible header with random counts, then random bytes.
        (any::<[u8; 21]>(), bytes(256)).prop_map(|(h, rest)| {
            let mut v = vec![22];
            v.extend_from_slice(&h);
            v.extend(rest);
            v
        }),
    ]) {
        let (_, peak) = peak_during(|| {
            if let Ok(msg) = AsMsg::parse(&body) {
                let _ = decode_request(&msg);
            }
            let _ = decode_request_body(&body);
        });
        prop_assert!(peak <= alloc_bound(body.len()), "peak {} for {} bytes", peak, body.len());
    }

    #[test]
    fn mutated_requests_never_panic(w in arb_write(), edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let frame = mutate(write_builder(&w).build(), &edits);
        let (_, peak) = peak_during(|| decode_request_body(&frame[8..]));
        prop_assert!(peak <= alloc_bound(frame.len()), "peak {}", peak);
    }

    #[test]
    fn msgpack_validator_survives_anything(input in bytes(512)) {
        let (_, peak) = peak_during(|| {
            let _ = msgpack::validate(&input);
            let _ = value_from_wire(19, &input, Null::Rejected);
            let _ = value_from_wire(20, &input, Null::Rejected);
        });
        prop_assert!(peak <= input.len() + 64);
    }
}

#[test]
fn frame_claiming_two_to_the_40_is_an_error_not_an_allocation() {
    let header = ((2u64 << 56) | (3u64 << 48) | (1u64 << 40)).to_be_bytes();
    let mut cursor = &header[..];
    let (result, peak) = peak_during(|| block_on(read_frame(&mut cursor, usize::MAX)));
    assert!(
        matches!(result, Err(strato::protocol::FrameError::Oversize { .. })),
        "{result:?}"
    );
    assert!(peak < 1024, "peak {peak}");
}

#[test]
fn a_stalled_large_frame_costs_at_most_one_chunk() {
    // Announces just under 8 MiB, delivers 100 bytes.
    let mut input = ((2u64 << 56) | (3u64 << 48) | (MAX_MSG_BODY as u64 - 1))
        .to_be_bytes()
        .to_vec();
    input.extend_from_slice(&[0; 100]);
    let mut cursor = &input[..];
    let (result, peak) = peak_during(|| block_on(read_frame(&mut cursor, usize::MAX)));
    assert!(
        matches!(result, Err(strato::protocol::FrameError::Truncated { .. })),
        "{result:?}"
    );
    assert!(peak <= CHUNK + 1024, "peak {peak}");
}

// ---------------------------------------------------------------------------------------------
// Round trips.

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn c_client_writes_decode_to_what_was_sent(w in arb_write()) {
        let got = decode_frame(&write_builder(&w).build());
        let want = Request::Write {
            key: w.key.expected(),
            exists: w.exists,
            generation: w.generation,
            record_ttl: w.ttl,
            ops: w.ops.clone(),
            respond_all_ops: w.respond_all_ops,
            durable_delete: w.durable_delete,
            commit_master: w.commit_master,
        };
        prop_assert_eq!(got, Ok(want));
    }

    #[test]
    fn c_client_reads_decode_to_what_was_sent(
        key in arb_key(),
        bins in prop_oneof![
            Just(ReadBins::All),
            Just(ReadBins::NoBins),
            proptest::collection::vec(bin_name(), 1..6).prop_map(ReadBins::Named),
        ],
        mode in prop::sample::select(vec![
            ReadMode::Session, ReadMode::Linearize, ReadMode::AllowReplica, ReadMode::AllowUnavailable,
        ]),
        read_touch_ttl in any::<u32>(),
    ) {
        let mut b = RequestBuilder { info1: info1::READ, record_ttl: read_touch_ttl, timeout_ms: 1000, ..Default::default() };
        b.info3 = match mode {
            ReadMode::Session => 0,
            ReadMode::Linearize => info3::SC_READ_TYPE,
            ReadMode::AllowReplica => info3::SC_READ_RELAX,
            ReadMode::AllowUnavailable => info3::SC_READ_TYPE | info3::SC_READ_RELAX,
        };
        b = b.key(&key.namespace, &key.set, &key.key, key.send_key);
        match &bins {
            ReadBins::All => b.info1 |= info1::GET_ALL,
            ReadBins::NoBins => b.info1 |= info1::GET_NO_BINS,
            ReadBins::Named(names) => {
                for n in names {
                    b = b.op(op::READ, n, &Value::Nil);
                }
            }
            // Not generated: the strategy below picks the other three.
            ReadBins::Ops(_) => unreachable!("not generated"),
        }
        let got = decode_frame(&b.build());
        prop_assert_eq!(got, Ok(Request::Read { key: key.expected(), bins, mode, touch_pct: read_touch_ttl, filter: None }));
    }

    #[test]
    fn c_client_deletes_decode_to_what_was_sent(key in arb_key(), generation in arb_generation(), durable in any::<bool>()) {
        let w = WriteSpec {
            key: key.clone(),
            exists: ExistsPolicy::Ignore,
            generation,
            ttl: 0,
            ops: vec![],
            respond_all_ops: false,
            durable_delete: durable,
            commit_master: false,
        };
        let mut b = write_builder(&w);
        b.info2 |= info2::DELETE;
        let got = decode_frame(&b.build());
        prop_assert_eq!(got, Ok(Request::Delete { key: key.expected(), generation, durable_delete: durable }));
    }

    #[test]
    fn outcomes_encode_and_parse_back(
        code in arb_result_code(),
        generation in any::<u16>(),
        void_time in any::<u32>(),
        bins in proptest::collection::vec(
            (prop_oneof![Just(String::new()), bin_name()], prop_oneof![9 => arb_value(), 1 => Just(Value::Nil)]),
            0..12,
        ),
    ) {
        let outcome = Outcome { code, generation, void_time, bins };
        let frame = encode_response(&outcome);
        let mut cursor = &frame[..];
        let f = block_on(read_frame(&mut cursor, MAX_MSG_BODY)).unwrap().unwrap();
        prop_assert!(cursor.is_empty());
        prop_assert_eq!(f.kind, 3);
        prop_assert_eq!(f.body[0], 22);
        let msg = AsMsg::parse(&f.body).unwrap();
        let h = msg.header;
        prop_assert_eq!((h.info1, h.info2, h.info3, h.info4), (0, 0, 0, 0));
        prop_assert_eq!(h.result_code, code.code());
        prop_assert_eq!(h.generation, u32::from(generation));
        prop_assert_eq!(h.record_ttl, void_time);
        prop_assert_eq!(h.transaction_ttl, 0);
        prop_assert!(msg.fields.is_empty());
        prop_assert_eq!(msg.ops.len(), outcome.bins.len());
        for (o, (name, value)) in msg.ops.iter().zip(&outcome.bins) {
            prop_assert_eq!(o.op, op::READ);
            prop_assert_eq!(o.flags, 0);
            prop_assert_eq!(o.name, name.as_bytes());
            prop_assert_eq!(o.particle, value.particle_type());
            if matches!(value, Value::Int(_) | Value::Float(_)) {
                prop_assert_eq!(o.value.len(), 8);
            }
            prop_assert_eq!(&value_from_wire(o.particle, o.value, Null::Allowed).unwrap(), value);
        }
    }

    #[test]
    fn rmp_msgpack_is_accepted(v in arb_mp()) {
        let b = mp_bytes(&v);
        prop_assert_eq!(msgpack::validate(&b), Ok(()));
        // Any proper prefix is incomplete.
        if b.len() > 1 {
            prop_assert!(msgpack::validate(&b[..b.len() - 1]).is_err());
        }
        let mut trailing = b.clone();
        trailing.push(0xc0);
        prop_assert!(msgpack::validate(&trailing).is_err());
        match v {
            Mp::Array(_) => prop_assert_eq!(value_from_wire(20, &b, Null::Rejected), Ok(Value::List(b.clone()))),
            Mp::Map(_) => prop_assert_eq!(value_from_wire(19, &b, Null::Rejected), Ok(Value::Map(b.clone()))),
            _ => prop_assert!(value_from_wire(20, &b, Null::Rejected).is_err()),
        }
    }
}
