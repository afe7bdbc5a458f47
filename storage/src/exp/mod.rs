//! Aerospike filter expressions (wire spec §4.7): a msgpack tree whose nodes are
//! `[code, args…]`, evaluated against one record. Deterministic: time comes from the
//! caller (the leader's clock carried in a write command, the reading node's for a read),
//! so replicas evaluating the same command agree.
//!
//! A value that cannot be produced (a missing bin, a type mismatch) is *unknown*; `and`
//! and `or` absorb it where the other side decides, and a filter that ends unknown does not
//! pass, as in Aerospike.

use crate::cdt::context;
use crate::cdt::value::{compare, decode, CdtValue, List};
use crate::record::{Digest, Record, ResultCode, UserKey, Value};

pub mod op;
use std::cmp::Ordering;

/// The record and clock an expression reads.
pub struct Subject<'a> {
    /// None: the record does not exist.
    pub record: Option<&'a Record>,
    pub digest: &'a Digest,
    /// Seconds and milliseconds since 2010-01-01 (the command's clock).
    pub now: u32,
    pub now_ms: u64,
}

/// Why an expression produced no value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fail {
    Unknown,
    Bad(ResultCode),
}

type Eval = Result<CdtValue, Fail>;

const CITRUSLEAF_EPOCH_MS: u64 = 1_262_304_000_000;

fn bad() -> Fail {
    Fail::Bad(ResultCode::Parameter)
}

/// Whether the filter `exp` (its packed bytes) passes for `subject`. Malformed → 4.
pub fn passes(exp: &[u8], subject: &Subject<'_>) -> Result<bool, ResultCode> {
    let tree = decode(exp).map_err(|_| ResultCode::Parameter)?;
    passes_tree(&tree, subject)
}

/// [`passes`] for an expression decoded once (a scan tests it against every record).
pub fn passes_tree(tree: &CdtValue, subject: &Subject<'_>) -> Result<bool, ResultCode> {
    match Evaluator::new(subject).eval(tree) {
        Ok(CdtValue::Bool(b)) => Ok(b),
        Ok(_) => Err(ResultCode::Parameter),
        Err(Fail::Unknown) => Ok(false),
        Err(Fail::Bad(code)) => Err(code),
    }
}

/// Evaluate a decoded expression tree for its value; `Ok(None)` = unknown (no value).
pub fn value_of(tree: &CdtValue, subject: &Subject<'_>) -> Result<Option<CdtValue>, ResultCode> {
    match Evaluator::new(subject).eval(tree) {
        Ok(v) => Ok(Some(v)),
        Err(Fail::Unknown) => Ok(None),
        Err(Fail::Bad(code)) => Err(code),
    }
}

/// A string argument as sent: raw msgpack str (bin and variable names carry no particle
/// byte, which the CDT decoder took for one).
fn raw_string(v: &CdtValue) -> Option<Vec<u8>> {
    match v {
        CdtValue::Str(s) => {
            let mut out = vec![3];
            out.extend_from_slice(s);
            Some(out)
        }
        CdtValue::Bytes(t, b) => {
            let mut out = vec![*t];
            out.extend_from_slice(b);
            Some(out)
        }
        _ => None,
    }
}

fn to_cdt(v: &Value) -> Result<CdtValue, Fail> {
    Ok(match v {
        Value::Nil => CdtValue::Nil,
        Value::Int(i) => CdtValue::Int(*i),
        Value::Float(f) => CdtValue::Float(*f),
        Value::Str(s) => CdtValue::Str(s.clone()),
        Value::Blob(t, b) => CdtValue::Bytes(*t, b.clone()),
        Value::Bool(b) => CdtValue::Bool(*b),
        Value::List(b) | Value::Map(b) => {
            decode(b).map_err(|_| Fail::Bad(ResultCode::ServerError))?
        }
        Value::GeoJson(b) => CdtValue::Bytes(23, b.clone()),
    })
}

struct Evaluator<'a> {
    s: &'a Subject<'a>,
    vars: Vec<(Vec<u8>, CdtValue)>,
}

