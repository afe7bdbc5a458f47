//! Gossip-based discovery of Strato nodes: SWIM (with suspicion) via the `foca` crate.
//!
//! # What gossip is for, and what it is not for
//!
//! Gossip answers two questions: *which Strato nodes exist and where do they listen* (service,
//! fabric and gossip addresses), and *which of them look alive right now*. It never decides
//! anything safety-related: a node marked down here is not removed from any Raft group, and a
//! node marked up is not added to one. Who votes is decided by the roster, through Raft
//! (design.md §6). Liveness from gossip is a hint that may only rank choices; a false "down"
//! (a long GC pause, a lost datagram burst) must never cost correctness.
//!
//! # How it works
//!
//! * Every node publishes a `NodeIdentity` through foca: node id, service and fabric address,
//!   the caller's restart `generation`, and a hash of the cluster name. Putting the addresses in
//!   the identity (rather than in custom broadcasts) means a member is never known without its
//!   addresses, and a restart (new generation) is a new identity that *wins the address
//!   conflict* against the old one, so peers replace the stale entry (`Rename`) at once.
//! * Every datagram starts with an 8-byte tag: FNV-1a-64 of the cluster name followed by the
//!   payload. One check drops datagrams of other clusters *and* corrupted ones (loopback UDP
//!   often carries no checksum, and a flipped bit that still decodes can wedge SWIM state, see
//!   the fuzz regressions below). It is a checksum, not authentication: gossip trusts its
//!   network. Garbage, truncated and oversized datagrams are dropped before foca sees them, or
//!   rejected by foca's decoder; nothing on this path may panic (fuzzed by a proptest).
//! * Seeds are announced to through *placeholder* identities (no node id), which always lose the
//!   address conflict against the real node living at that address. Every seed and every
//!   known node believed down is re-announced to, every [`SEED_RETRY_ALONE`] while we know no
//!   live member and every [`SEED_RETRY_CONNECTED`] once connected, so a seed that starts
//!   after us, a node started alone whose seeds are down, or a partition that heals, always
//!   finds the others eventually.
//! * Rejoining after being declared down (a pause, a false suspicion) is ours, not foca's
//!   auto-renew, which livelocks when the renewed identity still loses; see
//!   `Core::rejoin`. A node whose generation went backwards (wiped data directory) still
//!   rejoins: at its own address it outranks any stale identity (`lift`).
//! * foca pitfalls handled here, each found by the fuzz tests: a tie in
//!   `win_addr_conflict` flip-flops members (the order is made strict), two nodes that believe
//!   each other down answer `TurnUndead` with `TurnUndead` forever (throttled), and immediate
//!   auto-renew ping-pongs with a peer that prefers a stale identity (backed-off rejoin).
//! * The protocol state machine (`Core`) is synchronous and takes "now" as an argument: it
//!   owns foca, a timer queue and an outbox, and never touches a socket or a clock. The async
//!   driver only moves datagrams and timer deadlines between it and tokio. This keeps the logic
//!   deterministic (the RNG is seeded from node id + generation, timers use
//!   `tokio::time::Instant`) so it can later run under a deterministic network simulation, and
//!   it is what the unit tests drive with a virtual clock and an in-memory network.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use foca::{
    AccumulatingRuntime, Codec, Foca, NoCustomBroadcast, OwnedNotification, PeriodicParams,
    PostcardCodec, State, Timer,
};
use rand_0_10::rngs::SmallRng;
use rand_0_10::SeedableRng;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

/// Largest datagram we send or accept, tag included. 1400 bytes stays below the usual
/// 1500-byte Ethernet MTU with room for IP/UDP headers and tunnels (RFC 8085 guidance), so
/// gossip never relies on IP fragmentation.
pub const MAX_DATAGRAM: usize = 1400;

/// Length of the tag (cluster + checksum) that starts every datagram.
const TAG_LEN: usize = 8;

/// How often each node probes one random member. LAN-tuned: with suspicion below, a killed
/// node is declared down within about 3 s (probe selection ≤ one period per other member,
/// one period to fail the probe, then suspicion).
const PROBE_PERIOD: Duration = Duration::from_millis(500);

/// How long a direct ping may take before indirect probes are sent through other members.
/// Generous for loopback/LAN so that a busy machine does not cause needless suspicion.
const PROBE_RTT: Duration = Duration::from_millis(200);

/// A suspected member that does not refute suspicion within this time is declared down.
const SUSPECT_TO_DOWN: Duration = Duration::from_millis(1500);

/// Delay before the second rejoin attempt after the cluster declared us down (the first one is
/// immediate); doubles on every consecutive attempt up to [`REJOIN_BACKOFF_MAX`], so a rejoin
/// that keeps being refused costs a handful of datagrams, not a storm.
const REJOIN_BACKOFF_MIN: Duration = Duration::from_millis(100);
const REJOIN_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A rejoin this long after the previous one counts as a first attempt again.
const REJOIN_QUIET: Duration = Duration::from_secs(60);

/// Minimum interval between two `TurnUndead` messages to one destination (see
/// [`Core::throttled`]).
const TURN_UNDEAD_INTERVAL: Duration = Duration::from_secs(1);

/// How long foca remembers a down member. Our own member map never forgets (and keeps
/// announcing to down members), so this only bounds how long a stale identity that beats a
/// restarted node (its generation went backwards) can lock it out.
const REMOVE_DOWN_AFTER: Duration = Duration::from_secs(600);

/// Cluster size used to derive how many times each update is retransmitted.
const EXPECTED_CLUSTER_SIZE: u32 = 32;

/// Re-announce interval to seeds (and known-down members) while we know no live member.
pub const SEED_RETRY_ALONE: Duration = Duration::from_millis(500);

/// Re-announce interval to seeds (and known-down members) that are not live members once we
/// are connected: a seed that starts later than us, or a healed partition, is still found.
pub const SEED_RETRY_CONNECTED: Duration = Duration::from_secs(5);

/// Configuration of one gossip endpoint.
#[derive(Clone, Debug)]
pub struct GossipConfig {
    /// This node's id. Unique in the cluster.
    pub node_id: u64,
    /// Nodes of other clusters are ignored: it keys the tag of every datagram.
    pub cluster_name: String,
    /// The gossip (heartbeat) UDP address, service port + 2. Port 0 picks a free port; the
    /// bound address is what peers learn (so do not bind an unspecified IP in a real cluster:
    /// peers could not reach `0.0.0.0`).
    pub bind: SocketAddr,
    /// The client-facing address, published to peers.
    pub service: SocketAddr,
    /// The Raft RPC address, published to peers.
    pub fabric: SocketAddr,
    /// Other nodes' gossip addresses; our own address is ignored if present.
    pub seeds: Vec<SocketAddr>,
    /// Restart counter chosen by the caller (higher = newer incarnation). A restarted node
    /// should use a higher generation so that peers replace its old entry at once (a lower
    /// one still gets in, one refusal round later, with a warning).
    pub generation: u64,
}

