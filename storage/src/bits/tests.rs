use super::*;
use crate::cdt::model_support::op_payload as payload;
use proptest::prelude::*;

fn i(v: i64) -> CdtValue {
    CdtValue::Int(v)
}

fn b(v: &[u8]) -> CdtValue {
    CdtValue::Bytes(4, v.to_vec())
}

fn blob(v: &[u8]) -> Value {
    Value::Blob(particle::BLOB, v.to_vec())
}

/// The bin after a modify op (panics on error).
fn modified(bin: &[u8], code: i64, args: &[CdtValue]) -> Vec<u8> {
    match apply(Some(&blob(bin)), &payload(code, args), true) {
        Ok(Effect {
            new_bin: Some(Value::Blob(_, v)),
            ..
        }) => v,
        other => panic!("op {code}: {other:?}"),
    }
}

fn read_op(bin: &[u8], code: i64, args: &[CdtValue]) -> Result<Value, ResultCode> {
    apply(Some(&blob(bin)), &payload(code, args), false).map(|e| e.result)
}

fn err(bin: Option<&[u8]>, code: i64, args: &[CdtValue]) -> ResultCode {
    let v = bin.map(blob);
    apply(v.as_ref(), &payload(code, args), true).expect_err("should fail")
}

const BIN: [u8; 5] = [
    0b0000_0001,
    0b0100_0010,
    0b0000_0011,
    0b0000_0100,
    0b0000_0101,
];

#[test]
fn documented_examples() {
    // SET off=13 size=3 [0b111_00000]: byte 1 becomes 0b0100_0111.
    assert_eq!(
        modified(&BIN, SET, &[i(13), i(3), b(&[0b1110_0000]), i(0)])[1],
        0b0100_0111
    );
    // OR off=17 size=6 [0b101010_00]: byte 2 becomes 0b0101_0111.
    assert_eq!(
        modified(&BIN, OR, &[i(17), i(6), b(&[0b1010_1000]), i(0)])[2],
        0b0101_0111
    );
    // LSHIFT off=32 size=8 by 3: byte 4 becomes 0b0010_1000.
    assert_eq!(
        modified(&BIN, LSHIFT, &[i(32), i(8), i(3), i(0)])[4],
        0b0010_1000
    );
    // RSHIFT off=0 size=9 by 1: [0b0000_0000, 0b1100_0010, ...].
    let r = modified(&BIN, RSHIFT, &[i(0), i(9), i(1), i(0)]);
    assert_eq!(&r[..2], &[0, 0b1100_0010]);
    // GET off=9 size=5 → [0b1000_0000].
    assert_eq!(read_op(&BIN, GET, &[i(9), i(5)]), Ok(blob(&[0b1000_0000])));
    // GET_INT off=8 size=16 → 0x4203.
    assert_eq!(
        read_op(&BIN, GET_INT, &[i(8), i(16)]),
        Ok(Value::Int(16899))
    );
    // LSCAN off=24 size=8 true → 5; RSCAN off=32 size=8 true → 7.
    let t = CdtValue::Bool(true);
    assert_eq!(
        read_op(&BIN, LSCAN, &[i(24), i(8), t.clone()]),
        Ok(Value::Int(5))
    );
    assert_eq!(
        read_op(&BIN, RSCAN, &[i(32), i(8), t.clone()]),
        Ok(Value::Int(7))
    );
    assert_eq!(read_op(&[0], LSCAN, &[i(0), i(8), t]), Ok(Value::Int(-1)));
    assert_eq!(read_op(&BIN, COUNT, &[i(0), i(40)]), Ok(Value::Int(8)));
    // negative offset: the last byte
    assert_eq!(read_op(&BIN, GET, &[i(-8), i(8)]), Ok(blob(&[5])));
}