impl<'a> Evaluator<'a> {
    fn new(s: &'a Subject<'a>) -> Evaluator<'a> {
        Evaluator {
            s,
            vars: Vec::new(),
        }
    }

    fn record(&self) -> Result<&'a Record, Fail> {
        self.s.record.ok_or(Fail::Unknown)
    }

    fn int(&mut self, e: &CdtValue) -> Result<i64, Fail> {
        match self.eval(e)? {
            CdtValue::Int(i) => Ok(i),
            _ => Err(Fail::Unknown),
        }
    }

    fn boolean(&mut self, e: &CdtValue) -> Result<bool, Fail> {
        match self.eval(e)? {
            CdtValue::Bool(b) => Ok(b),
            _ => Err(Fail::Unknown),
        }
    }

    fn eval(&mut self, e: &CdtValue) -> Eval {
        let CdtValue::List(node) = e else {
            // A literal (maps, scalars; lists arrive quoted).
            return Ok(e.clone());
        };
        let Some(CdtValue::Int(code)) = node.items.first() else {
            return Err(bad());
        };
        let args = &node.items[1..];
        let arg = |i: usize| args.get(i).ok_or_else(bad);
        match *code {
            1..=6 => {
                let (a, b) = (self.eval(arg(0)?)?, self.eval(arg(1)?)?);
                Ok(CdtValue::Bool(compare_op(*code, &a, &b)))
            }
            16 | 17 => {
                // and / or: the deciding value wins over unknown operands.
                let decisive = *code == 17;
                let mut unknown = false;
                for a in args {
                    match self.boolean(a) {
                        Ok(b) if b == decisive => return Ok(CdtValue::Bool(decisive)),
                        Ok(_) => {}
                        Err(Fail::Unknown) => unknown = true,
                        Err(f) => return Err(f),
                    }
                }
                if unknown {
                    Err(Fail::Unknown)
                } else {
                    Ok(CdtValue::Bool(!decisive))
                }
            }
            18 => Ok(CdtValue::Bool(!self.boolean(arg(0)?)?)),
            19 => {
                let mut n = 0;
                for a in args {
                    n += usize::from(self.boolean(a)?);
                }
                Ok(CdtValue::Bool(n == 1))
            }
            20..=29 | 50 | 51 => self.arithmetic(*code, args),
            30 => match self.eval(arg(0)?)? {
                CdtValue::Float(f) => Ok(CdtValue::Int(f as i64)),
                CdtValue::Int(i) => Ok(CdtValue::Int(i)),
                _ => Err(Fail::Unknown),
            },
            31 => match self.eval(arg(0)?)? {
                CdtValue::Int(i) => Ok(CdtValue::Float(i as f64)),
                CdtValue::Float(f) => Ok(CdtValue::Float(f)),
                _ => Err(Fail::Unknown),
            },
            32..=34 => {
                let mut acc = self.int(arg(0)?)?;
                for a in &args[1..] {
                    let v = self.int(a)?;
                    acc = match code {
                        32 => acc & v,
                        33 => acc | v,
                        _ => acc ^ v,
                    };
                }
                Ok(CdtValue::Int(acc))
            }
            35 => Ok(CdtValue::Int(!self.int(arg(0)?)?)),
            36..=38 => {
                let (v, n) = (self.int(arg(0)?)?, self.int(arg(1)?)?);
                let n = (n & 63) as u32;
                Ok(CdtValue::Int(match code {
                    36 => v.wrapping_shl(n),
                    37 => ((v as u64) >> n) as i64,
                    _ => v >> n,
                }))
            }
            39 => Ok(CdtValue::Int(i64::from(self.int(arg(0)?)?.count_ones()))),
            40 | 41 => {
                let v = self.int(arg(0)?)? as u64;
                let search = self.boolean(arg(1)?)?;
                let bits = if search { v } else { !v };
                Ok(CdtValue::Int(if bits == 0 {
                    -1
                } else if *code == 40 {
                    i64::from(bits.leading_zeros())
                } else {
                    63 - i64::from(bits.trailing_zeros())
                }))
            }
            64 => {
                let m = self.int(arg(0)?)?;
                if m <= 0 {
                    return Err(bad());
                }
                let d = self.s.digest;
                // Aerospike: digest bytes 8..12 read as a little-endian u32, modulo m.
                let v = u32::from_le_bytes([d[8], d[9], d[10], d[11]]);
                Ok(CdtValue::Int(i64::from(v) % m))
            }
            65 | 73 => Ok(CdtValue::Int(0)),
            66 => Ok(CdtValue::Int(
                ((self.record()?.last_update + CITRUSLEAF_EPOCH_MS) * 1_000_000) as i64,
            )),
            67 => Ok(CdtValue::Int(
                self.s.now_ms.saturating_sub(self.record()?.last_update) as i64,
            )),
            68 => {
                let vt = self.record()?.void_time;
                Ok(CdtValue::Int(if vt == 0 {
                    -1
                } else {
                    ((u64::from(vt) * 1000 + CITRUSLEAF_EPOCH_MS) * 1_000_000) as i64
                }))
            }
            69 => {
                let vt = self.record()?.void_time;
                Ok(CdtValue::Int(if vt == 0 {
                    -1
                } else {
                    i64::from(vt.saturating_sub(self.s.now))
                }))
            }
            70 => Ok(CdtValue::Str(self.record()?.set.as_bytes().to_vec())),
            71 => Ok(CdtValue::Bool(self.record()?.key.is_some())),
            72 => Ok(CdtValue::Bool(false)),
            74 => Ok(CdtValue::Int(self.record()?.size() as i64)),
            80 => match &self.record()?.key {
                Some(UserKey::Int(i)) => Ok(CdtValue::Int(*i)),
                Some(UserKey::Float(f)) => Ok(CdtValue::Float(*f)),
                Some(UserKey::Str(s)) => Ok(CdtValue::Str(s.as_bytes().to_vec())),
                Some(UserKey::Blob(t, b)) => Ok(CdtValue::Bytes(*t, b.clone())),
                None => Err(Fail::Unknown),
            },
            81 => {
                let name = raw_string(arg(1)?).ok_or_else(bad)?;
                let r = self.record()?;
                let v = r
                    .bins
                    .iter()
                    .find(|b| b.name.as_bytes() == name.as_slice())
                    .map(|b| &b.value)
                    .ok_or(Fail::Unknown)?;
                let v = to_cdt(v)?;
                if type_matches(self.int_literal(arg(0)?)?, &v) {
                    Ok(v)
                } else {
                    Err(Fail::Unknown)
                }
            }
            82 => {
                let name = raw_string(arg(0)?).ok_or_else(bad)?;
                let r = self.record()?;
                let t = r
                    .bins
                    .iter()
                    .find(|b| b.name.as_bytes() == name.as_slice())
                    .map_or(0, |b| b.value.particle_type());
                Ok(CdtValue::Int(i64::from(t)))
            }
            123 => {
                // cond: condition, value pairs, then the default.
                if args.len() % 2 != 1 {
                    return Err(bad());
                }
                for pair in args[..args.len() - 1].chunks_exact(2) {
                    if self.boolean(&pair[0])? {
                        return self.eval(&pair[1]);
                    }
                }
                self.eval(&args[args.len() - 1])
            }
            124 => {
                let name = raw_string(arg(0)?).ok_or_else(bad)?;
                self.vars
                    .iter()
                    .rev()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(bad)
            }
            125 => {
                // let: name, value pairs, then the scope expression.
                if args.len() % 2 != 1 {
                    return Err(bad());
                }
                let mark = self.vars.len();
                for pair in args[..args.len() - 1].chunks_exact(2) {
                    let name = raw_string(&pair[0]).ok_or_else(bad)?;
                    let v = self.eval(&pair[1])?;
                    self.vars.push((name, v));
                }
                let out = self.eval(&args[args.len() - 1]);
                self.vars.truncate(mark);
                out
            }
            7 => {
                // regex compare: flags, pattern (raw string), string expression
                let flags = self.int_literal(arg(0)?)?;
                let pattern = raw_string(arg(1)?).ok_or_else(bad)?;
                let CdtValue::Str(subject) = self.eval(arg(2)?)? else {
                    return Err(Fail::Unknown);
                };
                let found = regex_match(&pattern, flags, &subject).map_err(Fail::Bad)?;
                Ok(CdtValue::Bool(found))
            }
            8 => {
                // geo compare: a point within a region, either way round; a value that is
                // not GeoJSON is unknown, GeoJSON that is not a shape is bad input.
                let (CdtValue::Bytes(23, a), CdtValue::Bytes(23, b)) =
                    (self.eval(arg(0)?)?, self.eval(arg(1)?)?)
                else {
                    return Err(Fail::Unknown);
                };
                match (crate::geo::parse(&a), crate::geo::parse(&b)) {
                    (Some(a), Some(b)) => Ok(CdtValue::Bool(crate::geo::within_either(&a, &b))),
                    _ => Err(bad()),
                }
            }
            126 => Ok(arg(0)?.clone()),
            127 => self.call(args),
            _ => Err(Fail::Bad(ResultCode::UnsupportedFeature)),
        }
    }

    fn int_literal(&self, e: &CdtValue) -> Result<i64, Fail> {
        match e {
            CdtValue::Int(i) => Ok(*i),
            _ => Err(bad()),
        }
    }

    fn arithmetic(&mut self, code: i64, args: &[CdtValue]) -> Eval {
        let vals: Vec<CdtValue> = args
            .iter()
            .map(|a| self.eval(a))
            .collect::<Result<_, _>>()?;
        if vals.is_empty() {
            return Err(bad());
        }
        let floats = matches!(vals[0], CdtValue::Float(_));
        if vals.iter().any(|v| {
            !matches!(
                (v, floats),
                (CdtValue::Int(_), false) | (CdtValue::Float(_), true)
            )
        }) {
            return Err(Fail::Unknown);
        }
        if floats {
            let f: Vec<f64> = vals
                .iter()
                .map(|v| if let CdtValue::Float(f) = v { *f } else { 0.0 })
                .collect();
            let r = match code {
                20 => f.iter().sum(),
                21 => f[1..].iter().fold(f[0], |a, b| a - b),
                22 => f.iter().product(),
                23 => f[1..].iter().fold(f[0], |a, b| a / b),
                24 => f[0].powf(*f.get(1).ok_or_else(bad)?),
                25 => f[0].log(*f.get(1).ok_or_else(bad)?),
                27 => f[0].abs(),
                28 => f[0].floor(),
                29 => f[0].ceil(),
                50 => f.iter().copied().fold(f64::INFINITY, f64::min),
                51 => f.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                _ => return Err(Fail::Unknown),
            };
            return Ok(CdtValue::Float(r));
        }
        let i: Vec<i64> = vals
            .iter()
            .map(|v| if let CdtValue::Int(i) = v { *i } else { 0 })
            .collect();
        let r = match code {
            20 => i.iter().fold(0i64, |a, b| a.wrapping_add(*b)),
            21 if i.len() == 1 => i[0].wrapping_neg(),
            21 => i[1..].iter().fold(i[0], |a, b| a.wrapping_sub(*b)),
            22 => i.iter().fold(1i64, |a, b| a.wrapping_mul(*b)),
            23 => {
                let mut acc = i[0];
                for d in &i[1..] {
                    if *d == 0 {
                        return Err(Fail::Unknown);
                    }
                    acc = acc.wrapping_div(*d);
                }
                acc
            }
            26 => {
                let d = *i.get(1).ok_or_else(bad)?;
                if d == 0 {
                    return Err(Fail::Unknown);
                }
                i[0].wrapping_rem(d)
            }
            27 => i[0].wrapping_abs(),
            50 => *i.iter().min().unwrap_or(&0),
            51 => *i.iter().max().unwrap_or(&0),
            _ => return Err(Fail::Unknown),
        };
        Ok(CdtValue::Int(r))
    }

    /// `[127, return type, system, op, bin expression]`: a list or map read operation on a
    /// collection value.
    /// A call into an operation family on a value (`[return type, system, op, target]`):
    /// system 0 lists and maps, 1 bits, 2 HLL; flag 0x40 runs a modify operation on a
    /// local copy and yields the modified value. The op's arguments are expressions.
    fn call(&mut self, args: &[CdtValue]) -> Eval {
        let (Some(CdtValue::Int(system)), Some(CdtValue::List(op)), Some(target)) =
            (args.get(1), args.get(2), args.get(3))
        else {
            return Err(bad());
        };
        let modify = system & CALL_MODIFY != 0;
        let family = system & !CALL_MODIFY;
        let target = self.eval(target)?;
        // `[0xff, ctx, op]` runs the op inside a nested element (lists and maps only).
        let (ctx, op) = match op.items.as_slice() {
            [CdtValue::Int(0xff), CdtValue::List(ctx), CdtValue::List(inner)] => (Some(ctx), inner),
            _ => (None, op),
        };
        let Some(CdtValue::Int(code)) = op.items.first() else {
            return Err(bad());
        };
        let mut items = vec![CdtValue::Int(*code)];
        for a in &op.items[1..] {
            items.push(self.eval(a)?);
        }
        let result = match (family, ctx) {
            (CALL_CDT, ctx) => call_cdt(target, ctx, &items, modify),
            (CALL_BITS | CALL_HLL, None) => {
                let value = crate::cdt::to_particle(target.clone());
                let args = items.split_off(1);
                let effect = if family == CALL_BITS {
                    crate::bits::apply_op(Some(&value), *code, args, modify)
                } else {
                    crate::hll::apply_op(Some(&value), *code, &args, modify)
                };
                effect.and_then(|e| {
                    let out = match (modify, e.new_bin) {
                        (true, None) => return Ok(target),
                        (true, Some(v)) => v,
                        (false, _) => e.result,
                    };
                    to_cdt(&out).map_err(|_| ResultCode::Parameter)
                })
            }
            _ => Err(ResultCode::Parameter),
        };
        match result {
            Ok(v) => Ok(v),
            Err(ResultCode::IncompatibleType | ResultCode::OpNotApplicable) => Err(Fail::Unknown),
            Err(code) => Err(Fail::Bad(code)),
        }
    }
}

