//! Real 3-node clusters in network namespaces: partitions, kill/restart, pause/resume and a
//! clean teardown. Needs root (namespaces, bridge, iptables) and the release `strato` binary;
//! without them every test prints `skipped: ...` and passes.
//!
//! The tests run one after another (a shared lock): each cluster is three servers on a
//! two-core machine, and the teardown check looks at the whole machine.

use jepsen::cluster::{Cluster, ClusterSpec, NodeState};
use jepsen::nemesis::{self, Fault, NemesisOptions};
use jepsen::net;
use std::net::SocketAddr;
use std::ops::AsyncFnMut;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Async lock (a std guard must not be held across awaits); works across the tests' runtimes.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn binary() -> PathBuf {
    std::env::var_os("STRATO_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/strato")
        })
}

/// Why this machine cannot run the tests, if it cannot.
fn skip_reason() -> Option<String> {
    if !net::is_root() {
        return Some("needs root".into());
    }
    if let Err(e) = net::check_prerequisites() {
        return Some(format!("{e:#}"));
    }
    if !binary().is_file() {
        return Some(format!(
            "no strato binary at {} (build it with cargo build --release -p strato, or set \
             STRATO_BIN)",
            binary().display()
        ));
    }
    None
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_test_writer()
        .try_init();
}

fn spec(dir: &tempfile::TempDir) -> ClusterSpec {
    ClusterSpec::new(3, binary(), dir.path())
}

/// From inside node `from`'s namespace, try a TCP connect to `to` (bash's /dev/tcp, bounded
/// by `timeout`): true when it connects.
fn connects_from(cluster: &Cluster, from: usize, to: SocketAddr, timeout: Duration) -> bool {
    let script = format!("exec 3<>/dev/tcp/{}/{}", to.ip(), to.port());
    let status = cluster
        .network()
        .command_in(from, "timeout")
        .arg(format!("{}", timeout.as_secs_f64()))
        .arg("bash")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running bash in a namespace");
    status.success()
}

/// Poll `f` every 100 ms until it is true or `timeout` passes.
async fn eventually(timeout: Duration, what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn our_leftovers() -> Vec<String> {
    net::leftover_resources().expect("listing namespaces and links")
}

fn netns_list() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_kill_pause_and_teardown() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = SERIAL.lock().await;
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let mut cluster = Cluster::start(spec(&dir)).await.expect("cluster start");
    eprintln!("cluster ready in {:?}", t.elapsed());
    let run_id = cluster.network().run_id().to_string();

    // Every node serves info and the partitions are spread over the nodes.
    for i in 0..3 {
        let status = cluster.info(i, "status").await.unwrap();
        assert_eq!(status, "ok");
        let node = cluster.info(i, "node").await.unwrap();
        assert!(!node.is_empty());
    }
    let leaders = cluster.leaders().await.unwrap();
    assert_eq!(leaders.values().sum::<usize>(), 4096, "{leaders:?}");

    // Partition n1 away: it cannot reach n2's service port, n2 cannot reach it, the other two
    // still reach each other, and the harness still reaches all three.
    let short = Duration::from_millis(700);
    assert!(connects_from(&cluster, 0, cluster.service_addr(1), short));
    cluster.partition(&[vec![0], vec![1, 2]]).unwrap();
    assert!(!connects_from(&cluster, 0, cluster.service_addr(1), short));
    assert!(!connects_from(&cluster, 1, cluster.service_addr(0), short));
    assert!(connects_from(&cluster, 1, cluster.service_addr(2), short));
    for i in 0..3 {
        cluster
            .info(i, "status")
            .await
            .unwrap_or_else(|e| panic!("harness cannot reach n{} during partition: {e:#}", i + 1));
    }
    // The majority side keeps (or regains) every partition.
    eventually(
        Duration::from_secs(20),
        "majority masters all partitions",
        async || {
            let mut claims = 0;
            for i in [1, 2] {
                if let Ok(a) = cluster.info(i, "replicas-leaders").await {
                    if let Ok(m) = jepsen::cluster::parse_master_bitmap(&a, "test") {
                        claims += m.iter().map(|b| b.count_ones() as usize).sum::<usize>();
                    }
                }
            }
            claims == 4096
        },
    )
    .await;

    // Heal: connectivity returns and the cluster settles (stale claims of n1 go away).
    cluster.heal().unwrap();
    assert!(connects_from(&cluster, 0, cluster.service_addr(1), short));
    assert!(connects_from(&cluster, 1, cluster.service_addr(0), short));
    cluster
        .wait_ready(Duration::from_secs(30))
        .await
        .expect("ready after heal");

    // Kill and restart n2 on its data dir.
    let old_pid = cluster.pid(1).unwrap();
    cluster.kill(1).unwrap();
    assert_eq!(cluster.state(1), NodeState::Down);
    assert!(!cluster.is_running(1));
    assert!(cluster.info(1, "status").await.is_err());
    cluster.restart(1).await.expect("restart");
    assert!(cluster.is_running(1));
    assert_ne!(cluster.pid(1), Some(old_pid));
    assert_eq!(cluster.info(1, "status").await.unwrap(), "ok");
    cluster
        .wait_ready(Duration::from_secs(30))
        .await
        .expect("ready after restart");

    // Pause n3: it stops answering (the info client times out); resume: it answers again.
    cluster.pause(2).unwrap();
    assert_eq!(cluster.state(2), NodeState::Paused);
    assert!(cluster.is_running(2));
    assert!(cluster.info(2, "status").await.is_err());
    cluster.resume(2).unwrap();
    assert_eq!(cluster.state(2), NodeState::Running);
    eventually(
        Duration::from_secs(10),
        "n3 answers after resume",
        async || cluster.info(2, "status").await.is_ok(),
    )
    .await;
    cluster
        .wait_ready(Duration::from_secs(30))
        .await
        .expect("ready after resume");

    // Teardown with a node paused and a partition in force: nothing with our prefix remains.
    cluster.pause(0).unwrap();
    cluster.partition(&[vec![0, 1], vec![2]]).unwrap();
    let pids: Vec<u32> = (0..3).filter_map(|i| cluster.pid(i)).collect();
    let t = Instant::now();
    cluster.teardown().unwrap();
    cluster.teardown().unwrap(); // idempotent
    eprintln!("teardown took {:?}", t.elapsed());
    drop(cluster);
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "server pid {pid} survived teardown"
        );
    }
    assert!(
        !netns_list().contains(&run_id),
        "namespaces left: {}",
        netns_list()
    );
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains(&run_id));
    assert!(!std::path::Path::new(&format!("/run/strato-jepsen/{run_id}")).exists());
    let left: Vec<String> = our_leftovers()
        .into_iter()
        .filter(|r| r.contains(&run_id))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The nemesis runs a short schedule with every fault enabled, records events, and leaves a
