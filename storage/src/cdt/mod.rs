//! Aerospike's collection (CDT) operations on list and map bins: decode the operation
//! (msgpack `[op_code, args…]`, wire spec §4.6), apply it to the bin's value as a pure
//! function, and answer its result. Deterministic (no clock, no randomness), so it runs
//! inside apply and every replica reaches the same bin.
//!
pub mod context;
pub mod list;
pub mod map;
pub mod value;

use crate::record::{particle, ResultCode, Value};
use std::cmp::Ordering;
use value::{compare, CdtValue, List, Map};

/// Return type bit: select everything the selector did not.
pub const INVERTED: i64 = 0x10000;

/// What an operation did: its result, and the bin's new value if it changed it (None inside
/// = the bin is removed, which no operation does today).
#[derive(Clone, Debug, PartialEq)]
pub struct Effect {
    pub result: Value,
    pub new_bin: Option<Value>,
}

/// The operation codes that only read.
pub fn is_read_op(code: i64) -> bool {
    matches!(code, 16..=27 | 96..=110)
}

#[cfg(test)]
pub(crate) mod model_support;

pub use value::{List as CdtList, Map as CdtMap};

/// A decoded operation: the context path (empty: the bin itself), the op code, arguments.
pub struct ParsedOp {
    pub path: Vec<context::Step>,
    pub code: i64,
    pub args: Vec<CdtValue>,
}

/// Decode an operation's payload: `[code, args…]`, or `[0xff, [ctx…], [code, args…]]`.
pub fn parse_op(payload: &[u8]) -> Result<ParsedOp, ResultCode> {
    let v = value::decode(payload).map_err(|_| ResultCode::Parameter)?;
    let CdtValue::List(l) = v else {
        return Err(ResultCode::Parameter);
    };
    let mut items = l.items;
    if matches!(items.first(), Some(CdtValue::Int(0xff))) {
        let [_, CdtValue::List(ctx), CdtValue::List(op)] = &mut items[..] else {
            return Err(ResultCode::Parameter);
        };
        let path = context::parse(&ctx.items)?;
        let mut op = std::mem::take(&mut op.items).into_iter();
        let Some(CdtValue::Int(code)) = op.next() else {
            return Err(ResultCode::Parameter);
        };
        return Ok(ParsedOp {
            path,
            code,
            args: op.collect(),
        });
    }
    let mut items = items.into_iter();
    match items.next() {
        Some(CdtValue::Int(code)) => Ok(ParsedOp {
            path: Vec::new(),
            code,
            args: items.collect(),
        }),
        _ => Err(ResultCode::Parameter),
    }
}

/// Apply operation `code` to a collection value (None: missing), answering the result and
/// the new value if it changed.
pub(crate) fn apply_to(
    target: Option<CdtValue>,
    code: i64,
    args: &[CdtValue],
) -> Result<(CdtValue, Option<CdtValue>), ResultCode> {
    match code {
        0..=63 => {
            let current = match target {
                None | Some(CdtValue::Nil) => None,
                Some(CdtValue::List(l)) => Some(l),
                Some(_) => return Err(ResultCode::IncompatibleType),
            };
            let (result, changed) = list::apply(current, code, args)?;
            Ok((result, changed.map(CdtValue::List)))
        }
        64..=127 => {
            let current = match target {
                None | Some(CdtValue::Nil) => None,
                Some(CdtValue::Map(m)) => Some(m),
                Some(_) => return Err(ResultCode::IncompatibleType),
            };
            let (result, changed) = map::apply(current, code, args)?;
            Ok((result, changed.map(CdtValue::Map)))
        }
        _ => Err(ResultCode::Parameter),
    }
}

/// Apply a CDT operation to `bin` (None: the bin is missing). `write` says whether the
/// command may change the record (a read command accepts only read operations).
pub fn apply(bin: Option<&Value>, payload: &[u8], write: bool) -> Result<Effect, ResultCode> {
    let op = parse_op(payload)?;
    if !write && !is_read_op(op.code) {
        return Err(ResultCode::Parameter);
    }
    let top = match bin {
        None => None,
        Some(Value::List(b) | Value::Map(b)) => {
            Some(value::decode(b).map_err(|_| ResultCode::ServerError)?)
        }
        Some(_) if op.path.is_empty() => return Err(ResultCode::IncompatibleType),
        Some(_) => return Err(ResultCode::OpNotApplicable),
    };
    let (result, new) = if op.path.is_empty() {
        apply_to(top, op.code, &op.args)?
    } else {
        context::apply_at(top, &op.path, |target| apply_to(target, op.code, &op.args))?
    };
    Ok(Effect {
        result: to_particle(result),
        new_bin: new.map(to_particle),
    })
}

/// A result as the bin value the answer carries.
pub fn to_particle(v: CdtValue) -> Value {
    match v {
        CdtValue::Nil | CdtValue::Wildcard | CdtValue::Infinity => Value::Nil,
        CdtValue::Bool(b) => Value::Bool(b),
        CdtValue::Int(i) => Value::Int(i),
        CdtValue::Float(f) => Value::Float(f),
        CdtValue::Str(s) => Value::Str(s),
        CdtValue::Bytes(particle::GEOJSON, b) => Value::GeoJson(b),
        CdtValue::Bytes(t, b) => Value::Blob(t, b),
        l @ CdtValue::List(_) => Value::List(value::to_bytes(&l)),
        m @ CdtValue::Map(_) => Value::Map(value::to_bytes(&m)),
    }
}

