//! `strato bench`: an asbench/YCSB-style load generator for Strato and, behind the `etcd`
//! feature, for etcd, so that both are measured by one generator on one machine in one run.
//!
//! - [`workload`]: asbench `I`, `RU,<r>`, `RR,<r>` and YCSB A, B, C, D, F as operation mixes.
//! - [`keys`]: uniform, YCSB scrambled zipfian (θ = 0.99) and skewed-latest key choosers.
//! - [`value`]: one integer bin, a string or blob of N bytes, a list of N integers (updates
//!   append to it in place), or YCSB's 10 × 100 B record.
//! - [`target`]: one client task's session with Strato (partition-aware, see
//!   [`crate::client::Cluster`]) or etcd.
//! - [`stats`]: counters for the per-second progress line, HDR histograms for percentiles.
//! - [`failover`]: `--kill-pid`, a node killed under load and the time until every
//!   partition has a master again.
//!
//! Closed loop (`--clients N`): N tasks each send their next request when the previous one
//! answered. Open loop (`--rate R`): requests are due at a fixed schedule, at most `--clients`
//! in flight, and latency is measured from when a request was *due*, not when it was sent, so
//! a stall is charged to every request it delayed (no coordinated omission); the service time
//! from the actual send is reported beside it. (Due times are met with tokio's timer, whose
//! granularity is 1 ms: open-loop latencies can include up to 1 ms of timer lateness, which
//! the service time does not.)

pub mod failover;
pub mod keys;
pub mod stats;
pub mod target;
pub mod value;
pub mod workload;

use anyhow::{bail, Context};
use keys::{Distribution, KeyChooser};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use stats::{Counts, LatencySummary, OpSummary, Outcome, Recorder};
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use target::Session;
use value::{ValueGen, ValueSpec};
use workload::{OpKind, OpMix, Workload};

/// Which store to drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Strato,
    /// Needs a build with `--features etcd`.
    Etcd,
}

/// How reads ask to be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadModeArg {
    /// Linearizable (Strato: ReadIndex on the leader; etcd: its default).
    Linearize,
    /// Any replica may answer (Strato: only if the namespace allows relaxed reads; etcd:
    /// serializable reads). Not linearizable.
    AllowReplica,
}

/// `strato bench` options.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Store to drive.
    #[arg(long, value_enum, default_value = "strato")]
    pub target: TargetKind,
    /// Nodes (Strato service ports, or etcd client ports), comma-separated. For Strato any
    /// subset will do: the others are discovered.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:3000")]
    pub hosts: Vec<String>,
    /// Strato namespace.
    #[arg(long, default_value = "test")]
    pub namespace: String,
    /// `I` (insert every key once), `RU,<read%>`, `RR,<read%>`, or YCSB `A`, `B`, `C`, `D`, `F`.
    #[arg(long, default_value = "RU,50")]
    pub workload: Workload,
    /// Size of the key space: keys 0..N.
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,
    /// `uniform`, `zipfian` (YCSB scrambled, θ = 0.99) or `latest`; default: uniform for
    /// asbench workloads, zipfian for YCSB ones, latest for YCSB D.
    #[arg(long)]
    pub distribution: Option<Distribution>,
    /// `int`, `string:<N>`, `blob:<N>`, `list:<N>` (N integers; updates append one) or
    /// `ycsb` (10 bins × 100 B).
    #[arg(long, default_value = "int")]
    pub value: ValueSpec,
    /// Concurrent client tasks (closed loop), or the most requests in flight (open loop).
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Open loop: requests per second, latency measured from each request's due time.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds to measure (default 10; `I` runs until every key is written). SIGINT ends the
    /// measured window early and reports it.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds of load before measuring starts (connections, leaders and caches warm up).
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    #[arg(long, value_enum, default_value = "linearize")]
    pub read_mode: ReadModeArg,
    /// Per-request timeout; a request without an answer by then counts as a timeout.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// RNG seed (random when absent); task i uses seed + i.
    #[arg(long)]
    pub seed: Option<u64>,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// Failover: `kill -9` this process (a Strato node) `--kill-after` seconds into the
    /// measured window, and report how long until every partition has a master again.
    #[arg(long)]
    pub kill_pid: Option<u32>,
    /// Seconds into the measured window at which `--kill-pid` is killed.
    #[arg(long, default_value_t = 3.0)]
    pub kill_after: f64,
}