/// healed, ready cluster behind. Dropping the cluster (no explicit teardown) cleans up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis_schedule_heals_at_the_end() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = SERIAL.lock().await;
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(spec(&dir)).await.expect("cluster start");
    let run_id = cluster.network().run_id().to_string();
    let t0 = Instant::now();
    let opts = NemesisOptions {
        healthy: (Duration::from_millis(300), Duration::from_millis(800)),
        fault: (Duration::from_millis(1000), Duration::from_millis(2000)),
        combine_probability: 0.5,
        ready_timeout: Duration::from_secs(45),
    };
    let events = nemesis::run_with(
        &mut cluster,
        Fault::ALL.to_vec(),
        42,
        t0 + Duration::from_secs(12),
        t0,
        &opts,
        std::future::pending(),
    )
    .await;
    eprintln!("nemesis ran {:?}: {events:#?}", t0.elapsed());
    assert!(!events.is_empty());
    for e in &events {
        assert!(e.start <= e.end, "{e:?}");
        assert!(
            ["partition", "kill", "pause", "groups"].contains(&e.kind.as_str()),
            "unexpected event {e:?}"
        );
    }
    for i in 0..3 {
        assert_eq!(cluster.state(i), NodeState::Running);
    }
    assert!(cluster.network().blocked().values().all(|b| b.is_empty()));
    cluster
        .wait_ready(Duration::from_secs(5))
        .await
        .expect("ready after the nemesis");
    drop(cluster);
    assert!(!netns_list().contains(&run_id));
}

/// Leftovers of a "crashed" run (resources and a registry entry whose owner is dead) are
/// removed by `cleanup_stale`, which leaves live runs alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_stale_removes_dead_runs_only() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = SERIAL.lock().await;
    init_tracing();
    let live = net::Network::create(2).unwrap();
    // Fake a crashed run: namespace + bridge named like ours, no live owner.
    let dead = "dead00";
    let ns = format!("{}{dead}n1", net::PREFIX);
    let bridge = format!("{}b{dead}", net::PREFIX);
    let ok = |args: &[&str]| {
        assert!(
            Command::new("ip").args(args).status().unwrap().success(),
            "ip {args:?}"
        );
    };
    ok(&["netns", "add", &ns]);
    ok(&["link", "add", &bridge, "type", "bridge"]);
    std::fs::write(
        format!("/run/strato-jepsen/{dead}"),
        "pid=999999999 start=1\n",
    )
    .unwrap();
    let removed = net::cleanup_stale().unwrap();
    assert!(removed.contains(&dead.to_string()), "{removed:?}");
    assert!(!removed.contains(&live.run_id().to_string()));
    assert!(!netns_list().contains(&ns));
    assert!(netns_list().contains(&live.netns(0)));
    drop(live);
    assert!(!netns_list().contains(&format!("{}{}", net::PREFIX, "dead00")));
}
