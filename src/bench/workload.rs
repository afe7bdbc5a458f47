//! Workloads: Aerospike asbench's `I`, `RU,<read%>`, `RR,<read%>` and YCSB's core workloads
//! A, B, C, D and F, as an operation mix plus a default key distribution.
//!
//! YCSB E (short range scans) is refused: a hash-partitioned store has no ordered scans.

use super::keys::Distribution;

/// One kind of operation, each with its own counters and latency histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// Read every bin of an existing key.
    Read,
    /// Write the value's bins into an existing key (other bins kept).
    Update,
    /// Replace the whole record (asbench RR).
    Replace,
    /// Write a new key (asbench I, YCSB D's inserts).
    Insert,
    /// Read, then write conditioned on what was read (YCSB F); timed as one operation.
    ReadModifyWrite,
}

impl OpKind {
    pub const ALL: [OpKind; 5] = [
        OpKind::Read,
        OpKind::Update,
        OpKind::Replace,
        OpKind::Insert,
        OpKind::ReadModifyWrite,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Update => "update",
            OpKind::Replace => "replace",
            OpKind::Insert => "insert",
            OpKind::ReadModifyWrite => "rmw",
        }
    }

    /// Whether the operation writes (for the "write"/"read" split of summaries).
    pub fn writes(self) -> bool {
        !matches!(self, OpKind::Read)
    }
}

/// A workload as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// asbench `I`: insert every key of the key space once, in order, then stop.
    Insert,
    /// asbench `RU,<read%>`: random reads and updates.
    ReadUpdate(u8),
    /// asbench `RR,<read%>`: random reads and whole-record replaces.
    ReadReplace(u8),
    /// YCSB core workload `A`, `B`, `C`, `D` or `F`.
    Ycsb(char),
}

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let pct = |p: &str| -> Result<u8, String> {
            p.trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= 100)
                .ok_or_else(|| format!("read percentage {p:?} is not 0..=100"))
        };
        match s.to_ascii_uppercase().as_str() {
            "I" => Ok(Workload::Insert),
            "A" | "B" | "C" | "D" | "F" => {
                Ok(Workload::Ycsb(s.to_ascii_uppercase().as_bytes()[0] as char))
            }
            "E" => {
                Err("YCSB E needs ordered range scans, which a hash-partitioned store lacks".into())
            }
            u => match u.split_once(',') {
                Some(("RU", p)) => Ok(Workload::ReadUpdate(pct(p)?)),
                Some(("RR", p)) => Ok(Workload::ReadReplace(pct(p)?)),
                _ => Err(format!(
                    "unknown workload {s:?} (I, RU,<read%>, RR,<read%>, A, B, C, D, F)"
                )),
            },
        }
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Workload::Insert => write!(f, "I"),
            Workload::ReadUpdate(p) => write!(f, "RU,{p}"),
            Workload::ReadReplace(p) => write!(f, "RR,{p}"),
            Workload::Ycsb(c) => write!(f, "{c}"),
        }
    }
}

impl Workload {
    /// The operation mix as (kind, fraction) pairs summing to 1.
    pub fn mix(&self) -> Vec<(OpKind, f64)> {
        let split = |read: f64, other: OpKind| {
            [(OpKind::Read, read), (other, 1.0 - read)]
                .into_iter()
                .filter(|(_, f)| *f > 0.0)
                .collect()
        };
        match self {
            Workload::Insert => vec![(OpKind::Insert, 1.0)],
            Workload::ReadUpdate(p) => split(f64::from(*p) / 100.0, OpKind::Update),
            Workload::ReadReplace(p) => split(f64::from(*p) / 100.0, OpKind::Replace),
            Workload::Ycsb('A') => split(0.5, OpKind::Update),
            Workload::Ycsb('B') => split(0.95, OpKind::Update),
            Workload::Ycsb('D') => split(0.95, OpKind::Insert),
            Workload::Ycsb('F') => split(0.5, OpKind::ReadModifyWrite),
            Workload::Ycsb(_) => split(1.0, OpKind::Update),
        }
    }

    /// asbench draws keys uniformly; YCSB uses zipfian, except D (latest).
    pub fn default_distribution(&self) -> Distribution {
        match self {
            Workload::Insert | Workload::ReadUpdate(_) | Workload::ReadReplace(_) => {
                Distribution::Uniform
            }
            Workload::Ycsb('D') => Distribution::Latest,
            Workload::Ycsb(_) => Distribution::Zipfian,
        }
    }

