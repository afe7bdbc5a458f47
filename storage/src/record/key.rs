//! Keys, digests and partitions, computed exactly as Aerospike clients compute them.

use ripemd::{Digest as _, Ripemd160};
use serde::{Deserialize, Serialize};

/// Aerospike's fixed number of partitions per namespace.
pub const PARTITIONS: u16 = 4096;

/// RIPEMD-160 of (set, key type, key bytes). The server never recomputes it: clients send it.
pub type Digest = [u8; 20];

/// A user key as the client may send it (key policy SEND) and as it is stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum UserKey {
    Int(i64),
    Float(f64),
    Str(String),
    /// A blob key with its particle type (normally 4).
    Blob(u8, #[serde(with = "serde_bytes")] Vec<u8>),
}

impl UserKey {
    /// The digest a client computes for this key in `set` (the namespace is not hashed).
    pub fn digest(&self, set: &str) -> Digest {
        let mut h = Ripemd160::new();
        h.update(set.as_bytes());
        match self {
            UserKey::Int(i) => {
                h.update([1u8]);
                h.update(i.to_be_bytes());
            }
            UserKey::Float(f) => {
                h.update([2u8]);
                h.update(f.to_bits().to_be_bytes());
            }
            UserKey::Str(s) => {
                h.update([3u8]);
                h.update(s.as_bytes());
            }
            UserKey::Blob(t, b) => {
                h.update([*t]);
                h.update(b);
            }
        }
        h.finalize().into()
    }

    pub fn size(&self) -> usize {
        match self {
            UserKey::Int(_) | UserKey::Float(_) => 8,
            UserKey::Str(s) => s.len(),
            UserKey::Blob(_, b) => b.len(),
        }
    }
}

/// The partition of a digest: its first two bytes read little-endian, masked to 12 bits.
pub fn partition_id(d: &Digest) -> u16 {
    (u16::from(d[0]) | (u16::from(d[1]) << 8)) & (PARTITIONS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: &Digest) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn digests_match_the_clients() {
        let cases: &[(UserKey, &str, &str)] = &[
            (
                UserKey::Int(1),
                "set",
                "82d7213b469812947c109a6d341e3b5b1dedec1f",
            ),
            (
                UserKey::Int(-1),
                "set",
                "22116d253745e29fc63fdf760b6e26f7e197e01d",
            ),
            (
                UserKey::Int(0),
                "set",
                "93d943aae37b017ad7e011b0c1d2e2143c2fb37d",
            ),
            (
                UserKey::Str("s".into()),
                "set",
                "607cddba7cd111745ef0a3d783d57f0e83c8f311",
            ),
            (
                UserKey::Str(String::new()),
                "set",
                "2819b1ff6e346a43b4f5f6b77a88bc3eaac22a83",
            ),
            (
                UserKey::Blob(4, b"s".to_vec()),
                "set",
                "ca2d96dc9a184d15a7fa2927565e844e9254e001",
            ),
            (
                UserKey::Int(1),
                "",
                "a443f05d05d962202b59abb402afae1737dbf66a",
            ),
            (
                UserKey::Str("k1".into()),
                "demo",
                "b747f5854d0b33259928d0cfab7fad81d6abfbf6",
            ),
        ];
        for (k, set, want) in cases {
            assert_eq!(hex(&k.digest(set)), *want, "{k:?} in {set:?}");
        }
    }

    #[test]
    fn partitions_match_the_clients() {
        assert_eq!(partition_id(&UserKey::Int(1).digest("set")), 1922);
        assert_eq!(
            partition_id(&UserKey::Str("k1".into()).digest("demo")),
            1975
        );
    }
}
