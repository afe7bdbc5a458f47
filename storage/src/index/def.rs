//! What a secondary index is: the definition kept in the catalog and copied into every group
//! of its namespace.

use serde::{Deserialize, Serialize};

/// The particle type an index holds (Aerospike's `type=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KeyType {
    Numeric,
    String,
    Blob,
}

impl KeyType {
    /// Aerospike's names, case-insensitive; `integer` is the 8.1.3 spelling of `numeric`.
    pub fn parse(s: &str) -> Option<KeyType> {
        match s.to_ascii_lowercase().as_str() {
            "numeric" | "integer" => Some(KeyType::Numeric),
            "string" => Some(KeyType::String),
            "blob" => Some(KeyType::Blob),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KeyType::Numeric => "numeric",
            KeyType::String => "string",
            KeyType::Blob => "blob",
        }
    }

    /// The particle type a query's INDEX_RANGE names for this key type.
    pub fn particle(self) -> u8 {
        match self {
            KeyType::Numeric => crate::record::particle::INTEGER,
            KeyType::String => crate::record::particle::STRING,
            KeyType::Blob => crate::record::particle::BLOB,
        }
    }
}

/// Which values of the bin are indexed (Aerospike's `indextype=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Collection {
    /// The bin's own value.
    Default,
    /// Each element of a list bin.
    List,
    /// Each key of a map bin.
    MapKeys,
    /// Each value of a map bin.
    MapValues,
}

impl Collection {
    pub fn parse(s: &str) -> Option<Collection> {
        match s.to_ascii_lowercase().as_str() {
            "default" => Some(Collection::Default),
            "list" => Some(Collection::List),
            "mapkeys" => Some(Collection::MapKeys),
            "mapvalues" => Some(Collection::MapValues),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Collection::Default => "default",
            Collection::List => "list",
            Collection::MapKeys => "mapkeys",
            Collection::MapValues => "mapvalues",
        }
    }

    /// The INDEX_TYPE field's value (0 default, 1 list, 2 map keys, 3 map values).
    pub fn from_wire(code: u8) -> Option<Collection> {
        match code {
            0 => Some(Collection::Default),
            1 => Some(Collection::List),
            2 => Some(Collection::MapKeys),
            3 => Some(Collection::MapValues),
            _ => None,
        }
    }
}

/// A secondary-index definition. Two indexes are the same index when their definitions are
/// equal, whatever their names (Aerospike renames instead of creating a duplicate).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SindexDef {
    /// Only records of this set are indexed; None = every set of the namespace.
    pub set: Option<String>,
    pub bin: String,
    pub key_type: KeyType,
    pub collection: Collection,
}
