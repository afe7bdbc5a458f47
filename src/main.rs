//! `strato`: run a node (`serve`) or ask one a question (`info`).

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;
use strato::config::{NamespaceConfig, NodeConfig};
use strato::config_file::{self, FileConfig};
use strato::node::Node;

/// glibc's malloc cost about a fifth of a node's CPU under write load (`_int_malloc`,
/// `malloc_consolidate` and frees in the profile of 64 writing clients); mimalloc's
/// thread-local free lists make the many short-lived request and Raft entry buffers cheap.
/// Its arenas are committed lazily (see [`lazy_arena_commit`]).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "strato",
    version,
    about = "A strongly consistent, replicated record store that speaks Aerospike's protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a node.
    Serve(ServeArgs),
    /// Send info commands to a node and print the answers (like asinfo).
    Info {
        /// The node's service address.
        #[arg(long, default_value = "127.0.0.1:3000")]
        host: String,
        /// Info commands, e.g. `node`, `replicas`, `statistics`.
        #[arg(required = true)]
        commands: Vec<String>,
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
    },
    /// Drive a Strato cluster (or etcd, with the `etcd` feature) with an asbench/YCSB-style
    /// workload and report throughput and latency percentiles.
    Bench(strato::bench::BenchArgs),
    /// Operate the cluster: status, rosters (show, add, remove, set), recluster --wait.
    Admin(strato::admin::AdminArgs),
}

/// Flags of `strato serve`. Each overrides the same key of `--config FILE`, which overrides
/// the default shown.
#[derive(Args)]
struct ServeArgs {
    /// A TOML configuration file (keys documented in the README).
    #[arg(long)]
    config: Option<PathBuf>,
    /// This node's id (≥ 1, unique in the cluster, never reused) [default: 1]
    #[arg(long)]
    node_id: Option<u64>,
    /// Address every listener binds to [default: 127.0.0.1]
    #[arg(long)]
    address: Option<IpAddr>,
    /// Service port; the fabric uses port + 1 and gossip port + 2 [default: 3000]
    #[arg(long)]
    port: Option<u16>,
    /// [default: ./data]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Other nodes' gossip addresses (HOST:PORT, comma-separated); our own is ignored.
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<String>>,
    /// Form a new cluster once this many nodes are discovered (data directories empty)
    /// [default: 1 without --seeds; with --seeds and without this flag the node never forms
    /// a cluster: it joins the one it discovers and holds data once it is on a roster]
    #[arg(long)]
    bootstrap_expect: Option<usize>,
    /// [default: strato]
    #[arg(long)]
    cluster_name: Option<String>,
    /// The namespace the cluster forms with (with the settings below; more namespaces come
    /// from the configuration file or `create-namespace`) [default: test]
    #[arg(long)]
    namespace: Option<String>,
    /// Replicas per Raft group (capped at the node count) [default: 3]
    #[arg(long)]
    replication_factor: Option<usize>,
    /// Raft groups the namespace's 4096 partitions are spread over [default: 4096, one per
    /// partition]
    #[arg(long)]
    groups: Option<u16>,
    /// TTL in seconds for writes that ask for the namespace default (0 = never expire)
    /// [default: 0]
    #[arg(long)]
    default_ttl: Option<u32>,
    /// Allow clients' relaxed replica reads (ALLOW_REPLICA); these are not linearizable.
    #[arg(long)]
    allow_relaxed_reads: bool,
    /// [default: 100]
    #[arg(long)]
    heartbeat_ms: Option<u64>,
    /// Bottom of the election timeout window; its top is 20% above [default: 500]
    #[arg(long)]
    election_timeout_ms: Option<u64>,
    /// Snapshot a group (and purge its log) after this many applied entries [default: 20000]
    #[arg(long)]
    snapshot_every: Option<u64>,
    /// Bytes per chunk when a snapshot is sent to another node [default: 1048576]
    #[arg(long)]
    snapshot_chunk_bytes: Option<usize>,
    /// Stop a Raft group's instance after it has been idle this long, in milliseconds; it
    /// starts again on the next request (0 = never) [default: 10000]
    #[arg(long)]
    evict_idle_ms: Option<u64>,
    /// Longest a request waits for a leader, a quorum or a commit [default: 5000]
    #[arg(long)]
    request_timeout_ms: Option<u64>,
    /// Microseconds the write-ahead log waits after the first sync request before it
    /// fsyncs, so more writes share the fsync (0 = fsync at once) [default: 0]
    #[arg(long)]
    wal_linger_us: Option<u64>,
    /// Most rows a batch may carry; larger batches answer 151 [default: 0 = no limit]
    #[arg(long)]
    batch_max_requests: Option<u32>,
    /// Groups this node moves at once as their leader after a recluster [default: 32]
    #[arg(long)]
    max_moves: Option<usize>,
    /// Accept fault-injection info commands (`clock-rate:rate=R` changes the rate of this
    /// node's Raft clock). For fault-injection tests only: never on a production node.
    #[arg(long)]
    allow_fault_injection: bool,
}

