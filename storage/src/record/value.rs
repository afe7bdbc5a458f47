//! Typed bin values. Lists and maps are kept as the Aerospike msgpack bytes the client sent,
//! so they round-trip exactly (ordering flags, nested particle prefixes) without a re-encode.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Aerospike particle type ids (the wire's value type byte).
pub mod particle {
    pub const NULL: u8 = 0;
    pub const INTEGER: u8 = 1;
    pub const FLOAT: u8 = 2;
    pub const STRING: u8 = 3;
    pub const BLOB: u8 = 4;
    pub const BOOL: u8 = 17;
    pub const HLL: u8 = 18;
    pub const MAP: u8 = 19;
    pub const LIST: u8 = 20;
    pub const GEOJSON: u8 = 23;
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Nil,
    Int(i64),
    Float(f64),
    /// UTF-8 text as the client sent it; kept as bytes because the server never interprets it.
    Str(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Raw bytes with their particle type: 4 for plain blobs, 7..=12 for language blobs,
    /// 18 for HLL, which are stored and returned unchanged.
    Blob(u8, #[serde(with = "serde_bytes")] Vec<u8>),
    Bool(bool),
    /// Aerospike msgpack list bytes.
    List(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Aerospike msgpack map bytes.
    Map(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The GeoJSON particle payload (flags, cells, text) as sent.
    GeoJson(#[serde(with = "serde_bytes")] Vec<u8>),
}

impl Value {
    pub fn particle_type(&self) -> u8 {
        match self {
            Value::Nil => particle::NULL,
            Value::Int(_) => particle::INTEGER,
            Value::Float(_) => particle::FLOAT,
            Value::Str(_) => particle::STRING,
            Value::Blob(t, _) => *t,
            Value::Bool(_) => particle::BOOL,
            Value::List(_) => particle::LIST,
            Value::Map(_) => particle::MAP,
            Value::GeoJson(_) => particle::GEOJSON,
        }
    }

    /// Bytes the value occupies on the wire (and roughly in memory).
    pub fn size(&self) -> usize {
        match self {
            Value::Nil => 0,
            Value::Int(_) | Value::Float(_) => 8,
            Value::Bool(_) => 1,
            Value::Str(b)
            | Value::Blob(_, b)
            | Value::List(b)
            | Value::Map(b)
            | Value::GeoJson(b) => b.len(),
        }
    }
}

/// A named bin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    pub name: CompactString,
    pub value: Value,
}

impl Bin {
    pub fn new(name: impl Into<CompactString>, value: Value) -> Bin {
        Bin {
            name: name.into(),
            value,
        }
    }
}
