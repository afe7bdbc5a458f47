//! One test run: start a cluster (and create the run's namespace in it unless it is the one
//! every node starts with, and the index workload's index), drive clients and the nemesis
//! concurrently, heal, read everything back through every node, then check the history and
//! write the report.

use crate::cluster::{Cluster, ClusterSpec, STARTUP_NAMESPACE};
use crate::history::{NemesisEvent, Op, OpType};
use crate::nemesis::{self, Fault};
use crate::workload::catalog::{self, Written};
use crate::workload::{index, invoke, Client, Completion, Generator, Invocation, Workload};
use anyhow::Context;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as Json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strato::client::{Connection, ReadMode};

#[derive(Clone, Debug)]
pub struct Options {
    pub nodes: usize,
    /// Spare nodes for the membership nemesis (see [`ClusterSpec::spares`]).
    pub spares: usize,
    pub workload: Workload,
    /// The namespace the workload runs in. Anything but [`STARTUP_NAMESPACE`] is created at
    /// run time once the cluster is ready, and readiness is judged on it from then on.
    pub namespace: String,
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
    /// The nodes' `--evict-idle-ms` (None: the server's default).
    pub evict_idle_ms: Option<u64>,
    /// Turn on the namespace's `lease-reads` before the load.
    pub lease_reads: bool,
    /// Replicas per group (the nodes' `--replication-factor`, and a created namespace's).
    pub replication_factor: u8,
    /// Raft groups of the start-up namespace and of the run's namespace.
    pub groups: u16,
}

/// Process ids of the final phase start here (one per node).
const FINAL_PROCESS: u64 = 1_000_000;

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
    let mut spec = ClusterSpec::new(opts.nodes, &opts.binary, fresh_cluster_dir(&opts.out)?);
    spec.base_port = opts.base_port;
    spec.spares = opts.spares;
    spec.extra_args = vec![
        "--groups".into(),
        opts.groups.to_string(),
        "--request-timeout-ms".into(),
        "2000".into(),
        "--replication-factor".into(),
        opts.replication_factor.to_string(),
        // The clock faults change the rate of a node's Raft clock through an info command.
        "--allow-fault-injection".into(),
    ];
    if opts.read_mode == ReadMode::AllowReplica {
        spec.extra_args.push("--allow-relaxed-reads".into());
    }
    if let Some(n) = opts.snapshot_every {
        spec.extra_args
            .extend(["--snapshot-every".into(), n.to_string()]);
    }
    if let Some(ms) = opts.evict_idle_ms {
        spec.extra_args
            .extend(["--evict-idle-ms".into(), ms.to_string()]);
    }
    let mut cluster = Cluster::start(spec).await.context("starting the cluster")?;
    let result = match prepare(opts, &mut cluster).await {
        Ok(()) => drive(opts, &mut cluster).await,
        Err(e) => Err(e),
    };
    if let Err(e) = cluster.teardown() {
        tracing::warn!(error = %e, "teardown");
    }
    result
}

/// The directory of the run's nodes under `out`, emptied first: a run reusing an output
/// directory must not start its nodes on the previous run's data (they would answer values
/// this run never wrote, and the checker would rightly call the history invalid).
fn fresh_cluster_dir(out: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let dir = out.join("cluster");
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", dir.display())),
    }
    Ok(dir)
}

/// Create the run's namespace (unless every node starts with it) with the start-up
/// namespace's settings, and wait until it is listed and led everywhere; then, for the index
/// workload, create its index and wait until every node has built it.
async fn prepare(opts: &Options, cluster: &mut Cluster) -> anyhow::Result<()> {
    if opts.namespace != STARTUP_NAMESPACE {
        create_namespace(opts, cluster).await?;
    }
    if opts.lease_reads {
        cluster
            .set_namespace_config(&opts.namespace, "lease-reads=true", Duration::from_secs(30))
            .await
            .context("turning lease reads on")?;
    }
    if opts.workload == Workload::Index {
        let t = Instant::now();
        index::create_index(cluster, &opts.namespace)
            .await
            .context("creating the secondary index")?;
        tracing::info!(index = index::INDEX, elapsed = ?t.elapsed(), "index built");
    }
    Ok(())
}

