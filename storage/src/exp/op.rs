//! Expression operations (op types 7 EXP_READ and 8 EXP_MODIFY): an expression evaluated
//! against the record as the command's earlier operations left it, its value answered under
//! the op's name (read) or stored in the op's bin (write). The payload is msgpack
//! `[expression, flags]`, the expression inlined as it is in a filter.

use super::{value_of, Subject};
use crate::cdt::value::{decode, CdtValue};
use crate::cdt::{to_particle, Effect};
use crate::record::{ResultCode, Value};

/// Write flags: the bin must not exist / must exist.
pub const CREATE_ONLY: i64 = 1;
pub const UPDATE_ONLY: i64 = 2;
/// A nil value deletes the bin (otherwise nil is refused with 26).
pub const ALLOW_DELETE: i64 = 4;
/// A write the create/update/delete flags refuse is skipped instead of failing the command.
pub const POLICY_NO_FAIL: i64 = 8;
/// An expression that yields no value (unknown, or nothing a bin can hold) is skipped (write)
/// or answers nil (read) instead of failing with 26.
pub const EVAL_NO_FAIL: i64 = 16;

/// Decode `[expression, flags]`.
fn parse(payload: &[u8]) -> Result<(CdtValue, i64), ResultCode> {
    let CdtValue::List(l) = decode(payload).map_err(|_| ResultCode::Parameter)? else {
        return Err(ResultCode::Parameter);
    };
    let mut items = l.items.into_iter();
    match (items.next(), items.next(), items.next()) {
        (Some(exp), Some(CdtValue::Int(flags)), None) => Ok((exp, flags)),
        (Some(exp), None, None) => Ok((exp, 0)),
        _ => Err(ResultCode::Parameter),
    }
}

/// The expression's value as a bin value; None = no bin value (unknown, or a value only an
/// operation argument can be, such as a wildcard).
fn evaluate(exp: &CdtValue, subject: &Subject<'_>) -> Result<Option<Value>, ResultCode> {
    Ok(match value_of(exp, subject)? {
        None | Some(CdtValue::Wildcard | CdtValue::Infinity) => None,
        Some(v) => Some(to_particle(v)),
    })
}

/// An expression read: its value, answered under the op's name.
pub fn read(payload: &[u8], subject: &Subject<'_>) -> Result<Value, ResultCode> {
    let (exp, flags) = parse(payload)?;
    match evaluate(&exp, subject)? {
        Some(v) => Ok(v),
        None if flags & EVAL_NO_FAIL != 0 => Ok(Value::Nil),
        None => Err(ResultCode::OpNotApplicable),
    }
}

/// An expression write to a bin that currently holds `current`: the effect (a new value of
/// `Value::Nil` deletes the bin; no new value leaves it alone). Answers nil.
pub fn write(
    payload: &[u8],
    current: Option<&Value>,
    subject: &Subject<'_>,
) -> Result<Effect, ResultCode> {
    let (exp, flags) = parse(payload)?;
    let skip = Effect {
        result: Value::Nil,
        new_bin: None,
    };
    let refuse = |code: ResultCode| {
        if flags & POLICY_NO_FAIL != 0 {
            Ok(skip.clone())
        } else {
            Err(code)
        }
    };
    let value = match evaluate(&exp, subject)? {
        Some(v) => v,
        None if flags & EVAL_NO_FAIL != 0 => return Ok(skip),
        None => return Err(ResultCode::OpNotApplicable),
    };
    if value == Value::Nil && flags & ALLOW_DELETE == 0 {
        return refuse(ResultCode::OpNotApplicable);
    }
    match current {
        Some(_) if flags & CREATE_ONLY != 0 => return refuse(ResultCode::BinExists),
        None if flags & UPDATE_ONLY != 0 => return refuse(ResultCode::BinNotFound),
        _ => {}
    }
    Ok(Effect {
        result: Value::Nil,
        new_bin: Some(value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdt::value::{to_bytes, List};
    use crate::record::{Bin, Digest, Record};

    fn payload(exp: CdtValue, flags: i64) -> Vec<u8> {
        to_bytes(&CdtValue::List(List {
            flags: 0,
            items: vec![exp, CdtValue::Int(flags)],
        }))
    }

    /// `[81, 2, "a"]`: the integer bin `a` (its name a raw msgpack string, which the CDT
    /// decoder reads as a one-byte particle type and no bytes).
    fn bin_a() -> CdtValue {
        CdtValue::List(List {
            flags: 0,
            items: vec![
                CdtValue::Int(81),
                CdtValue::Int(2),
                CdtValue::Bytes(b'a', Vec::new()),
            ],
        })
    }

    fn with_record<T>(bins: Vec<Bin>, f: impl FnOnce(&Subject<'_>) -> T) -> T {
        let r = Record {
            set: Default::default(),
            key: None,
            bins,
            generation: 1,
            void_time: 0,
            last_update: 0,
        };
        let d: Digest = [0; 20];
        f(&Subject {
            record: Some(&r),
            digest: &d,
            now: 0,
            now_ms: 0,
        })
    }

    #[test]
    fn read_answers_the_value_or_26_or_nil_with_eval_no_fail() {
        let a = vec![Bin::new("a", Value::Int(7))];
        with_record(a, |s| {
            assert_eq!(read(&payload(bin_a(), 0), s), Ok(Value::Int(7)))
        });
        with_record(vec![], |s| {
            assert_eq!(
                read(&payload(bin_a(), 0), s),
                Err(ResultCode::OpNotApplicable)
            );
            assert_eq!(read(&payload(bin_a(), EVAL_NO_FAIL), s), Ok(Value::Nil));
        });
    }

    #[test]
    fn write_flags_decide_as_aerospike_documents() {
        let lit = CdtValue::Int(5);
        let a = vec![Bin::new("a", Value::Int(7))];
        with_record(a.clone(), |s| {
            let cur = Some(&Value::Int(7));
            let e = write(&payload(lit.clone(), 0), cur, s).unwrap();
            assert_eq!(e.new_bin, Some(Value::Int(5)));
            assert_eq!(
                write(&payload(lit.clone(), CREATE_ONLY), cur, s),
                Err(ResultCode::BinExists)
            );
            let e = write(&payload(lit.clone(), CREATE_ONLY | POLICY_NO_FAIL), cur, s).unwrap();
            assert_eq!(e.new_bin, None);
            assert_eq!(
                write(&payload(lit.clone(), UPDATE_ONLY), None, s),
                Err(ResultCode::BinNotFound)
            );
            assert_eq!(
                write(&payload(CdtValue::Nil, 0), cur, s),
                Err(ResultCode::OpNotApplicable)
            );
            let e = write(&payload(CdtValue::Nil, ALLOW_DELETE), cur, s).unwrap();
            assert_eq!(e.new_bin, Some(Value::Nil));
        });
        with_record(vec![], |s| {
            assert_eq!(
                write(&payload(bin_a(), 0), None, s),
                Err(ResultCode::OpNotApplicable)
            );
            let e = write(&payload(bin_a(), EVAL_NO_FAIL), None, s).unwrap();
            assert_eq!(e.new_bin, None);
        });
        assert!(with_record(a, |s| write(b"\x01", None, s)).is_err());
    }
}
