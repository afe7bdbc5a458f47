//! A real Strato cluster for one test run: one `strato serve` process per node, each inside its
//! own network namespace (see [`crate::net`]), with process faults (kill, pause) by pid.
//!
//! Node indexes are 0-based everywhere in this API; node index `i` runs with `--node-id i+1`,
//! listens on `10.A.B.{i+1}` and is called `n{i+1}` in logs and nemesis details (Jepsen's
//! naming). Every node uses the same ports (service `base_port`, fabric `+1`, gossip `+2`)
//! since each has its own address.
//!
//! Files under `spec.dir`: `n{k}/data/` (the node's data dir, kept across restarts) and
//! `n{k}/strato.log` (stdout and stderr of every incarnation, appended, with a header line per
//! start).

use crate::net::Network;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing::{debug, info, info_span, warn, Instrument};

/// Number of partitions Strato (like Aerospike) splits a namespace into.
pub const PARTITIONS: usize = 4096;

/// How long an info request may take before the node counts as not answering.
const INFO_TIMEOUT: Duration = Duration::from_secs(2);

/// Default wait for a whole cluster to become ready (start, final heal).
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The namespace every node creates at start-up (the server's default `--namespace`).
pub const STARTUP_NAMESPACE: &str = "test";

/// How long a catalog change (`create-namespace`) may take before the harness gives up on
/// one attempt: the server's request timeout plus its wait for the local apply, with margin.
const CATALOG_INFO_TIMEOUT: Duration = Duration::from_secs(10);

/// Default wait for a restarted node to answer info requests.
pub const DEFAULT_RESTART_TIMEOUT: Duration = Duration::from_secs(30);

/// `RUST_LOG` of the servers unless `STRATO_NODE_LOG` overrides it (the harness's own
/// `RUST_LOG` is deliberately not inherited: `debug` for the harness would flood node logs).
const DEFAULT_NODE_LOG: &str = "info,openraft=warn,sled=warn";

/// What to run.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Number of nodes that form the cluster (3 or 5 in practice).
    pub nodes: usize,
    /// Spare nodes started after the cluster formed, without `--bootstrap-expect`: they
    /// join without data until a roster change (the membership nemesis) takes them in. They
    /// follow the forming nodes in numbering.
    pub spares: usize,
    /// The `strato` binary.
    pub binary: PathBuf,
    /// Per-node data dirs and logs go under here (`n1/`, `n2/`, ...).
    pub dir: PathBuf,
    /// Appended to every `strato serve` command line (e.g. `--groups 8`).
    pub extra_args: Vec<String>,
    /// Service port of every node (fabric +1, gossip +2).
    pub base_port: u16,
}

impl ClusterSpec {
    /// A spec with no extra arguments and service port 3000.
    pub fn new(nodes: usize, binary: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> Self {
        ClusterSpec {
            nodes,
            spares: 0,
            binary: binary.into(),
            dir: dir.into(),
            extra_args: Vec::new(),
            base_port: 3000,
        }
    }
}

/// What a node's process is doing, as far as the harness made it so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Process alive and not stopped.
    Running,
    /// Process alive but SIGSTOPped.
    Paused,
    /// No process (killed by the harness, or it exited by itself).
    Down,
}

#[derive(Debug)]
struct NodeProc {
    child: Option<Child>,
    paused: bool,
    /// How many times this node was started (for log headers).
    incarnations: u32,
}

/// A running cluster. Dropping it kills every node and removes the network.
#[derive(Debug)]
pub struct Cluster {
    spec: ClusterSpec,
    net: Network,
    procs: Vec<NodeProc>,
    torn_down: bool,
    /// The namespaces readiness is judged on (see [`Cluster::watch_namespace`]).
    watched: Vec<String>,
}

/// A spawn request for the spawner thread.
type SpawnJob = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Servers are spawned from one long-lived thread so `PR_SET_PDEATHSIG` is meaningful: the
/// kernel delivers the death signal when the *thread* that forked the child exits, and tokio
/// blocking threads come and go. With this, a SIGKILLed harness takes its servers with it
/// (the network itself is then removed by the next run's [`crate::net::cleanup_stale`]).
fn spawn_on_spawner_thread(cmd: Command) -> Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let tx = SPAWNER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<SpawnJob>();
            std::thread::Builder::new()
                .name("jepsen-spawner".into())
                .spawn(move || {
                    for (mut cmd, reply) in rx {
                        let _ = reply.send(cmd.spawn());
                    }
                })
                .expect("spawning the spawner thread");
            Mutex::new(tx)
        })
        .lock()
        .map_err(|_| anyhow::anyhow!("spawner lock poisoned"))?
        .clone();
    let (reply_tx, reply_rx) = mpsc::channel();
    tx.send((cmd, reply_tx))
        .map_err(|_| anyhow::anyhow!("spawner thread is gone"))?;
    Ok(reply_rx
        .recv()
        .map_err(|_| anyhow::anyhow!("spawner thread dropped the request"))??)
}

