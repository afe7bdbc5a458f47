//! Particle (bin value) encoding: wire `(particle type, bytes)` ⇄ [`Value`] (spec §4.2–§4.3).
//!
//! Input is checked strictly enough that whatever is stored can be sent back to any client
//! unchanged; anything else is 4 PARAMETER, as the server answers for a bad particle.

use super::msgpack::{self, Container};
use storage::record::{particle, ResultCode, Value};

/// Java, C#, Python, Ruby, PHP and Erlang serialized blobs (spec §4.2): stored and returned
/// with their type unchanged.
pub const LANGUAGE_BLOBS: std::ops::RangeInclusive<u8> = 7..=12;

/// Whether a NULL particle (type 0) is meaningful where the value appears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Null {
    /// A write op: NULL deletes the bin (spec §4.1).
    Allowed,
    /// Anywhere else a NULL is a parameter error.
    Rejected,
}

/// Whether `t` is a particle type stored as [`Value::Blob`].
pub fn is_blob_type(t: u8) -> bool {
    t == particle::BLOB || t == particle::HLL || LANGUAGE_BLOBS.contains(&t)
}

/// Decode a wire value.
///
/// - INTEGER: 1, 2, 4 or 8 bytes big-endian, sign-extended to i64 (clients always send 8).
/// - FLOAT: exactly 8 bytes. BOOL: exactly 1 byte, 0 or 1 (SRV `particle_bool.c`).
/// - STRING: raw bytes; the server never interprets them.
/// - BLOB 4, language blobs 7..=12, HLL 18: raw bytes with their type.
/// - MAP 19 / LIST 20: raw msgpack, validated by [`msgpack::validate_container`].
/// - GEOJSON 23: `u8 flags · u16 ncells · ncells × u64 · JSON`, kept raw once the cell array is
///   known to fit (clients skip the cells when reading).
/// - NULL 0: only with [`Null::Allowed`], and with no value bytes.
pub fn value_from_wire(particle_type: u8, bytes: &[u8], null: Null) -> Result<Value, ResultCode> {
    match particle_type {
        particle::NULL => match (null, bytes.len()) {
            (Null::Allowed, 0) => Ok(Value::Nil),
            _ => Err(ResultCode::Parameter),
        },
        particle::INTEGER => int_from_wire(bytes).map(Value::Int),
        particle::FLOAT => {
            let b: [u8; 8] = bytes.try_into().map_err(|_| ResultCode::Parameter)?;
            Ok(Value::Float(f64::from_be_bytes(b)))
        }
        particle::STRING => Ok(Value::Str(bytes.to_vec())),
        particle::BOOL => match bytes {
            [0] => Ok(Value::Bool(false)),
            [1] => Ok(Value::Bool(true)),
            _ => Err(ResultCode::Parameter),
        },
        particle::LIST => match msgpack::validate_container(bytes, Container::List) {
            Ok(()) => Ok(Value::List(bytes.to_vec())),
            Err(_) => Err(ResultCode::Parameter),
        },
        particle::MAP => match msgpack::validate_container(bytes, Container::Map) {
            Ok(()) => Ok(Value::Map(bytes.to_vec())),
            Err(_) => Err(ResultCode::Parameter),
        },
        particle::GEOJSON => {
            validate_geojson(bytes)?;
            Ok(Value::GeoJson(bytes.to_vec()))
        }
        t if is_blob_type(t) => Ok(Value::Blob(t, bytes.to_vec())),
        _ => Err(ResultCode::Parameter),
    }
}

/// Integers arrive as 1/2/4/8 big-endian bytes (spec §4.2). Shorter forms are sign-extended.
/// Note: SRV `particle_integer.c` zero-extends the short forms; no official client sends them.
pub fn int_from_wire(bytes: &[u8]) -> Result<i64, ResultCode> {
    Ok(match bytes {
        [a] => i64::from(*a as i8),
        [a, b] => i64::from(i16::from_be_bytes([*a, *b])),
        [a, b, c, d] => i64::from(i32::from_be_bytes([*a, *b, *c, *d])),
        _ => {
            let b: [u8; 8] = bytes.try_into().map_err(|_| ResultCode::Parameter)?;
            i64::from_be_bytes(b)
        }
    })
}

fn validate_geojson(bytes: &[u8]) -> Result<(), ResultCode> {
    storage::geo::particle_text(bytes)
        .map(|_| ())
        .ok_or(ResultCode::Parameter)
}

/// Bytes [`value_to_wire`] appends: integers and floats are always 8 (the Rust client reads 8
/// regardless of the op size, spec §4.2), bools 1, NULL 0.
pub fn wire_size(value: &Value) -> usize {
    value.size()
}

