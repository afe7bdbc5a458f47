//! Aerospike's bitwise operations on blob bins (op types 12 BIT_READ and 13 BIT_MODIFY):
//! msgpack `[op_code, args…]` applied to a blob as a pure function, so it runs inside apply.
//!
//! Bits are numbered from the most significant bit of byte 0; a negative offset counts from
//! the end. Only the bits of the window `[offset, offset + size)` ever change. Integers in a
//! window are big-endian, 1 to 64 bits.

use crate::cdt::parse_op;
use crate::cdt::value::CdtValue;
use crate::cdt::Effect;
use crate::record::{particle, ResultCode, Value};

pub const RESIZE: i64 = 0;
pub const INSERT: i64 = 1;
pub const REMOVE: i64 = 2;
pub const SET: i64 = 3;
pub const OR: i64 = 4;
pub const XOR: i64 = 5;
pub const AND: i64 = 6;
pub const NOT: i64 = 7;
pub const LSHIFT: i64 = 8;
pub const RSHIFT: i64 = 9;
pub const ADD: i64 = 10;
pub const SUBTRACT: i64 = 11;
pub const SET_INT: i64 = 12;
pub const GET: i64 = 50;
pub const COUNT: i64 = 51;
pub const LSCAN: i64 = 52;
pub const RSCAN: i64 = 53;
pub const GET_INT: i64 = 54;

/// Write flags.
pub const CREATE_ONLY: u64 = 1;
pub const UPDATE_ONLY: u64 = 2;
/// A refused operation (policy, range, overflow) is skipped instead of failing the command.
pub const NO_FAIL: u64 = 4;
/// A window running past the end of the blob is cut at the end instead of refused.
pub const PARTIAL: u64 = 8;

/// Resize flags.
pub const RESIZE_FROM_FRONT: u64 = 1;
pub const RESIZE_GROW_ONLY: u64 = 2;
pub const RESIZE_SHRINK_ONLY: u64 = 4;

/// Integer flags: signed, and the overflow action (neither: fail).
pub const INT_SIGNED: u64 = 1;
pub const INT_SATURATE: u64 = 2;
pub const INT_WRAP: u64 = 4;

/// Offsets and sizes in bits beyond this are refused (Aerospike's 128 MiB message bound).
const MAX_BITS: u64 = 1 << 30;
/// A blob may not grow to this many bytes.
const MAX_BYTES: u64 = 128 * 1024 * 1024;

/// Whether `code` is a read operation.
pub fn is_read_op(code: i64) -> bool {
    (GET..=GET_INT).contains(&code)
}

/// Why an operation did not apply: refused by policy or range (skipped under NO_FAIL), or a
/// malformed request (never skipped).
enum Refusal {
    Policy(ResultCode),
    Malformed(ResultCode),
}

impl Refusal {
    fn code(self) -> ResultCode {
        match self {
            Refusal::Policy(c) | Refusal::Malformed(c) => c,
        }
    }
}

fn malformed() -> Refusal {
    Refusal::Malformed(ResultCode::Parameter)
}

/// The decoded arguments, read in order.
struct Args {
    items: std::vec::IntoIter<CdtValue>,
}

impl Args {
    fn int(&mut self) -> Result<i64, Refusal> {
        match self.items.next() {
            Some(CdtValue::Int(i)) => Ok(i),
            _ => Err(malformed()),
        }
    }

    /// An unsigned argument (a negative one reads as its two's-complement pattern, so it
    /// fails any bound).
    fn uint(&mut self) -> Result<u64, Refusal> {
        self.int().map(|i| i as u64)
    }

    /// A trailing optional unsigned argument (flags), 0 when absent.
    fn flags(&mut self) -> Result<u64, Refusal> {
        match self.items.next() {
            None => Ok(0),
            Some(CdtValue::Int(i)) => Ok(i as u64),
            Some(_) => Err(malformed()),
        }
    }

    /// A blob argument: the bytes after the msgpack payload's type byte, at least one.
    fn blob(&mut self) -> Result<Vec<u8>, Refusal> {
        match self.items.next() {
            Some(CdtValue::Bytes(_, b) | CdtValue::Str(b)) if !b.is_empty() => Ok(b),
            _ => Err(malformed()),
        }
    }

    fn boolean(&mut self) -> Result<bool, Refusal> {
        match self.items.next() {
            Some(CdtValue::Bool(b)) => Ok(b),
            _ => Err(malformed()),
        }
    }