fn signal(pid: u32, sig: libc::c_int) -> Result<()> {
    let pid = i32::try_from(pid).context("pid out of range")?;
    // SAFETY: plain syscall on a pid we spawned and have not reaped yet.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context(format!("kill({pid}, {sig})"));
    }
    Ok(())
}

/// Column 0 of `namespace`'s entry in a `replicas` (or `replicas-leaders`) answer: the
/// partitions the answering node claims to lead. The answer lists every namespace the node
/// knows, `<ns>:<regime>,<n>,<b64 bitmap>[,<b64 bitmap>...]` each, separated by `;`
/// (parsed by [`strato::client::parse_replicas`]); 512-byte bitmaps, bit p =
/// `byte[p >> 3] & (0x80 >> (p & 7))`. An answer without `namespace` is an error (the node
/// does not know the namespace, or not yet).
pub fn parse_master_bitmap(answer: &str, namespace: &str) -> Result<Vec<u8>> {
    let entries = strato::client::parse_replicas(answer)
        .map_err(|e| anyhow::anyhow!("bad replicas answer ({e}): {answer:.80}"))?;
    let entry = entries
        .into_iter()
        .find(|e| e.namespace == namespace)
        .with_context(|| format!("replicas answer without namespace {namespace}: {answer:.80}"))?;
    let map = entry
        .columns
        .into_iter()
        .next()
        .with_context(|| format!("replicas answer for {namespace} without a bitmap"))?;
    if map.len() != PARTITIONS / 8 {
        bail!(
            "replicas bitmap has {} bytes, expected {}",
            map.len(),
            PARTITIONS / 8
        );
    }
    Ok(map)
}

