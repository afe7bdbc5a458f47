//! List operations (op codes 0–40), on unordered lists (insertion order) and ordered lists
//! (kept in Aerospike's value order).

use super::value::{compare, CdtValue, List, LIST_ORDERED};
use super::{
    arg, by_rank_order, in_interval, index_of, int_arg, invert, list_arg, opt_int_arg, range_of,
    render_common, Selection,
};
use crate::record::ResultCode;
use std::cmp::Ordering;

/// List write flags.
pub const ADD_UNIQUE: i64 = 1;
pub const INSERT_BOUNDED: i64 = 2;
pub const NO_FAIL: i64 = 4;
pub const DO_PARTIAL: i64 = 8;

type Answer = Result<(CdtValue, Option<List>), ResultCode>;

fn sort(l: &mut List) {
    if l.ordered() {
        l.items.sort_by(compare);
    }
}

/// Add `v` keeping the order (ordered lists: after equal values).
fn push(l: &mut List, v: CdtValue) {
    if l.ordered() {
        let at = l
            .items
            .partition_point(|x| compare(x, &v) != Ordering::Greater);
        l.items.insert(at, v);
    } else {
        l.items.push(v);
    }
}

/// Which of `values` a write with `flags` adds: all, or (ADD_UNIQUE) the new ones, with
/// Aerospike's NO_FAIL / DO_PARTIAL rules for the duplicates.
fn admit(l: &List, values: &[CdtValue], flags: i64) -> Result<Vec<CdtValue>, ResultCode> {
    if flags & ADD_UNIQUE == 0 {
        return Ok(values.to_vec());
    }
    let mut out: Vec<CdtValue> = Vec::new();
    for v in values {
        let dup = l.items.iter().chain(out.iter()).any(|x| x == v);
        if !dup {
            out.push(v.clone());
        } else if flags & NO_FAIL == 0 {
            return Err(ResultCode::ElementExists);
        } else if flags & DO_PARTIAL == 0 {
            return Ok(Vec::new());
        }
    }
    Ok(out)
}

fn size(l: &List) -> CdtValue {
    CdtValue::Int(l.items.len() as i64)
}

/// Insert `values` at `index` (unordered lists only), padding with nils past the end
/// unless INSERT_BOUNDED.
fn insert_at(mut l: List, index: i64, values: &[CdtValue], flags: i64) -> Answer {
    if l.ordered() {
        return Err(ResultCode::OpNotApplicable);
    }
    let len = l.items.len() as i64;
    let at = if index < 0 { index + len } else { index };
    if at < 0 || (flags & INSERT_BOUNDED != 0 && at > len) {
        if flags & NO_FAIL != 0 {
            let n = size(&l);
            return Ok((n, None));
        }
        return Err(ResultCode::OpNotApplicable);
    }
    let values = admit(&l, values, flags)?;
    let at = at as usize;
    if at > l.items.len() {
        l.items.resize(at, CdtValue::Nil);
    }
    l.items.splice(at..at, values);
    Ok((size(&l), Some(l)))
}

/// A list selector's positions (codes 19–27 and 32–40 share their arguments).
fn select(l: &List, kind: i64, args: &[CdtValue]) -> Result<Selection, ResultCode> {
    let len = l.items.len();
    let values: Vec<&CdtValue> = l.items.iter().collect();
    let sel = match kind {
        // by index
        19 => Selection {
            positions: index_of(int_arg(args, 1)?, len)
                .map(|i| vec![i])
                .ok_or(ResultCode::OpNotApplicable)?,
            single: true,
        },
        // by value (20 and 22 alike: every equal element)
        20 | 22 => {
            let v = arg(args, 1)?;
            Selection {
                positions: (0..len).filter(|i| values[*i] == v).collect(),
                single: false,
            }
        }
        // by rank
        21 => {
            let order = by_rank_order(&values);
            Selection {
                positions: index_of(int_arg(args, 1)?, len)
                    .map(|r| vec![order[r]])
                    .ok_or(ResultCode::OpNotApplicable)?,
                single: true,
            }
        }
        // by value list
        23 => {
            let wanted = list_arg(args, 1)?;
            Selection {
                positions: (0..len)
                    .filter(|i| wanted.items.iter().any(|w| w == values[*i]))
                    .collect(),
                single: false,
            }
        }
        // by index range
        24 => Selection {
            positions: range_of(int_arg(args, 1)?, opt_int_arg(args, 2)?, len)?.collect(),
            single: false,
        },
        // by value interval
        25 => {
            let begin = arg(args, 1)?;
            let end = args.get(2).filter(|e| !matches!(e, CdtValue::Nil));
            Selection {
                positions: (0..len)
                    .filter(|i| in_interval(values[*i], begin, end))
                    .collect(),
                single: false,
            }
        }
        // by rank range
        26 => {
            let order = by_rank_order(&values);
            Selection {
                positions: range_of(int_arg(args, 1)?, opt_int_arg(args, 2)?, len)?
                    .map(|r| order[r])
                    .collect(),
                single: false,
            }
        }
        // by value, relative rank range
        27 => {
            let v = arg(args, 1)?;
            let base = values
                .iter()
                .filter(|x| compare(x, v) == Ordering::Less)
                .count() as i64;
            let rank = int_arg(args, 2)?;
            let count = opt_int_arg(args, 3)?;
            let order = by_rank_order(&values);
            let start = base + rank;
            let (start, count) = if start < 0 {
                (0, count.map(|c| c + start))
            } else {
                (start, count)
            };
            let positions = if count.is_some_and(|c| c <= 0) {
                Vec::new()
            } else {
                range_of(start, count, len)?.map(|r| order[r]).collect()
            };
            Selection {
                positions,
                single: false,
            }
        }
        _ => return Err(ResultCode::Parameter),
    };
    invert(sel, len, int_arg(args, 0)?)
}