    /// `I` ends when every key is written; the others run for the duration.
    pub fn is_finite(&self) -> bool {
        matches!(self, Workload::Insert)
    }
}

/// Picks an operation for a uniform draw in [0, 1) from a workload's mix.
#[derive(Clone, Debug)]
pub struct OpMix {
    cumulative: Vec<(f64, OpKind)>,
}

impl OpMix {
    pub fn new(workload: &Workload) -> OpMix {
        let mut acc = 0.0;
        let cumulative = workload
            .mix()
            .into_iter()
            .map(|(k, f)| {
                acc += f;
                (acc, k)
            })
            .collect();
        OpMix { cumulative }
    }

    pub fn choose(&self, u: f64) -> OpKind {
        self.cumulative
            .iter()
            .find(|(c, _)| u < *c)
            .or(self.cumulative.last())
            .map_or(OpKind::Read, |(_, k)| *k)
    }

    /// The kinds this mix can produce.
    pub fn kinds(&self) -> Vec<OpKind> {
        self.cumulative.iter().map(|(_, k)| *k).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn observed(w: &str, draws: usize) -> std::collections::BTreeMap<OpKind, f64> {
        let mix = OpMix::new(&w.parse().unwrap());
        let mut rng = SmallRng::seed_from_u64(9);
        let mut m = std::collections::BTreeMap::new();
        for _ in 0..draws {
            *m.entry(mix.choose(rng.gen::<f64>())).or_insert(0.0) += 1.0 / draws as f64;
        }
        m
    }

    fn close(m: &std::collections::BTreeMap<OpKind, f64>, k: OpKind, want: f64) {
        let got = m.get(&k).copied().unwrap_or(0.0);
        assert!((got - want).abs() < 0.01, "{k:?}: {got} vs {want}");
    }

    #[test]
    fn mixes_have_the_documented_ratios() {
        let n = 100_000;
        let m = observed("RU,50", n);
        close(&m, OpKind::Read, 0.5);
        close(&m, OpKind::Update, 0.5);
        let m = observed("RR,80", n);
        close(&m, OpKind::Read, 0.8);
        close(&m, OpKind::Replace, 0.2);
        let m = observed("A", n);
        close(&m, OpKind::Read, 0.5);
        close(&m, OpKind::Update, 0.5);
        let m = observed("B", n);
        close(&m, OpKind::Read, 0.95);
        close(&m, OpKind::Update, 0.05);
        let m = observed("C", n);
        assert_eq!(m.len(), 1);
        close(&m, OpKind::Read, 1.0);
        let m = observed("D", n);
        close(&m, OpKind::Read, 0.95);
        close(&m, OpKind::Insert, 0.05);
        let m = observed("F", n);
        close(&m, OpKind::Read, 0.5);
        close(&m, OpKind::ReadModifyWrite, 0.5);
        let m = observed("I", n);
        assert_eq!(m.len(), 1);
        close(&m, OpKind::Insert, 1.0);
        let m = observed("RU,0", n);
        assert_eq!(m.len(), 1);
        close(&m, OpKind::Update, 1.0);
        let m = observed("RU,100", n);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn mix_edges_never_escape() {
        let mix = OpMix::new(&"RU,30".parse().unwrap());
        assert_eq!(mix.choose(0.0), OpKind::Read);
        assert_eq!(mix.choose(0.3), OpKind::Update);
        assert_eq!(mix.choose(0.999_999), OpKind::Update);
        assert_eq!(mix.choose(1.0), OpKind::Update);
    }

    #[test]
    fn parses_workloads() {
        assert_eq!("I".parse::<Workload>(), Ok(Workload::Insert));
        assert_eq!("ru, 70".parse::<Workload>(), Ok(Workload::ReadUpdate(70)));
        assert_eq!("RR,10".parse::<Workload>(), Ok(Workload::ReadReplace(10)));
        assert_eq!("a".parse::<Workload>(), Ok(Workload::Ycsb('A')));
        assert!("E".parse::<Workload>().is_err());
        assert!("RU,101".parse::<Workload>().is_err());
        assert!("RU".parse::<Workload>().is_err());
        assert!("X".parse::<Workload>().is_err());
        assert_eq!("RU,50".parse::<Workload>().unwrap().to_string(), "RU,50");
        assert_eq!(
            Workload::Ycsb('D').default_distribution(),
            Distribution::Latest
        );
        assert_eq!(
            Workload::Ycsb('A').default_distribution(),
            Distribution::Zipfian
        );
        assert_eq!(
            Workload::ReadUpdate(50).default_distribution(),
            Distribution::Uniform
        );
    }
}
