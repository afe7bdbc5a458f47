//! Nested contexts (`ctx`): a path from the bin's list or map down to the collection an
//! operation applies to — list index, rank or value; map index, rank, key or value — with
//! Aerospike's create flags on the way down (a missing list index or map key is created as
//! an empty list or map of the given order).

use super::value::{
    compare, CdtValue, List, Map, LIST_ORDERED, MAP_KEY_ORDERED, MAP_KEY_VALUE_ORDERED,
};
use super::{by_rank_order, index_of};
use crate::record::ResultCode;

/// Which element a step selects.
#[derive(Clone, Debug, PartialEq)]
pub enum Selector {
    ListIndex(i64),
    ListRank(i64),
    ListValue(CdtValue),
    MapIndex(i64),
    MapRank(i64),
    MapKey(CdtValue),
    MapValue(CdtValue),
}

/// One step of a path, with the create flag (0x40 / 0x80 / 0xc0, or 0).
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub selector: Selector,
    pub create: u8,
}

/// Decode `[type, value, type, value, …]`.
pub fn parse(items: &[CdtValue]) -> Result<Vec<Step>, ResultCode> {
    if items.is_empty() || !items.len().is_multiple_of(2) {
        return Err(ResultCode::Parameter);
    }
    items
        .chunks_exact(2)
        .map(|pair| {
            let CdtValue::Int(t) = pair[0] else {
                return Err(ResultCode::Parameter);
            };
            let int = || match pair[1] {
                CdtValue::Int(i) => Ok(i),
                _ => Err(ResultCode::Parameter),
            };
            let selector = match t & 0x3f {
                0x10 => Selector::ListIndex(int()?),
                0x11 => Selector::ListRank(int()?),
                0x13 => Selector::ListValue(pair[1].clone()),
                0x20 => Selector::MapIndex(int()?),
                0x21 => Selector::MapRank(int()?),
                0x22 => Selector::MapKey(pair[1].clone()),
                0x23 => Selector::MapValue(pair[1].clone()),
                _ => return Err(ResultCode::Parameter),
            };
            Ok(Step {
                selector,
                create: (t & 0xc0) as u8,
            })
        })
        .collect()
}

/// The empty container a create flag makes at a step.
fn created(step: &Step) -> CdtValue {
    match step.selector {
        Selector::ListIndex(_) | Selector::ListRank(_) | Selector::ListValue(_) => {
            CdtValue::List(List {
                flags: if step.create == 0xc0 { LIST_ORDERED } else { 0 },
                items: Vec::new(),
            })
        }
        _ => CdtValue::Map(Map {
            flags: match step.create {
                0x80 => MAP_KEY_ORDERED,
                0xc0 => MAP_KEY_VALUE_ORDERED,
                _ => 0,
            },
            entries: Vec::new(),
        }),
    }
}

fn is_list_step(s: &Step) -> bool {
    matches!(
        s.selector,
        Selector::ListIndex(_) | Selector::ListRank(_) | Selector::ListValue(_)
    )
}

/// The child `step` selects in `parent`, created if missing and asked for; None when it is
/// missing (a read then answers nil, a write fails).
fn child<'a>(
    parent: &'a mut CdtValue,
    step: &Step,
) -> Result<Option<&'a mut CdtValue>, ResultCode> {
    match (parent, &step.selector) {
        (CdtValue::List(l), sel) if is_list_step(step) => {
            let len = l.items.len();
            let at = match sel {
                Selector::ListIndex(i) => match index_of(*i, len) {
                    Some(at) => Some(at),
                    None if step.create != 0 && *i >= 0 => {
                        let i = *i as usize;
                        // 0x80 pads with nils; otherwise only the next index may be created.
                        if i > len && step.create != 0x80 {
                            return Err(ResultCode::OpNotApplicable);
                        }
                        l.items.resize(i, CdtValue::Nil);
                        l.items.push(created(step));
                        Some(i)
                    }
                    None => None,
                },
                Selector::ListRank(r) => {
                    let values: Vec<&CdtValue> = l.items.iter().collect();
                    let order = by_rank_order(&values);
                    index_of(*r, len).map(|r| order[r])
                }
                Selector::ListValue(v) => l.items.iter().position(|x| x == v),
                _ => None,
            };
            Ok(at.map(move |i| &mut l.items[i]))
        }
        (CdtValue::Map(m), sel) if !is_list_step(step) => {
            let mut keys: Vec<usize> = (0..m.entries.len()).collect();
            keys.sort_by(|a, b| compare(&m.entries[*a].0, &m.entries[*b].0));
            let at = match sel {
                Selector::MapIndex(i) => index_of(*i, keys.len()).map(|i| keys[i]),
                Selector::MapRank(r) => {
                    let values: Vec<&CdtValue> = m.entries.iter().map(|e| &e.1).collect();
                    let order = by_rank_order(&values);
                    index_of(*r, values.len()).map(|r| order[r])
                }
                Selector::MapKey(k) => match m.entries.iter().position(|e| e.0 == *k) {
                    Some(at) => Some(at),
                    None if step.create != 0 => {
                        m.entries.push((k.clone(), created(step)));
                        if m.key_ordered() {
                            m.entries.sort_by(|a, b| compare(&a.0, &b.0));
                        }
                        m.entries.iter().position(|e| e.0 == *k)
                    }
                    None => None,
                },
                Selector::MapValue(v) => m.entries.iter().position(|e| e.1 == *v),
                _ => None,
            };
            Ok(at.map(move |i| &mut m.entries[i].1))
        }
        _ => Err(ResultCode::IncompatibleType),
    }
}

