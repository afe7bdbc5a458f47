//! Aerospike's HyperLogLog bins (op types 15 HLL_READ and 16 HLL_MODIFY): msgpack
//! `[op_code, args…]` applied to an HLL particle (type 18) as a pure function, so it runs
//! inside apply.
//!
//! The particle is Aerospike's layout: an 11-byte header (flags, index bits `p`, minhash bits
//! `r`, the cached count as 8 little-endian bytes) then `2^p` registers of `6 + r` bits each,
//! packed most significant bit first. A register holds a rank (6 bits, 0 = empty) and, when
//! `r > 0`, a minhash (HyperMinHash), which lets similarity and intersections of many sets be
//! estimated. An element is hashed with MurmurHash3 x64_128 (seed 0) over its msgpack bytes:
//! the register index is the low `p` bits of the first half, the minhash the next `r` bits,
//! the rank the trailing zeros of the second half plus one.
//!
//! Counts use Ertl's improved estimator ("New cardinality estimation algorithms for
//! HyperLogLog sketches", 2017); similarity of sets with minhashes uses matching registers
//! less the expected collisions (Yu and Weber, "HyperMinHash", 2017); without minhashes,
//! intersections of up to three sets come from inclusion–exclusion over union counts.

use std::cmp::Ordering;

use crate::cdt::parse_op;
use crate::cdt::value::{encode, to_bytes, CdtValue, List};
use crate::cdt::Effect;
use crate::record::{particle, ResultCode, Value};

pub const INIT: i64 = 0;
pub const ADD: i64 = 1;
pub const SET_UNION: i64 = 2;
pub const REFRESH_COUNT: i64 = 3;
pub const FOLD: i64 = 4;
pub const COUNT: i64 = 50;
pub const UNION: i64 = 51;
pub const UNION_COUNT: i64 = 52;
pub const INTERSECT_COUNT: i64 = 53;
pub const SIMILARITY: i64 = 54;
pub const DESCRIBE: i64 = 55;
pub const MAY_CONTAIN: i64 = 56;

/// Write flags.
pub const CREATE_ONLY: u64 = 1;
pub const UPDATE_ONLY: u64 = 2;
/// A refused operation (bin exists / missing) is skipped instead of failing the command.
pub const NO_FAIL: u64 = 4;
/// SET_UNION may fold the bin down to the inputs' smaller index or minhash bits.
pub const ALLOW_FOLD: u64 = 8;

const HEADER: usize = 11;
pub const MIN_INDEX_BITS: u8 = 4;
pub const MAX_INDEX_BITS: u8 = 16;
pub const MIN_MINHASH_BITS: u8 = 4;
pub const MAX_MINHASH_BITS: u8 = 51;
/// Ranks are 6 bits.
const MAX_RANK: u64 = 63;

/// Whether `code` is a read operation.
pub fn is_read_op(code: i64) -> bool {
    (COUNT..=MAY_CONTAIN).contains(&code)
}

/// An HLL sketch, registers unpacked: `(rank << r) | minhash`, 0 for an empty register.
#[derive(Clone, Debug, PartialEq)]
pub struct Hll {
    index_bits: u8,
    minhash_bits: u8,
    registers: Vec<u64>,
}

/// Whether `(p, r)` is a valid description.
pub fn valid_bits(p: u8, r: u8) -> bool {
    (MIN_INDEX_BITS..=MAX_INDEX_BITS).contains(&p)
        && (r == 0 || (MIN_MINHASH_BITS..=MAX_MINHASH_BITS).contains(&r))
        && u32::from(p) + u32::from(r) <= 64
}

impl Hll {
    /// An empty sketch (`(p, r)` must be valid).
    pub fn new(index_bits: u8, minhash_bits: u8) -> Hll {
        Hll {
            index_bits,
            minhash_bits,
            registers: vec![0; 1 << index_bits],
        }
    }

    pub fn description(&self) -> (u8, u8) {
        (self.index_bits, self.minhash_bits)
    }

    fn width(&self) -> u32 {
        6 + u32::from(self.minhash_bits)
    }