async fn create_namespace(opts: &Options, cluster: &mut Cluster) -> anyhow::Result<()> {
    let params = format!(
        "replication-factor={};default-ttl=0;raft-groups={};allow-relaxed-reads={}",
        opts.replication_factor,
        opts.groups,
        opts.read_mode == ReadMode::AllowReplica
    );
    let t = Instant::now();
    cluster
        .create_namespace(&opts.namespace, &params, Duration::from_secs(60))
        .await
        .with_context(|| format!("creating namespace {}", opts.namespace))?;
    tracing::info!(namespace = %opts.namespace, elapsed = ?t.elapsed(), "namespace ready");
    Ok(())
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
        &opts.namespace,
        SmallRng::seed_from_u64(opts.seed),
    )));

    let mut clients = Vec::new();
    for p in 0..opts.concurrency {
        let (recorder, generator, opts) = (recorder.clone(), generator.clone(), opts.clone());
        // Jepsen style: each process is pinned to one node; the node forwards as needed.
        let node = p % addrs.len();
        let addrs = addrs.clone();
        clients.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(
                opts.seed ^ (p as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            let mut client = Client::new(&addrs, node, opts.op_timeout);
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
                let (kind, value, error) = invoke(
                    &mut client,
                    &opts.namespace,
                    opts.workload,
                    &inv,
                    opts.read_mode,
                )
                .await;
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

    if opts.workload == Workload::Catalog {
        let writes = generator
            .lock()
            .map(|g| g.catalog_writes())
            .unwrap_or_default();
        final_catalog(opts, cluster, &recorder, &writes).await;
    }

    // Final reads of every key (final queries, for the index workload) through every node,
    // recorded like any other operation.
    let finals = generator
        .lock()
        .map(|g| g.final_invocations())
        .unwrap_or_default();
    let final_process = FINAL_PROCESS;
    for n in 0..addrs.len() {
        let mut client = Client::new(&addrs, n, opts.op_timeout);
        let name = format!("n{}", n + 1);
        for inv in &finals {
            let key = inv.key;
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let process = final_process + n as u64;
                record(
                    &recorder,
                    process,
                    OpType::Invoke,
                    inv.f,
                    key,
                    inv.value.clone(),
                    &name,
                    None,
                );
                let (kind, value, error) = invoke(
                    &mut client,
                    &opts.namespace,
                    opts.workload,
                    inv,
                    ReadMode::Linearize,
                )
                .await;
                let ok = kind == OpType::Ok;
                record(
                    &recorder,
                    process,
                    kind,
                    inv.f,
                    key,
                    if ok { value } else { inv.value.clone() },
                    &name,
                    error,
                );
                if ok {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "final {} of key {key} through node {} kept failing",
                    inv.f,
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

/// How long the nodes may take, after the final heal, to agree on the catalog and lead every
/// group of every namespace it holds.
const CATALOG_SETTLE: Duration = Duration::from_secs(30);

/// How long one node's final phase of the catalog workload may retry; operations still
/// undone after it are not recorded (their checks then end as unknown, never as a pass).
const CATALOG_FINAL_BUDGET: Duration = Duration::from_secs(90);

/// The catalog workload's final phase (see [`crate::workload::catalog`]): wait (bounded)
/// until every node lists the same namespaces and each of them is led, then record, through
/// every node at once, its namespace and set lists, a read of every key ever written and the
/// probes of every namespace of the pool.
async fn final_catalog(
    opts: &Options,
    cluster: &mut Cluster,
    recorder: &Arc<Mutex<Recorder>>,
    writes: &[Written],
) {
    let names = catalog::namespaces(&opts.namespace);
    let deadline = Instant::now() + CATALOG_SETTLE;
    loop {
        let lists = cluster.namespaces().await;
        let answered: Vec<&Vec<String>> = lists.values().filter_map(|l| l.as_ref().ok()).collect();
        let agreed = answered.len() == cluster.nodes() && answered.windows(2).all(|w| w[0] == w[1]);
        if agreed {
            let live: Vec<String> = answered[0]
                .iter()
                .filter(|n| names.contains(n))
                .cloned()
                .collect();
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = cluster
                .wait_masters(&live, left.max(Duration::from_secs(5)))
                .await
            {
                tracing::warn!("final phase: {e:#}");
            }
            break;
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                ?lists,
                "final phase: the nodes do not agree on the namespaces"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let addrs = cluster.service_addrs();
    let nodes = addrs.len();
    let finals = addrs.iter().enumerate().map(|(n, addr)| {
        let mut c = FinalClient {
            name: format!("n{}", n + 1),
            conn: Connection::new(*addr, opts.op_timeout),
            process: FINAL_PROCESS + n as u64,
            stride: nodes as u64,
            recorder: recorder.clone(),
            deadline: Instant::now() + CATALOG_FINAL_BUDGET,
        };
        let names = names.clone();
        async move {
            c.run("namespaces", 0, Json::Null, FinalOp::Namespaces).await;
            for ns in &names {
                c.run("sets", 0, json!({"ns": ns}), FinalOp::Sets(ns.clone()))
                    .await;
            }
            for w in writes {
                let op = FinalOp::Read(w.ns.clone(), w.set.clone(), w.key);
                c.run("final-read", w.key, json!({"ns": w.ns, "set": w.set}), op)
                    .await;
            }
            for ns in &names {
                let (set, key) = (catalog::PROBE_SET, catalog::PROBE_KEY);
                let read = FinalOp::Read(ns.clone(), set.into(), key);
                c.run("probe-read", key, json!({"ns": ns, "set": set}), read)
                    .await;
                let write = FinalOp::ProbeWrite(ns.clone());
                c.run("probe-write", key, json!({"ns": ns, "set": set}), write)
                    .await;
            }
            if Instant::now() >= c.deadline {
                tracing::warn!(node = %c.name, "final phase ran out of time; some checks will be unknown");
            }
        }
    });
    futures::future::join_all(finals).await;
}

/// One operation of the catalog workload's final phase.
enum FinalOp {
    Namespaces,
    Sets(String),
    /// Namespace, set, key.
    Read(String, String, u64),
    ProbeWrite(String),
}

/// One node's client in the catalog workload's final phase.
struct FinalClient {
    name: String,
    conn: Connection,
    process: u64,
    /// Added to `process` when an operation is in doubt (Jepsen's rule).
    stride: u64,
    recorder: Arc<Mutex<Recorder>>,
    deadline: Instant,
}

impl FinalClient {
    async fn exec(&mut self, op: &FinalOp) -> Completion {
        let info = |answer: Result<String, String>, f: fn(&str) -> Json| match answer {
            Ok(a) => (OpType::Ok, f(&a), None),
            Err(e) => (OpType::Fail, Json::Null, Some(e)),
        };
        match op {
            FinalOp::Namespaces => info(
                catalog::info(&self.conn, "namespaces", Duration::from_secs(2)).await,
                |a| json!(crate::cluster::parse_namespaces(a)),
            ),
            FinalOp::Sets(ns) => {
                let (kind, sets, error) = info(
                    catalog::info(&self.conn, &format!("sets/{ns}"), Duration::from_secs(2)).await,
                    |a| json!(catalog::parse_sets(a)),
                );
                let value = if kind == OpType::Ok {
                    json!({"ns": ns, "sets": sets})
                } else {
                    Json::Null
                };
                (kind, value, error)
            }
            FinalOp::Read(ns, set, key) => {
                catalog::read(&mut self.conn, ns, set, *key, ReadMode::Linearize).await
            }
            FinalOp::ProbeWrite(ns) => catalog::probe_write(&mut self.conn, ns).await,
        }
    }

    /// Record `op` until it gives a final answer (ok; for a probe write, ok with 0 or 20) or
    /// the budget is spent. Nothing is recorded once the budget is spent.
    async fn run(&mut self, f: &'static str, key: u64, value: Json, op: FinalOp) {
        while Instant::now() < self.deadline {
            let (p, name) = (self.process, self.name.clone());
            record(
                &self.recorder,
                p,
                OpType::Invoke,
                f,
                key,
                value.clone(),
                &name,
                None,
            );
            let (kind, result, error) = self.exec(&op).await;
            let done = kind == OpType::Ok
                && match op {
                    FinalOp::ProbeWrite(_) => matches!(result["code"].as_u64(), Some(0 | 20)),
                    _ => true,
                };
            let completion = if kind == OpType::Ok {
                result
            } else {
                value.clone()
            };
            record(&self.recorder, p, kind, f, key, completion, &name, error);
            if kind == OpType::Info {
                self.process += self.stride * 1000;
            }
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_starts_its_nodes_on_an_empty_directory() {
        let out = tempfile::tempdir().unwrap();
        let stale = out.path().join("cluster/n1/data");
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::write(stale.join("db"), b"previous run").unwrap();
        let dir = fresh_cluster_dir(out.path()).unwrap();
        assert_eq!(dir, out.path().join("cluster"));
        assert!(!dir.exists(), "the previous run's node data must be gone");
        // A first run (nothing to remove) is fine too.
        assert_eq!(fresh_cluster_dir(out.path()).unwrap(), dir);
    }
}