/// The names in a `namespaces` answer (`ns1;ns2`), sorted.
pub fn parse_namespaces(answer: &str) -> Vec<String> {
    let mut names: Vec<String> = answer
        .trim()
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether bit `p` is set in a partition bitmap.
pub fn bitmap_has(map: &[u8], p: usize) -> bool {
    map.get(p >> 3).is_some_and(|b| b & (0x80 >> (p & 7)) != 0)
}

impl Cluster {
    /// Remove stale networks of dead runs, create this run's network, start every node inside
    /// its namespace, and wait (up to [`DEFAULT_READY_TIMEOUT`]) until the cluster is ready
    /// (see [`Cluster::wait_ready`]). On error everything started is torn down again.
    pub async fn start(spec: ClusterSpec) -> Result<Cluster> {
        let span = info_span!("cluster_start", nodes = spec.nodes);
        async move {
            if spec.nodes == 0 {
                bail!("a cluster needs at least one node");
            }
            if !spec.binary.is_file() {
                bail!("strato binary {} does not exist", spec.binary.display());
            }
            let removed = crate::net::cleanup_stale()?;
            if !removed.is_empty() {
                info!(?removed, "removed stale networks of earlier runs");
            }
            let total = spec.nodes + spec.spares;
            let net = Network::create(total)?;
            let mut cluster = Cluster {
                procs: (0..total)
                    .map(|_| NodeProc {
                        child: None,
                        paused: false,
                        incarnations: 0,
                    })
                    .collect(),
                spec,
                net,
                torn_down: false,
                watched: vec![STARTUP_NAMESPACE.to_string()],
            };
            for i in 0..total {
                std::fs::create_dir_all(cluster.data_dir(i)).with_context(|| {
                    format!("creating data dir {}", cluster.data_dir(i).display())
                })?;
            }
            // Spares start once the cluster formed, so a forming node never counts one
            // among the nodes it forms with.
            for i in 0..cluster.spec.nodes {
                cluster.spawn(i)?;
            }
            let t = Instant::now();
            if let Err(e) = cluster.wait_ready(DEFAULT_READY_TIMEOUT).await {
                let tails: Vec<String> = (0..cluster.nodes())
                    .map(|i| {
                        format!(
                            "--- {} log tail:\n{}",
                            Self::node_name(i),
                            cluster.log_tail(i, 5)
                        )
                    })
                    .collect();
                return Err(e.context(format!(
                    "cluster did not become ready\n{}",
                    tails.join("\n")
                )));
            }
            for i in cluster.spec.nodes..total {
                cluster.spawn(i)?;
            }
            if total > cluster.spec.nodes {
                cluster.wait_ready(DEFAULT_READY_TIMEOUT).await?;
            }
            info!(
                run_id = cluster.net.run_id(),
                elapsed = ?t.elapsed(),
                "cluster ready"
            );
            Ok(cluster)
        }
        .instrument(span)
        .await
    }

    /// The spec this cluster was started with.
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// Number of nodes.
    /// Every node, spares included.
    pub fn nodes(&self) -> usize {
        self.spec.nodes + self.spec.spares
    }

    /// The private network (names, addresses, delays).
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// The private network, mutably (e.g. for [`Network::set_delay`] or [`Network::cut`]).
    pub fn network_mut(&mut self) -> &mut Network {
        &mut self.net
    }

    /// Jepsen-style name of node `i` (`n{i+1}`).
    pub fn node_name(i: usize) -> String {
        format!("n{}", i + 1)
    }

    /// Strato node id of node `i` (`i + 1`).
    pub fn node_id(i: usize) -> u64 {
        i as u64 + 1
    }

    /// Where clients reach node `i` (from the root namespace).
    pub fn service_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.net.node_ip(i).into(), self.spec.base_port)
    }

    /// Every node's service address, by index.
    pub fn service_addrs(&self) -> Vec<SocketAddr> {
        (0..self.nodes()).map(|i| self.service_addr(i)).collect()
    }

    /// Node `i`'s gossip address (what the seeds list contains).
    pub fn gossip_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.net.node_ip(i).into(), self.spec.base_port + 2)
    }

    /// Node `i`'s data directory (kept across restarts).
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.spec.dir.join(Self::node_name(i)).join("data")
    }

    /// Node `i`'s log file (every incarnation appended).
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.spec.dir.join(Self::node_name(i)).join("strato.log")
    }

    fn check_node(&self, i: usize) -> Result<()> {
        if i >= self.nodes() {
            bail!("node index {i} out of range (cluster of {})", self.nodes());
        }
        Ok(())
    }

    fn serve_command(&self, i: usize) -> Command {
        let seeds: Vec<String> = (0..self.nodes())
            .map(|j| self.gossip_addr(j).to_string())
            .collect();
        let mut cmd = self.net.command_in(i, &self.spec.binary);
        cmd.arg("serve")
            .arg("--node-id")
            .arg(Self::node_id(i).to_string())
            .arg("--address")
            .arg(self.net.node_ip(i).to_string())
            .arg("--port")
            .arg(self.spec.base_port.to_string())
            .arg("--data-dir")
            .arg(self.data_dir(i))
            .arg("--seeds")
            .arg(seeds.join(","));
        if i < self.spec.nodes {
            cmd.arg("--bootstrap-expect")
                .arg(self.spec.nodes.to_string());
        }
        cmd.args(&self.spec.extra_args);
        let log = std::env::var("STRATO_NODE_LOG").unwrap_or_else(|_| DEFAULT_NODE_LOG.into());
        cmd.env("RUST_LOG", log).env("NO_COLOR", "1");
        cmd
    }

    /// Start node `i`'s process (it must not be running).
    fn spawn(&mut self, i: usize) -> Result<()> {
        self.check_node(i)?;
        if self.procs[i].child.is_some() {
            bail!("{} is already running", Self::node_name(i));
        }
        let log_path = self.log_path(i);
        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening log {}", log_path.display()))?;
        let mut cmd = self.serve_command(i);
        let incarnation = self.procs[i].incarnations + 1;
        writeln!(
            log,
            "=== jepsen: start #{incarnation} of {} at {:?}: {:?}",
            Self::node_name(i),
            std::time::SystemTime::now(),
            cmd
        )
        .context("writing log header")?;
        let err_log = log.try_clone().context("duplicating log handle")?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log));
        let harness_pid = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The harness died between fork and prctl: do not outlive it.
                if libc::getppid() != harness_pid {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = spawn_on_spawner_thread(cmd)
            .with_context(|| format!("starting {}", Self::node_name(i)))?;
        info!(
            node = %Self::node_name(i),
            pid = child.id(),
            incarnation,
            "node started"
        );
        let p = &mut self.procs[i];
        p.child = Some(child);
        p.paused = false;
        p.incarnations = incarnation;
        Ok(())
    }

    /// Node `i`'s process state. Notices (and reaps) processes that exited on their own.
    pub fn state(&mut self, i: usize) -> NodeState {
        let Some(p) = self.procs.get_mut(i) else {
            return NodeState::Down;
        };
        let Some(child) = p.child.as_mut() else {
            return NodeState::Down;
        };
        match child.try_wait() {
            Ok(None) if p.paused => NodeState::Paused,
            Ok(None) => NodeState::Running,
            Ok(Some(status)) => {
                warn!(node = %Self::node_name(i), %status, "node exited on its own");
                p.child = None;
                p.paused = false;
                NodeState::Down
            }
            Err(e) => {
                warn!(node = %Self::node_name(i), "try_wait failed: {e}");
                NodeState::Down
            }
        }
    }

    /// Whether node `i` has a live process (running or paused).
    pub fn is_running(&mut self, i: usize) -> bool {
        self.state(i) != NodeState::Down
    }

    /// Whether node `i` is SIGSTOPped by the harness.
    pub fn is_paused(&mut self, i: usize) -> bool {
        self.state(i) == NodeState::Paused
    }

    /// Pid of node `i`'s current process.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.procs.get(i)?.child.as_ref().map(Child::id)
    }

    /// SIGKILL node `i` and reap it. A paused node is killed too (SIGKILL works on stopped
    /// processes). Killing a node that is down is a no-op.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        self.check_node(i)?;
        let name = Self::node_name(i);
        let p = &mut self.procs[i];
        let Some(mut child) = p.child.take() else {
            debug!(node = %name, "kill: already down");
            return Ok(());
        };
        let pid = child.id();
        if let Err(e) = child.kill() {
            // Already exited: still reap below.
            debug!(node = %name, "SIGKILL: {e}");
        }
        if p.paused {
            // Not needed for SIGKILL, but leaves no stopped zombie behind for tools like ps.
            let _ = signal(pid, libc::SIGCONT);
        }
        let status = child
            .wait()
            .with_context(|| format!("reaping {name} (pid {pid})"))?;
        p.paused = false;
        info!(node = %name, pid, %status, "node killed");
        Ok(())
    }

    /// Start node `i` again on its data directory and wait until it answers info requests
    /// (up to [`DEFAULT_RESTART_TIMEOUT`]). It need not be ready to serve data by then: it may
    /// still be partitioned away or catching up.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        self.restart_with_timeout(i, DEFAULT_RESTART_TIMEOUT).await
    }

    /// [`Cluster::restart`] with an explicit wait.
    pub async fn restart_with_timeout(&mut self, i: usize, timeout: Duration) -> Result<()> {
        self.check_node(i)?;
        if self.state(i) != NodeState::Down {
            bail!("restart {}: the node is still running", Self::node_name(i));
        }
        self.spawn(i)?;
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.info(i, "status").await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if self.state(i) == NodeState::Down {
                bail!(
                    "{} exited right after restart; see {}",
                    Self::node_name(i),
                    self.log_path(i).display()
                );
            }
            if Instant::now() >= deadline {
                return Err(last.context(format!(
                    "{} did not answer within {timeout:?} of its restart",
                    Self::node_name(i)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGSTOP node `i`.
    pub fn pause(&mut self, i: usize) -> Result<()> {
        self.check_node(i)?;
        match self.state(i) {
            NodeState::Down => bail!("pause {}: the node is down", Self::node_name(i)),
            NodeState::Paused => return Ok(()),
            NodeState::Running => {}
        }
        let pid = self.pid(i).context("no pid")?;
        signal(pid, libc::SIGSTOP)?;
        self.procs[i].paused = true;
        wait_stopped(pid);
        info!(node = %Self::node_name(i), pid, "node paused");
        Ok(())
    }

    /// SIGCONT node `i` (no-op unless paused).
    pub fn resume(&mut self, i: usize) -> Result<()> {
        self.check_node(i)?;
        if self.state(i) != NodeState::Paused {
            return Ok(());
        }
        let pid = self.pid(i).context("no pid")?;
        signal(pid, libc::SIGCONT)?;
        self.procs[i].paused = false;
        info!(node = %Self::node_name(i), pid, "node resumed");
        Ok(())
    }

    /// Ask node `i` one info command and return its value.
    pub async fn info(&self, i: usize, cmd: &str) -> Result<String> {
        self.check_node(i)?;
        let host = self.service_addr(i).to_string();
        let answers = strato::info_client::request(&host, &[cmd.to_string()], INFO_TIMEOUT)
            .await
            .with_context(|| format!("info `{cmd}` on {}", Self::node_name(i)))?;
        answers
            .into_iter()
            .find(|(k, _)| k == cmd)
            .map(|(_, v)| v)
            .with_context(|| format!("{} did not answer `{cmd}`", Self::node_name(i)))
    }

    /// Ask every running, unpaused node `cmd` concurrently (a paused node would only time
    /// out). Index -> answer or error.
    async fn info_all(&mut self, cmd: &str) -> BTreeMap<usize, Result<String>> {
        let live: Vec<usize> = (0..self.nodes())
            .filter(|&i| self.state(i) == NodeState::Running)
            .collect();
        let this = &*self;
        let futs = live
            .iter()
            .map(|&i| async move { (i, this.info(i, cmd).await) });
        futures::future::join_all(futs).await.into_iter().collect()
    }

    /// Partitions each running node claims to master, summed over the watched namespaces
    /// ([`Cluster::watched_namespaces`]): index -> number of partitions, for every running,
    /// unpaused node that answered (nodes leading nothing map to 0). An isolated old leader
    /// may still claim its partitions, so counts can add up to more than 4096 per namespace.
    pub async fn leaders(&mut self) -> Result<BTreeMap<usize, usize>> {
        let mut out = BTreeMap::new();
        let mut errors = Vec::new();
        let watched = self.watched.clone();
        for (i, answer) in self.info_all("replicas-leaders").await {
            let counted = answer.and_then(|a| {
                watched.iter().try_fold(0usize, |n, ns| {
                    let map = parse_master_bitmap(&a, ns)?;
                    Ok(n + map.iter().map(|b| b.count_ones() as usize).sum::<usize>())
                })
            });
            match counted {
                Ok(n) => {
                    out.insert(i, n);
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if out.is_empty() {
            bail!("no node answered `replicas`: {}", errors.join("; "));
        }
        debug!(?out, "leaders");
        Ok(out)
    }

    /// The namespaces readiness is judged on: [`STARTUP_NAMESPACE`] plus every namespace
    /// passed to [`Cluster::watch_namespace`].
    pub fn watched_namespaces(&self) -> &[String] {
        &self.watched
    }

    /// Judge readiness (and count leaders) on `namespace` too, from now on. The namespace must
    /// exist on every node (see [`Cluster::create_namespace`]), or the cluster never becomes
    /// ready again.
    pub fn watch_namespace(&mut self, namespace: &str) {
        if !self.watched.iter().any(|n| n == namespace) {
            self.watched.push(namespace.to_string());
        }
    }

    /// One readiness probe: `Ok(())` when every running node answers `partition-generation`
    /// with a value ≥ 0 (it holds its groups) and, in each of the watched namespaces, every
    /// partition is mastered by exactly one running node (no partition without a leader, no
    /// stale leader left over from a partition); otherwise a description of what is missing.
    async fn probe_ready(&mut self) -> std::result::Result<(), String> {
        let running: Vec<usize> = (0..self.nodes())
            .filter(|&i| self.state(i) == NodeState::Running)
            .collect();
        if running.is_empty() {
            return Err("no node is running".into());
        }
        for (i, answer) in self.info_all("partition-generation").await {
            match answer {
                Ok(v) => match v.trim().parse::<i64>() {
                    Ok(g) if g >= 0 => {}
                    Ok(g) => {
                        return Err(format!("{} partition-generation {g}", Self::node_name(i)))
                    }
                    Err(_) => {
                        return Err(format!("{} partition-generation {v:?}", Self::node_name(i)))
                    }
                },
                Err(e) => return Err(format!("{e:#}")),
            }
        }
        let watched = self.watched.clone();
        self.probe_masters(&watched).await
    }

    /// `Ok(())` when, in each of `namespaces`, every partition is claimed as master (in
    /// `replicas-leaders`: real Raft leaders only) by exactly one running node, and every
    /// running node knows the namespace.
    async fn probe_masters(&mut self, namespaces: &[String]) -> std::result::Result<(), String> {
        let answers = self.info_all("replicas-leaders").await;
        for ns in namespaces {
            let mut claims = vec![0u32; PARTITIONS];
            for (i, answer) in &answers {
                let map = answer
                    .as_ref()
                    .map_err(|e| format!("{e:#}"))
                    .and_then(|a| parse_master_bitmap(a, ns).map_err(|e| format!("{e:#}")))
                    .map_err(|e| format!("{} replicas-leaders: {e}", Self::node_name(*i)))?;
                for (p, c) in claims.iter_mut().enumerate() {
                    if bitmap_has(&map, p) {
                        *c += 1;
                    }
                }
            }
            let orphans: Vec<usize> = (0..PARTITIONS).filter(|p| claims[*p] == 0).collect();
            let contested: Vec<usize> = (0..PARTITIONS).filter(|p| claims[*p] > 1).collect();
            if !orphans.is_empty() || !contested.is_empty() {
                return Err(format!(
                    "namespace {ns}: {} partitions without a master {:?}, {} claimed by several \
                     nodes {:?}",
                    orphans.len(),
                    &orphans[..orphans.len().min(8)],
                    contested.len(),
                    &contested[..contested.len().min(8)],
                ));
            }
        }
        Ok(())
    }

    /// Every running node's `namespaces` answer: index -> sorted names, or the error.
    pub async fn namespaces(&mut self) -> BTreeMap<usize, Result<Vec<String>>> {
        self.info_all("namespaces")
            .await
            .into_iter()
            .map(|(i, a)| (i, a.map(|a| parse_namespaces(&a))))
            .collect()
    }

    /// Create namespace `name` at run time and wait until it serves: send
    /// `create-namespace:namespace=NAME;PARAMS` to the running nodes in turn until one answers
    /// `ok` (`ok:...` too, e.g. a capped replication factor), then wait until every node lists
    /// it in `namespaces` and every partition of it has exactly one real leader; from then on
    /// readiness is judged on it too ([`Cluster::watch_namespace`]). An `already exists`
    /// answer counts as success: on a fresh cluster only an earlier attempt of ours, whose
    /// answer was lost, can have created it. Gives up after `timeout`.
    pub async fn create_namespace(
        &mut self,
        name: &str,
        params: &str,
        timeout: Duration,
    ) -> Result<()> {
        let span = info_span!("create_namespace", namespace = name);
        async move {
            let deadline = Instant::now() + timeout;
            let cmd = if params.is_empty() {
                format!("create-namespace:namespace={name}")
            } else {
                format!("create-namespace:namespace={name};{params}")
            };
            // "Already exists" counts: on a fresh cluster only our own earlier attempt, whose
            // answer was lost, can have created it.
            let (i, answer) = self
                .catalog_command(&cmd, deadline, |a| {
                    a == "ok"
                        || a.starts_with("ok:")
                        || (a.starts_with("ERROR:4:") && a.contains("already exists"))
                })
                .await?;
            info!(node = %Self::node_name(i), %answer, "namespace created");
            // Listed everywhere, then led everywhere.
            loop {
                let listed = self.namespaces().await;
                let missing: Vec<String> = listed
                    .iter()
                    .filter(|(_, l)| !l.as_ref().is_ok_and(|l| l.iter().any(|n| n == name)))
                    .map(|(i, _)| Self::node_name(*i))
                    .collect();
                if missing.is_empty() && listed.len() == self.nodes() {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!("namespace {name} not listed by {missing:?} within {timeout:?}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            self.watch_namespace(name);
            let left = deadline.saturating_duration_since(Instant::now());
            self.wait_ready(left.max(Duration::from_secs(1))).await
        }
        .instrument(span)
        .await
    }

    /// Send the catalog command `cmd` to each running node in turn (every 300 ms, with the
    /// catalog commands' longer timeout, since they wait for a commit) until one answers
    /// something `accepted`; that node and its answer. Gives up at `deadline`.
    async fn catalog_command(
        &mut self,
        cmd: &str,
        deadline: Instant,
        accepted: impl Fn(&str) -> bool,
    ) -> Result<(usize, String)> {
        let mut attempt = 0usize;
        loop {
            let running: Vec<usize> = (0..self.nodes())
                .filter(|&i| self.state(i) == NodeState::Running)
                .collect();
            let i = *running
                .get(attempt % running.len().max(1))
                .context("no node is running")?;
            attempt += 1;
            let host = self.service_addr(i).to_string();
            let answer =
                strato::info_client::request(&host, &[cmd.to_string()], CATALOG_INFO_TIMEOUT)
                    .await
                    .map(|a| a.into_iter().next().map(|(_, v)| v).unwrap_or_default());
            let why = match answer {
                Ok(a) if accepted(&a) => return Ok((i, a)),
                Ok(a) => a,
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!("`{cmd}` never answered as hoped before the deadline; last: {why}");
            }
            debug!(node = %Self::node_name(i), "{cmd}: {why}; retrying");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Change one of `name`'s live settings (`setting` is `key=value`) through
    /// `set-config`, retried on each running node in turn until one answers `ok`, then wait
    /// until every running node's `get-config` shows it. Gives up after `timeout`.
    pub async fn set_namespace_config(
        &mut self,
        name: &str,
        setting: &str,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let cmd = format!("set-config:context=namespace;namespace={name};{setting}");
        self.catalog_command(&cmd, deadline, |a| a == "ok").await?;
        let get = format!("get-config:context=namespace;namespace={name}");
        loop {
            let answers = self.info_all(&get).await;
            let shown = answers.len() == self.nodes()
                && answers.values().all(|a| {
                    a.as_ref()
                        .is_ok_and(|a| a.split(';').any(|kv| kv == setting))
                });
            if shown {
                info!(
                    namespace = name,
                    setting, "namespace setting changed everywhere"
                );
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("{setting} not shown by every node within {timeout:?}: {answers:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Make node `i`'s Raft clock run at `rate` × real time (`clock-rate`; the nodes run with
    /// `--allow-fault-injection`).
    pub async fn set_clock_rate(&self, i: usize, rate: f64) -> Result<()> {
        let answer = self.info(i, &format!("clock-rate:rate={rate}")).await?;
        match answer.parse::<f64>() {
            Ok(r) if (r - rate).abs() < 1e-9 => Ok(()),
            _ => bail!(
                "clock-rate:rate={rate} on {} answered {answer}",
                Self::node_name(i)
            ),
        }
    }

    /// Wait until, in each of `namespaces`, every partition has exactly one real leader among
    /// the running nodes (without watching them for later readiness checks).
    pub async fn wait_masters(&mut self, namespaces: &[String], timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.probe_masters(namespaces).await {
                Ok(()) => return Ok(()),
                Err(why) if Instant::now() >= deadline => {
                    bail!("namespaces not led after {timeout:?}: {why}")
                }
                Err(why) => debug!("namespaces not led yet: {why}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Wait until the running nodes form a ready cluster (see `probe_ready`: every running
    /// node holds its groups, every partition has exactly one master), polling every 200 ms.
    /// Fails early when a node that should be running has exited.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let span = info_span!("wait_ready", ?timeout);
        async move {
            let expected: Vec<usize> = (0..self.nodes())
                .filter(|&i| self.procs[i].child.is_some())
                .collect();
            let deadline = Instant::now() + timeout;
            loop {
                for &i in &expected {
                    if self.state(i) == NodeState::Down {
                        bail!(
                            "{} exited while waiting for the cluster to become ready; see {}",
                            Self::node_name(i),
                            self.log_path(i).display()
                        );
                    }
                }
                match self.probe_ready().await {
                    Ok(()) => return Ok(()),
                    Err(why) if Instant::now() >= deadline => {
                        bail!("cluster not ready after {timeout:?}: {why}")
                    }
                    Err(why) => debug!("not ready yet: {why}"),
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        .instrument(span)
        .await
    }

    /// Partition the nodes into components (see [`Network::partition`]).
    pub fn partition(&mut self, components: &[Vec<usize>]) -> Result<()> {
        self.net.partition(components)
    }

    /// Cut node `i` off from all other nodes (the harness still reaches it).
    pub fn isolate(&mut self, i: usize) -> Result<()> {
        self.net.isolate(i)
    }

    /// Remove every partition.
    pub fn heal(&mut self) -> Result<()> {
        self.net.heal()
    }

    /// Undo every fault: heal the network, remove delays, resume paused nodes, restart nodes
    /// that are down (killed, or crashed by themselves), then wait up to `timeout` until the
    /// cluster is ready. Every step is attempted even if an earlier one failed.
    pub async fn final_heal(&mut self, timeout: Duration) -> Result<()> {
        let span = info_span!("final_heal");
        async move {
            let mut errors = Vec::new();
            if let Err(e) = self.net.heal() {
                errors.push(format!("heal: {e:#}"));
            }
            if let Err(e) = self.net.clear_all_delays() {
                errors.push(format!("clear delays: {e:#}"));
            }
            for i in 0..self.nodes() {
                let r = match self.state(i) {
                    NodeState::Paused => self.resume(i),
                    NodeState::Down => self.restart(i).await,
                    NodeState::Running => Ok(()),
                };
                if let Err(e) = r {
                    errors.push(format!("{}: {e:#}", Self::node_name(i)));
                }
            }
            // A clock left skewed (an undo that failed) would outlive the faults.
            for i in 0..self.nodes() {
                if self.state(i) != NodeState::Running {
                    continue;
                }
                let skewed = match self.info(i, "clock-rate").await {
                    Ok(rate) => rate != "1",
                    Err(_) => true,
                };
                if skewed {
                    if let Err(e) = self.set_clock_rate(i, 1.0).await {
                        errors.push(format!("clock of {}: {e:#}", Self::node_name(i)));
                    }
                }
            }
            let ready = self.wait_ready(timeout).await;
            if let Err(e) = ready {
                errors.push(format!("{e:#}"));
            }
            if errors.is_empty() {
                info!("cluster healed and ready");
                Ok(())
            } else {
                bail!("final heal: {}", errors.join("; "))
            }
        }
        .instrument(span)
        .await
    }

    /// Kill every node (resuming paused ones first) and remove the network. Idempotent; also
    /// run by `Drop`.
    pub fn teardown(&mut self) -> Result<()> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let _span = info_span!("cluster_teardown", run_id = self.net.run_id()).entered();
        let mut first_err = None;
        for i in 0..self.nodes() {
            if self.procs[i].paused {
                if let Err(e) = self.resume(i) {
                    warn!("{e:#}");
                }
            }
            if let Err(e) = self.kill(i) {
                warn!("{e:#}");
                first_err.get_or_insert(e);
            }
        }
        if let Err(e) = self.net.teardown() {
            first_err.get_or_insert(e);
        }
        info!("cluster torn down");
        first_err.map_or(Ok(()), Err)
    }

    /// The last `lines` lines of node `i`'s log, for error messages.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        tail(&self.log_path(i), lines)
    }
}

fn tail(path: &Path, lines: usize) -> String {
    // Lossy: a SIGKILLed writer can leave a torn multi-byte character behind.
    let bytes = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            warn!("cluster teardown on drop failed: {e:#}");
        }
    }
}

/// SIGSTOP is delivered asynchronously: a thread on a CPU may run on briefly. Wait (bounded)
/// until every thread of `pid` is in the stopped state, so a pause is in force when it returns.
fn wait_stopped(pid: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return;
        };
        let all_stopped = tasks.flatten().all(|t| {
            std::fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|st| {
                    st.rsplit_once(") ")
                        .map(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
                })
                .unwrap_or(true)
        });
        if all_stopped {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn parses_master_bitmap() {
        let mut map = [0u8; 512];
        map[0] = 0x80; // partition 0
        map[1] = 0x01; // partition 15
        let b64 = base64::engine::general_purpose::STANDARD.encode(map);
        let empty = base64::engine::general_purpose::STANDARD.encode([0u8; 512]);
        let answer = format!("test:7,2,{b64},{empty}");
        let m = parse_master_bitmap(&answer, "test").unwrap();
        assert!(bitmap_has(&m, 0));
        assert!(bitmap_has(&m, 15));
        assert!(!bitmap_has(&m, 1));
        assert!(!bitmap_has(&m, 4095));
        assert_eq!(m.iter().map(|b| b.count_ones()).sum::<u32>(), 2);
        assert!(parse_master_bitmap("test:1,1", "test").is_err());
        assert!(parse_master_bitmap("garbage", "test").is_err());
        assert!(parse_master_bitmap(&answer, "other").is_err());
    }

    #[test]
    fn parses_the_right_namespace_of_several() {
        let b64 = |m: &[u8]| base64::engine::general_purpose::STANDARD.encode(m);
        let mut first = [0u8; 512];
        first[0] = 0x80; // partition 0
        let mut second = [0u8; 512];
        second[511] = 0x01; // partition 4095
        let empty = b64(&[0u8; 512]);
        let answer = format!(
            "c0:3,2,{},{empty};test:9,2,{},{empty}",
            b64(&first),
            b64(&second)
        );
        let c0 = parse_master_bitmap(&answer, "c0").unwrap();
        assert!(bitmap_has(&c0, 0) && !bitmap_has(&c0, 4095));
        let test = parse_master_bitmap(&answer, "test").unwrap();
        assert!(bitmap_has(&test, 4095) && !bitmap_has(&test, 0));
        assert!(parse_master_bitmap(&answer, "c1").is_err());
        // An empty answer (a node that knows no namespace yet) names none.
        assert!(parse_master_bitmap("", "test").is_err());
    }

    #[test]
    fn parses_namespace_lists() {
        assert_eq!(parse_namespaces("test;c1;c0"), vec!["c0", "c1", "test"]);
        assert_eq!(parse_namespaces(""), Vec::<String>::new());
        assert_eq!(parse_namespaces("test;\n"), vec!["test"]);
    }
}