    fn rank(&self, reg: u64) -> u64 {
        reg >> self.minhash_bits
    }

    /// The register an element's hash lands in and the value it offers.
    fn place(&self, hash: u128) -> (usize, u64) {
        let (h0, h1) = (hash as u64, (hash >> 64) as u64);
        let index = (h0 & ((1u64 << self.index_bits) - 1)) as usize;
        let r = self.minhash_bits;
        let minhash = if r == 0 {
            0
        } else {
            (h0 >> self.index_bits) & mask(r)
        };
        let rank = (u64::from(h1.trailing_zeros()) + 1).min(MAX_RANK);
        (index, (rank << r) | minhash)
    }

    /// Add one element (its msgpack bytes); true if a register changed.
    pub fn add(&mut self, element: &[u8]) -> bool {
        let (i, v) = self.place(hash(element));
        if better(self, v, self.registers[i]) {
            self.registers[i] = v;
            true
        } else {
            false
        }
    }

    /// Whether `element` may have been added (no false negatives).
    pub fn may_contain(&self, element: &[u8]) -> bool {
        let (i, v) = self.place(hash(element));
        !better(self, v, self.registers[i])
    }

    /// Merge `other` (same description) into this sketch.
    fn merge(&mut self, other: &Hll) {
        debug_assert_eq!(self.description(), other.description());
        for i in 0..self.registers.len() {
            if better(self, other.registers[i], self.registers[i]) {
                self.registers[i] = other.registers[i];
            }
        }
    }

    /// Reduce the minhash bits to `r` (keeping the low bits, which are the first hash bits
    /// after the index), then fold the index down to `p` bits. Folding the index of a sketch
    /// that keeps minhashes would change which hash bits they are: refused (26).
    fn reduce(&self, p: u8, r: u8) -> Result<Hll, ResultCode> {
        let mut out = self.clone();
        if r < out.minhash_bits {
            for reg in &mut out.registers {
                let rank = *reg >> out.minhash_bits;
                *reg = if rank == 0 {
                    0
                } else {
                    (rank << r) | (*reg & mask(r))
                };
            }
            out.minhash_bits = r;
        }
        if p < out.index_bits {
            if out.minhash_bits != 0 {
                return Err(ResultCode::OpNotApplicable);
            }
            let m = 1usize << p;
            let mut folded = vec![0u64; m];
            for (i, reg) in out.registers.iter().enumerate() {
                let slot = &mut folded[i & (m - 1)];
                *slot = (*slot).max(*reg);
            }
            out.registers = folded;
            out.index_bits = p;
        }
        Ok(out)
    }

    /// Ertl's improved raw estimate of the number of distinct elements added.
    pub fn count(&self) -> u64 {
        let m = self.registers.len() as f64;
        let q = MAX_RANK as usize - 1;
        let mut c = vec![0u64; q + 2];
        for reg in &self.registers {
            c[self.rank(*reg) as usize] += 1;
        }
        let mut z = m * tau(1.0 - c[q + 1] as f64 / m);
        for k in (1..=q).rev() {
            z = 0.5 * (z + c[k] as f64);
        }
        z += m * sigma(c[0] as f64 / m);
        let alpha = 1.0 / (2.0 * std::f64::consts::LN_2);
        (alpha * m * m / z).round() as u64
    }

    /// The particle bytes (header with the current count, packed registers).
    pub fn to_bytes(&self) -> Vec<u8> {
        let w = self.width();
        let body = (self.registers.len() * w as usize).div_ceil(8);
        let mut out = Vec::with_capacity(HEADER + body);
        out.push(0);
        out.push(self.index_bits);
        out.push(self.minhash_bits);
        out.extend_from_slice(&self.count().to_le_bytes());
        let (mut acc, mut bits) = (0u128, 0u32);
        for reg in &self.registers {
            acc = (acc << w) | u128::from(*reg);
            bits += w;
            while bits >= 8 {
                out.push((acc >> (bits - 8)) as u8);
                bits -= 8;
            }
            acc &= (1u128 << bits) - 1;
        }
        if bits > 0 {
            out.push((acc << (8 - bits)) as u8);
        }
        out
    }

