use super::*;
use crate::cdt::model_support::op_payload as payload;
use proptest::prelude::*;

fn i(v: i64) -> CdtValue {
    CdtValue::Int(v)
}

fn list(items: Vec<CdtValue>) -> CdtValue {
    CdtValue::List(List { flags: 0, items })
}

fn strings(range: std::ops::Range<u32>) -> CdtValue {
    list(
        range
            .map(|n| CdtValue::Str(format!("key {n}").into_bytes()))
            .collect(),
    )
}

fn hll_value(v: &Value) -> CdtValue {
    match v {
        Value::Blob(particle::HLL, b) => CdtValue::Bytes(particle::HLL, b.clone()),
        other => panic!("not an HLL: {other:?}"),
    }
}

/// Run a modify op; the new bin (or the old one when unchanged) and the result.
fn run(
    bin: Option<&Value>,
    code: i64,
    args: &[CdtValue],
) -> Result<(Option<Value>, Value), ResultCode> {
    let e = apply(bin, &payload(code, args), true)?;
    Ok((e.new_bin.or_else(|| bin.cloned()), e.result))
}

fn sketch(p: i64, r: i64, range: std::ops::Range<u32>) -> Value {
    run(None, ADD, &[strings(range), i(p), i(r)])
        .unwrap()
        .0
        .unwrap()
}

fn read(bin: &Value, code: i64, args: &[CdtValue]) -> Result<Value, ResultCode> {
    apply(Some(bin), &payload(code, args), false).map(|e| e.result)
}

fn count(bin: &Value) -> i64 {
    match read(bin, COUNT, &[]) {
        Ok(Value::Int(n)) => n,
        other => panic!("{other:?}"),
    }
}

fn within(estimate: i64, expected: i64, p: u8) -> bool {
    let err = 6.0 * 1.04 / f64::from(1u32 << p).sqrt();
    (estimate as f64 - expected as f64).abs() <= err * expected as f64 + 1.0
}

#[test]
fn murmur3_matches_the_reference_vector() {
    let h = hash(b"hello");
    assert_eq!(h as u64, 0xcbd8_a7b3_41bd_9b02);
    assert_eq!((h >> 64) as u64, 0x5b1e_906a_48ae_1d19);
}

#[test]
fn layout_is_aerospikes_and_round_trips() {
    for (p, r) in [
        (4u8, 0u8),
        (4, 51),
        (10, 7),
        (16, 0),
        (12, 52 - 4 - 4),
        (16, 48),
    ] {
        let mut h = Hll::new(p, r);
        for n in 0..500u32 {
            h.add(&n.to_be_bytes());
        }
        let b = h.to_bytes();
        assert_eq!(b.len(), 11 + ((1usize << p) * (6 + r as usize)).div_ceil(8));
        assert_eq!((b[1], b[2]), (p, r));
        assert_eq!(u64::from_le_bytes(b[3..11].try_into().unwrap()), h.count());
        assert_eq!(Hll::from_bytes(&b), Some(h));
    }
    assert_eq!(Hll::from_bytes(&[0; 10]), None);
    assert_eq!(Hll::from_bytes(&Hll::new(4, 0).to_bytes()[..20]), None);
    let mut bad = Hll::new(4, 0).to_bytes();
    bad[1] = 17;
    assert_eq!(Hll::from_bytes(&bad), None);
}

#[test]
fn counts_are_within_the_expected_error() {
    assert_eq!(Hll::new(12, 0).count(), 0);
    for (p, n) in [
        (4u8, 10u32),
        (8, 100),
        (12, 1000),
        (12, 100_000),
        (14, 200_000),
    ] {
        let v = sketch(p.into(), 0, 0..n);
        assert!(within(count(&v), n.into(), p), "p={p} n={n}: {}", count(&v));
    }
    // small sets are nearly exact
    let v = sketch(14, 0, 0..20);
    assert_eq!(count(&v), 20);
}