#[test]
fn resize_insert_remove() {
    assert_eq!(
        modified(&[1, 2], RESIZE, &[i(4), i(0), i(0)]),
        vec![1, 2, 0, 0]
    );
    assert_eq!(
        modified(&[1, 2], RESIZE, &[i(4), i(0), i(RESIZE_FROM_FRONT as i64)]),
        vec![0, 0, 1, 2]
    );
    assert_eq!(modified(&[1, 2, 3], RESIZE, &[i(1), i(0), i(0)]), vec![1]);
    assert_eq!(
        modified(
            &[1, 2, 3],
            RESIZE,
            &[i(1), i(0), i(RESIZE_FROM_FRONT as i64)]
        ),
        vec![3]
    );
    assert_eq!(
        err(
            Some(&[1, 2]),
            RESIZE,
            &[i(1), i(0), i(RESIZE_GROW_ONLY as i64)]
        ),
        ResultCode::Parameter
    );
    // a missing bin is created by resize and insert, zero-padded
    let e = apply(None, &payload(RESIZE, &[i(3), i(0), i(0)]), true).unwrap();
    assert_eq!(e.new_bin, Some(blob(&[0, 0, 0])));
    let e = apply(None, &payload(INSERT, &[i(2), b(&[9]), i(0)]), true).unwrap();
    assert_eq!(e.new_bin, Some(blob(&[0, 0, 9])));
    assert_eq!(
        modified(&[1, 2], INSERT, &[i(1), b(&[7, 8]), i(0)]),
        vec![1, 7, 8, 2]
    );
    assert_eq!(
        modified(&[1, 2, 3], REMOVE, &[i(-2), i(1), i(0)]),
        vec![1, 3]
    );
    assert_eq!(
        err(Some(&[1, 2, 3]), REMOVE, &[i(2), i(2), i(0)]),
        ResultCode::Parameter
    );
    assert_eq!(
        modified(&[1, 2, 3], REMOVE, &[i(2), i(2), i(PARTIAL as i64)]),
        vec![1, 2]
    );
}

#[test]
fn policies_and_errors() {
    let c = CREATE_ONLY as i64;
    assert_eq!(
        err(Some(&[1]), RESIZE, &[i(2), i(c), i(0)]),
        ResultCode::BinExists
    );
    let e = apply(
        Some(&blob(&[1])),
        &payload(RESIZE, &[i(2), i(c | NO_FAIL as i64), i(0)]),
        true,
    )
    .unwrap();
    assert_eq!(e.new_bin, None);
    assert_eq!(err(None, NOT, &[i(0), i(8), i(0)]), ResultCode::BinNotFound);
    assert_eq!(
        err(None, INSERT, &[i(0), b(&[1]), i(UPDATE_ONLY as i64)]),
        ResultCode::BinNotFound
    );
    // past the end: 26, cut with PARTIAL
    assert_eq!(
        err(Some(&[0]), NOT, &[i(4), i(8), i(0)]),
        ResultCode::OpNotApplicable
    );
    assert_eq!(
        modified(&[0], NOT, &[i(4), i(8), i(PARTIAL as i64)]),
        vec![0x0f]
    );
    assert_eq!(
        err(Some(&[0]), NOT, &[i(8), i(1), i(PARTIAL as i64)]),
        ResultCode::OpNotApplicable
    );
    // a negative offset reaching before the start: 4 even with NO_FAIL
    assert_eq!(
        err(Some(&[0]), NOT, &[i(-9), i(1), i(NO_FAIL as i64)]),
        ResultCode::Parameter
    );
    // wrong bin type, bad flags, value shorter than the size, size over 64 for integers
    assert_eq!(
        apply(
            Some(&Value::Int(1)),
            &payload(NOT, &[i(0), i(1), i(0)]),
            true
        ),
        Err(ResultCode::IncompatibleType)
    );
    assert_eq!(
        err(
            Some(&[0]),
            SET,
            &[i(0), i(8), b(&[1]), i(CREATE_ONLY as i64)]
        ),
        ResultCode::Parameter
    );
    assert_eq!(
        err(Some(&[0, 0]), SET, &[i(0), i(9), b(&[1]), i(0)]),
        ResultCode::Parameter
    );
    assert_eq!(
        err(Some(&[0; 9]), ADD, &[i(0), i(65), i(1), i(0), i(0)]),
        ResultCode::Parameter
    );
    // a modify op in a read command; a read of a missing bin is nil
    assert_eq!(
        apply(Some(&blob(&[0])), &payload(NOT, &[i(0), i(1), i(0)]), false),
        Err(ResultCode::Parameter)
    );
    assert_eq!(
        apply(None, &payload(GET, &[i(0), i(1)]), false)
            .unwrap()
            .result,
        Value::Nil
    );
    assert!(apply(Some(&blob(&[0])), b"\xc1", true).is_err());
}