    fn done(mut self) -> Result<(), Refusal> {
        match self.items.next() {
            None => Ok(()),
            Some(_) => Err(malformed()),
        }
    }
}

/// Apply a bit operation to `bin` (None: missing). `write` says whether the command may
/// change the record (a read command accepts only read operations).
pub fn apply(bin: Option<&Value>, payload: &[u8], write: bool) -> Result<Effect, ResultCode> {
    let op = parse_op(payload)?;
    check_bin(bin)?;
    // Bit operations do not run inside a list or map (`ctx`).
    if !op.path.is_empty() {
        return Err(ResultCode::Parameter);
    }
    apply_op(bin, op.code, op.args, write)
}

/// The blob a bit operation works on (None: the bin is missing); another type is 12.
fn check_bin(bin: Option<&Value>) -> Result<Option<&[u8]>, ResultCode> {
    match bin {
        None => Ok(None),
        Some(Value::Blob(particle::BLOB, b)) => Ok(Some(b.as_slice())),
        Some(_) => Err(ResultCode::IncompatibleType),
    }
}

/// [`apply`] of an operation already decoded: `code` and its arguments.
pub fn apply_op(
    bin: Option<&Value>,
    code: i64,
    args: Vec<CdtValue>,
    write: bool,
) -> Result<Effect, ResultCode> {
    let current = check_bin(bin)?;
    let args = Args {
        items: args.into_iter(),
    };
    if is_read_op(code) {
        // A missing bin reads as nil, not an error.
        let Some(blob) = current else {
            return Ok(Effect {
                result: Value::Nil,
                new_bin: None,
            });
        };
        let result = read(blob, code, args).map_err(Refusal::code)?;
        return Ok(Effect {
            result,
            new_bin: None,
        });
    }
    if !write || !(RESIZE..=SET_INT).contains(&code) {
        return Err(ResultCode::Parameter);
    }
    let new = modify(current, code, args).map_err(Refusal::code)?;
    Ok(Effect {
        result: Value::Nil,
        new_bin: new.map(|b| Value::Blob(particle::BLOB, b)),
    })
}

/// Run a modify operation: the new blob, or None when nothing changes (skipped under
/// NO_FAIL, or a resize to 0 of a missing bin).
fn modify(current: Option<&[u8]>, code: i64, mut args: Args) -> Result<Option<Vec<u8>>, Refusal> {
    // Parse first: a malformed request fails even under NO_FAIL.
    let op = parse_modify(code, &mut args)?;
    args.done()?;
    match run_modify(current, &op) {
        Err(Refusal::Policy(_)) if op.flags & NO_FAIL != 0 => Ok(None),
        r => r,
    }
}

/// A parsed modify operation.
struct ModifyOp {
    code: i64,
    /// Bit offset (byte offset × 8 for INSERT and REMOVE).
    offset: i64,
    /// Bits (bytes for RESIZE and REMOVE).
    size: u64,
    value: Vec<u8>,
    /// Shift, or the integer operand.
    number: u64,
    flags: u64,
    sub: u64,
}

fn check_flags(flags: u64, allowed: u64) -> Result<(), Refusal> {
    if flags & !allowed != 0 || flags & (CREATE_ONLY | UPDATE_ONLY) == CREATE_ONLY | UPDATE_ONLY {
        return Err(malformed());
    }
    Ok(())
}

fn bit_offset(args: &mut Args) -> Result<i64, Refusal> {
    let o = args.int()?;
    if o.unsigned_abs() > MAX_BITS {
        return Err(malformed());
    }
    Ok(o)
}

fn bit_size(args: &mut Args, max: u64) -> Result<u64, Refusal> {
    let s = args.uint()?;
    if s == 0 || s > max {
        return Err(malformed());
    }
    Ok(s)
}

