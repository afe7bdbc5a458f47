//! Key choosers with YCSB's semantics, so that "zipfian" and "latest" mean here what they mean
//! in every published YCSB number.
//!
//! - [`Zipfian`] is YCSB's `ZipfianGenerator` (Gray et al., "Quickly Generating Billion-Record
//!   Synthetic Databases", SIGMOD 1994): item 0 is the most popular, item i has weight
//!   1/(i+1)^θ.
//! - [`ScrambledZipfian`] is YCSB's `ScrambledZipfianGenerator`: a zipfian over 10^10 items,
//!   FNV-hashed onto the key space, so that the hot keys are spread over the key space (and
//!   over partitions) instead of being the lowest key numbers.
//! - [`KeyChooser`] with `Latest` is YCSB's `SkewedLatestGenerator`: the most recently
//!   inserted key is the most popular.

use rand::Rng;

/// YCSB's default zipfian constant.
pub const ZIPFIAN_CONSTANT: f64 = 0.99;

/// Items of the zipfian that [`ScrambledZipfian`] hashes from (YCSB's `ITEM_COUNT`).
const SCRAMBLED_ITEMS: u64 = 10_000_000_000;
/// ζ(10^10, 0.99), precomputed by YCSB (computing it takes 10^10 `powf` calls).
const SCRAMBLED_ZETAN: f64 = 26.469_028_201_783_02;

/// Σ_{i=from}^{to-1} 1/(i+1)^θ, added to `initial`: lets the zipfian grow incrementally.
fn zeta(from: u64, to: u64, theta: f64, initial: f64) -> f64 {
    (from..to).fold(initial, |sum, i| sum + 1.0 / ((i + 1) as f64).powf(theta))
}

/// YCSB's zipfian over `[0, items)`; item 0 is the most popular.
#[derive(Clone, Debug)]
pub struct Zipfian {
    items: u64,
    theta: f64,
    alpha: f64,
    zeta2: f64,
    zetan: f64,
    eta: f64,
}

impl Zipfian {
    /// O(items) once, to compute ζ(items, θ). `items` must be at least 1.
    pub fn new(items: u64, theta: f64) -> Zipfian {
        Zipfian::with_zetan(items, theta, zeta(0, items, theta, 0.0))
    }

    fn with_zetan(items: u64, theta: f64, zetan: f64) -> Zipfian {
        let items = items.max(1);
        let zeta2 = zeta(0, 2, theta, 0.0);
        let mut z = Zipfian {
            items,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zeta2,
            zetan,
            eta: 0.0,
        };
        z.eta = z.compute_eta();
        z
    }

    fn compute_eta(&self) -> f64 {
        (1.0 - (2.0 / self.items as f64).powf(1.0 - self.theta)) / (1.0 - self.zeta2 / self.zetan)
    }

    pub fn items(&self) -> u64 {
        self.items
    }

    /// Change the item count. Growing costs O(added items) (YCSB's incremental ζ); shrinking
    /// recomputes ζ from scratch, as YCSB does.
    pub fn resize(&mut self, items: u64) {
        let items = items.max(1);
        if items == self.items {
            return;
        }
        self.zetan = if items > self.items {
            zeta(self.items, items, self.theta, self.zetan)
        } else {
            zeta(0, items, self.theta, 0.0)
        };
        self.items = items;
        self.eta = self.compute_eta();
    }

    /// The item for a uniform `u` in [0, 1).
    pub fn sample_at(&self, u: f64) -> u64 {
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.items - 1);
        }
        let v = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        v.min(self.items - 1)
    }

    pub fn sample<R: Rng>(&self, rng: &mut R) -> u64 {
        self.sample_at(rng.gen::<f64>())
    }
}

/// YCSB's 64-bit FNV-1 hash of a long's 8 bytes (low byte first), made non-negative as Java's
/// `Math.abs` does.
pub fn fnv_hash64(mut v: u64) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for _ in 0..8 {
        h ^= v & 0xff;
        h = h.wrapping_mul(1_099_511_628_211);
        v >>= 8;
    }
    (h as i64).unsigned_abs()
}