    /// Parse particle bytes; None when they are not a well-formed sketch.
    pub fn from_bytes(b: &[u8]) -> Option<Hll> {
        if b.len() < HEADER {
            return None;
        }
        let (p, r) = (b[1], b[2]);
        if !valid_bits(p, r) {
            return None;
        }
        let m = 1usize << p;
        let w = 6 + u32::from(r);
        let body = &b[HEADER..];
        if body.len() != (m * w as usize).div_ceil(8) {
            return None;
        }
        let mut registers = Vec::with_capacity(m);
        let (mut acc, mut bits) = (0u128, 0u32);
        let mut bytes = body.iter();
        for _ in 0..m {
            while bits < w {
                acc = (acc << 8) | u128::from(*bytes.next()?);
                bits += 8;
            }
            registers.push(((acc >> (bits - w)) as u64) & mask_u64(w));
            bits -= w;
            acc &= (1u128 << bits) - 1;
        }
        let hll = Hll {
            index_bits: p,
            minhash_bits: r,
            registers,
        };
        // A rank beyond 6 bits cannot be encoded; an empty register carries no minhash.
        if hll
            .registers
            .iter()
            .any(|reg| hll.rank(*reg) == 0 && *reg != 0)
        {
            return None;
        }
        Some(hll)
    }
}

fn mask(bits: u8) -> u64 {
    mask_u64(u32::from(bits))
}

fn mask_u64(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Whether register value `a` beats `b`: the higher rank, then the smaller minhash.
fn better(h: &Hll, a: u64, b: u64) -> bool {
    match h.rank(a).cmp(&h.rank(b)) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => {
            h.rank(a) != 0 && (a & mask(h.minhash_bits)) < (b & mask(h.minhash_bits))
        }
    }
}

/// MurmurHash3 x64_128 with seed 0: first half in the low 64 bits.
fn hash(bytes: &[u8]) -> u128 {
    murmur3::murmur3_x64_128(&mut std::io::Cursor::new(bytes), 0).unwrap_or(0)
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if z == before {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if z == before {
            return z / 3.0;
        }
    }
}

/// The union of sketches, reduced to their smallest description.
fn union_of(sketches: &[Hll]) -> Result<Hll, ResultCode> {
    let p = sketches
        .iter()
        .map(|h| h.index_bits)
        .min()
        .unwrap_or(MIN_INDEX_BITS);
    let r = sketches.iter().map(|h| h.minhash_bits).min().unwrap_or(0);
    let mut out = Hll::new(p, r);
    for h in sketches {
        out.merge(&h.reduce(p, r)?);
    }
    Ok(out)
}

/// Estimated similarity (Jaccard index) and intersection count of `sets` (the bin first).
/// Sets sharing a minhash description use HyperMinHash, any number of them; otherwise up to
/// three sets use inclusion–exclusion (more: 4 without minhashes, 26 with mismatched ones).
fn intersect(sets: &[Hll]) -> Result<(f64, u64), ResultCode> {
    let first = sets[0].description();
    let hmh = first.1 > 0 && sets.iter().all(|h| h.description() == first);
    let union = union_of(sets)?;
    let union_count = union.count();
    if hmh {
        let (p, r) = first;
        let (mut any, mut all) = (0u64, 0u64);
        for i in 0..sets[0].registers.len() {
            let v = sets[0].registers[i];
            if sets.iter().any(|h| h.registers[i] != 0) {
                any += 1;
                if v != 0 && sets.iter().all(|h| h.registers[i] == v) {
                    all += 1;
                }
            }
        }
        if any == 0 {
            return Ok((f64::NAN, 0));
        }
        let counts: Vec<u64> = sets.iter().map(Hll::count).collect();
        let (n, m) = (
            *counts.iter().max().unwrap_or(&0) as f64,
            *counts.iter().min().unwrap_or(&0) as f64,
        );
        // Expected chance matches between two sets (Yu and Weber's large-cardinality
        // approximation); each further set must also collide, 2^-r likelier each.
        let collisions = if m == 0.0 {
            0.0
        } else {
            let ratio = n / m;
            let phi = 4.0 * ratio / (1.0 + ratio).powi(2);
            0.169_919_487_159_739_1
                * 2f64.powi(i32::from(p) - i32::from(r))
                * phi
                * 2f64.powi(-(i32::from(r)) * (sets.len() as i32 - 2).max(0))
        };
        let sim = ((all as f64 - collisions) / any as f64).clamp(0.0, 1.0);
        return Ok((sim, (sim * union_count as f64).round() as u64));
    }
    if sets.len() > 3 {
        return Err(if sets.iter().all(|h| h.minhash_bits == 0) {
            ResultCode::Parameter
        } else {
            ResultCode::OpNotApplicable
        });
    }
    if union_count == 0 {
        return Ok((f64::NAN, 0));
    }
    let c = |idx: &[usize]| -> Result<f64, ResultCode> {
        let picked: Vec<Hll> = idx.iter().map(|&i| sets[i].clone()).collect();
        Ok(union_of(&picked)?.count() as f64)
    };
    let inter = match sets.len() {
        1 => c(&[0])?,
        2 => c(&[0])? + c(&[1])? - union_count as f64,
        _ => {
            c(&[0])? + c(&[1])? + c(&[2])? - c(&[0, 1])? - c(&[0, 2])? - c(&[1, 2])?
                + union_count as f64
        }
    }
    .max(0.0);
    Ok((inter / union_count as f64, inter.round() as u64))
}