#[test]
fn integer_overflow_actions() {
    let add = |load: u8, v: i64, sub: u64| {
        apply(
            Some(&blob(&[load])),
            &payload(ADD, &[i(0), i(8), i(v), i(0), i(sub as i64)]),
            true,
        )
        .map(|e| match e.new_bin {
            Some(Value::Blob(_, b)) => b[0],
            other => panic!("{other:?}"),
        })
    };
    assert_eq!(add(250, 5, 0), Ok(255));
    assert_eq!(add(250, 6, 0), Err(ResultCode::OpNotApplicable));
    assert_eq!(add(250, 6, INT_SATURATE), Ok(255));
    assert_eq!(add(250, 6, INT_WRAP), Ok(0));
    assert_eq!(add(127, 1, INT_SIGNED), Err(ResultCode::OpNotApplicable));
    assert_eq!(add(127, 1, INT_SIGNED | INT_SATURATE), Ok(127));
    assert_eq!(add(0x80, -1, INT_SIGNED | INT_SATURATE), Ok(0x80));
    assert_eq!(add(0xff, -1, INT_SIGNED), Ok(0xfe));
    let sub = |load: u8, v: i64, f: u64| {
        apply(
            Some(&blob(&[load])),
            &payload(SUBTRACT, &[i(0), i(8), i(v), i(0), i(f as i64)]),
            true,
        )
        .map(|e| match e.new_bin {
            Some(Value::Blob(_, b)) => b[0],
            other => panic!("{other:?}"),
        })
    };
    assert_eq!(sub(5, 6, 0), Err(ResultCode::OpNotApplicable));
    assert_eq!(sub(5, 6, INT_SATURATE), Ok(0));
    assert_eq!(sub(5, 6, INT_SIGNED), Ok(0xff));
    assert_eq!(
        modified(&[0, 0], SET_INT, &[i(4), i(8), i(0xab), i(0)]),
        vec![0x0a, 0xb0]
    );
    assert_eq!(
        read_op(&[0xff], GET_INT, &[i(0), i(8), i(1)]),
        Ok(Value::Int(-1))
    );
}

// ---- model: the blob as a vector of bits ----

fn to_bits(v: &[u8]) -> Vec<bool> {
    (0..v.len() * 8)
        .map(|i| v[i / 8] & (0x80 >> (i % 8)) != 0)
        .collect()
}

fn from_bits(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, on) in bits.iter().enumerate() {
        if *on {
            out[i / 8] |= 0x80 >> (i % 8);
        }
    }
    out
}