/// YCSB's scrambled zipfian over `[0, items)`: popular keys scattered over the key space.
#[derive(Clone, Debug)]
pub struct ScrambledZipfian {
    items: u64,
    zipf: Zipfian,
}

impl ScrambledZipfian {
    pub fn new(items: u64) -> ScrambledZipfian {
        ScrambledZipfian {
            items: items.max(1),
            zipf: Zipfian::with_zetan(SCRAMBLED_ITEMS, ZIPFIAN_CONSTANT, SCRAMBLED_ZETAN),
        }
    }

    pub fn sample<R: Rng>(&self, rng: &mut R) -> u64 {
        fnv_hash64(self.zipf.sample(rng)) % self.items
    }
}

/// How keys are drawn for reads and updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    Uniform,
    Zipfian,
    Latest,
}

impl std::str::FromStr for Distribution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "uniform" => Ok(Distribution::Uniform),
            "zipfian" | "zipf" => Ok(Distribution::Zipfian),
            "latest" => Ok(Distribution::Latest),
            _ => Err(format!(
                "unknown distribution {s:?} (uniform, zipfian, latest)"
            )),
        }
    }
}

impl std::fmt::Display for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Distribution::Uniform => "uniform",
            Distribution::Zipfian => "zipfian",
            Distribution::Latest => "latest",
        })
    }
}

/// Draws existing keys for one client task. Cloning is cheap once built (the O(n) ζ of
/// `Latest` is computed once and shared by cloning), so build one and clone it per task.
#[derive(Clone, Debug)]
pub enum KeyChooser {
    /// Uniform over the keys present.
    Uniform,
    /// Scrambled zipfian over the initial key space (as YCSB, new keys stay cold).
    Zipfian(ScrambledZipfian),
    /// The newest key is the most popular: `present - 1 - zipfian(present)`.
    Latest(Zipfian),
}

impl KeyChooser {
    /// A chooser over an initial key space of `keys` keys.
    pub fn new(dist: Distribution, keys: u64) -> KeyChooser {
        match dist {
            Distribution::Uniform => KeyChooser::Uniform,
            Distribution::Zipfian => KeyChooser::Zipfian(ScrambledZipfian::new(keys)),
            Distribution::Latest => KeyChooser::Latest(Zipfian::new(keys.max(1), ZIPFIAN_CONSTANT)),
        }
    }