/// The JSON summary (also what the final table is printed from).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub target: TargetKind,
    pub hosts: Vec<String>,
    pub workload: String,
    pub distribution: String,
    pub keys: u64,
    pub value: String,
    pub value_bytes: usize,
    pub clients: usize,
    pub rate: Option<f64>,
    pub read_mode: ReadModeArg,
    pub timeout_ms: u64,
    pub warmup_s: f64,
    /// Length of the measured window.
    pub duration_s: f64,
    pub seed: u64,
    /// Every operation kind together.
    pub total: OpSummary,
    /// Reads alone and writes (update, replace, insert, rmw) together.
    pub reads: Option<OpSummary>,
    pub writes: Option<OpSummary>,
    /// Per operation kind that ran.
    pub ops: BTreeMap<String, OpSummary>,
    /// Strato: how often the partition map was rebuilt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_refreshes: Option<u64>,
    /// `--kill-pid`: what the kill showed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover: Option<failover::FailoverReport>,
}

/// What every task shares.
struct Shared {
    recorder: Recorder,
    stop: AtomicBool,
    measuring: AtomicBool,
    workload: Workload,
    /// Initial key space.
    keys: u64,
    /// Next insert: `I` inserts key n; YCSB D inserts key `keys + n`.
    next_insert: AtomicU64,
    /// Keys that exist for reads and updates: the key space plus acknowledged D inserts.
    present: AtomicU64,
    /// Open loop: when request n is due is `start + n * interval`.
    schedule: Option<Schedule>,
}

struct Schedule {
    start: Instant,
    interval: Duration,
    end: Instant,
    next: AtomicU64,
}

impl Schedule {
    /// The next request's due time, or `None` once the schedule is over.
    fn next_due(&self) -> Option<Instant> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let due = self.start + self.interval.mul_f64(n as f64);
        (due < self.end).then_some(due)
    }
}

async fn client_task<S: Session>(
    mut session: S,
    shared: Arc<Shared>,
    mix: OpMix,
    mut chooser: KeyChooser,
    mut rng: SmallRng,
) {
    while !shared.stop.load(Ordering::Relaxed) {
        let due = match &shared.schedule {
            Some(s) => match s.next_due() {
                Some(due) => {
                    tokio::time::sleep_until(due.into()).await;
                    Some(due)
                }
                None => break,
            },
            None => None,
        };
        let kind = mix.choose(rng.gen::<f64>());
        let key = match kind {
            OpKind::Insert => {
                let n = shared.next_insert.fetch_add(1, Ordering::Relaxed);
                if shared.workload == Workload::Insert {
                    if n >= shared.keys {
                        break;
                    }
                    n
                } else {
                    shared.keys + n
                }
            }
            _ => chooser.next(&mut rng, shared.present.load(Ordering::Relaxed)),
        };
        let sent = Instant::now();
        let outcome = match kind {
            OpKind::Read => session.read(key).await,
            OpKind::ReadModifyWrite => session.read_modify_write(key).await,
            _ => session.write(key, kind).await,
        };
        let done = Instant::now();
        if kind == OpKind::Insert && key >= shared.keys && outcome == Outcome::Ok {
            shared.present.fetch_max(key + 1, Ordering::Relaxed);
        }
        let measuring = shared.measuring.load(Ordering::Relaxed);
        shared.recorder.record(
            kind,
            &outcome,
            done - due.unwrap_or(sent),
            due.map(|_| done - sent),
            measuring,
        );
    }
}