/// Apply an HLL operation to `bin` (None: missing). `write` says whether the command may
/// change the record (a read command accepts only read operations).
pub fn apply(bin: Option<&Value>, payload: &[u8], write: bool) -> Result<Effect, ResultCode> {
    let op = parse_op(payload)?;
    if !op.path.is_empty() {
        // HLL operations do not run inside a list or map (`ctx`); the bin's type first.
        return match bin {
            None | Some(Value::Blob(particle::HLL, _)) => Err(ResultCode::Parameter),
            Some(_) => Err(ResultCode::IncompatibleType),
        };
    }
    apply_op(bin, op.code, &op.args, write)
}

/// [`apply`] of an operation already decoded: `code` and its arguments.
pub fn apply_op(
    bin: Option<&Value>,
    code: i64,
    args: &[CdtValue],
    write: bool,
) -> Result<Effect, ResultCode> {
    let current = match bin {
        None => None,
        Some(Value::Blob(particle::HLL, b)) => {
            Some(Hll::from_bytes(b).ok_or(ResultCode::Parameter)?)
        }
        Some(_) => return Err(ResultCode::IncompatibleType),
    };
    if is_read_op(code) {
        let result = match current {
            None => Value::Nil,
            Some(h) => read(&h, code, args)?,
        };
        return Ok(Effect {
            result,
            new_bin: None,
        });
    }
    if !write || !(INIT..=FOLD).contains(&code) {
        return Err(ResultCode::Parameter);
    }
    let outcome = modify(current, code, args)?;
    Ok(Effect {
        result: outcome.result,
        new_bin: outcome
            .sketch
            .map(|h| Value::Blob(particle::HLL, h.to_bytes())),
    })
}

/// Run a read operation on an existing sketch.
pub fn read(h: &Hll, code: i64, args: &[CdtValue]) -> Result<Value, ResultCode> {
    let inputs = || -> Result<Vec<Hll>, ResultCode> {
        match args {
            [CdtValue::List(l)] => sketches(l),
            _ => Err(ResultCode::Parameter),
        }
    };
    let with_bin = |mut others: Vec<Hll>| {
        others.insert(0, h.clone());
        others
    };
    Ok(match code {
        COUNT if args.is_empty() => Value::Int(h.count() as i64),
        DESCRIBE if args.is_empty() => describe(h),
        UNION => {
            let u = union_of(&with_bin(inputs()?))?;
            Value::Blob(particle::HLL, u.to_bytes())
        }
        UNION_COUNT => Value::Int(union_of(&with_bin(inputs()?))?.count() as i64),
        INTERSECT_COUNT => Value::Int(intersect(&with_bin(inputs()?))?.1 as i64),
        SIMILARITY => Value::Float(intersect(&with_bin(inputs()?))?.0),
        MAY_CONTAIN => {
            let [CdtValue::List(l)] = args else {
                return Err(ResultCode::Parameter);
            };
            let all = l.items.iter().all(|e| h.may_contain(&to_bytes(e)));
            Value::Int(i64::from(all))
        }
        _ => return Err(ResultCode::Parameter),
    })
}

