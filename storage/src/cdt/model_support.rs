//! What the operation tests share: the list and map reference models' index and range
//! arithmetic (Aerospike's, written independently of the implementation), the comparison of
//! one step, and building an operation's payload.

use super::value::CdtValue;
use crate::record::ResultCode;
use proptest::prelude::*;
use std::fmt::Debug;

/// An operation's payload as clients send it: msgpack `[code, args…]`.
pub fn op_payload(code: i64, args: &[CdtValue]) -> Vec<u8> {
    let mut items = vec![CdtValue::Int(code)];
    items.extend_from_slice(args);
    super::value::to_bytes(&CdtValue::List(super::value::List { flags: 0, items }))
}

/// `[start, start + count)` with a negative start counting from the end, clamped to `len`;
/// no count: to the end.
pub fn range(start: i64, count: Option<i64>, len: usize) -> Vec<usize> {
    let n = len as i64;
    let (mut s, mut c) = (
        if start < 0 { start + n } else { start },
        count.unwrap_or(1 << 40),
    );
    if s < 0 {
        c += s;
        s = 0;
    }
    if s >= n || c <= 0 {
        return Vec::new();
    }
    (s as usize..(s + c).min(n) as usize).collect()
}

/// One position: a negative index counts from the end; None when out of range.
pub fn index(i: i64, len: usize) -> Option<usize> {
    let j = if i < 0 { i + len as i64 } else { i };
    (0..len as i64).contains(&j).then_some(j as usize)
}

/// A relative range: a start before the first element cuts the count instead of counting
/// from the end (Aerospike's (3,-2,2) on keys {0,4,5,9} selects key 0).
pub fn relative(start: i64, count: Option<i64>, len: usize) -> Vec<usize> {
    let (s, c) = if start < 0 {
        (0, count.map(|c| c + start))
    } else {
        (start, count)
    };
    if c.is_some_and(|c| c <= 0) {
        return Vec::new();
    }
    range(s, c, len)
}

/// Compare what the implementation answered for `step` with the model's answer, and adopt
/// the collection it changed.
pub fn check_step<T, S: Debug>(
    current: &mut Option<T>,
    got: Result<(CdtValue, Option<T>), ResultCode>,
    want: Result<CdtValue, ResultCode>,
    step: &S,
) -> Result<(), TestCaseError> {
    match got {
        Ok((result, changed)) => {
            prop_assert_eq!(Ok(result), want, "{:?}", step);
            if let Some(c) = changed {
                *current = Some(c);
            }
        }
        Err(code) => prop_assert_eq!(Err(code), want, "{:?}", step),
    }
    Ok(())
}