fn resolve(hosts: &[String]) -> anyhow::Result<Vec<SocketAddr>> {
    hosts
        .iter()
        .filter(|h| !h.is_empty())
        .map(|h| {
            h.to_socket_addrs()
                .with_context(|| format!("host {h:?} is not HOST:PORT"))?
                .next()
                .with_context(|| format!("host {h:?} resolves to no address"))
        })
        .collect()
}

/// Run a benchmark as the CLI asks: print progress to stderr, the table to stdout, and
/// write the JSON summary if asked.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let report = execute(&args).await?;
    print!("{}", render(&report));
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The human-readable result: a header line and the percentile table.
pub fn render(r: &Report) -> String {
    let mut out = format!(
        "{} {} workload={} keys={} dist={} value={} clients={}{} read-mode={} measured {:.1}s\n",
        match r.target {
            TargetKind::Strato => "strato",
            TargetKind::Etcd => "etcd",
        },
        r.hosts.join(","),
        r.workload,
        r.keys,
        r.distribution,
        r.value,
        r.clients,
        r.rate.map(|x| format!(" rate={x}/s")).unwrap_or_default(),
        match r.read_mode {
            ReadModeArg::Linearize => "linearize",
            ReadModeArg::AllowReplica => "allow-replica",
        },
        r.duration_s
    );
    let mut rows: Vec<(OpKind, OpSummary)> = OpKind::ALL
        .iter()
        .filter_map(|k| r.ops.get(k.name()).map(|s| (*k, s.clone())))
        .collect();
    rows.retain(|(_, s)| s.counts.total() > 0);
    out.push_str(&stats::table(&rows, r.rate.is_some()));
    out.push_str(&format!(
        "total {:.0} ops/s, {} timeouts, {} errors\n",
        r.total.ops_per_sec, r.total.counts.timeouts, r.total.counts.errors
    ));
    if let Some(f) = &r.failover {
        out.push_str(&format!(
            "failover: killed pid {}, {} partitions lost their master, {}\n",
            f.killed_pid,
            f.masterless_after_kill,
            match f.restored_ms {
                Some(ms) => format!("all had one again after {ms:.0} ms"),
                None => "not all had one again by the end of the run".into(),
            }
        ));
    }
    for (k, s) in &r.ops {
        for (why, n) in &s.error_kinds {
            out.push_str(&format!("  {k}: {n} × {why}\n"));
        }
    }
    out
}

/// Run the benchmark and return its summary.
pub async fn execute(args: &BenchArgs) -> anyhow::Result<Report> {
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    if args.keys == 0 {
        bail!("--keys must be at least 1");
    }
    if let Some(r) = args.rate {
        if !(r > 0.0 && r.is_finite()) {
            bail!("--rate must be a positive number of requests per second");
        }
    }
    let dist = args
        .distribution
        .unwrap_or_else(|| args.workload.default_distribution());
    let seed = args.seed.unwrap_or_else(rand::random);
    let timeout = Duration::from_millis(args.timeout_ms);
    let chooser = KeyChooser::new(dist, args.keys);
    let mut rngs: Vec<SmallRng> = (0..args.clients)
        .map(|i| SmallRng::seed_from_u64(seed.wrapping_add(i as u64)))
        .collect();
    let values: Vec<ValueGen> = rngs
        .iter_mut()
        .map(|r| ValueGen::new(args.value, r))
        .collect();

    let mut failover = None;
    let (report, refreshes) = match args.target {
        TargetKind::Strato => {
            let seeds = resolve(&args.hosts)?;
            let cluster = crate::client::Cluster::connect(&seeds, &args.namespace, timeout)
                .await
                .context("no Strato node answered")?;
            wait_for_leaders(&cluster, args.quiet).await;
            if let Some(pid) = args.kill_pid {
                let after =
                    Duration::from_secs_f64(args.warmup.max(0.0) + args.kill_after.max(0.0));
                let limit = Duration::from_secs_f64(args.duration.unwrap_or(10.0).max(1.0) + 30.0);
                failover = Some(tokio::spawn(failover::kill_and_watch(
                    pid,
                    after,
                    cluster.nodes(),
                    args.namespace.clone(),
                    limit,
                )));
            }
            let mode = match args.read_mode {
                ReadModeArg::Linearize => crate::client::ReadMode::Linearize,
                ReadModeArg::AllowReplica => crate::client::ReadMode::AllowReplica,
            };
            let sessions = values
                .into_iter()
                .zip(rngs.iter_mut())
                .map(|(v, r)| {
                    target::StratoSession::new(&cluster, mode, v, SmallRng::seed_from_u64(r.gen()))
                })
                .collect();
            let report = drive(args, dist, seed, sessions, chooser, rngs).await?;
            (report, Some(cluster.refreshes()))
        }
        TargetKind::Etcd => (etcd(args, dist, seed, values, chooser, rngs).await?, None),
    };
    let failover = match failover {
        Some(task) => Some(task.await.context("the failover task failed")??),
        None => None,
    };
    Ok(Report {
        map_refreshes: refreshes,
        failover,
        ..report
    })
}