/// One known node, as seen by the local gossip endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub node_id: u64,
    pub gossip: SocketAddr,
    pub service: SocketAddr,
    pub fabric: SocketAddr,
    pub generation: u64,
    /// Gossip's liveness opinion (alive or merely suspected). A hint only: never use it to
    /// decide votes, commits or reads.
    pub up: bool,
}

/// Handle to a running gossip endpoint. Dropping it makes the driver task leave the cluster
/// and stop in the background; [`Gossip::shutdown`] does the same and waits for it.
pub struct Gossip {
    local_addr: SocketAddr,
    members: watch::Receiver<BTreeMap<u64, Member>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for Gossip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gossip")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Gossip {
    /// Binds the UDP socket and spawns the driver task on the current tokio runtime.
    pub async fn start(config: GossipConfig) -> std::io::Result<Gossip> {
        let socket = UdpSocket::bind(config.bind).await?;
        let local_addr = socket.local_addr()?;
        let core = Core::new(&config, local_addr, Instant::now());
        let (members_tx, members_rx) = watch::channel(core.members().clone());
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let span = tracing::info_span!("gossip", node_id = config.node_id);
        span.in_scope(|| {
            tracing::info!(
                %local_addr,
                service = %config.service,
                fabric = %config.fabric,
                generation = config.generation,
                seeds = ?core.seeds,
                "gossip started"
            )
        });
        let task = tokio::spawn(drive(core, socket, shutdown_rx, members_tx).instrument(span));
        Ok(Gossip {
            local_addr,
            members: members_rx,
            shutdown: Some(shutdown_tx),
            task: Some(task),
        })
    }

    /// The bound gossip address (the one published to peers).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Every known node, including ourselves (always up). A node that went down stays in the
    /// map with up = false and its last known addresses.
    pub fn members(&self) -> watch::Receiver<BTreeMap<u64, Member>> {
        self.members.clone()
    }

    /// Leave the cluster politely and stop the task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// The driver: the only place with a socket and a clock. Order matters in `select!`: shutdown
/// first, then due timers (so a flood of datagrams cannot starve probing), then the socket.
async fn drive(
    mut core: Core,
    socket: UdpSocket,
    mut shutdown: oneshot::Receiver<()>,
    members: watch::Sender<BTreeMap<u64, Member>>,
) {
    // One spare byte so that an oversized datagram is seen as oversized, not silently truncated.
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        flush(&mut core, &socket).await;
        if let Some(map) = core.take_changed_members() {
            members.send_replace(map);
        }
        let deadline = core.next_deadline();
        tokio::select! {
            biased;
            // Resolves on an explicit shutdown and when the handle was dropped.
            _ = &mut shutdown => break,
            _ = sleep_until_opt(deadline) => core.fire_due(Instant::now()),
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, from)) => match core.handle_datagram(&buf[..len], Instant::now()) {
                    Ok(()) => {}
                    // Expected now and then (stale or duplicate messages, data from our own
                    // previous identity); garbage lands here too. Never worth more than trace.
                    Err(Dropped::Rejected(error)) => {
                        tracing::trace!(%from, len, %error, "foca rejected datagram")
                    }
                    Err(reason) => tracing::trace!(%from, len, ?reason, "dropped datagram"),
                },
                // Errors on an unconnected UDP socket (e.g. ICMP reports on some platforms)
                // are transient: log and keep going.
                Err(error) => tracing::debug!(%error, "recv_from failed"),
            },
        }
    }
    core.leave(Instant::now());
    flush(&mut core, &socket).await;
    if let Some(map) = core.take_changed_members() {
        members.send_replace(map);
    }
    tracing::info!("gossip stopped");
}