/// Append the wire bytes of `value` (its particle type is [`Value::particle_type`]).
pub fn value_to_wire(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Nil => {}
        Value::Int(i) => out.extend_from_slice(&i.to_be_bytes()),
        Value::Float(f) => out.extend_from_slice(&f.to_be_bytes()),
        Value::Bool(b) => out.push(u8::from(*b)),
        Value::Str(b) | Value::Blob(_, b) | Value::List(b) | Value::Map(b) | Value::GeoJson(b) => {
            out.extend_from_slice(b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        value_to_wire(v, &mut out);
        assert_eq!(out.len(), wire_size(v));
        out
    }

    #[test]
    fn integers_accept_short_forms_and_send_eight_bytes() {
        assert_eq!(
            value_from_wire(1, &[0xff], Null::Rejected),
            Ok(Value::Int(-1))
        );
        assert_eq!(
            value_from_wire(1, &[0x7f], Null::Rejected),
            Ok(Value::Int(127))
        );
        assert_eq!(
            value_from_wire(1, &[0x80, 0x00], Null::Rejected),
            Ok(Value::Int(-32768))
        );
        assert_eq!(
            value_from_wire(1, &[0, 1, 0, 0], Null::Rejected),
            Ok(Value::Int(65536))
        );
        assert_eq!(
            value_from_wire(1, &i64::MIN.to_be_bytes(), Null::Rejected),
            Ok(Value::Int(i64::MIN))
        );
        for bad in [&[][..], &[0; 3][..], &[0; 5][..], &[0; 9][..]] {
            assert_eq!(
                value_from_wire(1, bad, Null::Rejected),
                Err(ResultCode::Parameter)
            );
        }
        assert_eq!(wire(&Value::Int(1)), vec![0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn scalars() {
        assert_eq!(
            value_from_wire(2, &2.5f64.to_be_bytes(), Null::Rejected),
            Ok(Value::Float(2.5))
        );
        assert_eq!(
            value_from_wire(2, &2.5f32.to_be_bytes(), Null::Rejected),
            Err(ResultCode::Parameter)
        );
        assert_eq!(
            value_from_wire(17, &[1], Null::Rejected),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            value_from_wire(17, &[2], Null::Rejected),
            Err(ResultCode::Parameter)
        );
        assert_eq!(
            value_from_wire(17, &[0, 0], Null::Rejected),
            Err(ResultCode::Parameter)
        );
        assert_eq!(
            value_from_wire(3, b"\xff\xfe", Null::Rejected),
            Ok(Value::Str(b"\xff\xfe".to_vec()))
        );
        assert_eq!(wire(&Value::Bool(true)), vec![1]);
        assert_eq!(wire(&Value::Float(2.5)), 2.5f64.to_be_bytes().to_vec());
    }

    #[test]
    fn blobs_keep_their_type() {
        for t in [4u8, 7, 8, 9, 10, 11, 12, 18] {
            assert_eq!(
                value_from_wire(t, b"xy", Null::Rejected),
                Ok(Value::Blob(t, b"xy".to_vec()))
            );
        }
        for t in [5u8, 6, 13, 14, 15, 16, 21, 22, 24, 255] {
            assert_eq!(
                value_from_wire(t, b"xy", Null::Rejected),
                Err(ResultCode::Parameter),
                "type {t}"
            );
        }
    }

    #[test]
    fn null_only_where_allowed() {
        assert_eq!(value_from_wire(0, &[], Null::Allowed), Ok(Value::Nil));
        assert_eq!(
            value_from_wire(0, &[], Null::Rejected),
            Err(ResultCode::Parameter)
        );
        assert_eq!(
            value_from_wire(0, &[1], Null::Allowed),
            Err(ResultCode::Parameter)
        );
        assert!(wire(&Value::Nil).is_empty());
    }

    #[test]
    fn lists_and_maps_are_validated() {
        assert_eq!(
            value_from_wire(20, &[0x91, 0x01], Null::Rejected),
            Ok(Value::List(vec![0x91, 0x01]))
        );
        assert_eq!(
            value_from_wire(20, &[0x92, 0x01], Null::Rejected),
            Err(ResultCode::Parameter)
        );
        assert_eq!(
            value_from_wire(20, &[0x80], Null::Rejected),
            Err(ResultCode::Parameter)
        );
        assert_eq!(
            value_from_wire(19, &[0x81, 0x01, 0x02], Null::Rejected),
            Ok(Value::Map(vec![0x81, 1, 2]))
        );
        assert_eq!(
            value_from_wire(19, &[0x81, 0x01], Null::Rejected),
            Err(ResultCode::Parameter)
        );
        assert_eq!(
            value_from_wire(19, &[], Null::Rejected),
            Err(ResultCode::Parameter)
        );
    }

    #[test]
    fn geojson_cells_must_fit() {
        let point = b"\x00\x00\x00{\"type\":\"Point\",\"coordinates\":[1,2]}";
        assert_eq!(
            value_from_wire(23, point, Null::Rejected),
            Ok(Value::GeoJson(point.to_vec()))
        );
        let mut cells = vec![0, 0, 1];
        cells.extend_from_slice(&[0; 8]);
        assert!(value_from_wire(23, &cells, Null::Rejected).is_ok());
        assert_eq!(
            value_from_wire(23, &[0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0], Null::Rejected),
            Err(ResultCode::Parameter)
        );
        assert_eq!(
            value_from_wire(23, &[0, 0], Null::Rejected),
            Err(ResultCode::Parameter)
        );
    }
}
