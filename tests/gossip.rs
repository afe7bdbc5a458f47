//! Gossip discovery over real UDP sockets on 127.0.0.1 (OS-assigned ports).
//!
//! Every wait is "until a condition holds, or fail after a deadline"; nothing asserts after a
//! bare sleep. The state machine itself is tested deterministically (virtual clock, in-memory
//! network, fuzzing) in `src/cluster/gossip.rs`.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::time::Duration;

use strato::cluster::gossip::{Gossip, GossipConfig, Member, MAX_DATAGRAM};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

const CLUSTER: &str = "gossip-test";

type View = BTreeMap<u64, Member>;

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A free UDP port on 127.0.0.1, for a node that must be named (as a seed) before it starts.
fn reserve_addr() -> SocketAddr {
    StdUdpSocket::bind(localhost())
        .and_then(|s| s.local_addr())
        .expect("bind an ephemeral UDP port")
}

/// Published service/fabric addresses are plain data here (nothing listens on them).
fn config(node_id: u64, bind: SocketAddr, seeds: Vec<SocketAddr>, generation: u64) -> GossipConfig {
    GossipConfig {
        node_id,
        cluster_name: CLUSTER.into(),
        bind,
        service: SocketAddr::from(([127, 0, 0, 1], 20_000 + node_id as u16 * 10)),
        fabric: SocketAddr::from(([127, 0, 0, 1], 20_001 + node_id as u16 * 10)),
        seeds,
        generation,
    }
}

async fn start(config: GossipConfig) -> Gossip {
    Gossip::start(config).await.expect("start gossip")
}

/// The member record `gossip` should publish for itself.
fn expected(config: &GossipConfig, gossip: SocketAddr) -> Member {
    Member {
        node_id: config.node_id,
        gossip,
        service: config.service,
        fabric: config.fabric,
        generation: config.generation,
        up: true,
    }
}

/// Waits until `pred` holds for the view, or panics after `timeout`. Returns the time taken.
async fn wait_for(
    what: &str,
    rx: &mut watch::Receiver<View>,
    timeout: Duration,
    pred: impl Fn(&View) -> bool,
) -> Duration {
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        if pred(&rx.borrow_and_update()) {
            return started.elapsed();
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("{what}: gossip task stopped; last view {:?}", *rx.borrow()),
            Err(_) => panic!(
                "{what}: not reached in {timeout:?}; last view {:?}",
                *rx.borrow()
            ),
        }
    }
}

/// Waits until every receiver sees exactly `members`.
async fn wait_all_equal(what: &str, receivers: &mut [watch::Receiver<View>], members: &[Member]) {
    let want: View = members.iter().map(|m| (m.node_id, m.clone())).collect();
    for rx in receivers.iter_mut() {
        wait_for(what, rx, Duration::from_secs(5), |view| *view == want).await;
    }
}

fn is_up(view: &View, id: u64) -> bool {
    view.get(&id).is_some_and(|m| m.up)
}