async fn flush(core: &mut Core, socket: &UdpSocket) {
    while let Some((to, datagram)) = core.pop_datagram() {
        if let Err(error) = socket.send_to(&datagram, to).await {
            tracing::debug!(%to, %error, "send_to failed");
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// FNV-1a, 64 bits, continuing from `state`: stable across Rust releases and platforms
/// (unlike `DefaultHasher`), so nodes built by different compilers agree on tags.
pub(crate) fn fnv1a(mut state: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        state ^= u64::from(byte);
        state = state.wrapping_mul(0x0000_0100_0000_01b3);
    }
    state
}

fn cluster_hash(name: &str) -> u64 {
    fnv1a(0xcbf2_9ce4_8422_2325, name.as_bytes())
}

/// Tag + payload: the datagram as sent.
fn seal(cluster: u64, payload: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(TAG_LEN + payload.len());
    datagram.extend_from_slice(&fnv1a(cluster, payload).to_be_bytes());
    datagram.extend_from_slice(payload);
    datagram
}

/// The payload of a datagram whose tag matches our cluster and its content.
fn unseal(cluster: u64, datagram: &[u8]) -> Option<&[u8]> {
    let (tag, payload) = datagram.split_first_chunk::<TAG_LEN>()?;
    (u64::from_be_bytes(*tag) == fnv1a(cluster, payload)).then_some(payload)
}

/// SplitMix64 finaliser: spreads node id and generation over the whole seed so that nodes
/// (and restarts of one node) get unrelated but reproducible random streams.
fn rng_seed(node_id: u64, generation: u64) -> u64 {
    let mut z = node_id
        .rotate_left(32)
        .wrapping_add(generation)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a node publishes about itself, carried in every foca message and membership update.
/// Fixed-size fields only: decoding untrusted bytes can never allocate much.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct NodeIdentity {
    /// foca's unique address: one member per gossip address.
    gossip: SocketAddr,
    /// Hash of the cluster name (defence in depth behind the datagram tag).
    cluster: u64,
    /// Raised by [`Core::rejoin`] only to outrank a stale identity *at our own address* that
    /// claims a newer generation (our generation went backwards, or corrupted/forged gossip).
    /// Whoever answers from an address holds its socket, so it is right for us to win there.
    /// Zero in normal life, so the caller's generation decides between restarts.
    lift: u64,
    /// Bumped by [`Core::rejoin`] when the cluster declared us down while we are alive; it
    /// beats our previous identity without touching the caller's generation.
    bump: u64,
    /// `None` for a seed placeholder (an address we announce to before knowing who is there).
    node: Option<Published>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Published {
    node_id: u64,
    generation: u64,
    service: SocketAddr,
    fabric: SocketAddr,
}

/// Total order of the real identities that may share an address: `(lift, generation, bump,
/// node_id)`. Normally the newer generation wins, then the rejoin bump; the node id is an
/// arbitrary but agreed tie-break for a misconfiguration.
type Rank = (u64, u64, u64, u64);

impl NodeIdentity {
    fn placeholder(gossip: SocketAddr, cluster: u64) -> Self {
        NodeIdentity {
            gossip,
            cluster,
            lift: 0,
            bump: 0,
            node: None,
        }
    }

    fn rank(&self) -> Option<Rank> {
        self.node
            .map(|node| (self.lift, node.generation, self.bump, node.node_id))
    }

    /// [`Self::rank`], then every other field: a strict total order on distinct identities.
    fn order_key(&self) -> Option<(Rank, u64, SocketAddr, SocketAddr)> {
        let node = self.node?;
        Some((self.rank()?, self.cluster, node.service, node.fabric))
    }
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(node) => write!(
                f,
                "n{}@{}/{}g{}.{}",
                node.node_id,
                self.gossip,
                if self.lift > 0 {
                    format!("^{}", self.lift)
                } else {
                    String::new()
                },
                node.generation,
                self.bump
            ),
            None => write!(f, "seed@{}", self.gossip),
        }
    }
}

impl foca::Identity for NodeIdentity {
    type Addr = SocketAddr;

    /// No foca auto-rejoin. foca renews *immediately* on every `TurnUndead`; when the renewed
    /// identity still loses (a peer remembers a higher-ranked identity at our address: a
    /// generation that went backwards, a corrupted or forged datagram), each renewal is
    /// answered by another `TurnUndead` and the two nodes ping-pong at network speed forever
    /// (found by the fuzz test). [`Core`] rejoins itself instead: with backoff, and with an
    /// identity that beats every identity it has heard of at its address.
    fn renew(&self) -> Option<Self> {
        None
    }

    fn addr(&self) -> SocketAddr {
        self.gossip
    }

    /// A real node always beats a placeholder at its address; between real identities the
    /// higher rank (newer generation) wins, which is how a restart replaces the old entry.
    ///
    /// The order must be strict and total over *distinct* identities: foca lets a conflicting
    /// update replace the known identity unless the known one wins, so a tie (say, the same
    /// generation republished with another fabric address, or a corrupted copy) would make
    /// each node keep whichever copy it heard last, flip-flopping forever. Hence the
    /// tie-break on the remaining fields.
    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        match (self.order_key(), adversary.order_key()) {
            (Some(mine), Some(theirs)) => mine > theirs,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

type FocaInstance = Foca<NodeIdentity, PostcardCodec, SmallRng, NoCustomBroadcast>;

/// foca configuration: memberlist's LAN profile, tightened for fast detection on a LAN.
fn foca_config() -> foca::Config {
    let size = NonZeroU32::new(EXPECTED_CLUSTER_SIZE).expect("non-zero");
    let mut config = foca::Config::new_lan(size);
    config.probe_period = PROBE_PERIOD;
    config.probe_rtt = PROBE_RTT;
    config.suspect_to_down_after = SUSPECT_TO_DOWN;
    config.remove_down_after = Some(REMOVE_DOWN_AFTER);
    // foca's limit applies to its own payload; the tag comes on top.
    config.max_packet_size = NonZeroUsize::new(MAX_DATAGRAM - TAG_LEN).expect("non-zero");
    // Ask a live member for its member list now and then: repairs missed updates.
    config.periodic_announce = Some(PeriodicParams {
        frequency: Duration::from_secs(5),
        num_members: NonZeroUsize::new(1).expect("non-zero"),
    });
    // Talk to members we consider down: heals partitions and finds restarted nodes.
    config.periodic_announce_to_down_members = Some(PeriodicParams {
        frequency: Duration::from_secs(5),
        num_members: NonZeroUsize::new(2).expect("non-zero"),
    });
    config
}

/// Why an incoming datagram was not used.
#[derive(Debug)]
enum Dropped {
    Oversized,
    /// The tag does not match: another cluster, corruption, truncation or random bytes.
    BadTag,
    /// foca rejected it (decode error, data from ourselves, ...). Parts of a packet may have
    /// been applied before the error; that is foca's normal tolerance.
    Rejected(foca::Error),
}

/// Something to do at a deadline.
enum Tick {
    Foca(Timer<NodeIdentity>),
    AnnounceSeeds,
    Rejoin,
}

struct Scheduled {
    at: Instant,
    /// Insertion order: timers with the same deadline fire in the order they were submitted
    /// (foca expects ordered delivery, caio/foca#26).
    seq: u64,
    tick: Tick,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The synchronous gossip state machine: foca plus timers, outbox and the member map.
/// Never reads a clock or touches a socket; every input carries "now".
struct Core {
    node_id: u64,
    cluster: u64,
    local_addr: SocketAddr,
    seeds: Vec<SocketAddr>,
    foca: FocaInstance,
    runtime: AccumulatingRuntime<NodeIdentity>,
    timers: BinaryHeap<Reverse<Scheduled>>,
    next_seq: u64,
    outbox: VecDeque<(SocketAddr, Vec<u8>)>,
    members: BTreeMap<u64, Member>,
    members_changed: bool,
    left: bool,
    /// A `Tick::Rejoin` is scheduled.
    rejoin_pending: bool,
    rejoin_backoff: Duration,
    last_rejoin: Option<Instant>,
    /// Highest-ranked identity at our address that peers addressed datagrams to: what a
    /// rejoin must beat. Peers talk to the identity they believe lives at our address, and foca
    /// drops datagrams for another identity without telling us, so we peek at the header.
    seen_at_our_address: Option<Rank>,
    /// When we last sent a `TurnUndead` to each address (see [`Core::throttled`]).
    turn_undead_sent: BTreeMap<SocketAddr, Instant>,
}

impl Core {
    fn new(config: &GossipConfig, local_addr: SocketAddr, now: Instant) -> Self {
        let cluster = cluster_hash(&config.cluster_name);
        let published = Published {
            node_id: config.node_id,
            generation: config.generation,
            service: config.service,
            fabric: config.fabric,
        };
        let identity = NodeIdentity {
            gossip: local_addr,
            cluster,
            lift: 0,
            bump: 0,
            node: Some(published),
        };
        let rng = SmallRng::seed_from_u64(rng_seed(config.node_id, config.generation));
        let foca = Foca::new(identity, foca_config(), rng, PostcardCodec);

        let mut seeds: Vec<SocketAddr> = Vec::new();
        for &seed in &config.seeds {
            if !is_own_address(seed, config.bind, local_addr) && !seeds.contains(&seed) {
                seeds.push(seed);
            }
        }

        let me = Member {
            node_id: config.node_id,
            gossip: local_addr,
            service: config.service,
            fabric: config.fabric,
            generation: config.generation,
            up: true,
        };
        let mut core = Core {
            node_id: config.node_id,
            cluster,
            local_addr,
            seeds,
            foca,
            runtime: AccumulatingRuntime::new(),
            timers: BinaryHeap::new(),
            next_seq: 0,
            outbox: VecDeque::new(),
            members: BTreeMap::from([(config.node_id, me)]),
            members_changed: false,
            left: false,
            rejoin_pending: false,
            rejoin_backoff: REJOIN_BACKOFF_MIN,
            last_rejoin: None,
            seen_at_our_address: None,
            turn_undead_sent: BTreeMap::new(),
        };
        core.schedule(now, Tick::AnnounceSeeds);
        core
    }

    fn members(&self) -> &BTreeMap<u64, Member> {
        &self.members
    }

    /// The member map, if it changed since the last call.
    fn take_changed_members(&mut self) -> Option<BTreeMap<u64, Member>> {
        if std::mem::take(&mut self.members_changed) {
            Some(self.members.clone())
        } else {
            None
        }
    }

    fn pop_datagram(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.outbox.pop_front()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse(s)| s.at)
    }

    fn schedule(&mut self, at: Instant, tick: Tick) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.timers.push(Reverse(Scheduled { at, seq, tick }));
    }

    /// Entry point for every received datagram: bytes from the network are untrusted.
    fn handle_datagram(&mut self, data: &[u8], now: Instant) -> Result<(), Dropped> {
        if self.left {
            return Ok(());
        }
        if data.len() > MAX_DATAGRAM {
            return Err(Dropped::Oversized);
        }
        let Some(payload) = unseal(self.cluster, data) else {
            return Err(Dropped::BadTag);
        };
        self.observe_destination(payload, now);
        let result = self.foca.handle_data(payload, &mut self.runtime);
        // Drain even on error: foca may have applied part of the packet first.
        self.drain(now);
        result.map_err(Dropped::Rejected)
    }

    /// Remember which identity the sender addressed at our address (`seen_at_our_address`).
    /// If it outranks ours, that peer prefers a stale identity of this address and will refuse
    /// us: rejoin above it now rather than after its next `TurnUndead`.
    fn observe_destination(&mut self, payload: &[u8], now: Instant) {
        let Ok(header) = Codec::<NodeIdentity>::decode_header(&mut PostcardCodec, payload) else {
            return;
        };
        if header.dst.gossip != self.local_addr {
            return;
        }
        let addressed = header.dst.rank();
        self.seen_at_our_address = self.seen_at_our_address.max(addressed);
        if addressed > self.foca.identity().rank() {
            tracing::debug!(addressed = ?header.dst, "peer addresses a stale identity that outranks ours");
            self.schedule_rejoin(now);
        }
    }

    /// Fire every timer that is due at `now`, in deadline order.
    fn fire_due(&mut self, now: Instant) {
        while self.timers.peek().is_some_and(|Reverse(s)| s.at <= now) {
            let Some(Reverse(scheduled)) = self.timers.pop() else {
                break;
            };
            if self.left {
                continue;
            }
            match scheduled.tick {
                Tick::Foca(timer) => {
                    if let Err(error) = self.foca.handle_timer(timer, &mut self.runtime) {
                        tracing::debug!(%error, "foca timer");
                    }
                }
                Tick::AnnounceSeeds => self.announce_seeds(now),
                Tick::Rejoin => self.rejoin(now),
            }
            self.drain(now);
        }
    }

    /// Announce to seeds and to members we believe down that are not live, and re-arm the
    /// timer: fast while we know no live member, slowly once connected.
    fn announce_seeds(&mut self, now: Instant) {
        let alone = self.foca.num_members() == 0;
        let live: BTreeSet<SocketAddr> = self.foca.iter_members().map(|m| m.id().gossip).collect();
        // Seeds, plus every node we know but believe down: a partition may have healed or a
        // down node may be back without having us as a seed. foca's own announce-to-down only
        // runs while connected and forgets members after `REMOVE_DOWN_AFTER`; our map does not.
        let down = self
            .members
            .values()
            .filter(|m| !m.up && m.node_id != self.node_id)
            .map(|m| m.gossip);
        let mut targets: Vec<SocketAddr> = Vec::new();
        for target in self.seeds.iter().copied().chain(down) {
            if !live.contains(&target) && target != self.local_addr && !targets.contains(&target) {
                targets.push(target);
            }
        }
        for target in targets {
            let placeholder = NodeIdentity::placeholder(target, self.cluster);
            if let Err(error) = self.foca.announce(placeholder, &mut self.runtime) {
                tracing::debug!(%target, %error, "announce failed");
            }
        }
        let every = if alone {
            SEED_RETRY_ALONE
        } else {
            SEED_RETRY_CONNECTED
        };
        self.schedule(now + every, Tick::AnnounceSeeds);
    }

    /// Rejoin at once the first time (like foca's auto-renew, so a false suspicion costs one
    /// round trip), then with a doubling backoff while rejoins keep being refused.
    fn schedule_rejoin(&mut self, now: Instant) {
        if self.rejoin_pending || self.left {
            return;
        }
        let quiet = self
            .last_rejoin
            .is_none_or(|at| now.saturating_duration_since(at) >= REJOIN_QUIET);
        if quiet {
            self.rejoin_backoff = REJOIN_BACKOFF_MIN;
            self.rejoin(now);
            return;
        }
        self.rejoin_pending = true;
        self.schedule(now + self.rejoin_backoff, Tick::Rejoin);
        self.rejoin_backoff = (self.rejoin_backoff * 2).min(REJOIN_BACKOFF_MAX);
    }

    /// Come back after being declared down (a pause, a partition, a false suspicion) with a
    /// new identity that beats every identity the cluster may still hold at our address: the
    /// same generation with a higher bump, or, if a stale identity claims a newer generation
    /// there, a higher lift.
    fn rejoin(&mut self, now: Instant) {
        self.rejoin_pending = false;
        self.last_rejoin = Some(now);
        let current = self.foca.identity().clone();
        let Some(ours) = current.rank() else {
            return;
        };
        let mut highest = self.seen_at_our_address;
        for member in self.foca.iter_membership_state() {
            if member.id().gossip == self.local_addr {
                highest = highest.max(member.id().rank());
            }
        }
        let (lift, bump) = match highest.filter(|&h| h > ours) {
            None => (Some(current.lift), current.bump.checked_add(1)),
            Some((lift, generation, bump, _)) if (lift, generation) == (ours.0, ours.1) => {
                (Some(current.lift), bump.checked_add(1))
            }
            Some((lift, generation, _, node_id)) => {
                tracing::warn!(
                    node_id,
                    generation,
                    ours = ours.1,
                    "peers know a newer generation at our address (our generation went \
                     backwards, or corrupted gossip); outranking it"
                );
                (lift.checked_add(1), current.bump.checked_add(1))
            }
        };
        let (Some(lift), Some(bump)) = (lift, bump) else {
            tracing::warn!("identity counters exhausted; cannot rejoin");
            return;
        };
        let renewed = NodeIdentity {
            lift,
            bump,
            ..current
        };
        tracing::info!(identity = ?renewed, "rejoining");
        if let Err(error) = self.foca.change_identity(renewed, &mut self.runtime) {
            tracing::debug!(%error, "change_identity");
        }
    }

    /// Leave the cluster: tell a few live members we are down, then stop reacting.
    fn leave(&mut self, now: Instant) {
        if self.left {
            return;
        }
        // Set first: leaving makes foca report us `Defunct`, which must not trigger a rejoin.
        self.left = true;
        if let Err(error) = self.foca.leave_cluster(&mut self.runtime) {
            tracing::debug!(%error, "leave_cluster");
        }
        self.drain(now);
        self.timers.clear();
    }

    /// Move everything foca produced into the outbox, the timer queue and the member map.
    fn drain(&mut self, now: Instant) {
        loop {
            while let Some((to, payload)) = self.runtime.to_send() {
                if self.throttled(to.gossip, &payload, now) {
                    continue;
                }
                self.outbox
                    .push_back((to.gossip, seal(self.cluster, &payload)));
            }
            while let Some((after, timer)) = self.runtime.to_schedule() {
                self.schedule(now + after, Tick::Foca(timer));
            }
            let mut notifications = Vec::new();
            while let Some(notification) = self.runtime.to_notify() {
                notifications.push(notification);
            }
            if notifications.is_empty() {
                return;
            }
            let mut membership_changed = false;
            for notification in notifications {
                match notification {
                    OwnedNotification::MemberUp(id) => {
                        tracing::info!(member = ?id, "member up");
                        membership_changed = true;
                    }
                    OwnedNotification::MemberDown(id) => {
                        tracing::info!(member = ?id, "member down");
                        membership_changed = true;
                    }
                    OwnedNotification::Rename(old, new) => {
                        tracing::info!(?old, ?new, "member replaced by a newer identity");
                        membership_changed = true;
                    }
                    OwnedNotification::Active => tracing::info!("joined the cluster"),
                    OwnedNotification::Idle => tracing::info!("no live member known"),
                    OwnedNotification::Defunct => {
                        tracing::info!("declared down by the cluster; will rejoin");
                        self.schedule_rejoin(now);
                    }
                    OwnedNotification::Rejoin(id) => {
                        tracing::info!(identity = ?id, "declared down by the cluster; rejoined")
                    }
                }
            }
            if membership_changed {
                self.refresh_members();
            }
            // A rejoin may have produced more output: go round again.
        }
    }

    /// At most one `TurnUndead` per destination per [`TURN_UNDEAD_INTERVAL`]. Two nodes that
    /// believe each other down answer each other's `TurnUndead` with another one, forever
    /// (foca replies `TurnUndead` to any message from a member it believes down, including a
    /// `TurnUndead`); found by the fuzz test. foca's immediate auto-renew used to end it after
    /// one round; with our own (backed-off) rejoin this limit does.
    fn throttled(&mut self, to: SocketAddr, payload: &[u8], now: Instant) -> bool {
        let Ok(header) = Codec::<NodeIdentity>::decode_header(&mut PostcardCodec, payload) else {
            return false;
        };
        if header.message != foca::Message::TurnUndead {
            return false;
        }
        if let Some(&at) = self.turn_undead_sent.get(&to) {
            if now.saturating_duration_since(at) < TURN_UNDEAD_INTERVAL {
                return true;
            }
        }
        if self.turn_undead_sent.len() >= 1024 {
            self.turn_undead_sent
                .retain(|_, at| now.saturating_duration_since(*at) < TURN_UNDEAD_INTERVAL);
        }
        self.turn_undead_sent.insert(to, now);
        false
    }

    /// Rebuild the member map from foca's full membership state. Deriving it from the state
    /// (rather than replaying notifications) keeps it right whatever the order of
    /// Rename/Up/Down, and lets a node id move to a new address. When several identities
    /// carry one node id (a restart on another address, a stale or forged entry), a live one
    /// wins over a down one, then the higher rank.
    fn refresh_members(&mut self) {
        let mut best: BTreeMap<u64, ((bool, Rank), Member)> = BTreeMap::new();
        for member in self.foca.iter_membership_state() {
            let id = member.id();
            let (Some(node), Some(rank)) = (id.node, id.rank()) else {
                continue;
            };
            // Our own entry is ours to write; old incarnations of us are not peers.
            if id.cluster != self.cluster
                || node.node_id == self.node_id
                || id.gossip == self.local_addr
            {
                continue;
            }
            let up = member.state() != State::Down;
            let candidate = Member {
                node_id: node.node_id,
                gossip: id.gossip,
                service: node.service,
                fabric: node.fabric,
                generation: node.generation,
                up,
            };
            let key = (up, rank);
            if best
                .get(&node.node_id)
                .is_none_or(|(known, _)| *known < key)
            {
                best.insert(node.node_id, (key, candidate));
            }
        }

        let mut next = self.members.clone();
        for (node_id, entry) in next.iter_mut() {
            if *node_id != self.node_id && !best.contains_key(node_id) {
                // Forgotten by foca: keep the last known addresses, but it is not up.
                entry.up = false;
            }
        }
        for (node_id, (_, member)) in best {
            next.insert(node_id, member);
        }
        if next != self.members {
            self.members = next;
            self.members_changed = true;
        }
    }
}

/// Whether `seed` designates this endpoint (configured or bound address, or loopback with
/// our port when bound to an unspecified IP).
fn is_own_address(seed: SocketAddr, bind: SocketAddr, local: SocketAddr) -> bool {
    seed == bind
        || seed == local
        || (local.ip().is_unspecified() && seed.port() == local.port() && seed.ip().is_loopback())
}

#[cfg(test)]
mod tests {
    //! Deterministic tests of the state machine: several [`Core`]s on an in-memory network
    //! with a virtual clock. No sockets, no sleeping; the same inputs give the same trace.

    use super::*;
    use proptest::prelude::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn config(node_id: u64, port: u16, seeds: &[u16], generation: u64) -> GossipConfig {
        GossipConfig {
            node_id,
            cluster_name: "test".into(),
            bind: addr(port),
            service: addr(port - 2),
            fabric: addr(port - 1),
            seeds: seeds.iter().map(|&p| addr(p)).collect(),
            generation,
        }
    }

    /// An in-memory network of cores keyed by gossip address, with a virtual clock.
    struct Sim {
        now: Instant,
        start: Instant,
        nodes: BTreeMap<SocketAddr, Core>,
        /// Every datagram delivered, per receiver (for the fuzz corpus).
        delivered: Vec<(SocketAddr, Vec<u8>)>,
    }

    impl Sim {
        fn new() -> Self {
            let now = Instant::now();
            Sim {
                now,
                start: now,
                nodes: BTreeMap::new(),
                delivered: Vec::new(),
            }
        }

        fn add(&mut self, config: GossipConfig) {
            let core = Core::new(&config, config.bind, self.now);
            self.nodes.insert(config.bind, core);
        }

        fn elapsed(&self) -> Duration {
            self.now - self.start
        }

        /// Deliver all pending datagrams (to live nodes only), until the network is quiet.
        fn deliver(&mut self) {
            for round in 0.. {
                assert!(
                    round < 1000,
                    "datagram storm: still delivering after 1000 rounds"
                );
                let mut in_flight = Vec::new();
                for core in self.nodes.values_mut() {
                    while let Some(datagram) = core.pop_datagram() {
                        in_flight.push(datagram);
                    }
                }
                if in_flight.is_empty() {
                    return;
                }
                for (to, datagram) in in_flight {
                    if let Some(core) = self.nodes.get_mut(&to) {
                        let _ = core.handle_datagram(&datagram, self.now);
                        self.delivered.push((to, datagram));
                    }
                }
            }
        }

        /// Advance the virtual clock to the next deadline and fire it.
        fn step(&mut self) {
            self.deliver();
            let next = self.nodes.values().filter_map(Core::next_deadline).min();
            if let Some(next) = next {
                self.now = self.now.max(next);
            }
            let now = self.now;
            for core in self.nodes.values_mut() {
                core.fire_due(now);
            }
            self.deliver();
        }

        /// Step until `done` holds; panics after `budget` of virtual time.
        fn run_until(&mut self, budget: Duration, mut done: impl FnMut(&Sim) -> bool) -> Duration {
            let deadline = self.now + budget;
            let started = self.now;
            while !done(self) {
                assert!(self.now < deadline, "condition not reached in {budget:?}");
                self.step();
            }
            self.now - started
        }

        fn run_for(&mut self, span: Duration) {
            let until = self.now + span;
            while self.now < until {
                self.step();
            }
        }

        fn view(&self, port: u16) -> &BTreeMap<u64, Member> {
            self.nodes[&addr(port)].members()
        }
    }

    fn all_up(view: &BTreeMap<u64, Member>, ids: &[u64]) -> bool {
        view.len() == ids.len() && ids.iter().all(|id| view.get(id).is_some_and(|m| m.up))
    }

    fn three_nodes() -> Sim {
        let mut sim = Sim::new();
        sim.add(config(1, 7002, &[], 1));
        sim.add(config(2, 7012, &[7002], 1));
        sim.add(config(3, 7022, &[7002], 1));
        sim
    }

    #[test]
    fn three_nodes_converge_with_addresses() {
        let mut sim = three_nodes();
        let took = sim.run_until(Duration::from_secs(5), |s| {
            [7002, 7012, 7022]
                .iter()
                .all(|&p| all_up(s.view(p), &[1, 2, 3]))
        });
        assert!(took <= Duration::from_secs(1), "took {took:?}");
        let view = sim.view(7022);
        assert_eq!(view[&2].service, addr(7010));
        assert_eq!(view[&2].fabric, addr(7011));
        assert_eq!(view[&2].gossip, addr(7012));
        assert_eq!(view[&1].generation, 1);
        assert_eq!(sim.view(7002), sim.view(7012));
        assert_eq!(sim.view(7002), sim.view(7022));
    }

    #[test]
    fn same_seed_same_trace() {
        fn trace() -> Vec<(Duration, Vec<(u64, bool)>)> {
            let mut sim = three_nodes();
            let mut out = Vec::new();
            for _ in 0..400 {
                sim.step();
                let view = sim.view(7002);
                out.push((
                    sim.elapsed(),
                    view.values().map(|m| (m.node_id, m.up)).collect(),
                ));
                if sim.elapsed() > Duration::from_secs(4) && sim.nodes.contains_key(&addr(7022)) {
                    sim.nodes.remove(&addr(7022));
                }
            }
            out
        }
        assert_eq!(trace(), trace());
    }

    #[test]
    fn crashed_node_is_down_within_three_seconds_and_restart_replaces_it() {
        let mut sim = three_nodes();
        sim.run_until(Duration::from_secs(5), |s| all_up(s.view(7002), &[1, 2, 3]));
        sim.run_for(Duration::from_secs(2));
        sim.nodes.remove(&addr(7022)); // crash: no leave
        let took = sim.run_until(Duration::from_secs(10), |s| {
            [7002, 7012].iter().all(|&p| !s.view(p)[&3].up)
        });
        assert!(took <= Duration::from_secs(3), "down after {took:?}");
        assert_eq!(sim.view(7002)[&3].service, addr(7020), "addresses kept");

        sim.add(config(3, 7022, &[7002], 2));
        let took = sim.run_until(Duration::from_secs(5), |s| {
            [7002, 7012, 7022].iter().all(|&p| {
                let view = s.view(p);
                all_up(view, &[1, 2, 3]) && view[&3].generation == 2
            })
        });
        assert!(took <= Duration::from_secs(1), "rejoin took {took:?}");
    }

    #[test]
    fn leaving_node_is_down_quickly() {
        let mut sim = three_nodes();
        sim.run_until(Duration::from_secs(5), |s| all_up(s.view(7002), &[1, 2, 3]));
        let now = sim.now;
        sim.nodes.get_mut(&addr(7022)).unwrap().leave(now);
        sim.deliver();
        sim.nodes.remove(&addr(7022));
        let took = sim.run_until(Duration::from_secs(5), |s| {
            [7002, 7012].iter().all(|&p| !s.view(p)[&3].up)
        });
        assert!(took <= Duration::from_millis(500), "down after {took:?}");
    }

    #[test]
    fn late_seed_and_own_address_in_seeds() {
        let mut sim = Sim::new();
        sim.add(config(1, 7002, &[7002, 7012], 1)); // lists itself and a node not started yet
        assert_eq!(sim.nodes[&addr(7002)].seeds, vec![addr(7012)]);
        sim.run_for(Duration::from_secs(3));
        assert!(all_up(sim.view(7002), &[1]));
        sim.add(config(2, 7012, &[], 1)); // no seeds: must be found by node 1's retries
        let took = sim.run_until(Duration::from_secs(5), |s| {
            all_up(s.view(7002), &[1, 2]) && all_up(s.view(7012), &[1, 2])
        });
        assert!(took <= SEED_RETRY_ALONE + Duration::from_millis(100));
    }

    #[test]
    fn other_cluster_is_ignored() {
        let mut sim = Sim::new();
        sim.add(config(1, 7002, &[7012], 1));
        let mut other = config(2, 7012, &[7002], 1);
        other.cluster_name = "another".into();
        sim.add(other);
        sim.run_for(Duration::from_secs(5));
        assert!(all_up(sim.view(7002), &[1]));
        assert!(all_up(sim.view(7012), &[2]));
    }

    #[test]
    fn placeholder_loses_and_newer_identities_win() {
        use foca::Identity;
        let real = NodeIdentity {
            gossip: addr(1),
            cluster: 1,
            lift: 0,
            bump: 0,
            node: Some(Published {
                node_id: 9,
                generation: 0,
                service: addr(2),
                fabric: addr(3),
            }),
        };
        let seed = NodeIdentity::placeholder(addr(1), 1);
        assert!(real.win_addr_conflict(&seed));
        assert!(!seed.win_addr_conflict(&real));
        assert!(
            real.renew().is_none(),
            "no foca auto-rejoin: Core rejoins with backoff"
        );
        let bumped = NodeIdentity {
            bump: 1,
            ..real.clone()
        };
        assert!(bumped.win_addr_conflict(&real));
        assert!(!real.win_addr_conflict(&bumped));
        let restarted = NodeIdentity {
            node: Some(Published {
                generation: 1,
                ..real.node.unwrap()
            }),
            ..real.clone()
        };
        assert!(restarted.win_addr_conflict(&bumped));
        let lifted = NodeIdentity {
            lift: 1,
            ..bumped.clone()
        };
        assert!(lifted.win_addr_conflict(&restarted));
        // Same rank, other fields differ: exactly one of the two wins.
        let moved = NodeIdentity {
            node: Some(Published {
                fabric: addr(4),
                ..real.node.unwrap()
            }),
            ..real.clone()
        };
        assert!(moved.win_addr_conflict(&real) != real.win_addr_conflict(&moved));
    }

    /// Regression (found by the fuzz test): a datagram claiming a newer identity of node 2 at
    /// node 2's address made node 1 refuse node 2; with foca's immediate auto-renew the two
    /// ping-ponged TurnUndead/renew forever. Now node 2 rejoins with backoff, above the forged
    /// bump it sees peers addressing.
    #[test]
    fn forged_newer_identity_causes_no_storm_and_the_victim_rejoins() {
        let mut sim = Sim::new();
        sim.add(config(1, 7002, &[], 1));
        sim.add(config(2, 7012, &[7002], 1));
        sim.run_until(Duration::from_secs(3), |s| all_up(s.view(7002), &[1, 2]));
        let mut forged = sim.nodes[&addr(7012)].foca.identity().clone();
        forged.bump = 1000;
        let header = foca::Header {
            src: forged,
            src_incarnation: 0,
            dst: sim.nodes[&addr(7002)].foca.identity().clone(),
            message: foca::Message::Gossip,
        };
        let mut payload = Vec::new();
        Codec::<NodeIdentity>::encode_header(&mut PostcardCodec, &header, &mut payload).unwrap();
        let datagram = seal(cluster_hash("test"), &payload);
        let now = sim.now;
        let node1 = sim.nodes.get_mut(&addr(7002)).unwrap();
        node1.handle_datagram(&datagram, now).unwrap();
        // `deliver` asserts that no exchange loops at a single instant (a storm).
        sim.run_until(Duration::from_secs(20), |s| {
            s.nodes[&addr(7012)].foca.identity().bump > 1000
                && all_up(s.view(7002), &[1, 2])
                && all_up(s.view(7012), &[1, 2])
        });
    }

    /// A node restarted with a *lower* generation (say its data directory was wiped) is
    /// refused by peers that remember the newer one at its address; it outranks that stale
    /// identity (lift) instead of being locked out.
    #[test]
    fn generation_that_went_backwards_still_rejoins() {
        let mut sim = Sim::new();
        sim.add(config(1, 7002, &[], 1));
        sim.add(config(2, 7012, &[7002], 5));
        sim.run_until(Duration::from_secs(3), |s| all_up(s.view(7002), &[1, 2]));
        sim.nodes.remove(&addr(7012));
        sim.add(config(2, 7012, &[7002], 2));
        let took = sim.run_until(Duration::from_secs(20), |s| {
            [7002, 7012].iter().all(|&p| {
                let view = s.view(p);
                all_up(view, &[1, 2]) && view[&2].generation == 2
            })
        });
        assert!(took <= Duration::from_secs(3), "rejoin took {took:?}");
        assert_eq!(sim.nodes[&addr(7012)].foca.identity().lift, 1);
    }

    #[test]
    fn oversized_foreign_and_corrupted_datagrams_are_dropped() {
        let mut sim = three_nodes();
        sim.run_until(Duration::from_secs(3), |s| all_up(s.view(7002), &[1, 2, 3]));
        let now = sim.now;
        let core = sim.nodes.get_mut(&addr(7002)).unwrap();
        let big = seal(cluster_hash("test"), &[0u8; MAX_DATAGRAM]);
        assert!(matches!(
            core.handle_datagram(&big, now),
            Err(Dropped::Oversized)
        ));
        for short in [&[][..], &[1, 2, 3], &[0; TAG_LEN]] {
            assert!(matches!(
                core.handle_datagram(short, now),
                Err(Dropped::BadTag)
            ));
        }
        let payload = CORPUS.with(|c| c[0].clone());
        let valid = seal(cluster_hash("test"), &payload);
        let foreign = seal(cluster_hash("other"), &payload);
        assert!(matches!(
            core.handle_datagram(&foreign, now),
            Err(Dropped::BadTag)
        ));
        let mut flipped = valid.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            core.handle_datagram(&flipped, now),
            Err(Dropped::BadTag)
        ));
    }

    /// Payloads of the datagrams a converged two-node cluster delivered to node 1: the seed of
    /// the structured fuzz cases.
    fn corpus() -> Vec<Vec<u8>> {
        let mut sim = Sim::new();
        sim.add(config(1, 7002, &[], 1));
        sim.add(config(2, 7012, &[7002], 1));
        sim.run_for(Duration::from_secs(3));
        let cluster = cluster_hash("test");
        sim.delivered
            .into_iter()
            .filter(|(to, _)| *to == addr(7002))
            .map(|(_, d)| unseal(cluster, &d).expect("valid").to_vec())
            .collect()
    }

    thread_local!(static CORPUS: Vec<Vec<u8>> = corpus());

    /// A payload: random bytes, or a real one truncated, bit-flipped or extended.
    #[derive(Debug, Clone)]
    enum Mutation {
        Random(Vec<u8>),
        Truncated(usize, usize),
        Flipped(usize, Vec<(usize, u8)>),
        Extended(usize, Vec<u8>),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..1500).prop_map(Mutation::Random),
            (any::<usize>(), any::<usize>()).prop_map(|(i, n)| Mutation::Truncated(i, n)),
            (
                any::<usize>(),
                proptest::collection::vec((any::<usize>(), 1..=255u8), 1..8)
            )
                .prop_map(|(i, f)| Mutation::Flipped(i, f)),
            (
                any::<usize>(),
                proptest::collection::vec(any::<u8>(), 1..64)
            )
                .prop_map(|(i, e)| Mutation::Extended(i, e)),
        ]
    }

    /// Returns the original payload (if any) and the mutated one.
    fn apply(mutation: &Mutation) -> (Option<Vec<u8>>, Vec<u8>) {
        let pick = |i: usize| CORPUS.with(|c| c[i % c.len()].clone());
        match mutation {
            Mutation::Random(bytes) => (None, bytes.clone()),
            Mutation::Truncated(i, n) => {
                let original = pick(*i);
                let mut d = original.clone();
                d.truncate(n % original.len().max(1));
                (Some(original), d)
            }
            Mutation::Flipped(i, flips) => {
                let original = pick(*i);
                let mut d = original.clone();
                for (pos, xor) in flips {
                    let pos = pos % d.len();
                    d[pos] ^= xor;
                }
                (Some(original), d)
            }
            Mutation::Extended(i, extra) => {
                let original = pick(*i);
                let d = [original.as_slice(), extra].concat();
                (Some(original), d)
            }
        }
    }

    fn converged_pair() -> Sim {
        let mut sim = Sim::new();
        sim.add(config(1, 7002, &[], 1));
        sim.add(config(2, 7012, &[7002], 1));
        sim.run_until(Duration::from_secs(3), |s| all_up(s.view(7002), &[1, 2]));
        sim
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// Garbage and corrupted datagrams (random bytes, real datagrams truncated, bit-flipped
        /// or extended, keeping their now-wrong tag) are all dropped, and change nothing.
        #[test]
        fn fuzz_corrupted_datagrams_are_dropped(
            raw in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1600), 0..8),
            mutations in proptest::collection::vec(mutation(), 0..16),
        ) {
            let mut sim = converged_pair();
            let cluster = cluster_hash("test");
            let mut datagrams = raw;
            for m in &mutations {
                // The mutated payload behind the original's tag (random bytes get the tag of
                // an empty payload).
                let (original, mutated) = apply(m);
                let mut datagram = seal(cluster, original.as_deref().unwrap_or_default());
                datagram.truncate(TAG_LEN);
                datagram.extend_from_slice(&mutated);
                datagrams.push(datagram);
            }
            // A mutation that happens to produce a valid datagram (a no-op) is not corruption.
            datagrams.retain(|d| unseal(cluster, d).is_none());
            for datagram in &datagrams {
                let now = sim.now;
                let core = sim.nodes.get_mut(&addr(7002)).unwrap();
                let result = core.handle_datagram(datagram, now);
                prop_assert!(
                    matches!(result, Err(Dropped::BadTag | Dropped::Oversized)),
                    "accepted {:?}", result
                );
                sim.step();
            }
            sim.add(config(3, 7022, &[7002], 1));
            sim.run_until(Duration::from_secs(3), |s| {
                [7002, 7012, 7022].iter().all(|&p| all_up(s.view(p), &[1, 2, 3]))
            });
        }

        /// Well-tagged nonsense reaches foca's decoder (as if sent by a buggy or hostile peer):
        /// it never panics, never starts a datagram storm (`Sim::deliver` asserts that), and
        /// whatever identities it forged, the real nodes (plus one that joins afterwards) end
        /// up all seeing each other up.
        #[test]
        fn fuzz_well_tagged_garbage_reaches_foca_safely(
            mutations in proptest::collection::vec(mutation(), 1..24),
        ) {
            let mut sim = converged_pair();
            let cluster = cluster_hash("test");
            for m in &mutations {
                let (_, payload) = apply(m);
                let datagram = seal(cluster, &payload);
                let now = sim.now;
                let core = sim.nodes.get_mut(&addr(7002)).unwrap();
                let _ = core.handle_datagram(&datagram, now);
                prop_assert!(core.members()[&1].up);
                sim.step();
            }
            sim.add(config(3, 7022, &[7002], 1));
            sim.run_until(Duration::from_secs(60), |s| {
                [7002, 7012, 7022].iter().all(|&p| {
                    let view = s.view(p);
                    [1, 2, 3].iter().all(|id| view.get(id).is_some_and(|m| m.up))
                })
            });
        }
    }
}
