//! What a write stores: one integer bin (asbench's default object), a string or blob of N
//! bytes, a list of N integers (updates append one element in place: a CDT list append), or
//! YCSB's record of 10 fields × 100 bytes.
//!
//! Random payloads are sliced from a per-task pool of random bytes so that generating a value
//! costs a copy, not N calls to the RNG: on a 2-core box the generator shares the CPU with
//! the servers, and every cycle it spends is taken from them.

use crate::client::Operation;
use crate::client::Value;
use rand::Rng;

/// Bin written by the single-bin specs (asbench's default bin name).
pub const BIN: &str = "testbin";
/// YCSB's record: `fieldcount` fields of `fieldlength` bytes.
pub const YCSB_FIELDS: usize = 10;
pub const YCSB_FIELD_LEN: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueSpec {
    /// One integer bin (8 bytes on the wire).
    Int,
    /// One string bin of N printable ASCII bytes.
    Str(usize),
    /// One blob bin of N random bytes.
    Blob(usize),
    /// Bins `field0`..`field9` of 100 printable bytes; an update rewrites one field, as
    /// YCSB's `writeallfields=false`.
    Ycsb,
    /// One list bin of N integers; an insert or replace writes the whole list, an update
    /// appends one integer (a list append operation, the list changed in place).
    List(usize),
}

impl std::str::FromStr for ValueSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let len = |n: &str| {
            n.parse::<usize>()
                .ok()
                .filter(|n| *n <= 1 << 20)
                .ok_or_else(|| format!("value size {n:?} is not 0..=1048576"))
        };
        match s.to_ascii_lowercase().as_str() {
            "int" | "i" => Ok(ValueSpec::Int),
            "ycsb" => Ok(ValueSpec::Ycsb),
            v => match v.split_once(':') {
                Some(("string", n)) | Some(("s", n)) => Ok(ValueSpec::Str(len(n)?)),
                Some(("blob", n)) | Some(("b", n)) => Ok(ValueSpec::Blob(len(n)?)),
                Some(("list", n)) | Some(("l", n)) => Ok(ValueSpec::List(len(n)?)),
                _ => Err(format!(
                    "unknown value {s:?} (int, string:<N>, blob:<N>, list:<N>, ycsb)"
                )),
            },
        }
    }
}

impl std::fmt::Display for ValueSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueSpec::Int => write!(f, "int"),
            ValueSpec::Str(n) => write!(f, "string:{n}"),
            ValueSpec::Blob(n) => write!(f, "blob:{n}"),
            ValueSpec::Ycsb => write!(f, "ycsb"),
            ValueSpec::List(n) => write!(f, "list:{n}"),
        }
    }
}

impl ValueSpec {
    /// Bytes of payload a full write carries (for reports).
    pub fn size(&self) -> usize {
        match self {
            ValueSpec::Int => 8,
            ValueSpec::Str(n) | ValueSpec::Blob(n) => *n,
            ValueSpec::Ycsb => YCSB_FIELDS * YCSB_FIELD_LEN,
            ValueSpec::List(n) => list_header(*n) + LIST_ELEMENT * n,
        }
    }
}

/// List elements are drawn from [2^24, 2^31): five msgpack bytes each.
const LIST_ELEMENT: usize = 5;
const LIST_MIN: i64 = 1 << 24;
const LIST_MAX: i64 = 1 << 31;

/// Bytes of a msgpack array header for `n` elements.
fn list_header(n: usize) -> usize {
    match n {
        0..=15 => 1,
        16..=65535 => 3,
        _ => 5,
    }
}

/// Size of the random pool values are sliced from.
const POOL: usize = 64 * 1024;

/// Makes values for one client task.
pub struct ValueGen {
    spec: ValueSpec,
    /// Printable ASCII (valid UTF-8 for string bins); also used for blobs.
    pool: Vec<u8>,
}

impl ValueGen {
    pub fn new<R: Rng>(spec: ValueSpec, rng: &mut R) -> ValueGen {
        let need = spec.size().max(YCSB_FIELD_LEN);
        let pool = (0..POOL.max(2 * need))
            .map(|_| rng.gen_range(b'!'..=b'~'))
            .collect();
        ValueGen { spec, pool }
    }

    pub fn spec(&self) -> ValueSpec {
        self.spec
    }

    fn slice<R: Rng>(&self, rng: &mut R, n: usize) -> &[u8] {
        let start = rng.gen_range(0..=self.pool.len() - n);
        &self.pool[start..start + n]
    }