#[cfg(feature = "etcd")]
async fn etcd(
    args: &BenchArgs,
    dist: Distribution,
    seed: u64,
    values: Vec<ValueGen>,
    chooser: KeyChooser,
    mut rngs: Vec<SmallRng>,
) -> anyhow::Result<Report> {
    let endpoints: Vec<String> = args
        .hosts
        .iter()
        .filter(|h| !h.is_empty())
        .map(|h| {
            if h.contains("://") {
                h.clone()
            } else {
                format!("http://{h}")
            }
        })
        .collect();
    let timeout = Duration::from_millis(args.timeout_ms);
    let serializable = args.read_mode == ReadModeArg::AllowReplica;
    let mut sessions = Vec::with_capacity(args.clients);
    for (v, r) in values.into_iter().zip(rngs.iter_mut()) {
        let rng = SmallRng::seed_from_u64(r.gen());
        sessions.push(
            target::EtcdSession::connect(&endpoints, timeout, serializable, v, rng)
                .await
                .with_context(|| format!("cannot connect to etcd at {endpoints:?}"))?,
        );
    }
    drive(args, dist, seed, sessions, chooser, rngs).await
}

#[cfg(not(feature = "etcd"))]
async fn etcd(
    _: &BenchArgs,
    _: Distribution,
    _: u64,
    _: Vec<ValueGen>,
    _: KeyChooser,
    _: Vec<SmallRng>,
) -> anyhow::Result<Report> {
    bail!("this strato was built without etcd support: cargo build --release --features etcd")
}

/// Wait (up to 15 s) until every partition has a known leader, so that a run started right
/// after a cluster formed does not measure the election.
async fn wait_for_leaders(cluster: &crate::client::Cluster, quiet: bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let led = cluster.partitions_led();
        if led == usize::from(storage::record::PARTITIONS) {
            return;
        }
        if Instant::now() > deadline {
            eprintln!(
                "warning: only {led} of 4096 partitions have a known leader; starting anyway"
            );
            return;
        }
        if !quiet && led > 0 {
            eprintln!("waiting for leaders: {led}/4096 partitions");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = cluster.refresh().await;
    }
}

