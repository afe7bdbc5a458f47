//! One test run: start a cluster, drive clients and the nemesis concurrently, heal, read
//! everything back through every node, then check the history and write the report.

use crate::cluster::{Cluster, ClusterSpec};
use crate::history::{NemesisEvent, Op, OpType};
use crate::nemesis::{self, Fault};
use crate::workload::{invoke, Generator, Invocation, Workload};
use anyhow::Context;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value as Json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strato::client::{Connection, ReadMode};

#[derive(Clone, Debug)]
pub struct Options {
    pub nodes: usize,
    pub workload: Workload,
    pub faults: Vec<Fault>,
    pub time_limit: Duration,
    pub concurrency: usize,
    pub seed: u64,
    pub out: PathBuf,
    pub read_mode: ReadMode,
    pub binary: PathBuf,
    pub base_port: u16,
    /// Client-side timeout of one operation (longer than an election).
    pub op_timeout: Duration,
    /// Seconds the linearizability search may spend before answering "unknown".
    pub check_budget: Duration,
    /// The nodes' `--snapshot-every` (None: the server's default). Small values make
    /// snapshots, log purges and snapshot installs happen during the faults.
    pub snapshot_every: Option<u64>,
}

/// Appends events with increasing indexes and times relative to the start of the test.
struct Recorder {
    t0: Instant,
    ops: Vec<Op>,
}

impl Recorder {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        process: u64,
        kind: OpType,
        f: &str,
        key: u64,
        value: Json,
        node: &str,
        error: Option<String>,
    ) {
        let index = self.ops.len() as u64;
        let time = self.t0.elapsed().as_nanos() as u64;
        self.ops.push(Op {
            index,
            process,
            kind,
            f: f.to_string(),
            key,
            value,
            time,
            node: Some(node.to_string()),
            error,
        });
    }
}

/// What the run produced, before checking.
pub struct RunOutput {
    pub ops: Vec<Op>,
    pub events: Vec<NemesisEvent>,
}

pub async fn run(opts: &Options) -> anyhow::Result<RunOutput> {
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let mut spec = ClusterSpec::new(opts.nodes, &opts.binary, opts.out.join("cluster"));
    spec.base_port = opts.base_port;
    spec.extra_args = vec![
        "--groups".into(),
        "8".into(),
        "--request-timeout-ms".into(),
        "2000".into(),
    ];
    if opts.read_mode == ReadMode::AllowReplica {
        spec.extra_args.push("--allow-relaxed-reads".into());
    }
    if let Some(n) = opts.snapshot_every {
        spec.extra_args
            .extend(["--snapshot-every".into(), n.to_string()]);
    }
    let mut cluster = Cluster::start(spec).await.context("starting the cluster")?;
    let result = drive(opts, &mut cluster).await;
    if let Err(e) = cluster.teardown() {
        tracing::warn!(error = %e, "teardown");
    }
    result
}

async fn drive(opts: &Options, cluster: &mut Cluster) -> anyhow::Result<RunOutput> {
    let addrs: Vec<SocketAddr> = cluster.service_addrs();
    let t0 = Instant::now();
    let until = t0 + opts.time_limit;
    let recorder = Arc::new(Mutex::new(Recorder {
        t0,
        ops: Vec::new(),
    }));
    let generator = Arc::new(Mutex::new(Generator::new(
        opts.workload,
        SmallRng::seed_from_u64(opts.seed),
    )));

    let mut clients = Vec::new();
    for p in 0..opts.concurrency {
        let (recorder, generator, opts) = (recorder.clone(), generator.clone(), opts.clone());
        // Jepsen style: each process is pinned to one node; the node forwards as needed.
        let node = p % addrs.len();
        let addr = addrs[node];
        clients.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(
                opts.seed ^ (p as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            let mut conn = Connection::new(addr, opts.op_timeout);
            let mut process = p as u64;
            let name = format!("n{}", node + 1);
            while Instant::now() < until {
                let inv: Invocation = generator
                    .lock()
                    .map(|mut g| g.next_invocation())
                    .unwrap_or_else(|e| e.into_inner().next_invocation());
                record(
                    &recorder,
                    process,
                    OpType::Invoke,
                    inv.f,
                    inv.key,
                    inv.value.clone(),
                    &name,
                    None,
                );
                let (kind, value, error) =
                    invoke(&mut conn, opts.workload, &inv, opts.read_mode).await;
                let value = if kind == OpType::Ok {
                    value
                } else {
                    inv.value.clone()
                };
                record(
                    &recorder, process, kind, inv.f, inv.key, value, &name, error,
                );
                if kind == OpType::Info {
                    // A process whose op is in doubt never issues another (Jepsen's rule): a
                    // fresh process id takes its place.
                    process += opts.concurrency as u64;
                }
                tokio::time::sleep(Duration::from_millis(rng.gen_range(5..25))).await;
            }
        }));
    }

    let events = nemesis::run(cluster, opts.faults.clone(), opts.seed, until, t0).await;
    for c in clients {
        let _ = c.await;
    }
    cluster
        .final_heal(Duration::from_secs(60))
        .await
        .context("healing the cluster after the run")?;

    // Final reads of every key through every node, recorded like any other read.
    let keys = generator.lock().map(|g| g.keys()).unwrap_or_default();
    let final_process = 1_000_000;
    for (n, addr) in addrs.iter().enumerate() {
        let mut conn = Connection::new(*addr, opts.op_timeout);
        let name = format!("n{}", n + 1);
        for &key in &keys {
            let inv = Invocation {
                f: "read",
                key,
                value: Json::Null,
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let process = final_process + n as u64;
                record(
                    &recorder,
                    process,
                    OpType::Invoke,
                    inv.f,
                    key,
                    Json::Null,
                    &name,
                    None,
                );
                let (kind, value, error) =
                    invoke(&mut conn, opts.workload, &inv, ReadMode::Linearize).await;
                let ok = kind == OpType::Ok;
                record(
                    &recorder,
                    process,
                    kind,
                    inv.f,
                    key,
                    if ok { value } else { Json::Null },
                    &name,
                    error,
                );
                if ok {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "final read of key {key} through node {} kept failing",
                    n + 1
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let ops = std::mem::take(
        &mut recorder
            .lock()
            .map_err(|_| anyhow::anyhow!("recorder poisoned"))?
            .ops,
    );
    Ok(RunOutput { ops, events })
}

#[allow(clippy::too_many_arguments)]
fn record(
    r: &Mutex<Recorder>,
    process: u64,
    kind: OpType,
    f: &str,
    key: u64,
    value: Json,
    node: &str,
    error: Option<String>,
) {
    if let Ok(mut r) = r.lock() {
        r.push(process, kind, f, key, value, node, error);
    }
}