// ---- shared argument and selection helpers ----

fn int_arg(args: &[CdtValue], i: usize) -> Result<i64, ResultCode> {
    match args.get(i) {
        Some(CdtValue::Int(v)) => Ok(*v),
        _ => Err(ResultCode::Parameter),
    }
}

fn opt_int_arg(args: &[CdtValue], i: usize) -> Result<Option<i64>, ResultCode> {
    match args.get(i) {
        None | Some(CdtValue::Nil) => Ok(None),
        Some(CdtValue::Int(v)) => Ok(Some(*v)),
        _ => Err(ResultCode::Parameter),
    }
}

fn arg(args: &[CdtValue], i: usize) -> Result<&CdtValue, ResultCode> {
    args.get(i).ok_or(ResultCode::Parameter)
}

fn list_arg(args: &[CdtValue], i: usize) -> Result<&List, ResultCode> {
    match args.get(i) {
        Some(CdtValue::List(l)) => Ok(l),
        _ => Err(ResultCode::Parameter),
    }
}

fn map_arg(args: &[CdtValue], i: usize) -> Result<&Map, ResultCode> {
    match args.get(i) {
        Some(CdtValue::Map(m)) => Ok(m),
        _ => Err(ResultCode::Parameter),
    }
}

/// One element by index (negative from the end); None when out of bounds.
fn index_of(index: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let i = if index < 0 { index + len } else { index };
    (0..len).contains(&i).then_some(i as usize)
}

/// The positions `[index, index + count)` (negative index from the end, count absent = to
/// the end), clamped to the collection, as Aerospike treats ranges.
fn range_of(
    index: i64,
    count: Option<i64>,
    len: usize,
) -> Result<std::ops::Range<usize>, ResultCode> {
    let len_i = len as i64;
    if count.is_some_and(|c| c < 0) {
        return Err(ResultCode::Parameter);
    }
    let mut start = if index < 0 { index + len_i } else { index };
    let mut count = count.unwrap_or(i64::MAX / 2);
    if start < 0 {
        count = count.saturating_add(start);
        start = 0;
    }
    if start >= len_i || count <= 0 {
        return Ok(0..0);
    }
    let end = start.saturating_add(count).min(len_i);
    Ok(start as usize..end as usize)
}

/// The rank of every element (its place in Aerospike's order; ties by position).
fn ranks(values: &[&CdtValue]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| compare(values[*a], values[*b]).then(a.cmp(b)));
    let mut rank = vec![0; values.len()];
    for (r, i) in order.iter().enumerate() {
        rank[*i] = r;
    }
    rank
}

/// Positions sorted by value (rank order).
fn by_rank_order(values: &[&CdtValue]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| compare(values[*a], values[*b]).then(a.cmp(b)));
    order
}

/// `begin <= v < end` (end None = no upper bound), Aerospike's intervals.
fn in_interval(v: &CdtValue, begin: &CdtValue, end: Option<&CdtValue>) -> bool {
    compare(v, begin) != Ordering::Less && end.is_none_or(|e| compare(v, e) == Ordering::Less)
}

/// What a selector picked: positions (in the order results are given) and whether the
/// operation answers a single element or a list.
pub struct Selection {
    pub positions: Vec<usize>,
    pub single: bool,
}

/// Apply INVERTED: the complement, in index order.
fn invert(sel: Selection, len: usize, rt: i64) -> Result<Selection, ResultCode> {
    if rt & INVERTED == 0 {
        return Ok(sel);
    }
    if sel.single {
        return Err(ResultCode::OpNotApplicable);
    }
    let mut keep = vec![true; len];
    for p in &sel.positions {
        keep[*p] = false;
    }
    Ok(Selection {
        positions: (0..len).filter(|p| keep[*p]).collect(),
        single: false,
    })
}

/// The return types shared by lists and maps (numbers, count, exists); None = the caller
/// renders it (values, keys, pairs).
fn render_common(
    sel: &Selection,
    rt: i64,
    len: usize,
    values: &[&CdtValue],
) -> Option<Result<CdtValue, ResultCode>> {
    let ints = |f: &dyn Fn(usize) -> i64| -> CdtValue {
        if sel.single {
            sel.positions
                .first()
                .map_or(CdtValue::Nil, |p| CdtValue::Int(f(*p)))
        } else {
            CdtValue::List(List {
                flags: 0,
                items: sel.positions.iter().map(|p| CdtValue::Int(f(*p))).collect(),
            })
        }
    };
    let last = len as i64 - 1;
    Some(Ok(match rt & !INVERTED {
        0 => CdtValue::Nil,
        1 => ints(&|p| p as i64),
        2 => ints(&|p| last - p as i64),
        3 | 4 => {
            let r = ranks(values);
            if rt & !INVERTED == 3 {
                ints(&|p| r[p] as i64)
            } else {
                ints(&|p| last - r[p] as i64)
            }
        }
        5 => CdtValue::Int(sel.positions.len() as i64),
        13 => CdtValue::Bool(!sel.positions.is_empty()),
        _ => return None,
    }))
}