    /// A key in `[0, present)`, where `present` is how many keys exist now (the initial key
    /// space plus acknowledged inserts).
    pub fn next<R: Rng>(&mut self, rng: &mut R, present: u64) -> u64 {
        let present = present.max(1);
        match self {
            KeyChooser::Uniform => rng.gen_range(0..present),
            KeyChooser::Zipfian(z) => z.sample(rng).min(present - 1),
            KeyChooser::Latest(z) => {
                z.resize(present);
                present - 1 - z.sample(rng)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn counts(n: u64, draws: usize, mut f: impl FnMut() -> u64) -> Vec<u64> {
        let mut c = vec![0u64; n as usize];
        for _ in 0..draws {
            let k = f();
            assert!(k < n, "{k} out of range {n}");
            c[k as usize] += 1;
        }
        c
    }

    #[test]
    fn zipfian_matches_the_theoretical_head() {
        let n = 1000;
        let z = Zipfian::new(n, ZIPFIAN_CONSTANT);
        let mut rng = SmallRng::seed_from_u64(1);
        let draws = 200_000;
        let c = counts(n, draws, || z.sample(&mut rng));
        let zetan = zeta(0, n, ZIPFIAN_CONSTANT, 0.0);
        for rank in 0..2u64 {
            let expected = 1.0 / ((rank + 1) as f64).powf(ZIPFIAN_CONSTANT) / zetan;
            let got = c[rank as usize] as f64 / draws as f64;
            assert!(
                (got - expected).abs() < 0.01,
                "rank {rank}: {got} vs {expected}"
            );
        }
        // Popularity falls with rank: the first decile gets far more than the last.
        let head: u64 = c[..100].iter().sum();
        let tail: u64 = c[900..].iter().sum();
        assert!(head > 10 * tail, "head {head} tail {tail}");
        // The extreme quantiles stay in range.
        assert_eq!(z.sample_at(0.0), 0);
        assert!(z.sample_at(0.999_999_9) < n);
    }

    #[test]
    fn zipfian_grows_incrementally_like_from_scratch() {
        let mut z = Zipfian::new(100, ZIPFIAN_CONSTANT);
        z.resize(5000);
        let fresh = Zipfian::new(5000, ZIPFIAN_CONSTANT);
        assert!((z.zetan - fresh.zetan).abs() < 1e-9);
        assert!((z.eta - fresh.eta).abs() < 1e-9);
        z.resize(10);
        assert!((z.zetan - Zipfian::new(10, ZIPFIAN_CONSTANT).zetan).abs() < 1e-12);
    }

    #[test]
    fn fnv_matches_ycsb() {
        // YCSB's Utils.fnvhash64(0): FNV offset basis times the prime, eight times over zeros.
        let mut h: u64 = 0xCBF2_9CE4_8422_2325;
        for _ in 0..8 {
            h = h.wrapping_mul(1_099_511_628_211);
        }
        assert_eq!(fnv_hash64(0), (h as i64).unsigned_abs());
        assert_ne!(fnv_hash64(1), fnv_hash64(256));
    }

    #[test]
    fn scrambled_zipfian_is_skewed_but_scattered() {
        let n = 10_000;
        let mut chooser = KeyChooser::new(Distribution::Zipfian, n);
        let mut rng = SmallRng::seed_from_u64(2);
        let draws = 200_000;
        let c = counts(n, draws, || chooser.next(&mut rng, n));
        let mut sorted = c.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        // Skewed: the hottest 1% of keys take about a fifth of the accesses (uniform: 1%).
        let top: u64 = sorted[..(n / 100) as usize].iter().sum();
        assert!(top as f64 > 0.15 * draws as f64, "top 1% got {top}");
        // The hottest key has about 1/ζ(10^10) ≈ 3.8% of the draws.
        assert!(sorted[0] as f64 > 0.03 * draws as f64);
        // Scattered: the hottest key is not simply key 0, and hot keys sit in both halves.
        let hottest = c.iter().position(|x| *x == sorted[0]).unwrap();
        assert_ne!(hottest, 0);
        let low: u64 = c[..(n / 2) as usize].iter().sum();
        assert!(
            low > draws as u64 / 5 && low < draws as u64 * 4 / 5,
            "low half {low}"
        );
    }

    #[test]
    fn latest_prefers_the_newest_keys_and_follows_inserts() {
        let mut chooser = KeyChooser::new(Distribution::Latest, 1000);
        let mut rng = SmallRng::seed_from_u64(3);
        let c = counts(1000, 100_000, || chooser.next(&mut rng, 1000));
        let hottest = c.iter().enumerate().max_by_key(|(_, x)| **x).unwrap().0;
        assert_eq!(hottest, 999);
        assert!(c[999] > c[998] && c[998] > c[990] && c[990] > c[0]);
        // After inserts, the new keys are the hot ones.
        let c = counts(2000, 100_000, || chooser.next(&mut rng, 2000));
        let hottest = c.iter().enumerate().max_by_key(|(_, x)| **x).unwrap().0;
        assert_eq!(hottest, 1999);
        let newest: u64 = c[1000..].iter().sum();
        assert!(newest > 80_000, "newer half got {newest}");
    }

    #[test]
    fn uniform_is_flat() {
        let mut chooser = KeyChooser::new(Distribution::Uniform, 10);
        let mut rng = SmallRng::seed_from_u64(4);
        let c = counts(10, 100_000, || chooser.next(&mut rng, 10));
        for x in c {
            assert!((9_000..11_000).contains(&x), "{x}");
        }
    }

    #[test]
    fn parses_distributions() {
        assert_eq!("Zipfian".parse::<Distribution>(), Ok(Distribution::Zipfian));
        assert_eq!("latest".parse::<Distribution>(), Ok(Distribution::Latest));
        assert!("normal".parse::<Distribution>().is_err());
    }
}