/// Call systems of the CALL expression, and its modify flag.
const CALL_CDT: i64 = 0;
const CALL_BITS: i64 = 1;
const CALL_HLL: i64 = 2;
const CALL_MODIFY: i64 = 0x40;

/// A list or map operation (`items` = code and evaluated arguments) on `target`, at `ctx`
/// when given: its result, or with `modify` the target as the operation leaves it.
fn call_cdt(
    target: CdtValue,
    ctx: Option<&List>,
    items: &[CdtValue],
    modify: bool,
) -> Result<CdtValue, ResultCode> {
    let Some(CdtValue::Int(code)) = items.first() else {
        return Err(ResultCode::Parameter);
    };
    let (code, args) = (*code, &items[1..]);
    if modify == crate::cdt::is_read_op(code) {
        return Err(ResultCode::Parameter);
    }
    // Only an existing list or map: a missing element or another type is unknown here.
    let run = |t: Option<CdtValue>| match t {
        Some(v @ (CdtValue::List(_) | CdtValue::Map(_))) if (0..=127).contains(&code) => {
            crate::cdt::apply_to(Some(v), code, args)
        }
        _ => Err(ResultCode::IncompatibleType),
    };
    let (result, changed) = match ctx {
        Some(ctx) => {
            let path = context::parse(&ctx.items)?;
            context::apply_at(Some(target.clone()), &path, run)?
        }
        None => run(Some(target.clone()))?,
    };
    Ok(if modify {
        changed.unwrap_or(target)
    } else {
        result
    })
}