/// Render a selection per return type.
fn render(l: &List, sel: &Selection, rt: i64) -> Result<CdtValue, ResultCode> {
    let values: Vec<&CdtValue> = l.items.iter().collect();
    if let Some(r) = render_common(sel, rt, values.len(), &values) {
        return r;
    }
    match rt & !super::INVERTED {
        7 => Ok(if sel.single {
            sel.positions
                .first()
                .map_or(CdtValue::Nil, |p| values[*p].clone())
        } else {
            CdtValue::List(List {
                flags: 0,
                items: sel.positions.iter().map(|p| values[*p].clone()).collect(),
            })
        }),
        _ => Err(ResultCode::Parameter),
    }
}

/// Apply list operation `code` with `args` to `current` (None: the bin is missing). Answers
/// the result and, when the list changed (or was created), the new list.
pub fn apply(current: Option<List>, code: i64, args: &[CdtValue]) -> Answer {
    let missing = current.is_none();
    let mut l = current.unwrap_or_default();
    match code {
        // set type (create)
        0 => {
            l.flags = (int_arg(args, 0)? as u8) & LIST_ORDERED;
            sort(&mut l);
            Ok((CdtValue::Nil, Some(l)))
        }
        // append, append items
        1 | 2 => {
            let (values, order, flags) = if code == 1 {
                (
                    vec![arg(args, 0)?.clone()],
                    opt_int_arg(args, 1)?,
                    opt_int_arg(args, 2)?,
                )
            } else {
                (
                    list_arg(args, 0)?.items.clone(),
                    opt_int_arg(args, 1)?,
                    opt_int_arg(args, 2)?,
                )
            };
            if missing {
                l.flags = order.unwrap_or(0) as u8 & LIST_ORDERED;
            }
            let flags = flags.unwrap_or(0);
            let values = admit(&l, &values, flags)?;
            for v in values {
                push(&mut l, v);
            }
            Ok((size(&l), Some(l)))
        }
        // insert, insert items
        3 | 4 => {
            let index = int_arg(args, 0)?;
            let values = if code == 3 {
                vec![arg(args, 1)?.clone()]
            } else {
                list_arg(args, 1)?.items.clone()
            };
            insert_at(l, index, &values, opt_int_arg(args, 2)?.unwrap_or(0))
        }
        // pop
        5 => {
            if missing {
                return Ok((CdtValue::Nil, None));
            }
            let i =
                index_of(int_arg(args, 0)?, l.items.len()).ok_or(ResultCode::OpNotApplicable)?;
            let v = l.items.remove(i);
            Ok((v, Some(l)))
        }
        // pop range, remove range
        6 | 8 => {
            if missing {
                return Ok((CdtValue::Nil, None));
            }
            let r = range_of(int_arg(args, 0)?, opt_int_arg(args, 1)?, l.items.len())?;
            let gone: Vec<CdtValue> = l.items.drain(r).collect();
            let result = if code == 6 {
                CdtValue::List(List {
                    flags: 0,
                    items: gone,
                })
            } else {
                CdtValue::Int(gone.len() as i64)
            };
            Ok((result, Some(l)))
        }
        // remove one
        7 => {
            if missing {
                return Ok((CdtValue::Nil, None));
            }
            let i =
                index_of(int_arg(args, 0)?, l.items.len()).ok_or(ResultCode::OpNotApplicable)?;
            l.items.remove(i);
            Ok((CdtValue::Int(1), Some(l)))
        }
        // set
        9 => {
            if l.ordered() {
                return Err(ResultCode::OpNotApplicable);
            }
            let index = int_arg(args, 0)?;
            let v = arg(args, 1)?.clone();
            let flags = opt_int_arg(args, 2)?.unwrap_or(0);
            let len = l.items.len() as i64;
            let at = if index < 0 { index + len } else { index };
            if at < 0 || (flags & INSERT_BOUNDED != 0 && at >= len) {
                if flags & NO_FAIL != 0 {
                    return Ok((CdtValue::Nil, None));
                }
                return Err(ResultCode::OpNotApplicable);
            }
            if flags & ADD_UNIQUE != 0 && l.items.contains(&v) {
                if flags & NO_FAIL != 0 {
                    return Ok((CdtValue::Nil, None));
                }
                return Err(ResultCode::ElementExists);
            }
            let at = at as usize;
            if at >= l.items.len() {
                l.items.resize(at + 1, CdtValue::Nil);
            }
            l.items[at] = v;
            Ok((CdtValue::Nil, Some(l)))
        }
        // trim: keep [index, index + count)
        10 => {
            if missing {
                return Ok((CdtValue::Nil, None));
            }
            let r = range_of(int_arg(args, 0)?, Some(int_arg(args, 1)?), l.items.len())?;
            let before = l.items.len();
            let kept: Vec<CdtValue> = l.items.drain(r).collect();
            l.items = kept;
            Ok((CdtValue::Int((before - l.items.len()) as i64), Some(l)))
        }
        // clear
        11 => {
            if missing {
                return Ok((CdtValue::Nil, None));
            }
            l.items.clear();
            Ok((CdtValue::Nil, Some(l)))
        }
        // increment
        12 => {
            let index = int_arg(args, 0)?;
            let delta = args.get(1).cloned().unwrap_or(CdtValue::Int(1));
            if missing {
                l.flags = opt_int_arg(args, 2)?.unwrap_or(0) as u8 & LIST_ORDERED;
            }
            // The write flags follow the order: [index, delta, order, flags].
            let flags = opt_int_arg(args, 3)?.unwrap_or(0);
            let refuse = |code| {
                if flags & NO_FAIL != 0 {
                    Ok((CdtValue::Nil, None))
                } else {
                    Err(code)
                }
            };
            let len = l.items.len() as i64;
            let at = if index < 0 { index + len } else { index };
            // An ordered list cannot be padded with nils past its end, nor a bounded one.
            if at < 0 || (at >= len && (l.ordered() || flags & INSERT_BOUNDED != 0)) {
                return refuse(ResultCode::OpNotApplicable);
            }
            let at = at as usize;
            let old = l.items.get(at).cloned().unwrap_or(CdtValue::Nil);
            let new = match (&old, &delta) {
                (CdtValue::Nil, d @ (CdtValue::Int(_) | CdtValue::Float(_))) => d.clone(),
                (CdtValue::Int(a), CdtValue::Int(b)) => CdtValue::Int(a.wrapping_add(*b)),
                (CdtValue::Float(a), CdtValue::Float(b)) => CdtValue::Float(a + b),
                (CdtValue::Float(a), CdtValue::Int(b)) => CdtValue::Float(a + *b as f64),
                (CdtValue::Int(a), CdtValue::Float(b)) => CdtValue::Int(a.wrapping_add(*b as i64)),
                _ => return Err(ResultCode::IncompatibleType),
            };
            if flags & ADD_UNIQUE != 0
                && l.items
                    .iter()
                    .enumerate()
                    .any(|(i, v)| i != at && *v == new)
            {
                return refuse(ResultCode::ElementExists);
            }
            if at >= l.items.len() {
                l.items.resize(at + 1, CdtValue::Nil);
            }
            if l.ordered() {
                l.items.remove(at);
                push(&mut l, new.clone());
            } else {
                l.items[at] = new.clone();
            }
            Ok((new, Some(l)))
        }
        // sort
        13 => {
            if missing {
                return Err(ResultCode::IncompatibleType);
            }
            let flags = opt_int_arg(args, 0)?.unwrap_or(0);
            l.items.sort_by(compare);
            if flags & 2 != 0 {
                l.items.dedup_by(|a, b| a == b);
            }
            if flags & 1 != 0 {
                l.items.reverse();
            }
            Ok((CdtValue::Nil, Some(l)))
        }
        // size
        16 => Ok((if missing { CdtValue::Nil } else { size(&l) }, None)),
        // get
        17 => {
            if missing {
                return Ok((CdtValue::Nil, None));
            }
            let i =
                index_of(int_arg(args, 0)?, l.items.len()).ok_or(ResultCode::OpNotApplicable)?;
            Ok((l.items[i].clone(), None))
        }
        // get range
        18 => {
            if missing {
                return Ok((CdtValue::Nil, None));
            }
            let r = range_of(int_arg(args, 0)?, opt_int_arg(args, 1)?, l.items.len())?;
            Ok((
                CdtValue::List(List {
                    flags: 0,
                    items: l.items[r].to_vec(),
                }),
                None,
            ))
        }
        // get by selector
        19..=27 => {
            if missing {
                return Ok((CdtValue::Nil, None));
            }
            let sel = select(&l, code, args)?;
            Ok((render(&l, &sel, int_arg(args, 0)?)?, None))
        }
        // remove by selector (33 = by value, 35 = all by value, as 20 and 22)
        32..=40 => {
            if missing {
                return Ok((CdtValue::Nil, None));
            }
            let kind = match code {
                32 => 19,
                33 | 35 => 20,
                34 => 21,
                36 => 23,
                37 => 24,
                38 => 25,
                39 => 26,
                _ => 27,
            };
            let sel = select(&l, kind, args)?;
            let result = render(&l, &sel, int_arg(args, 0)?)?;
            let mut doomed = vec![false; l.items.len()];
            for p in &sel.positions {
                doomed[*p] = true;
            }
            let mut i = 0;
            l.items.retain(|_| {
                i += 1;
                !doomed[i - 1]
            });
            Ok((result, Some(l)))
        }
        _ => Err(ResultCode::Parameter),
    }
}