    /// The bin operations of a write. `full` writes every YCSB field (inserts, replaces);
    /// otherwise a YCSB write updates one random field.
    pub fn ops<R: Rng>(&self, rng: &mut R, full: bool) -> Vec<Operation> {
        match self.spec {
            // asbench's I4-style values: 2^24 ..= 2^32-1.
            ValueSpec::Int => vec![Operation::Put(
                BIN.into(),
                Value::Int(rng.gen_range(1i64 << 24..1i64 << 32)),
            )],
            ValueSpec::Str(n) => vec![Operation::Put(
                BIN.into(),
                Value::Str(self.slice(rng, n).to_vec()),
            )],
            ValueSpec::Blob(n) => vec![Operation::Put(
                BIN.into(),
                Value::Blob(storage::record::particle::BLOB, self.slice(rng, n).to_vec()),
            )],
            ValueSpec::Ycsb => {
                let fields: Vec<usize> = if full {
                    (0..YCSB_FIELDS).collect()
                } else {
                    vec![rng.gen_range(0..YCSB_FIELDS)]
                };
                fields
                    .into_iter()
                    .map(|i| {
                        Operation::Put(
                            format!("field{i}"),
                            Value::Str(self.slice(rng, YCSB_FIELD_LEN).to_vec()),
                        )
                    })
                    .collect()
            }
            ValueSpec::List(n) if full => {
                use storage::cdt::value::{to_bytes, CdtValue, List};
                let items = (0..n)
                    .map(|_| CdtValue::Int(rng.gen_range(LIST_MIN..LIST_MAX)))
                    .collect();
                let list = CdtValue::List(List { flags: 0, items });
                vec![Operation::Put(BIN.into(), Value::List(to_bytes(&list)))]
            }
            ValueSpec::List(_) => vec![Operation::ListAppend(
                BIN.into(),
                rng.gen_range(LIST_MIN..LIST_MAX),
            )],
        }
    }

    /// The value as one opaque byte string, for stores without bins (etcd): an integer as 8
    /// big-endian bytes, a YCSB record as its 10 fields concatenated (a key-value store must
    /// rewrite the whole value, so every YCSB write is a full one there).
    pub fn bytes<R: Rng>(&self, rng: &mut R) -> Vec<u8> {
        match self.spec {
            ValueSpec::Int => rng.gen_range(1i64 << 24..1i64 << 32).to_be_bytes().to_vec(),
            ValueSpec::Str(n) | ValueSpec::Blob(n) => self.slice(rng, n).to_vec(),
            ValueSpec::Ycsb => self.slice(rng, YCSB_FIELDS * YCSB_FIELD_LEN).to_vec(),
            // A key-value store rewrites the whole list on every append.
            ValueSpec::List(_) => self.slice(rng, self.spec.size()).to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn parses_and_sizes_values() {
        assert_eq!("int".parse::<ValueSpec>(), Ok(ValueSpec::Int));
        assert_eq!("string:256".parse::<ValueSpec>(), Ok(ValueSpec::Str(256)));
        assert_eq!("blob:16".parse::<ValueSpec>(), Ok(ValueSpec::Blob(16)));
        assert_eq!("YCSB".parse::<ValueSpec>(), Ok(ValueSpec::Ycsb));
        assert!("string:x".parse::<ValueSpec>().is_err());
        assert!("float".parse::<ValueSpec>().is_err());
        assert_eq!(ValueSpec::Ycsb.size(), 1000);
        assert_eq!(ValueSpec::Str(256).to_string(), "string:256");
    }

    #[test]
    fn generates_values_of_the_right_shape() {
        let mut rng = SmallRng::seed_from_u64(5);
        let g = ValueGen::new(ValueSpec::Str(256), &mut rng);
        match &g.ops(&mut rng, true)[..] {
            [Operation::Put(n, Value::Str(s))] => {
                assert_eq!(n, BIN);
                assert_eq!(s.len(), 256);
                assert!(std::str::from_utf8(s).is_ok());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(g.bytes(&mut rng).len(), 256);
        let g = ValueGen::new(ValueSpec::Ycsb, &mut rng);
        assert_eq!(g.ops(&mut rng, true).len(), 10);
        assert_eq!(g.ops(&mut rng, false).len(), 1);
        assert_eq!(g.bytes(&mut rng).len(), 1000);
        let g = ValueGen::new(ValueSpec::Int, &mut rng);
        assert!(
            matches!(&g.ops(&mut rng, false)[..], [Operation::Put(_, Value::Int(i))] if *i >= 1 << 24)
        );
        let g = ValueGen::new(ValueSpec::Blob(0), &mut rng);
        assert_eq!(g.bytes(&mut rng).len(), 0);
        // a list: whole on inserts (its encoded size is what `size` reports), one append
        // on updates
        let spec: ValueSpec = "list:1000".parse().unwrap();
        let g = ValueGen::new(spec, &mut rng);
        match &g.ops(&mut rng, true)[..] {
            [Operation::Put(_, v @ Value::List(b))] => {
                assert_eq!(b.len(), spec.size());
                assert_eq!(crate::client::list_ints(v).len(), 1000);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &g.ops(&mut rng, false)[..],
            [Operation::ListAppend(n, e)] if n == BIN && *e >= LIST_MIN
        ));
        assert_eq!(g.bytes(&mut rng).len(), spec.size());
    }
}