fn parse_modify(code: i64, a: &mut Args) -> Result<ModifyOp, Refusal> {
    let mut op = ModifyOp {
        code,
        offset: 0,
        size: 0,
        value: Vec::new(),
        number: 0,
        flags: 0,
        sub: 0,
    };
    let window_flags = UPDATE_ONLY | NO_FAIL | PARTIAL;
    match code {
        RESIZE => {
            op.size = a.uint()?;
            if op.size >= MAX_BYTES {
                return Err(malformed());
            }
            op.flags = a.flags()?;
            op.sub = a.flags()?;
            check_flags(op.flags, CREATE_ONLY | UPDATE_ONLY | NO_FAIL)?;
            let both = RESIZE_GROW_ONLY | RESIZE_SHRINK_ONLY;
            if op.sub & !(RESIZE_FROM_FRONT | both) != 0 || op.sub & both == both {
                return Err(malformed());
            }
        }
        INSERT => {
            let o = a.int()?;
            if o.unsigned_abs() > MAX_BYTES {
                return Err(malformed());
            }
            op.offset = o * 8;
            op.value = a.blob()?;
            op.flags = a.flags()?;
            check_flags(op.flags, CREATE_ONLY | UPDATE_ONLY | NO_FAIL)?;
        }
        REMOVE => {
            let o = a.int()?;
            if o.unsigned_abs() > MAX_BYTES {
                return Err(malformed());
            }
            op.offset = o * 8;
            op.size = a.uint()?;
            if op.size == 0 || op.size > MAX_BYTES {
                return Err(malformed());
            }
            op.flags = a.flags()?;
            check_flags(op.flags, window_flags)?;
        }
        SET | OR | XOR | AND => {
            op.offset = bit_offset(a)?;
            op.size = bit_size(a, MAX_BITS)?;
            op.value = a.blob()?;
            if (op.value.len() as u64) * 8 < op.size {
                return Err(malformed());
            }
            op.flags = a.flags()?;
            check_flags(op.flags, window_flags)?;
        }
        NOT => {
            op.offset = bit_offset(a)?;
            op.size = bit_size(a, MAX_BITS)?;
            op.flags = a.flags()?;
            check_flags(op.flags, window_flags)?;
        }
        LSHIFT | RSHIFT => {
            op.offset = bit_offset(a)?;
            op.size = bit_size(a, MAX_BITS)?;
            op.number = a.uint()?;
            if op.number > MAX_BITS {
                return Err(malformed());
            }
            op.flags = a.flags()?;
            check_flags(op.flags, window_flags)?;
        }
        ADD | SUBTRACT | SET_INT => {
            op.offset = bit_offset(a)?;
            op.size = bit_size(a, 64)?;
            op.number = a.uint()?;
            op.flags = a.flags()?;
            check_flags(op.flags, UPDATE_ONLY | NO_FAIL)?;
            if code != SET_INT {
                op.sub = a.flags()?;
                let both = INT_SATURATE | INT_WRAP;
                if op.sub & !(INT_SIGNED | both) != 0 || op.sub & both == both {
                    return Err(malformed());
                }
            }
        }
        _ => return Err(malformed()),
    }
    Ok(op)
}

/// Resolve a (possibly negative) bit offset against a blob of `len` bytes.
fn resolve(offset: i64, len: usize) -> Result<u64, Refusal> {
    let bits = len as u64 * 8;
    if offset >= 0 {
        return Ok(offset as u64);
    }
    let back = offset.unsigned_abs();
    if back > bits {
        return Err(malformed());
    }
    Ok(bits - back)
}

/// The window `[start, start + size)` checked against a blob of `len` bytes: cut at the end
/// with `partial`, refused (26) otherwise. Aerospike checks whole bytes: the window's first
/// byte must exist and, unless partial, its last byte too.
fn window(start: u64, size: u64, len: usize, partial: bool) -> Result<(u64, u64), Refusal> {
    let bits = len as u64 * 8;
    if start / 8 >= len as u64 {
        return Err(Refusal::Policy(ResultCode::OpNotApplicable));
    }
    if start + size > bits {
        if !partial {
            return Err(Refusal::Policy(ResultCode::OpNotApplicable));
        }
        return Ok((start, bits - start));
    }
    Ok((start, size))
}