#[cfg(test)]
mod model;

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(v: &[i64]) -> List {
        List {
            flags: 0,
            items: v.iter().map(|i| CdtValue::Int(*i)).collect(),
        }
    }

    fn items(l: &List) -> Vec<i64> {
        l.items
            .iter()
            .map(|v| match v {
                CdtValue::Int(i) => *i,
                _ => -999,
            })
            .collect()
    }

    fn int(i: i64) -> CdtValue {
        CdtValue::Int(i)
    }

    #[test]
    fn append_insert_set_pop() {
        let (r, l) = apply(None, 1, &[int(5)]).unwrap();
        assert_eq!(r, int(1));
        let (_, l) = apply(l, 2, &[CdtValue::List(ints(&[7, 8]))]).unwrap();
        let (_, l) = apply(l, 3, &[int(1), int(6)]).unwrap();
        assert_eq!(items(l.as_ref().unwrap()), vec![5, 6, 7, 8]);
        let (_, l) = apply(l, 9, &[int(6), int(9)]).unwrap();
        assert_eq!(items(l.as_ref().unwrap()), vec![5, 6, 7, 8, -999, -999, 9]);
        let (r, l) = apply(l, 5, &[int(-1)]).unwrap();
        assert_eq!(r, int(9));
        assert_eq!(
            apply(l.clone(), 17, &[int(10)]),
            Err(ResultCode::OpNotApplicable)
        );
        let (r, _) = apply(l, 1, &[int(5), int(0), int(ADD_UNIQUE | NO_FAIL)]).unwrap();
        assert_eq!(r, int(6));
    }

    #[test]
    fn selectors_and_return_types() {
        let l = Some(ints(&[3, 1, 2, 1]));
        let get = |code, args: &[CdtValue]| apply(l.clone(), code, args).unwrap().0;
        // by value, INDEX and COUNT
        assert_eq!(get(22, &[int(1), int(1)]), CdtValue::List(ints(&[1, 3])));
        assert_eq!(get(22, &[int(5), int(1)]), int(2));
        // by rank: rank 0 is the first 1 (index 1)
        assert_eq!(get(21, &[int(7), int(0)]), int(1));
        assert_eq!(get(21, &[int(1), int(-1)]), int(0));
        // rank range, values in rank order
        assert_eq!(
            get(26, &[int(7), int(1), int(2)]),
            CdtValue::List(ints(&[1, 2]))
        );
        // interval [1, 3)
        assert_eq!(
            get(25, &[int(7), int(1), int(3)]),
            CdtValue::List(ints(&[1, 2, 1]))
        );
        // inverted index range
        assert_eq!(
            get(24, &[int(7 | super::super::INVERTED), int(0), int(2)]),
            CdtValue::List(ints(&[2, 1]))
        );
        // relative rank: values ranked from 2 upwards
        assert_eq!(
            get(27, &[int(7), int(2), int(0)]),
            CdtValue::List(ints(&[2, 3]))
        );
        // remove by value returns the count and leaves the rest
        let (r, after) = apply(l.clone(), 35, &[int(5), int(1)]).unwrap();
        assert_eq!(r, int(2));
        assert_eq!(items(&after.unwrap()), vec![3, 2]);
    }

    #[test]
    fn ordered_lists_stay_sorted() {
        let (_, l) = apply(None, 0, &[int(1)]).unwrap();
        let (_, l) = apply(l, 2, &[CdtValue::List(ints(&[5, 1, 3]))]).unwrap();
        let (_, l) = apply(l, 1, &[int(2)]).unwrap();
        assert_eq!(items(l.as_ref().unwrap()), vec![1, 2, 3, 5]);
        assert_eq!(
            apply(l, 3, &[int(0), int(9)]),
            Err(ResultCode::OpNotApplicable)
        );
    }
}