proptest! {
    #[test]
    fn window_ops_match_a_bit_vector_model(
        bin in proptest::collection::vec(any::<u8>(), 1..6),
        start in 0usize..48,
        size in 1usize..48,
        value in proptest::collection::vec(any::<u8>(), 6),
        shift in 0u64..50,
        code in prop::sample::select(vec![SET, OR, XOR, AND, NOT, LSHIFT, RSHIFT]),
    ) {
        let bits = bin.len() * 8;
        let mut args = vec![i(start as i64), i(size as i64)];
        match code {
            SET | OR | XOR | AND => args.push(b(&value)),
            LSHIFT | RSHIFT => args.push(i(shift as i64)),
            _ => {}
        }
        args.push(i(PARTIAL as i64));
        let got = apply(Some(&blob(&bin)), &payload(code, &args), true);
        if start / 8 >= bin.len() {
            prop_assert_eq!(got, Err(ResultCode::OpNotApplicable));
            return Ok(());
        }
        let end = (start + size).min(bits);
        let old = to_bits(&bin);
        let val = to_bits(&value);
        let mut want = old.clone();
        let n = end - start;
        for k in 0..n {
            let o = old[start + k];
            want[start + k] = match code {
                SET => val[k],
                OR => o | val[k],
                XOR => o ^ val[k],
                AND => o & val[k],
                NOT => !o,
                LSHIFT => k + (shift as usize) < n && old[start + k + shift as usize],
                _ => k >= shift as usize && old[start + k - shift as usize],
            };
        }
        prop_assert_eq!(got.unwrap().new_bin, Some(blob(&from_bits(&want))));
        // reads of the same window, where it fits
        if start + size <= bits {
            let w = &old[start..start + size];
            prop_assert_eq!(read_op(&bin, GET, &[i(start as i64), i(size as i64)]), Ok(blob(&from_bits(w))));
            let ones = w.iter().filter(|x| **x).count() as i64;
            prop_assert_eq!(read_op(&bin, COUNT, &[i(start as i64), i(size as i64)]), Ok(Value::Int(ones)));
            let first = w.iter().position(|x| *x).map_or(-1, |p| p as i64);
            let last = w.iter().rposition(|x| !*x).map_or(-1, |p| p as i64);
            prop_assert_eq!(read_op(&bin, LSCAN, &[i(start as i64), i(size as i64), CdtValue::Bool(true)]), Ok(Value::Int(first)));
            prop_assert_eq!(read_op(&bin, RSCAN, &[i(start as i64), i(size as i64), CdtValue::Bool(false)]), Ok(Value::Int(last)));
            if size <= 64 {
                let u = w.iter().fold(0u64, |a, x| (a << 1) | u64::from(*x));
                prop_assert_eq!(read_op(&bin, GET_INT, &[i(start as i64), i(size as i64)]), Ok(Value::Int(u as i64)));
            }
        } else {
            prop_assert_eq!(read_op(&bin, GET, &[i(start as i64), i(size as i64)]), Err(ResultCode::OpNotApplicable));
        }
    }

    #[test]
    fn integer_ops_match_wide_arithmetic(
        load in any::<u64>(), v in any::<u64>(), n in 1u64..=64,
        add in any::<bool>(), signed in any::<bool>(), action in prop::sample::select(vec![0u64, INT_SATURATE, INT_WRAP]),
    ) {
        let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        let (l, x) = (load & mask, v & mask);
        let sub = action | u64::from(signed);
        let got = integer_op(if add { ADD } else { SUBTRACT }, l, v, n, sub);
        let wide = |u: u64| -> i128 {
            if signed && n < 128 && u >> (n - 1) & 1 == 1 { i128::from(u) - (1i128 << n) } else { i128::from(u) }
        };
        let exact = if add { wide(l) + wide(x) } else if signed { wide(l) + wide(x.wrapping_neg() & mask) } else { wide(l) - wide(x) };
        let (lo, hi) = if signed { (-(1i128 << (n - 1)), (1i128 << (n - 1)) - 1) } else { (0, i128::from(mask)) };
        let wrapped = (exact.rem_euclid(1i128 << n)) as u64;
        // Aerospike flags signed overflow only when the result's sign flips strictly (a
        // result of 0 from two negatives passes), as its server does.
        let flagged = if signed {
            let (sl, sv, sr) = (wide(l), if add { wide(x) } else { wide(x.wrapping_neg() & mask) }, wide(wrapped));
            (sl < 0 && sv < 0 && sr > 0) || (sl > 0 && sv > 0 && sr < 0)
        } else {
            exact < lo || exact > hi
        };
        match (flagged, action) {
            (_, INT_WRAP) | (false, _) => prop_assert_eq!(got.ok(), Some(wrapped)),
            (true, INT_SATURATE) => {
                let sat = if exact > hi || (signed && exact > 0 && wrapped >> (n - 1) & 1 == 1) { hi as u64 & mask } else { lo as u64 & mask };
                prop_assert_eq!(got.ok(), Some(sat));
            }
            (true, _) => prop_assert!(got.is_err()),
        }
    }
}
