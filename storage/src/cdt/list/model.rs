//! Every list operation against a small reference model of Aerospike's list semantics: a
//! `Vec<Option<i64>>` (None = nil, which Aerospike orders below every integer, as `Option`
//! does), kept sorted when the list is ordered. Negative indexes and ranks count from the
//! end; ranges clamp; relative rank ranges start where the anchor value would sit; the write
//! flags add-unique, insert-bounded, no-fail and partial; every return type; INVERTED.

use super::*;
use crate::cdt::model_support::{check_step, index, range, relative};
use crate::cdt::INVERTED;
use proptest::prelude::*;

type Item = Option<i64>;

#[derive(Clone, Debug)]
enum Step {
    Append(Vec<i64>, i64),
    Insert(i64, Vec<i64>, i64),
    Set(i64, i64, i64),
    Increment(i64, i64, i64),
    Pop(i64),
    PopRange(i64, Option<i64>),
    Remove(i64),
    RemoveRange(i64, Option<i64>),
    Trim(i64, i64),
    Clear,
    Sort(i64),
    SetOrder(bool),
    Size,
    Get(i64),
    GetRange(i64, Option<i64>),
    Select { kind: Kind, rt: i64, remove: bool },
}

#[derive(Clone, Debug)]
enum Kind {
    Index(i64),
    Rank(i64),
    Value(i64),
    ValueList(Vec<i64>),
    IndexRange(i64, Option<i64>),
    ValueRange(i64, Option<i64>),
    RankRange(i64, Option<i64>),
    ValueRelRank(i64, i64, Option<i64>),
}

fn int_list(v: &[i64]) -> CdtValue {
    CdtValue::List(List {
        flags: 0,
        items: v.iter().map(|x| CdtValue::Int(*x)).collect(),
    })
}

impl Kind {
    fn single(&self) -> bool {
        matches!(self, Kind::Index(_) | Kind::Rank(_))
    }

    /// (get code, remove code, arguments after the return type)
    fn wire(&self) -> (i64, i64, Vec<CdtValue>) {
        let i = CdtValue::Int;
        let opt = |c: &Option<i64>| c.map_or(CdtValue::Nil, CdtValue::Int);
        match self {
            Kind::Index(x) => (19, 32, vec![i(*x)]),
            Kind::Rank(r) => (21, 34, vec![i(*r)]),
            Kind::Value(v) => (22, 35, vec![i(*v)]),
            Kind::ValueList(vs) => (23, 36, vec![int_list(vs)]),
            Kind::IndexRange(x, c) => (24, 37, vec![i(*x), opt(c)]),
            Kind::ValueRange(a, b) => (25, 38, vec![i(*a), opt(b)]),
            Kind::RankRange(r, c) => (26, 39, vec![i(*r), opt(c)]),
            Kind::ValueRelRank(v, o, c) => (27, 40, vec![i(*v), i(*o), opt(c)]),
        }
    }
}