fn run_modify(current: Option<&[u8]>, op: &ModifyOp) -> Result<Option<Vec<u8>>, Refusal> {
    let creates = matches!(op.code, RESIZE | INSERT);
    let blob: Vec<u8> = match current {
        Some(_) if op.flags & CREATE_ONLY != 0 => {
            return Err(Refusal::Policy(ResultCode::BinExists))
        }
        Some(b) => b.to_vec(),
        None if !creates || op.flags & UPDATE_ONLY != 0 => {
            return Err(Refusal::Policy(ResultCode::BinNotFound))
        }
        None if op.offset < 0 => return Err(malformed()),
        None => Vec::new(),
    };
    let mut blob = blob;
    match op.code {
        RESIZE => {
            let new = op.size as usize;
            let old = blob.len();
            if current.is_none() && new == 0 {
                return Ok(None);
            }
            if new < old && op.sub & RESIZE_GROW_ONLY != 0
                || new > old && op.sub & RESIZE_SHRINK_ONLY != 0
            {
                return Err(Refusal::Policy(ResultCode::Parameter));
            }
            let front = op.sub & RESIZE_FROM_FRONT != 0;
            if new < old {
                if front {
                    blob.drain(..old - new);
                } else {
                    blob.truncate(new);
                }
            } else if new > old {
                if front {
                    let mut grown = vec![0; new - old];
                    grown.extend_from_slice(&blob);
                    blob = grown;
                } else {
                    blob.resize(new, 0);
                }
            }
        }
        INSERT => {
            let at = (resolve(op.offset, blob.len())? / 8) as usize;
            if blob.len() as u64 + op.value.len() as u64 >= MAX_BYTES || at as u64 >= MAX_BYTES {
                return Err(malformed());
            }
            if at >= blob.len() {
                blob.resize(at, 0);
                blob.extend_from_slice(&op.value);
            } else {
                blob.splice(at..at, op.value.iter().copied());
            }
        }
        REMOVE => {
            let at = (resolve(op.offset, blob.len())? / 8) as usize;
            if at >= blob.len() {
                return Err(Refusal::Policy(ResultCode::Parameter));
            }
            let mut end = at as u64 + op.size;
            if end > blob.len() as u64 {
                if op.flags & PARTIAL == 0 {
                    return Err(Refusal::Policy(ResultCode::Parameter));
                }
                end = blob.len() as u64;
            }
            blob.drain(at..end as usize);
        }
        SET | OR | XOR | AND | NOT | LSHIFT | RSHIFT => {
            let start = resolve(op.offset, blob.len())?;
            let (start, size) = window(start, op.size, blob.len(), op.flags & PARTIAL != 0)?;
            let old = get_bits(&blob, start, size);
            let new = match op.code {
                SET => op.value.clone(),
                OR => zip(&old, &op.value, |a, b| a | b),
                XOR => zip(&old, &op.value, |a, b| a ^ b),
                AND => zip(&old, &op.value, |a, b| a & b),
                NOT => old.iter().map(|b| !b).collect(),
                LSHIFT => shift_left(&old, size, op.number),
                _ => shift_right(&old, size, op.number),
            };
            put_bits(&mut blob, start, size, &new);
        }
        _ => {
            let start = resolve(op.offset, blob.len())?;
            let (start, size) = window(start, op.size, blob.len(), false)?;
            let load = get_int(&blob, start, size);
            let value = integer_op(op.code, load, op.number, size, op.sub)?;
            put_int(&mut blob, start, size, value);
        }
    }
    Ok(Some(blob))
}

/// The new n-bit pattern of ADD, SUBTRACT or SET_INT applied to `load` (unsigned n-bit).
fn integer_op(code: i64, load: u64, operand: u64, n: u64, sub: u64) -> Result<u64, Refusal> {
    let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
    let v = operand & mask;
    if code == SET_INT {
        return Ok(v);
    }
    let r = if code == ADD {
        load.wrapping_add(v) & mask
    } else {
        load.wrapping_sub(v) & mask
    };
    if sub & INT_WRAP != 0 {
        return Ok(r);
    }
    let overflow = |saturated: u64| {
        if sub & INT_SATURATE != 0 {
            Ok(saturated)
        } else {
            Err(Refusal::Policy(ResultCode::OpNotApplicable))
        }
    };
    if sub & INT_SIGNED == 0 {
        return match code {
            ADD if r < load => overflow(mask),
            SUBTRACT if r > load => overflow(0),
            _ => Ok(r),
        };
    }
    // Signed: subtraction is the addition of the negated operand; overflow is two operands
    // of one sign giving a result of the other.
    let extend = |x: u64| -> i64 {
        let shift = 64 - n;
        ((x << shift) as i64) >> shift
    };
    let addend = if code == ADD {
        v
    } else {
        v.wrapping_neg() & mask
    };
    let (sl, sv, sr) = (extend(load), extend(addend), extend(r));
    let min = 1u64 << (n - 1);
    if sl < 0 && sv < 0 && sr > 0 {
        overflow(min)
    } else if sl > 0 && sv > 0 && sr < 0 {
        overflow(mask >> 1)
    } else {
        Ok(r)
    }
}