fn describe(h: &Hll) -> Value {
    let (p, r) = h.description();
    let list = CdtValue::List(List {
        flags: 0,
        items: vec![CdtValue::Int(p.into()), CdtValue::Int(r.into())],
    });
    Value::List(to_bytes(&list))
}

/// HLL values in an argument list (byte items of particle type 18).
fn sketches(l: &List) -> Result<Vec<Hll>, ResultCode> {
    if l.items.is_empty() {
        return Err(ResultCode::Parameter);
    }
    l.items
        .iter()
        .map(|v| match v {
            CdtValue::Bytes(_, b) => Hll::from_bytes(b).ok_or(ResultCode::Parameter),
            _ => Err(ResultCode::Parameter),
        })
        .collect()
}

/// What a modify operation leaves: its result and the new sketch (None: unchanged).
struct Outcome {
    result: Value,
    sketch: Option<Hll>,
}

fn unchanged(result: Value) -> Outcome {
    Outcome {
        result,
        sketch: None,
    }
}

fn int_arg(v: Option<&CdtValue>) -> Result<i64, ResultCode> {
    match v {
        Some(CdtValue::Int(i)) => Ok(*i),
        None => Ok(-1),
        _ => Err(ResultCode::Parameter),
    }
}

fn flags_arg(v: Option<&CdtValue>) -> Result<u64, ResultCode> {
    match v {
        None => Ok(0),
        Some(CdtValue::Int(i)) if *i >= 0 && *i < 16 => Ok(*i as u64),
        _ => Err(ResultCode::Parameter),
    }
}

/// Explicit bits (`-1`: unset) checked on their own; the pair is checked once resolved.
fn bits_arg(v: i64, lo: u8, hi: u8, zero_ok: bool) -> Result<Option<u8>, ResultCode> {
    match v {
        -1 => Ok(None),
        0 if zero_ok => Ok(Some(0)),
        v if v >= i64::from(lo) && v <= i64::from(hi) => Ok(Some(v as u8)),
        _ => Err(ResultCode::Parameter),
    }
}

/// The exists check of CREATE_ONLY / UPDATE_ONLY: Err(code) when the op is refused.
fn exists_check(flags: u64, exists: bool) -> Result<(), ResultCode> {
    if flags & CREATE_ONLY != 0 && exists {
        return Err(ResultCode::BinExists);
    }
    if flags & UPDATE_ONLY != 0 && !exists {
        return Err(ResultCode::BinNotFound);
    }
    Ok(())
}

/// `[index_bits, minhash_bits, flags]`, each optional (INIT's and ADD's trailing arguments):
/// bits checked on their own (`-1` or absent: unset), flags 0 when absent.
fn description_args(args: &[CdtValue]) -> Result<(Option<u8>, Option<u8>, u64), ResultCode> {
    if args.len() > 3 {
        return Err(ResultCode::Parameter);
    }
    let p = bits_arg(
        int_arg(args.first())?,
        MIN_INDEX_BITS,
        MAX_INDEX_BITS,
        false,
    )?;
    let r = bits_arg(
        int_arg(args.get(1))?,
        MIN_MINHASH_BITS,
        MAX_MINHASH_BITS,
        true,
    )?;
    Ok((p, r, flags_arg(args.get(2))?))
}

