//! `strato`: run a node (`serve`) or ask one a question (`info`).

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;
use strato::config::{NamespaceConfig, NodeConfig};
use strato::node::Node;

/// glibc's malloc cost about a fifth of a node's CPU under write load (`_int_malloc`,
/// `malloc_consolidate` and frees in the profile of 64 writing clients); mimalloc's
/// thread-local free lists make the many short-lived request and Raft entry buffers cheap.
/// Transparent huge pages stay on: they made linearizable reads ~15% faster (fewer TLB
/// misses) at the price of ~87 MB more RSS on an idle node (126 MB instead of 39 MB, a fixed
/// cost, not per record); `MIMALLOC_ARENA_EAGER_COMMIT=0` in the environment trades back.
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
}

#[derive(Args)]
struct ServeArgs {
    /// This node's id (≥ 1, unique in the cluster, never reused).
    #[arg(long, default_value_t = 1)]
    node_id: u64,
    /// Address every listener binds to.
    #[arg(long, default_value = "127.0.0.1")]
    address: IpAddr,
    /// Service port; the fabric uses port + 1 and gossip port + 2.
    #[arg(long, default_value_t = 3000)]
    port: u16,
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Other nodes' gossip addresses (HOST:PORT, comma-separated); our own is ignored.
    #[arg(long, value_delimiter = ',')]
    seeds: Vec<String>,
    /// Form a new cluster once this many nodes are discovered (data directories empty).
    #[arg(long, default_value_t = 1)]
    bootstrap_expect: usize,
    #[arg(long, default_value = "strato")]
    cluster_name: String,
    #[arg(long, default_value = "test")]
    namespace: String,
    /// Replicas per Raft group (capped at the node count).
    #[arg(long, default_value_t = 3)]
    replication_factor: usize,
    /// Raft groups the namespace's 4096 partitions are spread over.
    #[arg(long, default_value_t = 16)]
    groups: u16,
    /// TTL in seconds for writes that ask for the namespace default (0 = never expire).
    #[arg(long, default_value_t = 0)]
    default_ttl: u32,
    /// Allow clients' relaxed replica reads (ALLOW_REPLICA); these are not linearizable.
    #[arg(long)]
    allow_relaxed_reads: bool,
    #[arg(long, default_value_t = 200)]
    heartbeat_ms: u64,
    #[arg(long, default_value_t = 1000)]
    election_timeout_ms: u64,
    /// Snapshot a group (and purge its log) after this many applied entries.
    #[arg(long, default_value_t = 20_000)]
    snapshot_every: u64,
    /// Longest a request waits for a leader, a quorum or a commit.
    #[arg(long, default_value_t = 5000)]
    request_timeout_ms: u64,
    /// Microseconds the write-ahead log waits after the first sync request before it
    /// fsyncs, so more writes share the fsync (0 = fsync at once).
    #[arg(long, default_value_t = 0)]
    wal_linger_us: u64,
}

fn resolve(s: &str) -> anyhow::Result<SocketAddr> {
    s.to_socket_addrs()
        .with_context(|| format!("seed {s:?} is not HOST:PORT"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("seed {s:?} resolves to no address"))
}

fn main() {
    // A readable one-line error (with its causes) and exit status 1, never a backtrace dump.
    if let Err(e) = run(Cli::parse()) {
        eprintln!("strato: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn,sled=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Cmd::Serve(a) => rt.block_on(serve(a)),
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
    }
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let seeds = a
        .seeds
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| resolve(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let raft = raft::config::RaftConfig {
        heartbeat_ms: a.heartbeat_ms,
        election_timeout_min_ms: a.election_timeout_ms,
        election_timeout_max_ms: a.election_timeout_ms * 2,
        snapshot_every: a.snapshot_every,
    };
    let config = NodeConfig {
        node_id: a.node_id,
        host: a.address,
        port: a.port,
        data_dir: a.data_dir,
        seeds,
        bootstrap_expect: a.bootstrap_expect,
        cluster_name: a.cluster_name,
        namespaces: vec![NamespaceConfig {
            name: a.namespace,
            replication_factor: a.replication_factor,
            groups: a.groups,
            default_ttl: a.default_ttl,
            allow_relaxed_reads: a.allow_relaxed_reads,
        }],
        raft,
        request_timeout: Duration::from_millis(a.request_timeout_ms),
        wal_linger: Duration::from_micros(a.wal_linger_us),
    };
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