#[tokio::test]
async fn three_nodes_converge_through_one_seed() {
    init_tracing();
    let c1 = config(1, localhost(), vec![], 1);
    let n1 = start(c1.clone()).await;
    let c2 = config(2, localhost(), vec![n1.local_addr()], 1);
    let n2 = start(c2.clone()).await;
    let c3 = config(3, localhost(), vec![n1.local_addr()], 1);
    let n3 = start(c3.clone()).await;

    let members = [
        expected(&c1, n1.local_addr()),
        expected(&c2, n2.local_addr()),
        expected(&c3, n3.local_addr()),
    ];
    let mut receivers = [n1.members(), n2.members(), n3.members()];
    wait_all_equal("three nodes converge", &mut receivers, &members).await;

    for node in [n1, n2, n3] {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn own_address_in_seeds_and_a_seed_that_starts_later() {
    init_tracing();
    let a1 = reserve_addr();
    let a2 = reserve_addr();
    // Node 1 lists itself (ignored) and node 2, which is not running yet.
    let c1 = config(1, a1, vec![a1, a2], 1);
    let n1 = start(c1.clone()).await;
    let mut rx1 = n1.members();
    // Setup, not an assertion: let node 1 fail a few announce rounds first.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(*rx1.borrow(), BTreeMap::from([(1, expected(&c1, a1))]));

    // Node 2 has no seeds at all: only node 1's retries can bring them together.
    let c2 = config(2, a2, vec![], 1);
    let n2 = start(c2.clone()).await;
    let members = [expected(&c1, a1), expected(&c2, a2)];
    let took = wait_for("late seed found", &mut rx1, Duration::from_secs(5), |v| {
        is_up(v, 2)
    })
    .await;
    eprintln!("late seed found after {took:?}");
    wait_all_equal("late seed", &mut [n1.members(), n2.members()], &members).await;

    n1.shutdown().await;
    n2.shutdown().await;
}

/// Starts 1, 2, 3 (2 and 3 seed 1) and waits for convergence.
async fn converged_trio() -> (Vec<GossipConfig>, Vec<Gossip>) {
    let c1 = config(1, localhost(), vec![], 1);
    let n1 = start(c1.clone()).await;
    let c2 = config(2, localhost(), vec![n1.local_addr()], 1);
    let n2 = start(c2.clone()).await;
    let c3 = config(3, reserve_addr(), vec![n1.local_addr()], 1);
    let n3 = start(c3.clone()).await;
    let members = [
        expected(&c1, n1.local_addr()),
        expected(&c2, n2.local_addr()),
        expected(&c3, n3.local_addr()),
    ];
    wait_all_equal(
        "trio converges",
        &mut [n1.members(), n2.members(), n3.members()],
        &members,
    )
    .await;
    (vec![c1, c2, c3], vec![n1, n2, n3])
}

/// Node 3 at its old address with generation 2 (the old socket may take a moment to close).
async fn restart_node3(c3: &GossipConfig) -> Gossip {
    let deadline = Instant::now() + Duration::from_secs(5);
    let c3 = GossipConfig {
        generation: 2,
        ..c3.clone()
    };
    loop {
        match Gossip::start(c3.clone()).await {
            Ok(g) => return g,
            Err(e) if Instant::now() < deadline => {
                eprintln!("rebinding {}: {e}", c3.bind);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot rebind {}: {e}", c3.bind),
        }
    }
}

async fn check_down_then_restart(
    how: &str,
    configs: &[GossipConfig],
    survivors: Vec<Gossip>,
    down_within: Duration,
) {
    let mut rx1 = survivors[0].members();
    let mut rx2 = survivors[1].members();
    let mut took = Duration::ZERO;
    for rx in [&mut rx1, &mut rx2] {
        took = took.max(
            wait_for(how, rx, down_within, |v| {
                v.get(&3)
                    .is_some_and(|m| !m.up && m.gossip == configs[2].bind)
            })
            .await,
        );
    }
    eprintln!("{how}: node 3 marked down after {took:?}");
    // Down, but still listed with its last known addresses.
    let last = rx1.borrow()[&3].clone();
    assert_eq!(
        last,
        Member {
            up: false,
            ..expected(&configs[2], configs[2].bind)
        }
    );

    let n3 = restart_node3(&configs[2]).await;
    let restarted = GossipConfig {
        generation: 2,
        ..configs[2].clone()
    };
    let members = [
        expected(&configs[0], survivors[0].local_addr()),
        expected(&configs[1], survivors[1].local_addr()),
        expected(&restarted, n3.local_addr()),
    ];
    let started = Instant::now();
    wait_all_equal(
        "restarted node is up with its new generation",
        &mut [rx1, rx2, n3.members()],
        &members,
    )
    .await;
    eprintln!(
        "{how}: restarted node 3 up everywhere after {:?}",
        started.elapsed()
    );

    n3.shutdown().await;
    for node in survivors {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn shut_down_node_is_marked_down_and_restart_replaces_it() {
    init_tracing();
    let (configs, mut nodes) = converged_trio().await;
    let n3 = nodes.pop().unwrap();
    n3.shutdown().await; // leaves politely: peers learn it at once
    check_down_then_restart("shutdown", &configs, nodes, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn crashed_node_is_marked_down_and_restart_replaces_it() {
    init_tracing();
    let (configs, nodes) = {
        // Node 3 runs on its own runtime so that it can die without leaving: shutting that
        // runtime down drops its task (and socket) mid-flight, like a killed process.
        let c1 = config(1, localhost(), vec![], 1);
        let n1 = start(c1.clone()).await;
        let c2 = config(2, localhost(), vec![n1.local_addr()], 1);
        let n2 = start(c2.clone()).await;
        let c3 = config(3, reserve_addr(), vec![n1.local_addr()], 1);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let n3 = rt
            .spawn(Gossip::start(c3.clone()))
            .await
            .unwrap()
            .expect("start node 3");
        let members = [
            expected(&c1, n1.local_addr()),
            expected(&c2, n2.local_addr()),
            expected(&c3, n3.local_addr()),
        ];
        wait_all_equal(
            "trio converges",
            &mut [n1.members(), n2.members(), n3.members()],
            &members,
        )
        .await;
        rt.shutdown_background();
        drop(n3);
        (vec![c1, c2, c3], vec![n1, n2])
    };
    // Probe 500 ms + suspicion 1.5 s: about 3 s; allow slack for a loaded machine.
    check_down_then_restart("crash", &configs, nodes, Duration::from_secs(6)).await;
}

#[tokio::test]
async fn node_of_another_cluster_is_never_listed() {
    init_tracing();
    let a1 = reserve_addr();
    let a2 = reserve_addr();
    let c1 = config(1, a1, vec![a2], 1);
    let n1 = start(c1.clone()).await;
    // Node 2 belongs to another cluster but seeds node 1, and node 1 seeds it.
    let c2 = GossipConfig {
        cluster_name: "another-cluster".into(),
        ..config(2, a2, vec![a1], 1)
    };
    let n2 = start(c2.clone()).await;
    let c3 = config(3, localhost(), vec![a1], 1);
    let n3 = start(c3.clone()).await;

    let members = [expected(&c1, a1), expected(&c3, n3.local_addr())];
    wait_all_equal(
        "same-cluster nodes converge",
        &mut [n1.members(), n3.members()],
        &members,
    )
    .await;

    // Watch every change for a while (several announce rounds of node 2, which retries
    // every 500 ms while alone); none may list node 2, nor may node 2 list anyone.
    let window = Instant::now() + Duration::from_secs(2);
    let mut receivers = [n1.members(), n2.members(), n3.members()];
    loop {
        for (i, rx) in receivers.iter_mut().enumerate() {
            let view = rx.borrow_and_update();
            let ok = if i == 1 {
                view.keys().eq([2].iter())
            } else {
                !view.contains_key(&2)
            };
            assert!(ok, "node {} view {:?}", i + 1, *view);
        }
        let [r1, r2, r3] = &mut receivers;
        let changed = tokio::time::timeout_at(window, async {
            tokio::select! {
                r = r1.changed() => r,
                r = r2.changed() => r,
                r = r3.changed() => r,
            }
        })
        .await;
        match changed {
            Ok(r) => r.expect("gossip task alive"),
            Err(_) => break,
        }
    }

    for node in [n1, n2, n3] {
        node.shutdown().await;
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so the garbage is the same on every run.
struct Garbage(u64);

impl Garbage {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[tokio::test]
async fn garbage_datagrams_do_not_disturb_a_node() {
    init_tracing();
    let c1 = config(1, localhost(), vec![], 1);
    let n1 = start(c1.clone()).await;

    // A spy socket, listed as a seed by node 2, captures a real datagram (node 2 announces
    // to its seeds as soon as it starts).
    let spy = UdpSocket::bind(localhost()).await.unwrap();
    let c2 = config(
        2,
        localhost(),
        vec![spy.local_addr().unwrap(), n1.local_addr()],
        1,
    );
    let n2 = start(c2.clone()).await;
    let mut buf = vec![0u8; 65_536];
    let (len, _) = tokio::time::timeout(Duration::from_secs(5), spy.recv_from(&mut buf))
        .await
        .expect("node 2 announces to the spy")
        .unwrap();
    let real = buf[..len].to_vec();
    assert!(len <= MAX_DATAGRAM);

    let members = [
        expected(&c1, n1.local_addr()),
        expected(&c2, n2.local_addr()),
    ];
    wait_all_equal(
        "pair converges",
        &mut [n1.members(), n2.members()],
        &members,
    )
    .await;

    let mut garbage = Garbage(0x5eed_0f90_551b);
    let mut datagrams: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        real.clone(),                        // a replayed announce: harmless
        [real.as_slice(), &[0; 3]].concat(), // trailing bytes
        [real.as_slice(), &garbage.bytes(MAX_DATAGRAM)].concat(), // oversized
        garbage.bytes(MAX_DATAGRAM + 1),
        garbage.bytes(9000),
    ];
    for cut in 0..real.len() {
        datagrams.push(real[..cut].to_vec()); // every truncation
    }
    for _ in 0..300 {
        let mut flipped = real.clone();
        let at = garbage.next() as usize % flipped.len();
        flipped[at] ^= (garbage.next() as u8) | 1;
        datagrams.push(flipped);
        let len = garbage.next() as usize % (MAX_DATAGRAM + 200);
        datagrams.push(garbage.bytes(len));
    }
    let sender = UdpSocket::bind(localhost()).await.unwrap();
    for datagram in &datagrams {
        // Large datagrams may be refused by the OS; that is fine.
        let _ = sender.send_to(datagram, n1.local_addr()).await;
    }
    eprintln!("sent {} garbage datagrams", datagrams.len());

    // Node 1 still works: a new node joins through it and everyone converges.
    let c3 = config(3, localhost(), vec![n1.local_addr()], 1);
    let n3 = start(c3.clone()).await;
    let members = [
        expected(&c1, n1.local_addr()),
        expected(&c2, n2.local_addr()),
        expected(&c3, n3.local_addr()),
    ];
    wait_all_equal(
        "node 3 joins through the node that got garbage",
        &mut [n1.members(), n2.members(), n3.members()],
        &members,
    )
    .await;

    for node in [n1, n2, n3] {
        node.shutdown().await;
    }
}