fn modify(current: Option<Hll>, code: i64, args: &[CdtValue]) -> Result<Outcome, ResultCode> {
    match code {
        INIT => {
            let (p, r, flags) = description_args(args)?;
            if flags & ALLOW_FOLD != 0 || flags & (CREATE_ONLY | UPDATE_ONLY) == 3 {
                return Err(ResultCode::Parameter);
            }
            if let (Some(p), Some(r)) = (p, r) {
                if !valid_bits(p, r) {
                    return Err(ResultCode::Parameter);
                }
            }
            if let Err(c) = exists_check(flags, current.is_some()) {
                return skip_or(flags, c);
            }
            let existing = current.as_ref().map(Hll::description);
            let Some(p) = p.or(existing.map(|d| d.0)) else {
                return Err(ResultCode::OpNotApplicable);
            };
            let r = r.or(existing.map(|d| d.1)).unwrap_or(0);
            if !valid_bits(p, r) {
                return Err(ResultCode::OpNotApplicable);
            }
            Ok(Outcome {
                result: Value::Nil,
                sketch: Some(Hll::new(p, r)),
            })
        }
        ADD => {
            let [CdtValue::List(elements), rest @ ..] = args else {
                return Err(ResultCode::Parameter);
            };
            let (p, r, flags) = description_args(rest)?;
            if flags & (ALLOW_FOLD | UPDATE_ONLY) != 0 {
                return Err(ResultCode::Parameter);
            }
            if let Some(p) = p {
                if !valid_bits(p, r.unwrap_or(0)) {
                    return Err(ResultCode::Parameter);
                }
            }
            if let Err(c) = exists_check(flags, current.is_some()) {
                return skip_or(flags, c);
            }
            let mut h = match current {
                Some(h) => h,
                None => match p {
                    Some(p) => Hll::new(p, r.unwrap_or(0)),
                    None => return Err(ResultCode::BinNotFound),
                },
            };
            let mut buf = Vec::new();
            let mut changed = 0i64;
            for e in &elements.items {
                buf.clear();
                encode(e, &mut buf);
                changed += i64::from(h.add(&buf));
            }
            Ok(Outcome {
                result: Value::Int(changed),
                sketch: Some(h),
            })
        }
        SET_UNION => {
            let [CdtValue::List(l), rest @ ..] = args else {
                return Err(ResultCode::Parameter);
            };
            if rest.len() > 1 {
                return Err(ResultCode::Parameter);
            }
            let inputs = sketches(l)?;
            let flags = flags_arg(rest.first())?;
            if flags & (CREATE_ONLY | UPDATE_ONLY) == 3 {
                return Err(ResultCode::Parameter);
            }
            if let Err(c) = exists_check(flags, current.is_some()) {
                return skip_or(flags, c);
            }
            let mut all = inputs;
            if let Some(h) = current {
                let shrinks = all
                    .iter()
                    .any(|i| i.index_bits < h.index_bits || i.minhash_bits < h.minhash_bits);
                if shrinks && flags & ALLOW_FOLD == 0 {
                    return Err(ResultCode::OpNotApplicable);
                }
                all.insert(0, h);
            }
            Ok(Outcome {
                result: Value::Nil,
                sketch: Some(union_of(&all)?),
            })
        }
        REFRESH_COUNT => {
            if !args.is_empty() {
                return Err(ResultCode::Parameter);
            }
            let h = current.ok_or(ResultCode::BinNotFound)?;
            Ok(unchanged(Value::Int(h.count() as i64)))
        }
        FOLD => {
            let [CdtValue::Int(p)] = args else {
                return Err(ResultCode::Parameter);
            };
            let p = bits_arg(*p, MIN_INDEX_BITS, MAX_INDEX_BITS, false)?
                .ok_or(ResultCode::Parameter)?;
            let h = current.ok_or(ResultCode::BinNotFound)?;
            if p > h.index_bits || h.minhash_bits != 0 {
                return Err(ResultCode::OpNotApplicable);
            }
            Ok(Outcome {
                result: Value::Nil,
                sketch: Some(h.reduce(p, 0)?),
            })
        }
        _ => Err(ResultCode::Parameter),
    }
}

/// A refused exists check: skipped under NO_FAIL, else the refusal.
fn skip_or(flags: u64, code: ResultCode) -> Result<Outcome, ResultCode> {
    if flags & NO_FAIL != 0 {
        Ok(unchanged(Value::Nil))
    } else {
        Err(code)
    }
}

#[cfg(test)]
mod tests;