fn resolve(s: &str) -> anyhow::Result<SocketAddr> {
    s.to_socket_addrs()
        .with_context(|| format!("seed {s:?} is not HOST:PORT"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("seed {s:?} resolves to no address"))
}

/// Groups a node moves at once as their leader: a group is one partition by default, so a
/// recluster moves thousands of small groups, each move mostly waiting on a few commits.
const DEFAULT_MAX_MOVES: usize = 32;

/// mimalloc's `arena_eager_commit` option (`mi_option_e` in mimalloc.h, v2 and v3 alike).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Commit mimalloc's arenas as pages are touched, and no transparent huge pages, unless the
/// environment asks for them (`MIMALLOC_ARENA_EAGER_COMMIT=1`). With both, every large, mostly
/// untouched buffer became resident in 2 MiB pages: openraft preallocates queues of thousands
/// of slots per group, and a node with 1,024 groups held 2.3 GiB instead of about 200 MiB.
/// The first arena is reserved before `main` runs, so the option alone is not enough: the
/// process also opts out of huge pages, which the kernel checks at every page fault.
fn lazy_arena_commit() {
    if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
        // SAFETY: sets one mimalloc option (read atomically by mimalloc) and one process
        // flag; neither touches memory Rust owns.
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

fn main() {
    lazy_arena_commit();
    // A readable one-line error (with its causes) and exit status 1, never a backtrace dump.
    if let Err(e) = run(Cli::parse()) {
        eprintln!("strato: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let file = match &cli.command {
        Cmd::Serve(ServeArgs {
            config: Some(path), ..
        }) => config_file::load(path).map_err(anyhow::Error::msg)?,
        _ => FileConfig::default(),
    };
    let level = file
        .logging
        .level
        .clone()
        .unwrap_or_else(|| "info,openraft=warn,sled=warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .or_else(|_| tracing_subscriber::EnvFilter::try_new(&level))
                .with_context(|| format!("logging level {level:?} is not a valid filter"))?,
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Cmd::Serve(a) => rt.block_on(serve(node_config(a, file)?)),
        Cmd::Info {
            host,
            commands,
            timeout_ms,
        } => rt.block_on(async {
            let answers =
                strato::info_client::request(&host, &commands, Duration::from_millis(timeout_ms))
                    .await?;
            let mut failed = false;
            for (_, v) in &answers {
                println!("{v}");
                failed |= v.starts_with("ERROR");
            }
            if failed {
                std::process::exit(1);
            }
            Ok(())
        }),
        Cmd::Bench(a) => rt.block_on(strato::bench::run(a)),
        Cmd::Admin(a) => rt.block_on(strato::admin::run(a)),
    }
}

/// The node's configuration: defaults, then the file, then the flags.
fn node_config(a: ServeArgs, file: FileConfig) -> anyhow::Result<NodeConfig> {
    let (n, net) = (file.node, file.network);
    let seeds = a
        .seeds
        .or(net.seeds)
        .unwrap_or_default()
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| resolve(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // With seeds and no count, join only (0); a count of 0 given explicitly is refused.
    let bootstrap_expect = match a.bootstrap_expect.or(net.bootstrap_expect) {
        Some(0) => anyhow::bail!("--bootstrap-expect must be at least 1"),
        Some(k) => k,
        None if seeds.is_empty() => 1,
        None => 0,
    };
    let election = a
        .election_timeout_ms
        .or(net.election_timeout_ms)
        .unwrap_or(raft::config::DEFAULT_ELECTION_TIMEOUT_MS);
    let raft = raft::config::RaftConfig {
        heartbeat_ms: a
            .heartbeat_ms
            .or(net.heartbeat_ms)
            .unwrap_or(raft::config::DEFAULT_HEARTBEAT_MS),
        election_timeout_min_ms: election,
        election_timeout_max_ms: raft::config::election_timeout_max(election),
        snapshot_every: a.snapshot_every.or(n.snapshot_every).unwrap_or(20_000),
        snapshot_chunk_bytes: a
            .snapshot_chunk_bytes
            .unwrap_or(raft::config::DEFAULT_SNAPSHOT_CHUNK)
            .max(1),
        evict_idle_ms: a
            .evict_idle_ms
            .or(n.evict_idle_ms)
            .unwrap_or(raft::config::DEFAULT_EVICT_IDLE_MS),
    };
    let mut namespaces: Vec<NamespaceConfig> = file
        .namespaces
        .into_iter()
        .map(|ns| {
            let d = NamespaceConfig::default();
            NamespaceConfig {
                name: ns.name,
                replication_factor: ns.replication_factor.unwrap_or(d.replication_factor),
                groups: ns.raft_groups.unwrap_or(d.groups),
                default_ttl: ns.default_ttl.unwrap_or(d.default_ttl),
                allow_relaxed_reads: ns.allow_relaxed_reads.unwrap_or(d.allow_relaxed_reads),
                read_touch_ttl_pct: ns
                    .default_read_touch_ttl_pct
                    .unwrap_or(d.read_touch_ttl_pct),
                nsup_period: ns.nsup_period.unwrap_or(d.nsup_period),
            }
        })
        .collect();
    if namespaces.is_empty() {
        namespaces.push(NamespaceConfig::default());
    }
    // The namespace flags describe the first namespace.
    let first = &mut namespaces[0];
    if let Some(name) = a.namespace {
        first.name = name;
    }
    if let Some(rf) = a.replication_factor {
        first.replication_factor = rf;
    }
    if let Some(g) = a.groups {
        first.groups = g;
    }
    if let Some(t) = a.default_ttl {
        first.default_ttl = t;
    }
    first.allow_relaxed_reads |= a.allow_relaxed_reads;
    Ok(NodeConfig {
        node_id: a.node_id.or(n.id).unwrap_or(1),
        host: a
            .address
            .or(net.address)
            .unwrap_or(IpAddr::from([127, 0, 0, 1])),
        port: a.port.or(net.port).unwrap_or(3000),
        data_dir: a.data_dir.or(n.data_dir).unwrap_or_else(|| "./data".into()),
        seeds,
        bootstrap_expect,
        cluster_name: a
            .cluster_name
            .or(n.cluster_name)
            .unwrap_or_else(|| "strato".into()),
        namespaces,
        raft,
        request_timeout: Duration::from_millis(
            a.request_timeout_ms
                .or(n.request_timeout_ms)
                .unwrap_or(5000),
        ),
        wal_linger: Duration::from_micros(a.wal_linger_us.or(n.wal_linger_us).unwrap_or(0)),
        batch_max_requests: a.batch_max_requests.or(n.batch_max_requests).unwrap_or(0),
        max_moves: a.max_moves.unwrap_or(DEFAULT_MAX_MOVES).max(1),
        fault_injection: a.allow_fault_injection,
    })
}

async fn serve(config: NodeConfig) -> anyhow::Result<()> {
    let node = Node::start(config).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}
