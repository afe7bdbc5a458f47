//! Counting and timing: per-operation-kind counters (read every second for the progress line)
//! and HDR latency histograms (for the final percentiles), like asbench's output.

use super::workload::OpKind;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The percentiles asbench reports by default.
pub const PERCENTILES: [f64; 5] = [50.0, 90.0, 99.0, 99.9, 99.99];

/// How one operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A read of an absent key: a success for throughput, counted apart.
    NotFound,
    /// No answer in time, or the store answered "timeout / in doubt".
    Timeout(String),
    /// Any other failure, labelled by its cause (e.g. "code 3", "connect").
    Error(String),
}

/// Counters of one operation kind; incremented by every task, read by the reporter.
#[derive(Default)]
pub struct Counters {
    pub ok: AtomicU64,
    pub not_found: AtomicU64,
    pub timeouts: AtomicU64,
    pub errors: AtomicU64,
}

/// A point-in-time copy of [`Counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub ok: u64,
    pub not_found: u64,
    pub timeouts: u64,
    pub errors: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.ok + self.not_found + self.timeouts + self.errors
    }

    pub fn minus(&self, o: &Counts) -> Counts {
        Counts {
            ok: self.ok - o.ok,
            not_found: self.not_found - o.not_found,
            timeouts: self.timeouts - o.timeouts,
            errors: self.errors - o.errors,
        }
    }
}

impl Counters {
    pub fn snapshot(&self) -> Counts {
        Counts {
            ok: self.ok.load(Ordering::Relaxed),
            not_found: self.not_found.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 1 hour, 3 significant digits: ~0.1% error at every scale.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds")
}

/// Everything recorded for one operation kind.
pub struct OpStats {
    pub counters: Counters,
    /// Latency of completed operations (successes and failures alike: a failure that took
    /// 5 s is part of what a user waits for). In open-loop runs, from the intended send time.
    latency: Mutex<Histogram<u64>>,
    /// Open loop only: latency from the actual send, i.e. without the queueing delay.
    service: Mutex<Histogram<u64>>,
    error_kinds: Mutex<BTreeMap<String, u64>>,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            counters: Counters::default(),
            latency: Mutex::new(new_histogram()),
            service: Mutex::new(new_histogram()),
            error_kinds: Mutex::new(BTreeMap::new()),
        }
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, 3_600_000_000)
}

/// All statistics of a run. `record` is called from every task; a histogram's lock is held
/// for one increment, and there are only as many contenders as runtime threads.
#[derive(Default)]
pub struct Recorder {
    ops: [OpStats; 5],
}

impl Recorder {
    pub fn op(&self, k: OpKind) -> &OpStats {
        &self.ops[k.index()]
    }

    /// Count an outcome (always, for the progress line) and, when `measure`, its latency.
    pub fn record(
        &self,
        k: OpKind,
        outcome: &Outcome,
        latency: Duration,
        service: Option<Duration>,
        measure: bool,
    ) {
        let s = &self.ops[k.index()];
        let c = &s.counters;
        match outcome {
            Outcome::Ok => c.ok.fetch_add(1, Ordering::Relaxed),
            Outcome::NotFound => c.not_found.fetch_add(1, Ordering::Relaxed),
            Outcome::Timeout(_) => c.timeouts.fetch_add(1, Ordering::Relaxed),
            Outcome::Error(_) => c.errors.fetch_add(1, Ordering::Relaxed),
        };
        if !measure {
            return;
        }
        if let Ok(mut h) = s.latency.lock() {
            h.saturating_record(micros(latency));
        }
        if let Some(d) = service {
            if let Ok(mut h) = s.service.lock() {
                h.saturating_record(micros(d));
            }
        }
        if let Outcome::Timeout(why) | Outcome::Error(why) = outcome {
            if let Ok(mut m) = s.error_kinds.lock() {
                // Bound the map: the first 32 distinct causes are plenty to diagnose.
                if m.len() < 32 || m.contains_key(why) {
                    *m.entry(why.clone()).or_insert(0) += 1;
                }
            }
        }
    }

    /// One summary over several kinds (e.g. all writes): counts added, histograms merged.
    pub fn merged(&self, kinds: &[OpKind], counts: &[Counts; 5], secs: f64) -> OpSummary {
        let mut latency = new_histogram();
        let mut service = new_histogram();
        let mut sum = Counts::default();
        let mut error_kinds = BTreeMap::new();
        for k in kinds {
            let s = &self.ops[k.index()];
            let c = counts[k.index()];
            sum = Counts {
                ok: sum.ok + c.ok,
                not_found: sum.not_found + c.not_found,
                timeouts: sum.timeouts + c.timeouts,
                errors: sum.errors + c.errors,
            };
            if let Ok(h) = s.latency.lock() {
                let _ = latency.add(&*h);
            }
            if let Ok(h) = s.service.lock() {
                let _ = service.add(&*h);
            }
            if let Ok(m) = s.error_kinds.lock() {
                for (why, n) in m.iter() {
                    *error_kinds
                        .entry(format!("{}: {why}", k.name()))
                        .or_insert(0) += n;
                }
            }
        }
        OpSummary {
            counts: sum,
            ops_per_sec: if secs > 0.0 {
                (sum.ok + sum.not_found) as f64 / secs
            } else {
                0.0
            },
            latency_ms: LatencySummary::of(&latency),
            service_ms: (!service.is_empty()).then(|| LatencySummary::of(&service)),
            error_kinds,
        }
    }

    pub fn snapshot(&self) -> [Counts; 5] {
        std::array::from_fn(|i| self.ops[i].counters.snapshot())
    }