fn kind() -> impl Strategy<Value = Kind> {
    let v = -1i64..5;
    let x = -7i64..8;
    let c = proptest::option::of(0i64..5);
    let b = proptest::option::of(-1i64..6);
    prop_oneof![
        x.clone().prop_map(Kind::Index),
        x.clone().prop_map(Kind::Rank),
        v.clone().prop_map(Kind::Value),
        proptest::collection::vec(v.clone(), 0..4).prop_map(Kind::ValueList),
        (x.clone(), c.clone()).prop_map(|(a, c)| Kind::IndexRange(a, c)),
        (v.clone(), b).prop_map(|(a, b)| Kind::ValueRange(a, b)),
        (x.clone(), c.clone()).prop_map(|(a, c)| Kind::RankRange(a, c)),
        (v, x, c).prop_map(|(v, o, c)| Kind::ValueRelRank(v, o, c)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let v = -1i64..5;
    let x = -7i64..8;
    let c = proptest::option::of(0i64..5);
    let flags = prop_oneof![
        3 => Just(0),
        1 => Just(ADD_UNIQUE),
        1 => Just(ADD_UNIQUE | NO_FAIL),
        1 => Just(ADD_UNIQUE | NO_FAIL | DO_PARTIAL),
        1 => Just(INSERT_BOUNDED),
        1 => Just(INSERT_BOUNDED | NO_FAIL),
    ];
    let values = proptest::collection::vec(v.clone(), 1..4);
    let rt = (
        prop_oneof![0i64..=8, Just(13)],
        prop_oneof![3 => Just(0), 1 => Just(INVERTED)],
    )
        .prop_map(|(r, inv)| r | inv);
    prop_oneof![
        3 => (values.clone(), flags.clone()).prop_map(|(v, f)| Step::Append(v, f)),
        2 => (x.clone(), values, flags.clone()).prop_map(|(i, v, f)| Step::Insert(i, v, f)),
        1 => (x.clone(), v.clone(), flags.clone()).prop_map(|(i, v, f)| Step::Set(i, v, f)),
        1 => (x.clone(), v, flags).prop_map(|(i, d, f)| Step::Increment(i, d, f)),
        1 => x.clone().prop_map(Step::Pop),
        1 => (x.clone(), c.clone()).prop_map(|(i, c)| Step::PopRange(i, c)),
        1 => x.clone().prop_map(Step::Remove),
        1 => (x.clone(), c.clone()).prop_map(|(i, c)| Step::RemoveRange(i, c)),
        1 => (x.clone(), 0i64..5).prop_map(|(i, c)| Step::Trim(i, c)),
        1 => Just(Step::Clear),
        1 => (0i64..4).prop_map(Step::Sort),
        1 => any::<bool>().prop_map(Step::SetOrder),
        1 => Just(Step::Size),
        1 => x.clone().prop_map(Step::Get),
        1 => (x, c).prop_map(|(i, c)| Step::GetRange(i, c)),
        6 => (kind(), rt, any::<bool>()).prop_map(|(kind, rt, remove)| Step::Select { kind, rt, remove }),
    ]
}

fn cdt(v: &Item) -> CdtValue {
    v.map_or(CdtValue::Nil, CdtValue::Int)
}

fn list(items: &[Item]) -> CdtValue {
    CdtValue::List(List {
        flags: 0,
        items: items.iter().map(cdt).collect(),
    })
}

struct Model {
    items: Vec<Item>,
    ordered: bool,
}

impl Model {
    fn len(&self) -> CdtValue {
        CdtValue::Int(self.items.len() as i64)
    }

    fn sort(&mut self) {
        if self.ordered {
            self.items.sort();
        }
    }

    /// The values add-unique lets in: Err(24) on a duplicate, or all/some skipped.
    fn admit(&self, values: &[i64], flags: i64) -> Result<Vec<i64>, ResultCode> {
        if flags & ADD_UNIQUE == 0 {
            return Ok(values.to_vec());
        }
        let mut out: Vec<i64> = Vec::new();
        for v in values {
            if !self.items.contains(&Some(*v)) && !out.contains(v) {
                out.push(*v);
            } else if flags & NO_FAIL == 0 {
                return Err(ResultCode::ElementExists);
            } else if flags & DO_PARTIAL == 0 {
                return Ok(Vec::new());
            }
        }
        Ok(out)
    }

    /// Positions a selector picks, in the order results are given.
    fn select(&self, kind: &Kind) -> Result<Vec<usize>, ResultCode> {
        let n = self.items.len();
        let mut rank_order: Vec<usize> = (0..n).collect();
        rank_order.sort_by_key(|p| (self.items[*p], *p));
        let at = |p: &usize| self.items[*p];
        Ok(match kind {
            Kind::Index(i) => vec![index(*i, n).ok_or(ResultCode::OpNotApplicable)?],
            Kind::Rank(r) => vec![rank_order[index(*r, n).ok_or(ResultCode::OpNotApplicable)?]],
            Kind::Value(v) => (0..n).filter(|p| at(p) == Some(*v)).collect(),
            Kind::ValueList(vs) => (0..n)
                .filter(|p| at(p).is_some_and(|x| vs.contains(&x)))
                .collect(),
            Kind::IndexRange(i, c) => range(*i, *c, n),
            Kind::ValueRange(a, b) => (0..n)
                .filter(|p| at(p) >= Some(*a) && b.is_none_or(|b| at(p) < Some(b)))
                .collect(),
            Kind::RankRange(r, c) => range(*r, *c, n)
                .into_iter()
                .map(|r| rank_order[r])
                .collect(),
            Kind::ValueRelRank(v, o, c) => {
                let start = self.items.iter().filter(|x| **x < Some(*v)).count() as i64 + o;
                relative(start, *c, n)
                    .into_iter()
                    .map(|r| rank_order[r])
                    .collect()
            }
        })
    }

    fn render(&self, kind: &Kind, positions: &[usize], rt: i64) -> Result<CdtValue, ResultCode> {
        let n = self.items.len();
        let last = n as i64 - 1;
        let mut rank_order: Vec<usize> = (0..n).collect();
        rank_order.sort_by_key(|p| (self.items[*p], *p));
        let rank_of = |p: usize| rank_order.iter().position(|x| *x == p).unwrap() as i64;
        let many = |f: &dyn Fn(usize) -> CdtValue| {
            if kind.single() {
                positions.first().map_or(CdtValue::Nil, |p| f(*p))
            } else {
                CdtValue::List(List {
                    flags: 0,
                    items: positions.iter().map(|p| f(*p)).collect(),
                })
            }
        };
        let i = CdtValue::Int;
        Ok(match rt & !INVERTED {
            0 => CdtValue::Nil,
            1 => many(&|p| i(p as i64)),
            2 => many(&|p| i(last - p as i64)),
            3 => many(&|p| i(rank_of(p))),
            4 => many(&|p| i(last - rank_of(p))),
            5 => i(positions.len() as i64),
            7 => many(&|p| cdt(&self.items[p])),
            13 => CdtValue::Bool(!positions.is_empty()),
            _ => return Err(ResultCode::Parameter),
        })
    }

    /// Where a write at `i` lands: Err(26) before the start, or past the end when bounded.
    fn write_at(&self, i: i64, flags: i64, past_end_ok: bool) -> Result<usize, ResultCode> {
        let n = self.items.len() as i64;
        let at = if i < 0 { i + n } else { i };
        let beyond = if past_end_ok { at > n } else { at >= n };
        if at < 0 || (flags & INSERT_BOUNDED != 0 && beyond) {
            return Err(ResultCode::OpNotApplicable);
        }
        Ok(at as usize)
    }

    fn apply(&mut self, s: &Step) -> Result<CdtValue, ResultCode> {
        let n = self.items.len();
        match s {
            Step::Append(vs, f) => {
                for v in self.admit(vs, *f)? {
                    self.items.push(Some(v));
                }
                self.sort();
                Ok(self.len())
            }
            Step::Insert(i, vs, f) => {
                if self.ordered {
                    return Err(ResultCode::OpNotApplicable);
                }
                let at = match self.write_at(*i, *f, true) {
                    Ok(at) => at,
                    Err(_) if f & NO_FAIL != 0 => return Ok(self.len()),
                    Err(e) => return Err(e),
                };
                let vs = self.admit(vs, *f)?;
                if at > n {
                    self.items.resize(at, None);
                }
                self.items.splice(at..at, vs.into_iter().map(Some));
                Ok(self.len())
            }
            Step::Set(i, v, f) => {
                if self.ordered {
                    return Err(ResultCode::OpNotApplicable);
                }
                let at = match self.write_at(*i, *f, false) {
                    Ok(at) => at,
                    Err(_) if f & NO_FAIL != 0 => return Ok(CdtValue::Nil),
                    Err(e) => return Err(e),
                };
                if f & ADD_UNIQUE != 0 && self.items.contains(&Some(*v)) {
                    if f & NO_FAIL != 0 {
                        return Ok(CdtValue::Nil);
                    }
                    return Err(ResultCode::ElementExists);
                }
                if at >= n {
                    self.items.resize(at + 1, None);
                }
                self.items[at] = Some(*v);
                Ok(CdtValue::Nil)
            }
            Step::Increment(i, d, f) => {
                let refuse = |code| {
                    if f & NO_FAIL != 0 {
                        Ok(CdtValue::Nil)
                    } else {
                        Err(code)
                    }
                };
                let at = match self.write_at(*i, *f, false) {
                    Ok(at) if self.ordered && at >= n => {
                        return refuse(ResultCode::OpNotApplicable)
                    }
                    Ok(at) => at,
                    Err(e) => return refuse(e),
                };
                let new = self.items.get(at).copied().flatten().unwrap_or(0) + d;
                let elsewhere = (0..n).any(|p| p != at && self.items[p] == Some(new));
                if f & ADD_UNIQUE != 0 && elsewhere {
                    return refuse(ResultCode::ElementExists);
                }
                if at >= n {
                    self.items.resize(at + 1, None);
                }
                self.items[at] = Some(new);
                self.sort();
                Ok(CdtValue::Int(new))
            }
            Step::Pop(i) => Ok(cdt(&self
                .items
                .remove(index(*i, n).ok_or(ResultCode::OpNotApplicable)?))),
            Step::PopRange(i, c) | Step::RemoveRange(i, c) => {
                let r = range(*i, *c, n);
                let gone: Vec<Item> = self
                    .items
                    .drain(r.first().copied().unwrap_or(0)..r.last().map_or(0, |l| l + 1))
                    .collect();
                Ok(match s {
                    Step::PopRange(..) => list(&gone),
                    _ => CdtValue::Int(gone.len() as i64),
                })
            }
            Step::Remove(i) => {
                self.items
                    .remove(index(*i, n).ok_or(ResultCode::OpNotApplicable)?);
                Ok(CdtValue::Int(1))
            }
            Step::Trim(i, c) => {
                let keep = range(*i, Some(*c), n);
                self.items = keep.iter().map(|p| self.items[*p]).collect();
                Ok(CdtValue::Int((n - self.items.len()) as i64))
            }
            Step::Clear => {
                self.items.clear();
                Ok(CdtValue::Nil)
            }
            Step::Sort(f) => {
                self.items.sort();
                if f & 2 != 0 {
                    self.items.dedup();
                }
                if f & 1 != 0 {
                    self.items.reverse();
                }
                Ok(CdtValue::Nil)
            }
            Step::SetOrder(o) => {
                self.ordered = *o;
                self.sort();
                Ok(CdtValue::Nil)
            }
            Step::Size => Ok(self.len()),
            Step::Get(i) => Ok(cdt(
                &self.items[index(*i, n).ok_or(ResultCode::OpNotApplicable)?]
            )),
            Step::GetRange(i, c) => {
                let r = range(*i, *c, n);
                Ok(list(&r.iter().map(|p| self.items[*p]).collect::<Vec<_>>()))
            }
            Step::Select { kind, rt, remove } => {
                let mut positions = self.select(kind)?;
                if rt & INVERTED != 0 {
                    if kind.single() {
                        return Err(ResultCode::OpNotApplicable);
                    }
                    positions = (0..n).filter(|p| !positions.contains(p)).collect();
                }
                let out = self.render(kind, &positions, *rt)?;
                if *remove {
                    let mut p = 0;
                    self.items.retain(|_| {
                        p += 1;
                        !positions.contains(&(p - 1))
                    });
                }
                Ok(out)
            }
        }
    }
}

fn run(l: Option<List>, s: &Step) -> Answer {
    let i = CdtValue::Int;
    let opt = |c: &Option<i64>| c.map_or(CdtValue::Nil, CdtValue::Int);
    match s {
        Step::Append(vs, f) if vs.len() == 1 => apply(l, 1, &[i(vs[0]), i(0), i(*f)]),
        Step::Append(vs, f) => apply(l, 2, &[int_list(vs), i(0), i(*f)]),
        Step::Insert(x, vs, f) if vs.len() == 1 => apply(l, 3, &[i(*x), i(vs[0]), i(*f)]),
        Step::Insert(x, vs, f) => apply(l, 4, &[i(*x), int_list(vs), i(*f)]),
        Step::Set(x, v, f) => apply(l, 9, &[i(*x), i(*v), i(*f)]),
        Step::Increment(x, d, f) => apply(l, 12, &[i(*x), i(*d), i(0), i(*f)]),
        Step::Pop(x) => apply(l, 5, &[i(*x)]),
        Step::PopRange(x, c) => apply(l, 6, &[i(*x), opt(c)]),
        Step::Remove(x) => apply(l, 7, &[i(*x)]),
        Step::RemoveRange(x, c) => apply(l, 8, &[i(*x), opt(c)]),
        Step::Trim(x, c) => apply(l, 10, &[i(*x), i(*c)]),
        Step::Clear => apply(l, 11, &[]),
        Step::Sort(f) => apply(l, 13, &[i(*f)]),
        Step::SetOrder(o) => apply(l, 0, &[i(i64::from(*o))]),
        Step::Size => apply(l, 16, &[]),
        Step::Get(x) => apply(l, 17, &[i(*x)]),
        Step::GetRange(x, c) => apply(l, 18, &[i(*x), opt(c)]),
        Step::Select { kind, rt, remove } => {
            let (get, rm, rest) = kind.wire();
            let mut args = vec![i(*rt)];
            args.extend(rest);
            apply(l, if *remove { rm } else { get }, &args)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn list_operations_match_the_model(
        ordered in any::<bool>(),
        steps in proptest::collection::vec(step(), 1..30),
    ) {
        let flags = if ordered { LIST_ORDERED } else { 0 };
        let mut model = Model { items: Vec::new(), ordered };
        let mut current = Some(List { flags, items: Vec::new() });
        for s in &steps {
            // Sorting an ordered list descending would break its order: not a valid step.
            if model.ordered && matches!(s, Step::Sort(f) if f & 1 != 0) {
                continue;
            }
            let want = model.apply(s);
            let got = run(current.clone(), s);
            check_step(&mut current, got, want, s)?;
            let l = current.as_ref().unwrap();
            prop_assert_eq!(CdtValue::List(List { flags: 0, items: l.items.clone() }), list(&model.items), "after {:?}", s);
            prop_assert_eq!(l.flags, if model.ordered { LIST_ORDERED } else { 0 });
        }
    }
}