/// Run the client tasks against prepared sessions, report progress every second, and
/// summarise the measured window.
async fn drive<S: Session>(
    args: &BenchArgs,
    dist: Distribution,
    seed: u64,
    sessions: Vec<S>,
    chooser: KeyChooser,
    rngs: Vec<SmallRng>,
) -> anyhow::Result<Report> {
    let finite = args.workload.is_finite();
    let duration = match (args.duration, finite) {
        (Some(d), _) => Some(Duration::from_secs_f64(d.max(0.0))),
        (None, true) => None,
        (None, false) => Some(Duration::from_secs(10)),
    };
    let warmup = Duration::from_secs_f64(args.warmup.max(0.0));
    let start = Instant::now();
    let schedule = args.rate.map(|rate| Schedule {
        start,
        interval: Duration::from_secs_f64(1.0 / rate),
        // Without a duration (`I`), the schedule runs until the key space is written.
        end: duration.map_or(start + Duration::from_secs(u32::MAX as u64), |d| {
            start + warmup + d
        }),
        next: AtomicU64::new(0),
    });
    let shared = Arc::new(Shared {
        recorder: Recorder::default(),
        stop: AtomicBool::new(false),
        measuring: AtomicBool::new(warmup.is_zero()),
        workload: args.workload,
        keys: args.keys,
        next_insert: AtomicU64::new(0),
        present: AtomicU64::new(args.keys),
        schedule,
    });
    let mix = OpMix::new(&args.workload);
    let mut tasks = tokio::task::JoinSet::new();
    for (session, rng) in sessions.into_iter().zip(rngs) {
        tasks.spawn(client_task(
            session,
            shared.clone(),
            mix.clone(),
            chooser.clone(),
            rng,
        ));
    }

    let mut base = [Counts::default(); 5];
    let mut measure_start = start;
    let mut measuring = warmup.is_zero();
    let mut last = shared.recorder.snapshot();
    let mut last_t = start;
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(start + Duration::from_secs(1)),
        Duration::from_secs(1),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = duration.map(|d| start + warmup + d);
    let stop_at = loop {
        let next_event = match (measuring, end) {
            (false, _) => start + warmup,
            (true, Some(e)) => e,
            (true, None) => Instant::now() + Duration::from_secs(3600),
        };
        tokio::select! {
            _ = tick.tick() => {
                let now = Instant::now();
                let snap = shared.recorder.snapshot();
                let delta: [Counts; 5] = std::array::from_fn(|i| snap[i].minus(&last[i]));
                if !args.quiet {
                    let secs = (now - last_t).as_secs_f64();
                    eprintln!("{}", stats::progress_line(now - start, &delta, secs, !measuring));
                }
                last = snap;
                last_t = now;
            }
            _ = tokio::time::sleep_until(next_event.into()) => {
                if !measuring {
                    base = shared.recorder.snapshot();
                    measure_start = Instant::now();
                    measuring = true;
                    shared.measuring.store(true, Ordering::Relaxed);
                } else {
                    break Instant::now();
                }
            }
            // Interrupted (SIGINT): end the measured window here and report it.
            _ = tokio::signal::ctrl_c() => break Instant::now(),
            r = tasks.join_next() => match r {
                // Every task ended on its own: the key space is written (or the open-loop
                // schedule is over).
                None => break Instant::now(),
                Some(Err(e)) if e.is_panic() => bail!("a client task panicked: {e}"),
                Some(_) => {}
            },
        }
    };
    shared.measuring.store(false, Ordering::Relaxed);
    shared.stop.store(true, Ordering::Relaxed);
    let end_counts = shared.recorder.snapshot();
    // In-flight requests finish within their timeout; don't wait for a stuck one forever.
    let grace = Duration::from_millis(args.timeout_ms) + Duration::from_secs(1);
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tasks.abort_all();
    }
    if !measuring {
        // The run ended during warmup: report what ran.
        measure_start = start;
    }
    let secs = (stop_at - measure_start).as_secs_f64();
    let counts: [Counts; 5] = std::array::from_fn(|i| end_counts[i].minus(&base[i]));
    let mut ops = BTreeMap::new();
    for k in OpKind::ALL {
        if counts[k.index()].total() > 0 {
            ops.insert(
                k.name().to_string(),
                shared.recorder.summary(k, counts[k.index()], secs),
            );
        }
    }
    let group = |pick: &dyn Fn(OpKind) -> bool| -> Option<OpSummary> {
        let kinds: Vec<OpKind> = OpKind::ALL.into_iter().filter(|k| pick(*k)).collect();
        let total: u64 = kinds.iter().map(|k| counts[k.index()].total()).sum();
        (total > 0).then(|| shared.recorder.merged(&kinds, &counts, secs))
    };
    let total = group(&|_| true).unwrap_or_else(|| OpSummary {
        counts: Counts::default(),
        ops_per_sec: 0.0,
        latency_ms: LatencySummary::default(),
        service_ms: None,
        error_kinds: BTreeMap::new(),
    });
    Ok(Report {
        target: args.target,
        hosts: args.hosts.clone(),
        workload: args.workload.to_string(),
        distribution: dist.to_string(),
        keys: args.keys,
        value: args.value.to_string(),
        value_bytes: args.value.size(),
        clients: args.clients,
        rate: args.rate,
        read_mode: args.read_mode,
        timeout_ms: args.timeout_ms,
        warmup_s: warmup.as_secs_f64(),
        duration_s: secs,
        seed,
        total,
        reads: group(&|k| !k.writes()),
        writes: group(&|k| k.writes()),
        ops,
        map_refreshes: None,
        failover: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::collections::HashSet;
    use std::sync::Mutex;

    /// An in-memory store that takes 1 ms per request.
    struct MemSession(Arc<Mutex<HashSet<u64>>>);

    impl Session for MemSession {
        async fn read(&mut self, key: u64) -> Outcome {
            tokio::time::sleep(Duration::from_millis(1)).await;
            if self.0.lock().unwrap().contains(&key) {
                Outcome::Ok
            } else {
                Outcome::NotFound
            }
        }
        async fn write(&mut self, key: u64, _: OpKind) -> Outcome {
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.0.lock().unwrap().insert(key);
            Outcome::Ok
        }
        async fn read_modify_write(&mut self, key: u64) -> Outcome {
            self.write(key, OpKind::Update).await
        }
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    async fn run_mem(cmdline: &str, store: &Arc<Mutex<HashSet<u64>>>) -> Report {
        let args =
            Cli::parse_from(std::iter::once("bench").chain(cmdline.split_whitespace())).bench;
        let dist = args
            .distribution
            .unwrap_or_else(|| args.workload.default_distribution());
        let rngs: Vec<SmallRng> = (0..args.clients)
            .map(|i| SmallRng::seed_from_u64(i as u64))
            .collect();
        let sessions = (0..args.clients)
            .map(|_| MemSession(store.clone()))
            .collect();
        drive(
            &args,
            dist,
            0,
            sessions,
            KeyChooser::new(dist, args.keys),
            rngs,
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn insert_writes_every_key_once_then_mixes_run_for_their_duration() {
        let store = Arc::new(Mutex::new(HashSet::new()));
        let r = run_mem("--workload I --keys 300 --clients 8 --quiet", &store).await;
        assert_eq!(r.ops["insert"].counts.ok, 300);
        assert_eq!(store.lock().unwrap().len(), 300);
        assert!(r.reads.is_none());

        let r = run_mem(
            "--workload RU,50 --keys 300 --clients 4 --duration 0.5 --warmup 0.2 --quiet",
            &store,
        )
        .await;
        assert!((r.duration_s - 0.5).abs() < 0.4, "{}", r.duration_s);
        let reads = r.reads.as_ref().unwrap();
        assert_eq!(reads.counts.not_found, 0, "every key was preloaded");
        assert!(reads.latency_ms.p(50.0) >= 1.0);
        let (rd, wr) = (
            reads.counts.total(),
            r.writes.as_ref().unwrap().counts.total(),
        );
        assert!(rd > 50 && wr > 50, "reads {rd} writes {wr}");

        // YCSB D inserts past the key space.
        let r = run_mem(
            "--workload D --keys 300 --clients 4 --duration 0.3 --quiet",
            &store,
        )
        .await;
        assert!(r.ops.contains_key("insert"));
        assert!(store.lock().unwrap().len() > 300);
    }

    #[tokio::test]
    async fn open_loop_keeps_its_schedule() {
        let store = Arc::new(Mutex::new(HashSet::new()));
        let r = run_mem(
            "--workload C --keys 10 --clients 4 --rate 200 --duration 1 --quiet",
            &store,
        )
        .await;
        let n = r.total.counts.total();
        assert!((150..=210).contains(&n), "{n} requests at 200/s for 1 s");
        assert!(r.total.service_ms.is_some());
    }
}