    /// The summary of one kind over a measured window of `secs` seconds.
    pub fn summary(&self, k: OpKind, counts: Counts, secs: f64) -> OpSummary {
        let s = &self.ops[k.index()];
        let pcts = |h: &Histogram<u64>| LatencySummary::of(h);
        let latency = s.latency.lock().map(|h| pcts(&h)).unwrap_or_default();
        let service = s
            .service
            .lock()
            .ok()
            .filter(|h| !h.is_empty())
            .map(|h| pcts(&h));
        OpSummary {
            counts,
            ops_per_sec: if secs > 0.0 {
                (counts.ok + counts.not_found) as f64 / secs
            } else {
                0.0
            },
            latency_ms: latency,
            service_ms: service,
            error_kinds: s.error_kinds.lock().map(|m| m.clone()).unwrap_or_default(),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// `p50`, `p90`, `p99`, `p99.9`, `p99.99`.
    pub percentiles: BTreeMap<String, f64>,
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> LatencySummary {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            mean: h.mean() / 1000.0,
            min: ms(h.min()),
            max: ms(h.max()),
            percentiles: PERCENTILES
                .iter()
                .map(|p| (format!("p{p}"), ms(h.value_at_percentile(*p))))
                .collect(),
        }
    }

    pub fn p(&self, p: f64) -> f64 {
        self.percentiles
            .get(&format!("p{p}"))
            .copied()
            .unwrap_or(0.0)
    }
}

/// One operation kind's results.
#[derive(Clone, Debug, Serialize)]
pub struct OpSummary {
    pub counts: Counts,
    /// Successful operations (including reads of absent keys) per second.
    pub ops_per_sec: f64,
    pub latency_ms: LatencySummary,
    /// Open loop: latency from the actual send (the service time), beside `latency_ms`
    /// measured from the intended send time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_ms: Option<LatencySummary>,
    /// Failures by cause.
    pub error_kinds: BTreeMap<String, u64>,
}

/// The progress line for one second: `  3s read 12345/s (to 0 err 0) update ... total N/s`.
pub fn progress_line(elapsed: Duration, delta: &[Counts; 5], secs: f64, warmup: bool) -> String {
    let mut line = format!(
        "{:>5.0}s{}",
        elapsed.as_secs_f64(),
        if warmup { " warmup" } else { "" }
    );
    let mut total = 0;
    for k in OpKind::ALL {
        let d = delta[k.index()];
        if d.total() == 0 {
            continue;
        }
        total += d.total();
        line.push_str(&format!(
            " {}(tps={:.0} timeouts={} errors={})",
            k.name(),
            d.total() as f64 / secs,
            d.timeouts,
            d.errors
        ));
    }
    line.push_str(&format!(" total(tps={:.0})", total as f64 / secs));
    line
}

/// The final table: one row per operation kind that ran.
pub fn table(rows: &[(OpKind, OpSummary)], open_loop: bool) -> String {
    let mut out = String::new();
    let head = PERCENTILES
        .iter()
        .map(|p| format!("{:>9}", format!("p{p}")))
        .collect::<String>();
    out.push_str(&format!(
        "{:<8}{:>10}{:>12}{:>9}{:>9}{:>10}{head}{:>10}   (ms)\n",
        "op", "count", "ops/s", "timeout", "errors", "mean", "max"
    ));
    let mut line = |name: &str, s: &OpSummary, l: &LatencySummary| {
        let ps = PERCENTILES
            .iter()
            .map(|p| format!("{:>9.3}", l.p(*p)))
            .collect::<String>();
        out.push_str(&format!(
            "{:<8}{:>10}{:>12.0}{:>9}{:>9}{:>10.3}{ps}{:>10.3}\n",
            name,
            s.counts.total(),
            s.ops_per_sec,
            s.counts.timeouts,
            s.counts.errors,
            l.mean,
            l.max
        ));
    };
    for (k, s) in rows {
        line(k.name(), s, &s.latency_ms);
        if open_loop {
            if let Some(svc) = &s.service_ms {
                line("  svc", s, svc);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_counts_and_percentiles() {
        let r = Recorder::default();
        for i in 1..=1000u64 {
            r.record(
                OpKind::Read,
                &Outcome::Ok,
                Duration::from_micros(i * 10),
                None,
                true,
            );
        }
        r.record(
            OpKind::Update,
            &Outcome::Timeout("no answer".into()),
            Duration::from_secs(5),
            None,
            true,
        );
        r.record(
            OpKind::Update,
            &Outcome::Error("code 3".into()),
            Duration::ZERO,
            None,
            false,
        );
        let snap = r.snapshot();
        assert_eq!(snap[OpKind::Read.index()].ok, 1000);
        assert_eq!(snap[OpKind::Update.index()].timeouts, 1);
        assert_eq!(snap[OpKind::Update.index()].errors, 1);
        let s = r.summary(OpKind::Read, snap[0], 2.0);
        assert_eq!(s.ops_per_sec, 500.0);
        assert!(
            (s.latency_ms.p(50.0) - 5.0).abs() < 0.01,
            "{:?}",
            s.latency_ms
        );
        assert!((s.latency_ms.p(99.0) - 9.9).abs() < 0.02);
        let u = r.summary(OpKind::Update, snap[1], 2.0);
        assert_eq!(u.error_kinds.get("no answer"), Some(&1));
        // Unmeasured outcomes are counted but not timed.
        assert_eq!(u.error_kinds.get("code 3"), None);
        assert_eq!(u.latency_ms.count, 1);
        let t = table(&[(OpKind::Read, s)], false);
        assert!(t.contains("p99.99") && t.lines().count() == 2, "{t}");
    }
}
