//! A private network for one test run: a Linux bridge, one network namespace per node, and
//! iptables rules inside those namespaces for partitions.
//!
//! Why namespaces: every node gets its own IP address, so partitions can be expressed the way
//! Jepsen does (drop packets by source/destination address) and they cut TCP (service, fabric)
//! and UDP (gossip) alike, without touching the host's own firewall or any real interface.
//! Nothing here ever routes outside the private /24: the bridge has no uplink and the
//! namespaces have no default route.
//!
//! Layout for run id `1a2b3c` (6 hex digits, random per run) and subnet `10.A.B.0/24`:
//!
//! | resource | name | address |
//! |---|---|---|
//! | bridge (root namespace) | `sjb1a2b3c` | `10.A.B.254/24`: the harness and its clients |
//! | namespace of node index `i` (0-based) | `sj1a2b3cn{i+1}` | `10.A.B.{i+1}` on its `eth0` |
//! | host end of that node's veth | `sjh1a2b3cn{i+1}` | enslaved to the bridge |
//!
//! Partition rules live only inside the node namespaces (`INPUT -s peer -j DROP`, `OUTPUT -d
//! peer -j DROP`), so they vanish with the namespaces and the bridge address stays reachable:
//! like in Jepsen, clients keep talking to every node while the nodes cannot talk to each other.
//!
//! Cleanup: every run writes `/run/strato-jepsen/<run id>` (owner pid and its start time) before
//! creating anything. [`Network`] tears everything down on [`Network::teardown`] and on `Drop`
//! (so also while unwinding from a panic); [`teardown_all_live`] is for signal handlers; and
//! [`cleanup_stale`] removes resources of earlier runs whose owner process is gone (SIGKILLed
//! harness, abort), recognised by the `sj` name prefix and the registry. Teardown discovers
//! resources by name, so it is idempotent and works without the `Network` value.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;
use tracing::{debug, info, info_span, warn};

/// Prefix of every bridge, namespace and veth this module creates.
pub const PREFIX: &str = "sj";

/// Where the registry of live runs lives (tmpfs: cleared on reboot, like the namespaces).
const REGISTRY_DIR: &str = "/run/strato-jepsen";

/// Length of a run id in hex digits. Keeps interface names within Linux's 15-byte limit
/// (`sjh` + 6 + `n` + node number).
const RUN_ID_LEN: usize = 6;

/// Address of the bridge (the harness) inside the run's /24.
const BRIDGE_HOST: u8 = 254;

/// Largest supported cluster (node addresses are `.1` ..= `.MAX_NODES`).
pub const MAX_NODES: usize = 200;

/// Who cannot talk to whom: node index -> node indexes it exchanges no packets with.
pub type Grudge = BTreeMap<usize, BTreeSet<usize>>;

/// Run ids of the networks this process created and has not torn down yet.
static LIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Returned (wrapped in `anyhow::Error`) when the harness is not root: namespaces, bridges and
/// iptables need `CAP_NET_ADMIN`. Callers can `downcast_ref::<NeedsRoot>()` and exit with 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeedsRoot;

impl std::fmt::Display for NeedsRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the fault-injection network needs root (network namespaces, a bridge and iptables); \
             run the harness as root"
        )
    }
}

impl std::error::Error for NeedsRoot {}

/// Whether this process runs with effective uid 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `Ok` when running as root and `ip`/`iptables-restore` are installed; `Err(NeedsRoot)` when
/// not root (a distinct type so the CLI can map it to exit status 2).
pub fn check_prerequisites() -> Result<()> {
    if !is_root() {
        return Err(NeedsRoot.into());
    }
    for tool in ["ip", "iptables-restore", "tc"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            bail!("`{tool}` is not installed (apt-get install -y iproute2 iptables)");
        }
    }
    Ok(())
}

/// Run a command to completion; error (with its stderr) unless it exits 0.
fn run(program: &str, args: &[&str]) -> Result<String> {
    run_with_stdin(program, args, None)
}

