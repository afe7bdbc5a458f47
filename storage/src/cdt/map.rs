//! Map operations (op codes 64–110). Unordered maps keep insertion order, key-ordered maps
//! key order; index and rank selectors always count in key order and value order.

use super::value::{compare, CdtValue, List, Map, MAP_KEY_ORDERED, MAP_KEY_VALUE_ORDERED};
use super::{
    arg, by_rank_order, in_interval, index_of, int_arg, invert, list_arg, map_arg, opt_int_arg,
    range_of, render_common, Selection, INVERTED,
};
use crate::record::ResultCode;
use std::cmp::Ordering;

/// Map write flags.
pub const CREATE_ONLY: i64 = 1;
pub const UPDATE_ONLY: i64 = 2;
pub const NO_FAIL: i64 = 4;
pub const DO_PARTIAL: i64 = 8;

type Answer = Result<(CdtValue, Option<Map>), ResultCode>;

fn sort(m: &mut Map) {
    if m.key_ordered() {
        m.entries.sort_by(|a, b| compare(&a.0, &b.0));
    }
}

fn size(m: &Map) -> CdtValue {
    CdtValue::Int(m.entries.len() as i64)
}

fn order_flags(v: Option<i64>) -> u8 {
    match v.unwrap_or(0) as u8 & MAP_KEY_VALUE_ORDERED {
        0 => 0,
        1 => MAP_KEY_ORDERED,
        _ => MAP_KEY_VALUE_ORDERED,
    }
}

/// Put `pairs` with `flags`: create-only refuses existing keys (24), update-only missing ones
/// (23); NO_FAIL skips them (all, or with DO_PARTIAL only the failing ones).
fn put(mut m: Map, pairs: &[(CdtValue, CdtValue)], flags: i64) -> Answer {
    let mut staged = m.clone();
    for (k, v) in pairs {
        let at = staged.entries.iter().position(|(x, _)| x == k);
        let refused = match at {
            Some(_) if flags & CREATE_ONLY != 0 => Some(ResultCode::ElementExists),
            None if flags & UPDATE_ONLY != 0 => Some(ResultCode::ElementNotFound),
            _ => None,
        };
        match (refused, at) {
            (Some(code), _) if flags & NO_FAIL == 0 => return Err(code),
            (Some(_), _) if flags & DO_PARTIAL == 0 => return Ok((size(&m), None)),
            (Some(_), _) => {}
            (None, Some(i)) => staged.entries[i].1 = v.clone(),
            (None, None) => staged.entries.push((k.clone(), v.clone())),
        }
    }
    m = staged;
    sort(&mut m);
    Ok((size(&m), Some(m)))
}

/// The entries in key order, as (key, value) references.
fn by_key(m: &Map) -> Vec<(&CdtValue, &CdtValue)> {
    let mut v: Vec<(&CdtValue, &CdtValue)> = m.entries.iter().map(|(k, v)| (k, v)).collect();
    v.sort_by(|a, b| compare(a.0, b.0));
    v
}