/// POSIX regcomp flags as Aerospike's clients send them.
const REG_ICASE: i64 = 2;
const REG_NEWLINE: i64 = 8;
/// Compiled patterns a thread keeps (a scan's filter compiles its pattern once).
const REGEX_CACHE: usize = 8;

thread_local! {
    static REGEXES: std::cell::RefCell<Vec<(Vec<u8>, i64, regex::bytes::Regex)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether `pattern` (POSIX extended syntax, which Rust's regex syntax covers for common
/// patterns) matches anywhere in `subject`. Matching is linear-time and the compiled size
/// bounded, so a hostile pattern cannot stall apply. A pattern that does not compile: 4.
fn regex_match(pattern: &[u8], flags: i64, subject: &[u8]) -> Result<bool, ResultCode> {
    REGEXES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((_, _, re)) = cache.iter().find(|(p, f, _)| p == pattern && *f == flags) {
            return Ok(re.is_match(subject));
        }
        let text = std::str::from_utf8(pattern).map_err(|_| ResultCode::Parameter)?;
        let re = regex::bytes::RegexBuilder::new(text)
            .case_insensitive(flags & REG_ICASE != 0)
            .multi_line(flags & REG_NEWLINE != 0)
            .size_limit(1 << 20)
            .build()
            .map_err(|_| ResultCode::Parameter)?;
        let found = re.is_match(subject);
        if cache.len() == REGEX_CACHE {
            cache.remove(0);
        }
        cache.push((pattern.to_vec(), flags, re));
        Ok(found)
    })
}