fn run_with_stdin(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    debug!(program, ?args, "exec");
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run `{program}`"))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().context("stdin pipe")?;
        pipe.write_all(input.as_bytes())
            .with_context(|| format!("writing stdin of `{program} {}`", args.join(" ")))?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for `{program}`"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Start time of a process in clock ticks since boot (field 22 of `/proc/<pid>/stat`), used
/// with the pid to tell a live owner from a recycled pid.
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is parenthesised and may contain spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    // `rest` starts at field 3, so field 22 is index 19.
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn registry_path(run_id: &str) -> PathBuf {
    Path::new(REGISTRY_DIR).join(run_id)
}

/// Whether the process that created `run_id` is still alive.
fn owner_alive(run_id: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(registry_path(run_id)) else {
        return false;
    };
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse::<u64>().ok())
    };
    match (field("pid"), field("start")) {
        (Some(pid), Some(start)) => u32::try_from(pid)
            .ok()
            .and_then(process_start_time)
            .is_some_and(|s| s == start),
        _ => false,
    }
}

fn is_run_id(s: &str) -> bool {
    s.len() == RUN_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Run id of a namespace name `sj<id>n<k>`.
fn run_id_of_netns(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(PREFIX)?;
    let (id, node) = rest.split_at_checked(RUN_ID_LEN)?;
    let k = node.strip_prefix('n')?;
    (is_run_id(id) && !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

/// Run id of a link name `sjb<id>` (bridge) or `sjh<id>n<k>` (host end of a veth).
fn run_id_of_link(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(PREFIX)?;
    if let Some(id) = rest.strip_prefix('b') {
        return is_run_id(id).then_some(id);
    }
    let rest = rest.strip_prefix('h')?;
    let (id, node) = rest.split_at_checked(RUN_ID_LEN)?;
    let k = node.strip_prefix('n')?;
    (is_run_id(id) && !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

/// Names of all network namespaces (`ip netns list` prints `name (id: N)` or `name`).
fn list_netns() -> Result<Vec<String>> {
    Ok(run("ip", &["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

/// Names of all links of the root namespace (`N: name@peer: ...`).
fn list_links() -> Result<Vec<String>> {
    Ok(run("ip", &["-o", "link", "show"])?
        .lines()
        .filter_map(|l| {
            let name = l.split(": ").nth(1)?;
            Some(name.split('@').next().unwrap_or(name).to_string())
        })
        .collect())
}

/// Every run id that has a namespace, a link or a registry entry on this machine.
fn known_run_ids() -> Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    for ns in list_netns()? {
        if let Some(id) = run_id_of_netns(&ns) {
            ids.insert(id.to_string());
        }
    }
    for link in list_links()? {
        if let Some(id) = run_id_of_link(&link) {
            ids.insert(id.to_string());
        }
    }
    if let Ok(dir) = std::fs::read_dir(REGISTRY_DIR) {
        for e in dir.flatten() {
            if let Some(name) = e.file_name().to_str() {
                if is_run_id(name) {
                    ids.insert(name.to_string());
                }
            }
        }
    }
    Ok(ids)
}

/// Remove every resource of `run_id`: SIGKILL processes still inside its namespaces, delete the
/// namespaces (their iptables rules and qdiscs go with them), the veths, the bridge, and the
/// registry entry. Idempotent; keeps going after individual failures and reports the first.
fn destroy_run(run_id: &str) -> Result<()> {
    let _span = info_span!("destroy_run", run_id).entered();
    let mut first_err: Option<anyhow::Error> = None;
    let mut note = |r: Result<()>| {
        if let Err(e) = r {
            warn!("teardown: {e:#}");
            first_err.get_or_insert(e);
        }
    };
    let namespaces: Vec<String> = list_netns()?
        .into_iter()
        .filter(|n| run_id_of_netns(n) == Some(run_id))
        .collect();
    for ns in &namespaces {
        // A namespace only disappears when its last process does; `ip netns del` alone would
        // leave orphaned servers (and their veths) behind.
        if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                debug!(ns, pid, "SIGKILL leftover process");
                // SAFETY: plain syscall; the pid was just listed as living in our namespace.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        note(run("ip", &["netns", "del", ns]).map(drop));
    }
    let links: Vec<String> = list_links()?
        .into_iter()
        .filter(|l| run_id_of_link(l) == Some(run_id))
        .collect();
    // Veths first (they usually vanish with their namespace already), then the bridge.
    for link in links
        .iter()
        .filter(|l| !l.starts_with(&format!("{PREFIX}b")))
    {
        if let Err(e) = run("ip", &["link", "del", link]) {
            // Deleting the namespace deletes the pair asynchronously; only complain if it stays.
            if list_links()?.contains(link) {
                note(Err(e));
            }
        }
    }
    for link in links
        .iter()
        .filter(|l| l.starts_with(&format!("{PREFIX}b")))
    {
        note(run("ip", &["link", "del", link]).map(drop));
    }
    let reg = registry_path(run_id);
    if reg.exists() {
        note(
            std::fs::remove_file(&reg)
                .with_context(|| format!("removing registry entry {}", reg.display())),
        );
    }
    if let Ok(mut live) = LIVE.lock() {
        live.remove(run_id);
    }
    if !namespaces.is_empty() || !links.is_empty() {
        info!(
            namespaces = namespaces.len(),
            links = links.len(),
            "network removed"
        );
    }
    first_err.map_or(Ok(()), Err)
}

/// Delete leftovers (namespaces, bridges, veths, registry entries with our prefix) of earlier
/// runs whose owning process no longer exists, e.g. a harness that was SIGKILLed or aborted
/// before its `Drop` could run. Networks of live harness processes (concurrent runs) are left
/// alone. Returns the run ids that were removed.
pub fn cleanup_stale() -> Result<Vec<String>> {
    check_prerequisites()?;
    let mut removed = Vec::new();
    for id in known_run_ids()? {
        let ours = LIVE.lock().map(|l| l.contains(&id)).unwrap_or(false);
        if ours || owner_alive(&id) {
            continue;
        }
        warn!(run_id = %id, "removing stale network of a dead harness run");
        destroy_run(&id).with_context(|| format!("cleaning up stale run {id}"))?;
        removed.push(id);
    }
    Ok(removed)
}

/// Tear down every network this process created and still holds. For signal handlers
/// (Ctrl-C does not unwind, so `Drop` would not run); also kills the servers inside them.
pub fn teardown_all_live() {
    let ids: Vec<String> = LIVE
        .lock()
        .map(|l| l.iter().cloned().collect())
        .unwrap_or_default();
    for id in ids {
        if let Err(e) = destroy_run(&id) {
            warn!(run_id = %id, "teardown failed: {e:#}");
        }
    }
}

/// Every resource name with our prefix currently on the machine (namespaces and links), for
/// tests and diagnostics.
pub fn leftover_resources() -> Result<Vec<String>> {
    let mut out: Vec<String> = list_netns()?
        .into_iter()
        .filter(|n| run_id_of_netns(n).is_some())
        .collect();
    out.extend(
        list_links()?
            .into_iter()
            .filter(|l| run_id_of_link(l).is_some()),
    );
    Ok(out)
}

/// A random-ish 24-bit value without pulling an RNG into teardown paths: time, pid and a
/// per-process counter through a hasher with a random key.
fn entropy() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

/// One run's private network. See the module docs for names and addresses.
#[derive(Debug)]
pub struct Network {
    run_id: String,
    subnet: [u8; 3],
    nodes: usize,
    /// Current grudge: node index -> node indexes it cannot exchange packets with.
    blocked: Grudge,
    /// Nodes whose `eth0` currently has a netem qdisc.
    delayed: BTreeSet<usize>,
    torn_down: bool,
}

impl Network {
    /// Create the bridge, one namespace per node and the veths; loopback and `eth0` up in each
    /// namespace; IPv6 off on everything we create (nodes bind IPv4 only, and this keeps
    /// router solicitations and DAD off our bridge). On error, everything created so far is
    /// removed again.
    pub fn create(nodes: usize) -> Result<Network> {
        check_prerequisites()?;
        if nodes == 0 || nodes > MAX_NODES {
            bail!("a network needs 1..={MAX_NODES} nodes, not {nodes}");
        }
        std::fs::create_dir_all(REGISTRY_DIR)
            .with_context(|| format!("creating registry directory {REGISTRY_DIR}"))?;
        let existing = known_run_ids()?;
        let routes = run("ip", &["-4", "route", "show"])?;
        let addrs = run("ip", &["-4", "-o", "addr", "show"])?;
        let (run_id, subnet) = (0..1000)
            .map(|_| {
                let e = entropy();
                let id = format!("{:06x}", e & 0xff_ffff);
                let subnet = [10, 200 + ((e >> 24) % 50) as u8, ((e >> 32) & 0xff) as u8];
                (id, subnet)
            })
            .find(|(id, s)| {
                let prefix = format!("{}.{}.{}.", s[0], s[1], s[2]);
                !existing.contains(id) && !routes.contains(&prefix) && !addrs.contains(&prefix)
            })
            .context("no free run id / subnet found")?;
        let pid = std::process::id();
        let start = process_start_time(pid).context("reading our own /proc/self/stat")?;
        std::fs::write(
            registry_path(&run_id),
            format!(
                "pid={pid} start={start} nodes={nodes} subnet={}.{}.{}.0/24\n",
                subnet[0], subnet[1], subnet[2]
            ),
        )
        .with_context(|| format!("writing registry entry for run {run_id}"))?;
        LIVE.lock()
            .map_err(|_| anyhow::anyhow!("network registry lock poisoned"))?
            .insert(run_id.clone());
        // From here on, Drop cleans up whatever the setup below manages to create.
        let net = Network {
            run_id,
            subnet,
            nodes,
            blocked: BTreeMap::new(),
            delayed: BTreeSet::new(),
            torn_down: false,
        };
        let _span = info_span!("net_create", run_id = %net.run_id, nodes).entered();
        net.setup()
            .with_context(|| format!("setting up network {}", net.run_id))?;
        info!(
            bridge = %net.bridge_name(),
            subnet = %format!("{}/24", net.bridge_ip()),
            "network up"
        );
        Ok(net)
    }

    fn setup(&self) -> Result<()> {
        let bridge = self.bridge_name();
        let bridge_cidr = format!("{}/24", self.bridge_ip());
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6"),
            "1",
        );
        run("ip", &["addr", "add", &bridge_cidr, "dev", &bridge])?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for i in 0..self.nodes {
            let ns = self.netns(i);
            let host = self.host_veth(i);
            let cidr = format!("{}/24", self.node_ip(i));
            run("ip", &["netns", "add", &ns])?;
            // Best effort: a kernel without IPv6 has no such sysctl, which is just as good.
            let _ = run(
                "ip",
                &[
                    "netns",
                    "exec",
                    &ns,
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
            );
            run(
                "ip",
                &[
                    "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            )?;
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{host}/disable_ipv6"), "1");
            run("ip", &["link", "set", &host, "master", &bridge, "up"])?;
            run("ip", &["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// This run's id (6 hex digits), embedded in every resource name.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Number of nodes (namespaces).
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Name of the bridge in the root namespace.
    pub fn bridge_name(&self) -> String {
        format!("{PREFIX}b{}", self.run_id)
    }

    /// Name of node `i`'s namespace (0-based index, 1-based in the name like the node id).
    pub fn netns(&self, i: usize) -> String {
        format!("{PREFIX}{}n{}", self.run_id, i + 1)
    }

    /// Name of the root-namespace end of node `i`'s veth.
    pub fn host_veth(&self, i: usize) -> String {
        format!("{PREFIX}h{}n{}", self.run_id, i + 1)
    }

    /// Node `i`'s address (`.i+1` in the run's /24).
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, (i + 1) as u8)
    }

    /// The harness's address on the bridge (`.254`).
    pub fn bridge_ip(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, BRIDGE_HOST)
    }

    /// A command that runs `program` inside node `i`'s namespace (`ip netns exec`). `ip`
    /// execs the program in place, so the child's pid is the program's pid.
    pub fn command_in(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.arg("netns").arg("exec").arg(self.netns(i)).arg(program);
        cmd
    }

    fn check_node(&self, i: usize) -> Result<()> {
        if i >= self.nodes {
            bail!("node index {i} out of range (cluster of {})", self.nodes);
        }
        Ok(())
    }

    /// Partition the nodes into `components`: nodes in different components cannot exchange
    /// any packet; nodes listed in no component are isolated on their own. Replaces whatever
    /// partition was in force. The harness (bridge address) keeps reaching every node.
    pub fn partition(&mut self, components: &[Vec<usize>]) -> Result<()> {
        let mut component_of = vec![None; self.nodes];
        for (c, comp) in components.iter().enumerate() {
            for &i in comp {
                self.check_node(i)?;
                if component_of[i].replace(c).is_some() {
                    bail!("node {i} is in more than one component of {components:?}");
                }
            }
        }
        let mut grudge = BTreeMap::new();
        for a in 0..self.nodes {
            let others: BTreeSet<usize> = (0..self.nodes)
                .filter(|&b| {
                    b != a && (component_of[a].is_none() || component_of[a] != component_of[b])
                })
                .collect();
            grudge.insert(a, others);
        }
        self.cut(&grudge)
    }

    /// Cut node `i` off from every other node.
    pub fn isolate(&mut self, i: usize) -> Result<()> {
        self.check_node(i)?;
        let rest: Vec<usize> = (0..self.nodes).filter(|&j| j != i).collect();
        self.partition(&[vec![i], rest])
    }

    /// Apply a grudge: `grudge[a]` is the set of nodes `a` must not exchange packets with.
    /// Made symmetric (if a drops b, b drops a), since a one-way cut is a different fault.
    /// Replaces whatever partition was in force; arbitrary shapes (rings, bridges) fit here.
    pub fn cut(&mut self, grudge: &Grudge) -> Result<()> {
        let mut blocked = Grudge::new();
        for (&a, bs) in grudge {
            self.check_node(a)?;
            for &b in bs {
                self.check_node(b)?;
                if a != b {
                    blocked.entry(a).or_default().insert(b);
                    blocked.entry(b).or_default().insert(a);
                }
            }
        }
        let _span = info_span!("net_cut", run_id = %self.run_id).entered();
        info!(grudge = ?self.describe(&blocked), "partition");
        self.install(&blocked)
    }

    /// Remove every partition rule; all nodes can reach each other again.
    pub fn heal(&mut self) -> Result<()> {
        let _span = info_span!("net_heal", run_id = %self.run_id).entered();
        info!("heal");
        self.install(&BTreeMap::new())
    }

    /// The grudge in force, keyed by node index (empty when healed).
    pub fn blocked(&self) -> &Grudge {
        &self.blocked
    }

    fn describe(&self, blocked: &Grudge) -> String {
        blocked
            .iter()
            .filter(|(_, bs)| !bs.is_empty())
            .map(|(a, bs)| {
                let names: Vec<String> = bs.iter().map(|b| format!("n{}", b + 1)).collect();
                format!("n{}-x-{}", a + 1, names.join(","))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Write each namespace's whole filter table with `iptables-restore` (atomic per node, one
    /// process per node). Every node is rewritten, so stale rules never survive a change.
    fn install(&mut self, blocked: &Grudge) -> Result<()> {
        if self.torn_down {
            bail!("network {} is torn down", self.run_id);
        }
        let mut first_err = None;
        for i in 0..self.nodes {
            let mut rules = String::from(
                "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n",
            );
            for &b in blocked.get(&i).into_iter().flatten() {
                let ip = self.node_ip(b);
                rules.push_str(&format!("-A INPUT -s {ip}/32 -j DROP\n"));
                rules.push_str(&format!("-A OUTPUT -d {ip}/32 -j DROP\n"));
            }
            rules.push_str("COMMIT\n");
            let ns = self.netns(i);
            if let Err(e) = run_with_stdin(
                "ip",
                &["netns", "exec", &ns, "iptables-restore"],
                Some(&rules),
            ) {
                warn!(ns, "iptables-restore failed: {e:#}");
                first_err.get_or_insert(e.context(format!("installing rules in {ns}")));
            }
        }
        // Even after a partial failure, remember the intent so a later heal rewrites all.
        self.blocked = blocked.clone();
        first_err.map_or(Ok(()), Err)
    }

    /// Delay every packet node `i` sends by `delay` ± `jitter` (netem on its `eth0`; packets to
    /// the harness are delayed too, as in Jepsen's packet nemesis).
    pub fn set_delay(&mut self, i: usize, delay: Duration, jitter: Duration) -> Result<()> {
        self.check_node(i)?;
        let ns = self.netns(i);
        let d = format!("{}us", delay.as_micros());
        let j = format!("{}us", jitter.as_micros());
        let mut args = vec![
            "netns", "exec", &ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "netem",
            "delay", &d,
        ];
        if !jitter.is_zero() {
            args.push(&j);
        }
        run("ip", &args).with_context(|| format!("adding netem delay on n{}", i + 1))?;
        info!(node = i + 1, ?delay, ?jitter, "netem delay on");
        self.delayed.insert(i);
        Ok(())
    }

    /// Remove node `i`'s netem delay (no-op when there is none).
    pub fn clear_delay(&mut self, i: usize) -> Result<()> {
        self.check_node(i)?;
        if self.delayed.remove(&i) {
            let ns = self.netns(i);
            run(
                "ip",
                &[
                    "netns", "exec", &ns, "tc", "qdisc", "del", "dev", "eth0", "root",
                ],
            )
            .with_context(|| format!("removing netem delay on n{}", i + 1))?;
            info!(node = i + 1, "netem delay off");
        }
        Ok(())
    }

    /// Remove every netem delay.
    pub fn clear_all_delays(&mut self) -> Result<()> {
        let mut first_err = None;
        for i in self.delayed.clone() {
            if let Err(e) = self.clear_delay(i) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Remove everything this run created (including processes still inside the
    /// namespaces). Idempotent.
    pub fn teardown(&mut self) -> Result<()> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        destroy_run(&self.run_id)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            warn!(run_id = %self.run_id, "network teardown on drop failed: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(run_id_of_netns("sj1a2b3cn1"), Some("1a2b3c"));
        assert_eq!(run_id_of_netns("sj1a2b3cn12"), Some("1a2b3c"));
        assert_eq!(run_id_of_netns("sj1a2b3c"), None);
        assert_eq!(run_id_of_netns("sj1a2b3xn1"), None);
        assert_eq!(run_id_of_netns("other"), None);
        assert_eq!(run_id_of_link("sjb1a2b3c"), Some("1a2b3c"));
        assert_eq!(run_id_of_link("sjh1a2b3cn3"), Some("1a2b3c"));
        assert_eq!(run_id_of_link("sjh1a2b3c"), None);
        assert_eq!(run_id_of_link("sjb1a2b3cn1"), None);
        assert_eq!(run_id_of_link("eth0"), None);
        // Interface names must fit IFNAMSIZ - 1 = 15 bytes.
        assert!(format!("{PREFIX}h{}n{MAX_NODES}", "abcdef").len() <= 15);
    }

    #[test]
    fn own_start_time_is_readable() {
        assert!(process_start_time(std::process::id()).is_some());
    }
}