/// Apply `op` to the collection at `path` under `top` (the bin's value, None if missing);
/// answers the op's result and the bin's new value if anything changed.
pub fn apply_at<F>(
    top: Option<CdtValue>,
    path: &[Step],
    op: F,
) -> Result<(CdtValue, Option<CdtValue>), ResultCode>
where
    F: FnOnce(Option<CdtValue>) -> Result<(CdtValue, Option<CdtValue>), ResultCode>,
{
    let mut root = match top {
        Some(v) => v,
        None if path[0].create != 0 => match created(&path[0]) {
            // The bin itself is the container the first step looks into.
            CdtValue::List(_) if is_list_step(&path[0]) => CdtValue::List(List::default()),
            _ => CdtValue::Map(Map::default()),
        },
        None => return Ok((CdtValue::Nil, None)),
    };
    let mut node = &mut root;
    for step in path {
        match child(node, step)? {
            Some(c) => node = c,
            None => return Err(ResultCode::OpNotApplicable),
        }
    }
    let target = std::mem::replace(node, CdtValue::Nil);
    let (result, changed) = op(Some(target))?;
    // Containers created on the way down are kept only when the operation changed
    // something (a read through a create path leaves the bin as it was).
    match changed {
        Some(c) => {
            *node = c;
            Ok((result, Some(root)))
        }
        None => Ok((result, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{apply, value};
    use super::*;
    use crate::record::Value;

    fn payload(ctx: Vec<CdtValue>, op: Vec<CdtValue>) -> Vec<u8> {
        value::to_bytes(&CdtValue::List(List {
            flags: 0,
            items: vec![
                CdtValue::Int(0xff),
                CdtValue::List(List {
                    flags: 0,
                    items: ctx,
                }),
                CdtValue::List(List {
                    flags: 0,
                    items: op,
                }),
            ],
        }))
    }

    fn s(x: &str) -> CdtValue {
        CdtValue::Str(x.as_bytes().to_vec())
    }

    #[test]
    fn operations_reach_nested_lists_and_maps() {
        use CdtValue::Int;
        // {"a": [1, 2], "b": {"c": [3]}}
        let bin = CdtValue::Map(Map {
            flags: 0,
            entries: vec![
                (
                    s("a"),
                    CdtValue::List(List {
                        flags: 0,
                        items: vec![Int(1), Int(2)],
                    }),
                ),
                (
                    s("b"),
                    CdtValue::Map(Map {
                        flags: 0,
                        entries: vec![(
                            s("c"),
                            CdtValue::List(List {
                                flags: 0,
                                items: vec![Int(3)],
                            }),
                        )],
                    }),
                ),
            ],
        });
        let bin = Value::Map(value::to_bytes(&bin));
        // append 4 to b.c
        let p = payload(
            vec![Int(0x22), s("b"), Int(0x22), s("c")],
            vec![Int(1), Int(4)],
        );
        let e = apply(Some(&bin), &p, true).unwrap();
        assert_eq!(e.result, Value::Int(2));
        let new = e.new_bin.unwrap();
        // size of a (read path, no change)
        let p = payload(vec![Int(0x22), s("a")], vec![Int(16)]);
        let e = apply(Some(&new), &p, false).unwrap();
        assert_eq!((e.result, e.new_bin), (Value::Int(2), None));
        // get by index of b.c (the appended 4)
        let p = payload(
            vec![Int(0x22), s("b"), Int(0x22), s("c")],
            vec![Int(17), Int(-1)],
        );
        assert_eq!(apply(Some(&new), &p, false).unwrap().result, Value::Int(4));
        // a missing key without create: not applicable
        let p = payload(vec![Int(0x22), s("zz")], vec![Int(1), Int(4)]);
        assert_eq!(
            apply(Some(&new), &p, true).unwrap_err(),
            ResultCode::OpNotApplicable
        );
        // with create: map key create makes a map, which a map put then fills
        let p = payload(
            vec![Int(0x22 | 0x40), s("zz")],
            vec![Int(67), s("k"), Int(1)],
        );
        let e = apply(Some(&new), &p, true).unwrap();
        assert_eq!(e.result, Value::Int(1));
        assert!(e.new_bin.is_some());
        // a list operation on it is the wrong type
        let p = payload(vec![Int(0x22 | 0x40), s("zz")], vec![Int(1), Int(4)]);
        assert_eq!(
            apply(Some(&new), &p, true).unwrap_err(),
            ResultCode::IncompatibleType
        );
        // list index create pads only with the unbound flag
        let list = Value::List(value::to_bytes(&CdtValue::List(List::default())));
        let p = payload(vec![Int(0x10 | 0x40), Int(2)], vec![Int(1), Int(4)]);
        assert_eq!(
            apply(Some(&list), &p, true).unwrap_err(),
            ResultCode::OpNotApplicable
        );
        let p = payload(vec![Int(0x10 | 0x80), Int(2)], vec![Int(1), Int(4)]);
        let e = apply(Some(&list), &p, true).unwrap();
        let Some(Value::List(b)) = e.new_bin else {
            panic!()
        };
        let CdtValue::List(l) = value::decode(&b).unwrap() else {
            panic!()
        };
        assert_eq!(l.items.len(), 3);
    }
}