/// Whether a bin's value has the type the expression expects (expression types: 0 nil,
/// 1 bool, 2 int, 3 string, 4 list, 5 map, 6 blob, 7 float, 8 geojson, 9 HLL).
fn type_matches(t: i64, v: &CdtValue) -> bool {
    matches!(
        (t, v),
        (0, CdtValue::Nil)
            | (1, CdtValue::Bool(_))
            | (2, CdtValue::Int(_))
            | (3, CdtValue::Str(_))
            | (4, CdtValue::List(_))
            | (5, CdtValue::Map(_))
            | (7, CdtValue::Float(_))
    ) || matches!((t, v), (6, CdtValue::Bytes(b, _)) if *b != 23 && *b != 18)
        || matches!(
            (t, v),
            (8, CdtValue::Bytes(23, _)) | (9, CdtValue::Bytes(18, _))
        )
}

fn same_kind(a: &CdtValue, b: &CdtValue) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// Comparison codes 1–6 (eq, ne, gt, ge, lt, le); values of different types are unequal
/// and never ordered.
fn compare_op(code: i64, a: &CdtValue, b: &CdtValue) -> bool {
    if !same_kind(a, b) {
        return code == 2;
    }
    let o = compare(a, b);
    match code {
        1 => o == Ordering::Equal,
        2 => o != Ordering::Equal,
        3 => o == Ordering::Greater,
        4 => o != Ordering::Less,
        5 => o == Ordering::Less,
        _ => o != Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdt::value::to_bytes;
    use crate::record::Bin;

    fn node(items: Vec<CdtValue>) -> CdtValue {
        CdtValue::List(List { flags: 0, items })
    }

    fn int(i: i64) -> CdtValue {
        CdtValue::Int(i)
    }

    /// A bin name as the clients pack it: a raw msgpack string.
    fn name(n: &str) -> CdtValue {
        // Decoding takes the first byte as a particle type; build the same shape.
        let b = n.as_bytes();
        if b[0] == 3 {
            CdtValue::Str(b[1..].to_vec())
        } else {
            CdtValue::Bytes(b[0], b[1..].to_vec())
        }
    }

    fn bin(t: i64, n: &str) -> CdtValue {
        node(vec![int(81), int(t), name(n)])
    }

    fn record() -> Record {
        Record {
            set: "demo".into(),
            key: Some(UserKey::Int(7)),
            bins: vec![
                Bin::new("a", Value::Int(5)),
                Bin::new("s", Value::Str(b"hi".to_vec())),
                Bin::new("l", Value::List(vec![0x93, 1, 2, 3])),
            ],
            generation: 1,
            void_time: 100,
            last_update: 1000,
        }
    }

    fn check(e: CdtValue) -> Result<bool, ResultCode> {
        let r = record();
        let d = [0u8; 20];
        passes(
            &to_bytes(&e),
            &Subject {
                record: Some(&r),
                digest: &d,
                now: 50,
                now_ms: 5000,
            },
        )
    }

    #[test]
    fn regex_compare() {
        let re =
            |flags: i64, pattern: &str| node(vec![int(7), int(flags), name(pattern), bin(3, "s")]);
        assert_eq!(check(re(0, "^h.$")), Ok(true));
        assert_eq!(check(re(0, "H")), Ok(false));
        assert_eq!(check(re(REG_ICASE, "H")), Ok(true));
        // the cached pattern answers the same again; a bad pattern is a parameter error
        assert_eq!(check(re(0, "^h.$")), Ok(true));
        assert_eq!(check(re(0, "a(")), Err(ResultCode::Parameter));
        // a non-string subject is unknown: filtered out
        let on_int = node(vec![int(7), int(0), name("5"), bin(2, "a")]);
        assert_eq!(check(on_int), Ok(false));
    }

    #[test]
    fn comparisons_logic_and_unknowns() {
        assert_eq!(check(node(vec![int(1), bin(2, "a"), int(5)])), Ok(true));
        assert_eq!(check(node(vec![int(3), bin(2, "a"), int(5)])), Ok(false));
        // missing bin: unknown, filtered out; but `or` with a true side passes
        let missing = node(vec![int(1), bin(2, "zz"), int(1)]);
        assert_eq!(check(missing.clone()), Ok(false));
        let t = node(vec![int(4), bin(2, "a"), int(0)]);
        assert_eq!(
            check(node(vec![int(17), missing.clone(), t.clone()])),
            Ok(true)
        );
        assert_eq!(check(node(vec![int(16), missing, t])), Ok(false));
        // string bin, wrong declared type → unknown
        assert_eq!(check(node(vec![int(1), bin(2, "s"), int(1)])), Ok(false));
        assert_eq!(
            check(node(vec![
                int(1),
                bin(3, "s"),
                CdtValue::Str(b"hi".to_vec())
            ])),
            Ok(true)
        );
    }

    #[test]
    fn arithmetic_metadata_let_cond_and_calls() {
        // a + 10 == 15
        let sum = node(vec![int(20), bin(2, "a"), int(10)]);
        assert_eq!(check(node(vec![int(1), sum, int(15)])), Ok(true));
        // ttl = void_time - now = 50
        assert_eq!(
            check(node(vec![int(1), node(vec![int(69)]), int(50)])),
            Ok(true)
        );
        // set name, key
        assert_eq!(
            check(node(vec![
                int(1),
                node(vec![int(70)]),
                CdtValue::Str(b"demo".to_vec())
            ])),
            Ok(true)
        );
        assert_eq!(
            check(node(vec![int(1), node(vec![int(80), int(2)]), int(7)])),
            Ok(true)
        );
        // let x = a * 2 in x > 9
        let e = node(vec![
            int(125),
            name("\u{3}x"),
            node(vec![int(22), bin(2, "a"), int(2)]),
            node(vec![int(3), node(vec![int(124), name("\u{3}x")]), int(9)]),
        ]);
        assert_eq!(check(e), Ok(true));
        // cond(a > 10 → 1, else 2) == 2
        let c = node(vec![
            int(123),
            node(vec![int(3), bin(2, "a"), int(10)]),
            int(1),
            int(2),
        ]);
        assert_eq!(check(node(vec![int(1), c, int(2)])), Ok(true));
        // list size(l) == 3 through a call
        let call = node(vec![
            int(127),
            int(2),
            int(0),
            node(vec![int(16)]),
            bin(4, "l"),
        ]);
        assert_eq!(check(node(vec![int(1), call, int(3)])), Ok(true));
        // malformed
        assert_eq!(check(int(3)), Err(ResultCode::Parameter));
    }
}