#[test]
fn init_add_and_describe() {
    let (bin, res) = run(None, INIT, &[i(10), i(4)]).unwrap();
    assert_eq!(res, Value::Nil);
    let bin = bin.unwrap();
    assert_eq!(count(&bin), 0);
    let desc = read(&bin, DESCRIBE, &[]).unwrap();
    assert_eq!(desc, Value::List(to_bytes(&list(vec![i(10), i(4)]))));
    let (bin, res) = run(Some(&bin), ADD, &[strings(0..1000)]).unwrap();
    let Value::Int(changed) = res else { panic!() };
    assert!(changed > 0 && changed <= 1000);
    // adding the same elements again changes nothing
    let (bin, res) = run(bin.as_ref(), ADD, &[strings(0..1000), i(10)]).unwrap();
    assert_eq!(res, Value::Int(0));
    assert!(within(count(bin.as_ref().unwrap()), 1000, 10));
    let (_, res) = run(bin.as_ref(), REFRESH_COUNT, &[]).unwrap();
    assert_eq!(res, Value::Int(count(bin.as_ref().unwrap())));
    // re-init keeps the description when the bits are unset
    let (bin, _) = run(bin.as_ref(), INIT, &[i(-1), i(-1)]).unwrap();
    let bin = bin.unwrap();
    assert_eq!(count(&bin), 0);
    assert_eq!(read(&bin, DESCRIBE, &[]).unwrap(), desc);
}

#[test]
fn flags_and_errors() {
    let existing = sketch(8, 0, 0..10);
    let e = |bin: Option<&Value>, code, args: &[CdtValue]| run(bin, code, args).unwrap_err();
    // bad descriptions
    for (p, r) in [(3, 0), (17, 0), (8, 3), (8, 52), (16, 49)] {
        assert_eq!(
            e(None, INIT, &[i(p), i(r)]),
            ResultCode::Parameter,
            "({p}, {r})"
        );
        assert_eq!(
            e(None, ADD, &[strings(0..2), i(p), i(r)]),
            ResultCode::Parameter
        );
    }
    // create-only / update-only / no-fail
    assert_eq!(
        e(Some(&existing), INIT, &[i(8), i(0), i(1)]),
        ResultCode::BinExists
    );
    assert_eq!(e(None, INIT, &[i(8), i(0), i(2)]), ResultCode::BinNotFound);
    assert_eq!(
        run(Some(&existing), INIT, &[i(8), i(0), i(5)]).unwrap().0,
        Some(existing.clone())
    );
    assert_eq!(run(None, INIT, &[i(8), i(0), i(6)]).unwrap().0, None);
    assert_eq!(e(None, INIT, &[i(8), i(0), i(8)]), ResultCode::Parameter);
    assert_eq!(
        e(Some(&existing), ADD, &[strings(0..2), i(8), i(0), i(1)]),
        ResultCode::BinExists
    );
    assert_eq!(
        e(None, ADD, &[strings(0..2), i(8), i(0), i(2)]),
        ResultCode::Parameter
    );
    assert_eq!(
        e(None, ADD, &[strings(0..2), i(8), i(0), i(8)]),
        ResultCode::Parameter
    );
    // an add without bits cannot create; refresh and fold need the bin
    assert_eq!(e(None, ADD, &[strings(0..2)]), ResultCode::BinNotFound);
    assert_eq!(e(None, REFRESH_COUNT, &[]), ResultCode::BinNotFound);
    assert_eq!(e(None, FOLD, &[i(4)]), ResultCode::BinNotFound);
    // re-init to an impossible pair
    let big = run(None, INIT, &[i(16), i(0)]).unwrap().0.unwrap();
    assert_eq!(
        e(Some(&big), INIT, &[i(-1), i(51)]),
        ResultCode::OpNotApplicable
    );
    assert_eq!(e(None, INIT, &[i(-1), i(4)]), ResultCode::OpNotApplicable);
    // fold: only down, only without minhash
    assert_eq!(
        e(Some(&existing), FOLD, &[i(9)]),
        ResultCode::OpNotApplicable
    );
    assert_eq!(
        e(Some(&sketch(8, 4, 0..3)), FOLD, &[i(4)]),
        ResultCode::OpNotApplicable
    );
    assert_eq!(e(Some(&existing), FOLD, &[i(3)]), ResultCode::Parameter);
    // wrong bin type, malformed sketch, unknown op, modify in a read
    let int = Value::Int(1);
    assert_eq!(
        e(Some(&int), ADD, &[strings(0..2)]),
        ResultCode::IncompatibleType
    );
    assert_eq!(read(&int, COUNT, &[]), Err(ResultCode::IncompatibleType));
    let junk = Value::Blob(particle::HLL, vec![1, 2, 3]);
    assert_eq!(read(&junk, COUNT, &[]), Err(ResultCode::Parameter));
    assert_eq!(e(Some(&existing), 9, &[]), ResultCode::Parameter);
    assert_eq!(
        read(&existing, ADD, &[strings(0..2)]),
        Err(ResultCode::Parameter)
    );
    // reads of a missing bin answer nil
    let missing = apply(None, &payload(COUNT, &[]), false).unwrap();
    assert_eq!(missing.result, Value::Nil);
}