/// A map selector's positions in key order (codes 97–110; removes map onto them).
fn select(
    view: &[(&CdtValue, &CdtValue)],
    kind: i64,
    args: &[CdtValue],
) -> Result<Selection, ResultCode> {
    let len = view.len();
    let values: Vec<&CdtValue> = view.iter().map(|e| e.1).collect();
    let keys_below = |k: &CdtValue| {
        view.iter()
            .filter(|e| compare(e.0, k) == Ordering::Less)
            .count() as i64
    };
    let sel = match kind {
        97 => {
            let k = arg(args, 1)?;
            Selection {
                positions: view.iter().position(|e| e.0 == k).into_iter().collect(),
                single: true,
            }
        }
        98 => Selection {
            positions: index_of(int_arg(args, 1)?, len)
                .map(|i| vec![i])
                .ok_or(ResultCode::OpNotApplicable)?,
            single: true,
        },
        99 | 102 => {
            let v = arg(args, 1)?;
            Selection {
                positions: (0..len).filter(|i| values[*i] == v).collect(),
                single: false,
            }
        }
        100 => {
            let order = by_rank_order(&values);
            Selection {
                positions: index_of(int_arg(args, 1)?, len)
                    .map(|r| vec![order[r]])
                    .ok_or(ResultCode::OpNotApplicable)?,
                single: true,
            }
        }
        103 => {
            let begin = arg(args, 1)?;
            let end = args.get(2).filter(|e| !matches!(e, CdtValue::Nil));
            Selection {
                positions: (0..len)
                    .filter(|i| in_interval(view[*i].0, begin, end))
                    .collect(),
                single: false,
            }
        }
        104 => Selection {
            positions: range_of(int_arg(args, 1)?, opt_int_arg(args, 2)?, len)?.collect(),
            single: false,
        },
        105 => {
            let begin = arg(args, 1)?;
            let end = args.get(2).filter(|e| !matches!(e, CdtValue::Nil));
            Selection {
                positions: (0..len)
                    .filter(|i| in_interval(values[*i], begin, end))
                    .collect(),
                single: false,
            }
        }
        106 => {
            let order = by_rank_order(&values);
            Selection {
                positions: range_of(int_arg(args, 1)?, opt_int_arg(args, 2)?, len)?
                    .map(|r| order[r])
                    .collect(),
                single: false,
            }
        }
        107 => {
            let wanted = list_arg(args, 1)?;
            Selection {
                positions: (0..len)
                    .filter(|i| wanted.items.iter().any(|w| w == view[*i].0))
                    .collect(),
                single: false,
            }
        }
        108 => {
            let wanted = list_arg(args, 1)?;
            Selection {
                positions: (0..len)
                    .filter(|i| wanted.items.iter().any(|w| w == values[*i]))
                    .collect(),
                single: false,
            }
        }
        // key, relative index range; value, relative rank range
        109 | 110 => {
            let anchor = arg(args, 1)?;
            let base = if kind == 109 {
                keys_below(anchor)
            } else {
                values
                    .iter()
                    .filter(|v| compare(v, anchor) == Ordering::Less)
                    .count() as i64
            };
            let start = base + int_arg(args, 2)?;
            let count = opt_int_arg(args, 3)?;
            let (start, count) = if start < 0 {
                (0, count.map(|c| c + start))
            } else {
                (start, count)
            };
            let order = if kind == 109 {
                (0..len).collect()
            } else {
                by_rank_order(&values)
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

fn render(
    m: &Map,
    view: &[(&CdtValue, &CdtValue)],
    sel: &Selection,
    rt: i64,
) -> Result<CdtValue, ResultCode> {
    let values: Vec<&CdtValue> = view.iter().map(|e| e.1).collect();
    if let Some(r) = render_common(sel, rt, view.len(), &values) {
        return r;
    }
    let pick = |f: &dyn Fn(usize) -> CdtValue| -> CdtValue {
        if sel.single {
            sel.positions.first().map_or(CdtValue::Nil, |p| f(*p))
        } else {
            CdtValue::List(List {
                flags: 0,
                items: sel.positions.iter().map(|p| f(*p)).collect(),
            })
        }
    };
    match rt & !INVERTED {
        6 => Ok(pick(&|p| view[p].0.clone())),
        7 => Ok(pick(&|p| view[p].1.clone())),
        8 | 16 | 17 => {
            let mut positions = sel.positions.clone();
            positions.sort_unstable();
            let flags = if rt & !INVERTED == 17 || m.key_ordered() {
                MAP_KEY_ORDERED
            } else {
                0
            };
            Ok(CdtValue::Map(Map {
                flags: if rt & !INVERTED == 16 { 0 } else { flags },
                entries: positions
                    .iter()
                    .map(|p| (view[*p].0.clone(), view[*p].1.clone()))
                    .collect(),
            }))
        }
        _ => Err(ResultCode::Parameter),
    }
}

/// Apply map operation `code` with `args` to `current` (None: the bin is missing).
pub fn apply(current: Option<Map>, code: i64, args: &[CdtValue]) -> Answer {
    let missing = current.is_none();
    let mut m = current.unwrap_or_default();
    match code {
        // set type (create)
        64 => {
            m.flags = order_flags(Some(int_arg(args, 0)?));
            sort(&mut m);
            Ok((CdtValue::Nil, Some(m)))
        }
        // add (create-only put), put, replace (update-only put)
        65 | 67 | 69 => {
            let pair = (arg(args, 0)?.clone(), arg(args, 1)?.clone());
            let (order, flags) = match code {
                65 => (opt_int_arg(args, 2)?, CREATE_ONLY),
                67 => (opt_int_arg(args, 2)?, opt_int_arg(args, 3)?.unwrap_or(0)),
                _ => (None, UPDATE_ONLY),
            };
            if missing {
                m.flags = order_flags(order);
            }
            put(m, &[pair], flags)
        }
        // add items, put items, replace items
        66 | 68 | 70 => {
            let pairs = map_arg(args, 0)?.entries.clone();
            let (order, flags) = match code {
                66 => (opt_int_arg(args, 1)?, CREATE_ONLY),
                68 => (opt_int_arg(args, 1)?, opt_int_arg(args, 2)?.unwrap_or(0)),
                _ => (None, UPDATE_ONLY),
            };
            if missing {
                m.flags = order_flags(order);
            }
            put(m, &pairs, flags)
        }
        // increment, decrement
        73 | 74 => {
            let k = arg(args, 0)?.clone();
            let delta = args.get(1).cloned().unwrap_or(CdtValue::Int(1));
            if missing {
                m.flags = order_flags(opt_int_arg(args, 2)?);
            }
            let neg = code == 74;
            let old = m
                .entries
                .iter()
                .find(|(x, _)| *x == k)
                .map(|(_, v)| v.clone())
                .unwrap_or(CdtValue::Int(0));
            let new = match (&old, &delta) {
                (CdtValue::Int(a), CdtValue::Int(b)) => CdtValue::Int(if neg {
                    a.wrapping_sub(*b)
                } else {
                    a.wrapping_add(*b)
                }),
                (CdtValue::Float(a), CdtValue::Float(b)) => {
                    CdtValue::Float(if neg { a - b } else { a + b })
                }
                (CdtValue::Int(0), CdtValue::Float(b)) => {
                    CdtValue::Float(if neg { -b } else { *b })
                }
                _ => return Err(ResultCode::IncompatibleType),
            };
            let (_, changed) = put(m, &[(k, new.clone())], 0)?;
            Ok((new, changed))
        }
        // clear
        75 => {
            if missing {
                return Ok((CdtValue::Nil, None));
            }
            m.entries.clear();
            Ok((CdtValue::Nil, Some(m)))
        }
        // size
        96 => Ok((if missing { CdtValue::Nil } else { size(&m) }, None)),
        // get by selector
        97..=110 => {
            if missing {
                return Ok((CdtValue::Nil, None));
            }
            let view = by_key(&m);
            let sel = select(&view, code, args)?;
            Ok((render(&m, &view, &sel, int_arg(args, 0)?)?, None))
        }
        // remove by selector
        76..=89 => {
            if missing {
                return Ok((CdtValue::Nil, None));
            }
            let kind = match code {
                76 => 97,
                77 => 98,
                78 | 82 => 99,
                79 => 100,
                81 => 107,
                83 => 108,
                84 => 103,
                85 => 104,
                86 => 105,
                87 => 106,
                88 => 109,
                89 => 110,
                _ => return Err(ResultCode::Parameter),
            };
            let view = by_key(&m);
            let sel = select(&view, kind, args)?;
            let result = render(&m, &view, &sel, int_arg(args, 0)?)?;
            let doomed: Vec<CdtValue> = sel.positions.iter().map(|p| view[*p].0.clone()).collect();
            m.entries.retain(|(k, _)| !doomed.iter().any(|d| d == k));
            Ok((result, Some(m)))
        }
        _ => Err(ResultCode::Parameter),
    }
}

#[cfg(test)]
mod model;

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> CdtValue {
        CdtValue::Str(x.as_bytes().to_vec())
    }

    fn int(i: i64) -> CdtValue {
        CdtValue::Int(i)
    }

    #[test]
    fn puts_flags_and_increments() {
        let (r, m) = apply(None, 67, &[s("b"), int(2), int(0)]).unwrap();
        assert_eq!(r, int(1));
        let (_, m) = apply(m, 67, &[s("a"), int(1)]).unwrap();
        assert_eq!(
            apply(m.clone(), 67, &[s("a"), int(5), int(0), int(CREATE_ONLY)]),
            Err(ResultCode::ElementExists)
        );
        assert_eq!(
            apply(m.clone(), 69, &[s("z"), int(5)]),
            Err(ResultCode::ElementNotFound)
        );
        let (r, m) = apply(m, 73, &[s("a"), int(10)]).unwrap();
        assert_eq!(r, int(11));
        // get by key: VALUE; by index 0 is the smallest key
        assert_eq!(apply(m.clone(), 97, &[int(7), s("a")]).unwrap().0, int(11));
        assert_eq!(apply(m.clone(), 98, &[int(6), int(0)]).unwrap().0, s("a"));
        // rank 0 is the smallest value (b=2)
        assert_eq!(apply(m.clone(), 100, &[int(6), int(0)]).unwrap().0, s("b"));
        assert_eq!(
            apply(m.clone(), 97, &[int(7), s("nope")]).unwrap().0,
            CdtValue::Nil
        );
        let (r, m) = apply(m, 76, &[int(5), s("b")]).unwrap();
        assert_eq!(r, int(1));
        assert_eq!(apply(m, 96, &[]).unwrap().0, int(1));
    }

    #[test]
    fn key_ordered_maps_and_intervals() {
        let mut m = Map {
            flags: MAP_KEY_ORDERED,
            entries: vec![],
        };
        for k in ["c", "a", "b", "d"] {
            m = apply(Some(m), 67, &[s(k), int(k.as_bytes()[0] as i64)])
                .unwrap()
                .1
                .unwrap();
        }
        let keys: Vec<&CdtValue> = m.entries.iter().map(|e| &e.0).collect();
        assert_eq!(keys, vec![&s("a"), &s("b"), &s("c"), &s("d")]);
        // keys in [b, d)
        let r = apply(Some(m.clone()), 103, &[int(6), s("b"), s("d")])
            .unwrap()
            .0;
        assert_eq!(
            r,
            CdtValue::List(List {
                flags: 0,
                items: vec![s("b"), s("c")]
            })
        );
        // KEY_VALUE of the top 2 by rank
        let r = apply(Some(m), 106, &[int(8), int(-2)]).unwrap().0;
        let CdtValue::Map(top) = r else { panic!() };
        assert_eq!(top.entries.len(), 2);
        assert_eq!(top.entries[0].0, s("c"));
    }
}