fn read(blob: &[u8], code: i64, mut a: Args) -> Result<Value, Refusal> {
    let offset = bit_offset(&mut a)?;
    let size = bit_size(&mut a, if code == GET_INT { 64 } else { MAX_BITS })?;
    let arg = match code {
        LSCAN | RSCAN => u64::from(a.boolean()?),
        GET_INT => {
            let f = a.flags()?;
            if f & !INT_SIGNED != 0 {
                return Err(malformed());
            }
            f
        }
        GET | COUNT => 0,
        _ => return Err(malformed()),
    };
    a.done()?;
    let start = resolve(offset, blob.len())?;
    let (start, size) = window(start, size, blob.len(), false)?;
    Ok(match code {
        GET => Value::Blob(particle::BLOB, get_bits(blob, start, size)),
        COUNT => {
            let bits = get_bits(blob, start, size);
            Value::Int(bits.iter().map(|b| i64::from(b.count_ones())).sum())
        }
        LSCAN | RSCAN => {
            let want = arg == 1;
            let hit = |i: &u64| bit(blob, start + i) == want;
            let found = if code == LSCAN {
                (0..size).find(hit)
            } else {
                (0..size).rev().find(hit)
            };
            Value::Int(found.map_or(-1, |i| i as i64))
        }
        _ => {
            let load = get_int(blob, start, size);
            if arg & INT_SIGNED != 0 {
                let shift = 64 - size;
                Value::Int(((load << shift) as i64) >> shift)
            } else {
                Value::Int(load as i64)
            }
        }
    })
}

// ---- bit-level helpers (MSB-first) ----

fn bit(buf: &[u8], i: u64) -> bool {
    buf[(i / 8) as usize] & (0x80 >> (i % 8)) != 0
}

fn set_bit(buf: &mut [u8], i: u64, on: bool) {
    let mask = 0x80 >> (i % 8);
    let b = &mut buf[(i / 8) as usize];
    if on {
        *b |= mask;
    } else {
        *b &= !mask;
    }
}

/// The window's bits, left-aligned in ⌈size/8⌉ bytes, trailing bits zero.
fn get_bits(buf: &[u8], start: u64, size: u64) -> Vec<u8> {
    let mut out = vec![0u8; size.div_ceil(8) as usize];
    if start.is_multiple_of(8) {
        let (from, n) = ((start / 8) as usize, out.len());
        out.copy_from_slice(&buf[from..from + n]);
        if !size.is_multiple_of(8) {
            let last = out.len() - 1;
            out[last] &= 0xffu8 << (8 - size % 8);
        }
        return out;
    }
    for i in 0..size {
        if bit(buf, start + i) {
            set_bit(&mut out, i, true);
        }
    }
    out
}

/// Write the leading `size` bits of `src` into the window.
fn put_bits(buf: &mut [u8], start: u64, size: u64, src: &[u8]) {
    if start.is_multiple_of(8) && size.is_multiple_of(8) {
        let from = (start / 8) as usize;
        let n = (size / 8) as usize;
        buf[from..from + n].copy_from_slice(&src[..n]);
        return;
    }
    for i in 0..size {
        set_bit(buf, start + i, bit(src, i));
    }
}

fn zip(a: &[u8], b: &[u8], f: impl Fn(u8, u8) -> u8) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect()
}

/// A left-aligned bit string of `size` bits shifted towards bit 0 by `n`, zeros shifted in.
fn shift_left(bits: &[u8], size: u64, n: u64) -> Vec<u8> {
    let mut out = vec![0u8; bits.len()];
    for i in 0..size.saturating_sub(n) {
        set_bit(&mut out, i, bit(bits, i + n));
    }
    out
}

/// A left-aligned bit string of `size` bits shifted away from bit 0 by `n`, zeros shifted in.
fn shift_right(bits: &[u8], size: u64, n: u64) -> Vec<u8> {
    let mut out = vec![0u8; bits.len()];
    for i in n..size {
        set_bit(&mut out, i, bit(bits, i - n));
    }
    out
}

fn get_int(buf: &[u8], start: u64, size: u64) -> u64 {
    (0..size).fold(0u64, |acc, i| (acc << 1) | u64::from(bit(buf, start + i)))
}

fn put_int(buf: &mut [u8], start: u64, size: u64, v: u64) {
    for i in 0..size {
        set_bit(buf, start + i, (v >> (size - 1 - i)) & 1 == 1);
    }
}

#[cfg(test)]
mod tests;