#[test]
fn fold_equals_a_sketch_built_smaller() {
    let big = sketch(12, 0, 0..5000);
    let (folded, _) = run(Some(&big), FOLD, &[i(6)]).unwrap();
    let small = sketch(6, 0, 0..5000);
    let f = Hll::from_bytes(match folded.as_ref().unwrap() {
        Value::Blob(_, b) => b,
        _ => unreachable!(),
    });
    let s = Hll::from_bytes(match &small {
        Value::Blob(_, b) => b,
        _ => unreachable!(),
    });
    assert_eq!(f, s);
}

#[test]
fn unions_and_set_union_folding() {
    let a = sketch(10, 0, 0..3000);
    let b = sketch(10, 0, 2000..6000);
    let u = read(&a, UNION, &[list(vec![hll_value(&b)])]).unwrap();
    let direct = sketch(10, 0, 0..6000);
    assert_eq!(u, direct);
    assert_eq!(
        read(&a, UNION_COUNT, &[list(vec![hll_value(&b)])]).unwrap(),
        Value::Int(count(&direct))
    );
    // set-union into a missing bin creates it; a bin with more index bits needs ALLOW_FOLD
    let (created, _) = run(None, SET_UNION, &[list(vec![hll_value(&a), hll_value(&b)])]).unwrap();
    assert_eq!(created.unwrap(), direct);
    let small = sketch(8, 0, 0..100);
    assert_eq!(
        run(Some(&a), SET_UNION, &[list(vec![hll_value(&small)])]).unwrap_err(),
        ResultCode::OpNotApplicable
    );
    let (folded, _) = run(Some(&a), SET_UNION, &[list(vec![hll_value(&small)]), i(8)]).unwrap();
    assert_eq!(
        read(folded.as_ref().unwrap(), DESCRIBE, &[]).unwrap(),
        Value::List(to_bytes(&list(vec![i(8), i(0)])))
    );
    // inputs with more bits fold down to the bin's
    let (grown, _) = run(Some(&small), SET_UNION, &[list(vec![hll_value(&a)])]).unwrap();
    assert!(within(count(grown.as_ref().unwrap()), 3000, 8));
    assert_eq!(
        run(Some(&a), SET_UNION, &[list(vec![])]).unwrap_err(),
        ResultCode::Parameter
    );
}

