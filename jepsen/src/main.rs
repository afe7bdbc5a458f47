//! `jepsen test ...`: run Strato under faults and check what clients saw.
//!
//! Exit status: 0 when every checker says valid, 1 when any finds an anomaly, 2 when the run
//! could not be done or a checker could not decide.

use clap::{Parser, Subcommand, ValueEnum};
use jepsen::nemesis::Fault;
use jepsen::runner::{self, Options};
use jepsen::workload::{catalog, Workload};
use std::path::PathBuf;
use std::time::Duration;
use strato::client::ReadMode;

#[derive(Parser)]
#[command(name = "jepsen", about = "Jepsen-style tests of a real Strato cluster")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ReadModeArg {
    /// Linearizable reads (the default; leader confirms leadership with a quorum).
    Linearizable,
    /// ALLOW_REPLICA reads from any replica; the cluster is started to allow them. Not
    /// linearizable: used to prove the harness catches a weakened cluster.
    AllowReplica,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one test.
    Test {
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        #[arg(long, value_enum, default_value = "register")]
        workload: Workload,
        /// The namespace the workload runs in. Every node starts with `test`; any other is
        /// created at run time (`create-namespace`) once the cluster is ready. The catalog
        /// workload writes there beside the namespaces c0..c3 it creates and drops.
        #[arg(long, default_value = jepsen::workload::DEFAULT_NAMESPACE)]
        namespace: String,
        /// Comma-separated faults: partition, kill, pause, membership, clock, all, none (or
        /// single faults such as clock-drift, clock-slow-leader, clock-break).
        #[arg(long, default_value = "partition")]
        nemesis: String,
        /// Spare nodes started after the cluster formed, which the membership nemesis adds
        /// to and swaps into the roster [default: 2 with membership faults, else 0].
        #[arg(long)]
        spares: Option<usize>,
        /// Seconds of load (faults included).
        #[arg(long, default_value_t = 60)]
        time_limit: u64,
        #[arg(long, default_value_t = 10)]
        concurrency: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "store/latest")]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "linearizable")]
        read_mode: ReadModeArg,
        /// The strato binary to test.
        #[arg(long, default_value = "target/release/strato")]
        binary: PathBuf,
        #[arg(long, default_value_t = 3000)]
        base_port: u16,
        /// Seconds the linearizability checker may search before answering "unknown".
        #[arg(long, default_value_t = 120)]
        check_budget: u64,
        /// Snapshot each group (and purge its log) every N applied entries; small values put
        /// snapshots, purges and snapshot installs under the faults.
        #[arg(long)]
        snapshot_every: Option<u64>,
        /// The nodes' `--evict-idle-ms`: idle groups' Raft instances are stopped after this
        /// long and started again on demand; small values put evictions and restarts under
        /// the faults.
        #[arg(long)]
        evict_idle_ms: Option<u64>,
        /// Turn on the namespace's `lease-reads` before the load: reads confirm leadership
        /// with a leader lease, so they depend on the clock assumption the clock faults
        /// keep (clock-drift) or break (clock-break).
        #[arg(long)]
        lease_reads: bool,
        /// Replicas per Raft group, in the namespace every node starts with and in one
        /// created at run time (capped at the node count). 5 on 5 nodes makes every read
        /// and write need three nodes.
        #[arg(long, default_value_t = 3)]
        replication_factor: u8,
        /// Raft groups of the namespace every node starts with and of one created at run
        /// time. Few groups put many keys in each (more contention per group); the server's
        /// default, 4,096, gives nearly every key a group of its own, most of them asleep.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=4096))]
        groups: u16,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("jepsen: the run could not be completed: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

fn real_main() -> anyhow::Result<i32> {
    let Cmd::Test {
        nodes,
        workload,
        namespace,
        nemesis,
        time_limit,
        concurrency,
        seed,
        out,
        read_mode,
        binary,
        base_port,
        check_budget,
        snapshot_every,
        evict_idle_ms,
        spares,
        lease_reads,
        replication_factor,
        groups,
    } = Cli::parse().command;
    anyhow::ensure!(
        !(workload == Workload::Catalog && catalog::POOL.contains(&namespace.as_str())),
        "--namespace {namespace} is one the catalog workload drops; choose another"
    );
    anyhow::ensure!(nodes >= 1, "--nodes must be at least 1");
    anyhow::ensure!(concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!(
        binary.exists(),
        "strato binary {} not found (build it with `cargo build --release`)",
        binary.display()
    );
    let faults = Fault::parse_list(&nemesis)?;
    let membership = faults.iter().any(|f| f.class() == "membership");
    let spares = spares.unwrap_or(if membership { 2 } else { 0 });
    let opts = Options {
        nodes,
        spares,
        workload,
        namespace: namespace.clone(),
        faults,
        time_limit: Duration::from_secs(time_limit),
        concurrency,
        seed,
        out: out.clone(),
        read_mode: match read_mode {
            ReadModeArg::Linearizable => ReadMode::Linearize,
            ReadModeArg::AllowReplica => ReadMode::AllowReplica,
        },
        binary,
        base_port,
        op_timeout: Duration::from_secs(3),
        check_budget: Duration::from_secs(check_budget),
        snapshot_every,
        evict_idle_ms,
        lease_reads,
        replication_factor,
        groups,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let output = rt.block_on(async {
        tokio::select! {
            r = runner::run(&opts) => r,
            _ = tokio::signal::ctrl_c() => {
                // Interrupted: leave no namespaces, bridges or servers behind.
                jepsen::net::teardown_all_live();
                anyhow::bail!("interrupted")
            }
        }
    })?;
    let meta = serde_json::json!({
        "nodes": nodes, "spares": spares, "workload": workload, "namespace": namespace, "nemesis": nemesis,
        "time_limit": time_limit,
        "concurrency": concurrency, "seed": seed, "read_mode": format!("{read_mode:?}"),
        "snapshot_every": snapshot_every, "evict_idle_ms": evict_idle_ms, "lease_reads": lease_reads,
        "replication_factor": replication_factor, "groups": groups,
    });
    let verdict =
        jepsen::check::check_and_report(&opts.out, workload, &output, opts.check_budget, meta)?;
    println!("{}", verdict.summary);
    Ok(verdict.exit_code)
}