#[test]
fn similarity_and_intersections() {
    // with minhashes: A = [0, 20000), B = [10000, 30000): Jaccard 1/3, intersection 10000
    let a = sketch(12, 16, 0..20_000);
    let b = sketch(12, 16, 10_000..30_000);
    let sim = match read(&a, SIMILARITY, &[list(vec![hll_value(&b)])]).unwrap() {
        Value::Float(f) => f,
        other => panic!("{other:?}"),
    };
    assert!((sim - 1.0 / 3.0).abs() < 0.05, "{sim}");
    let Value::Int(n) = read(&a, INTERSECT_COUNT, &[list(vec![hll_value(&b)])]).unwrap() else {
        panic!()
    };
    assert!((n - 10_000).abs() < 1_500, "{n}");
    // without minhashes: inclusion-exclusion for up to three sets
    let a0 = sketch(14, 0, 0..20_000);
    let b0 = sketch(14, 0, 10_000..30_000);
    let Value::Int(n) = read(&a0, INTERSECT_COUNT, &[list(vec![hll_value(&b0)])]).unwrap() else {
        panic!()
    };
    assert!((n - 10_000).abs() < 2_000, "{n}");
    let three = list(vec![hll_value(&b0), hll_value(&b0), hll_value(&b0)]);
    assert_eq!(
        read(&a0, INTERSECT_COUNT, &[three]),
        Err(ResultCode::Parameter)
    );
    let mixed = list(vec![hll_value(&a), hll_value(&a), hll_value(&a)]);
    assert_eq!(
        read(&a0, SIMILARITY, &[mixed]),
        Err(ResultCode::OpNotApplicable)
    );
    // many sets sharing minhash bits are fine
    let many = list(vec![hll_value(&b), hll_value(&b), hll_value(&b)]);
    assert!(read(&a, INTERSECT_COUNT, &[many]).is_ok());
    // empty sets: no intersection, similarity undefined
    let empty = run(None, INIT, &[i(8), i(4)]).unwrap().0.unwrap();
    let Value::Float(s) = read(&empty, SIMILARITY, &[list(vec![hll_value(&empty)])]).unwrap()
    else {
        panic!()
    };
    assert!(s.is_nan());
    assert_eq!(
        read(&empty, INTERSECT_COUNT, &[list(vec![hll_value(&empty)])]).unwrap(),
        Value::Int(0)
    );
}

#[test]
fn may_contain_has_no_false_negatives() {
    let a = sketch(12, 8, 0..1000);
    assert_eq!(
        read(&a, MAY_CONTAIN, &[strings(0..1000)]).unwrap(),
        Value::Int(1)
    );
    assert_eq!(
        read(&a, MAY_CONTAIN, &[strings(5000..6000)]).unwrap(),
        Value::Int(0)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Merging sketches equals sketching the union; folding equals sketching smaller;
    /// bytes round-trip.
    #[test]
    fn sketches_compose(
        xs in proptest::collection::vec(any::<u32>(), 0..300),
        ys in proptest::collection::vec(any::<u32>(), 0..300),
        p in 4u8..=12,
        r in prop_oneof![Just(0u8), 4u8..=40],
        fold in 4u8..=12,
    ) {
        let build = |p: u8, r: u8, items: &[&[u32]]| {
            let mut h = Hll::new(p, r);
            for set in items {
                for x in *set {
                    h.add(&to_bytes(&CdtValue::Int(i64::from(*x))));
                }
            }
            h
        };
        let a = build(p, r, &[&xs]);
        let b = build(p, r, &[&ys]);
        let mut merged = a.clone();
        merged.merge(&b);
        prop_assert_eq!(&merged, &build(p, r, &[&xs, &ys]));
        prop_assert_eq!(Hll::from_bytes(&merged.to_bytes()), Some(merged.clone()));
        let fold = fold.min(p);
        let plain = build(p, 0, &[&xs]);
        prop_assert_eq!(plain.reduce(fold, 0).unwrap(), build(fold, 0, &[&xs]));
        for x in &xs {
            prop_assert!(a.may_contain(&to_bytes(&CdtValue::Int(i64::from(*x)))));
        }
    }
}
