//! The Raft groups hosted on one node: creation, inbound RPC dispatch, and the write and
//! linearizable-read paths the request handler uses.

use crate::clock::NodeInstant;
use crate::config::RaftConfig;
use crate::error::{ReadError, WriteError};
use crate::liveness::{Change, Liveness};
use crate::log_store::GroupLogStore;
use crate::network::{vote_held_back, NetworkFactory};
use crate::read_index::{
    confirms, plan, Confirmer, LeaderId, LeaderView, ReadPlan, Tally, VoteCell,
};
use crate::rpc::{decode_request, encode_reply, RaftReply, RaftRequest};
use crate::sleep::{self, SleepCell, WriteGate, CAMPAIGN_HOLD, CAMPAIGN_SLOTS};
use crate::state_machine::{
    GroupData, GroupStateMachine, SharedApplied, SharedCatalog, SharedRecords,
};
use crate::transport::Transport;
use crate::types::{decode, GroupId, Metrics, NodeId, Raft, Snapshot, SnapshotMeta, Vote};
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::raft::linearizable_read::LinearizerOption;
use openraft::raft::AppendEntriesResponse;
use openraft::Instant as _;
use openraft::ReadPolicy;
use openraft::ServerState;
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use storage::command::{Command, Outcome};
use storage::log_store::LogStore;
use storage::record_store::RecordStore;
use storage::snapshot_file::SnapshotFiles;
use tracing::Instrument;

/// A leader's view of its lease in one group, as a write or membership change needs it.
struct LeaseView {
    /// Acknowledged by a quorum within half a lease.
    fresh: bool,
    /// When a quorum last acknowledged this leader.
    acked: Option<NodeInstant>,
    /// The group's voters, and (counted only when the lease is stale) how many of them
    /// liveness takes for alive.
    voters: usize,
    voters_alive: usize,
}

/// Whether `n` is one of the voters of the membership `m` shows (a scan of a few ids, no
/// allocation: the supervisor asks it of every group it looks at).
pub(crate) fn is_voter(m: &Metrics, n: NodeId) -> bool {
    m.membership_config.membership().voter_ids().any(|v| v == n)
}

/// A group's openraft instance: running, or stopped while idle (`crate::evict`).
pub(crate) enum Instance {
    Running(Arc<Raft>),
    /// Stopped while idle. Its metrics as they last were stand in for it: the periodic tasks
    /// look at every group, and nothing changes an idle group's state without restarting
    /// its instance first.
    Evicted {
        metrics: Box<Metrics>,
        /// Its log was synced after it stopped: nothing it sent a follower is missing from
        /// its own disk, so it may restart as the leader it was (`RaftConfig::to_openraft`).
        synced: bool,
    },
}

/// One hosted group.
pub struct Group {
    pub id: GroupId,
    pub records: SharedRecords,
    /// What the group's log builds, and where its state machine stands: kept here, so an
    /// evicted instance restarts without replaying anything.
    pub(crate) data: GroupData,
    pub(crate) applied: SharedApplied,
    pub(crate) instance: std::sync::Mutex<Instance>,
    /// Held while the instance is evicted or started again.
    pub(crate) restarting: Arc<tokio::sync::Mutex<()>>,
    /// When the instance was last handed out, or its commit index last seen to move (ms on
    /// the node's clock).
    pub(crate) used_ms: AtomicU64,
    /// The commit index the supervisor last saw (plus one; 0: none).
    committed_seen: AtomicU64,
    /// The group was removed from this node (`MultiRaft::remove_group`): its instance is
    /// never started again.
    pub(crate) removed: std::sync::atomic::AtomicBool,
    /// The vote this node last stored for the group (answers peers' confirmation requests).
    pub(crate) vote: Arc<VoteCell>,
    /// Held while a snapshot chunk is stored or a received snapshot installed: transfers of
    /// one group share a file, so they never interleave.
    receiving: tokio::sync::Mutex<()>,
    /// The group's timers and campaigns here (`crate::sleep`).
    pub(crate) sleep: SleepCell,
    /// The metadata group never sleeps: it is one group, and every node follows it.
    pub(crate) is_catalog: bool,
}

impl Group {
    pub(crate) fn slot(&self) -> std::sync::MutexGuard<'_, Instance> {
        // The slot is replaced whole under its lock: a panic elsewhere leaves it consistent.
        self.instance.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `f` of the group's metrics: the running instance's, or those it had when evicted.
    pub fn metrics<T>(&self, f: impl FnOnce(&Metrics) -> T) -> T {
        match &*self.slot() {
            Instance::Running(r) => f(&r.metrics().borrow_watched()),
            Instance::Evicted { metrics, .. } => f(metrics),
        }
    }

    /// The running instance, if the group is not evicted (not counted as a use).
    pub(crate) fn running(&self) -> Option<Arc<Raft>> {
        match &*self.slot() {
            Instance::Running(r) => Some(r.clone()),
            Instance::Evicted { .. } => None,
        }
    }

    /// Note the commit index `m` shows at `now_ms`: a move counts as a use (`crate::evict`).
    pub(crate) fn note_commit(&self, m: &Metrics, now_ms: u64) {
        let committed = m.local_committed.as_ref().map_or(0, |l| l.index + 1);
        if self.committed_seen.swap(committed, Ordering::Relaxed) != committed {
            self.used_ms.store(now_ms, Ordering::Relaxed);
        }
    }

    /// How long before `now_ms` the instance was last used (`used_ms`).
    pub(crate) fn unused(&self, now_ms: u64) -> Duration {
        Duration::from_millis(now_ms.saturating_sub(self.used_ms.load(Ordering::Relaxed)))
    }

    /// Whether the group's instance is stopped while it is idle.
    pub fn is_evicted(&self) -> bool {
        matches!(&*self.slot(), Instance::Evicted { .. })
    }
}

/// A group's state as the info commands report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStatus {
    pub leader: Option<NodeId>,
    pub term: u64,
    pub voters: BTreeSet<NodeId>,
    pub last_applied: Option<u64>,
}

/// How a read confirms that this node still leads its group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadConfirm {
    /// ReadIndex: a heartbeat round acknowledged by a quorum after the read arrived.
    #[default]
    Quorum,
    /// Leader lease: a quorum acknowledgement younger than [`RaftConfig::lease_read_age`],
    /// else a heartbeat round as for `Quorum`. Linearizable only while clock rates stay
    /// within [`crate::config::LEASE_CLOCK_RATIO`] of each other.
    Lease,
}

/// What the sleeping groups cost and did (`crate::sleep`), for `statistics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SleepFigures {
    /// Groups whose timers run (campaigning, or just elected).
    pub awake: u64,
    /// Heartbeat rounds sent to renew a lapsed leader lease before a write.
    pub lease_renewals: u64,
    /// Elections this node started: new groups' first ones, and campaigns for groups whose
    /// leader is gone.
    pub campaigns: u64,
    /// Groups whose openraft instance is stopped while they are idle (`crate::evict`), and
    /// how many times an instance was stopped and started again since the node started.
    pub evicted: u64,
    pub evictions: u64,
    pub restarts: u64,
}

/// How this node's linearizable reads were confirmed, for `statistics`.
#[derive(Default)]
struct ReadCounts {
    by_peers: AtomicU64,
    by_raft: AtomicU64,
}

/// [`ReadCounts`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadFigures {
    /// Confirmed by per-peer rounds (`crate::read_index`).
    pub by_peers: u64,
    /// Confirmed by openraft: its heartbeat round (the fallback) or a lease.
    pub by_raft: u64,
}

/// A node's Raft groups.
///
/// Invariant: a node neither grants a vote nor asks for one within one leader lease of
/// starting, except in a leadership transfer (whose leader stopped serving reads when it
/// asked for it, and which openraft accepts only from the voter's current leader). openraft
/// keeps a follower's lease (no vote for another candidate while a
/// leader's heartbeat is younger than a lease) in memory only, so a node restarted within
/// that window would otherwise vote at once and let a second leader rise while the first
/// still serves lease reads.
pub struct MultiRaft {
    node_id: NodeId,
    /// Vote and pre-vote requests are refused and not sent before this instant.
    votes_from: NodeInstant,
    pub(crate) config: RaftConfig,
    pub(crate) log: Arc<dyn LogStore>,
    snapshots: Arc<SnapshotFiles>,
    pub(crate) transport: Arc<dyn Transport>,
    /// Confirms leadership for ReadIndex reads in one round per peer (`crate::read_index`).
    confirmer: Confirmer,
    reads: ReadCounts,
    lease_renewals: AtomicU64,
    campaigns: AtomicU64,
    /// Instances stopped while idle, and started again (`crate::evict`).
    pub(crate) evictions: AtomicU64,
    pub(crate) restarts: AtomicU64,
    /// An eviction pass runs (one at a time).
    pub(crate) evicting: std::sync::atomic::AtomicBool,
    /// This node hosts the groups it should (`MultiRaft::serving_its_groups`): until then it
    /// neither pings its peers nor answers their pings, so they take it for returned (and
    /// send their groups' leaders' heartbeats and missing entries) only once it can take
    /// them. A restarted node opening thousands of groups otherwise got those heartbeats
    /// before its groups existed, and its followers never learned what had been committed.
    pub(crate) serving: std::sync::atomic::AtomicBool,
    /// What the groups' in-memory log tails may keep together (`crate::log_tail`).
    tail_budget: Arc<crate::log_tail::TailBudget>,
    /// Admission of campaigns (`crate::sleep::CAMPAIGN_SLOTS`).
    campaign_slots: tokio::sync::Semaphore,
    groups: RwLock<HashMap<GroupId, Arc<Group>>>,
    /// What this node knows of its peers' liveness (`crate::liveness`).
    pub(crate) liveness: Arc<Liveness>,
    /// Differs at every start of the node, so peers notice a restart they did not see as
    /// a silence.
    pub(crate) incarnation: u64,
    /// One lock per group id, serializing its creation and removal: two callers never build
    /// the same group twice, while different groups open side by side (a restarting node
    /// loads every group's snapshot and replays its log in parallel).
    creating: std::sync::Mutex<HashMap<GroupId, Arc<tokio::sync::Mutex<()>>>>,
}

/// Heartbeat rounds towards a returned peer (`MultiRaft::heartbeat_led_with`), and how long
/// each waits for the acknowledgements.
const RETURN_ROUNDS: usize = 5;
const RETURN_ROUND_WAIT: Duration = Duration::from_millis(500);

fn lock_err() -> io::Error {
    io::Error::other("group registry lock poisoned")
}

impl MultiRaft {
    pub fn new(
        node_id: NodeId,
        config: &RaftConfig,
        log: Arc<dyn LogStore>,
        snapshots: Arc<SnapshotFiles>,
        transport: Arc<dyn Transport>,
    ) -> io::Result<MultiRaft> {
        // Refuse a bad configuration at start-up, not when the first group opens.
        config
            .to_openraft(0, false, false)
            .map_err(io::Error::other)?;
        let config = config.clone();
        Ok(MultiRaft {
            node_id,
            votes_from: NodeInstant::now() + config.leader_lease(),
            confirmer: Confirmer::new(transport.clone(), config.leader_lease()),
            reads: ReadCounts::default(),
            lease_renewals: AtomicU64::new(0),
            campaigns: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            evicting: Default::default(),
            serving: Default::default(),
            campaign_slots: tokio::sync::Semaphore::new(CAMPAIGN_SLOTS),
            tail_budget: Arc::default(),
            config,
            log,
            snapshots,
            transport,
            groups: RwLock::new(HashMap::new()),
            liveness: Arc::new(Liveness::new(tokio::time::Instant::now())),
            incarnation: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
            creating: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// This node's store holds no group at all: it never granted a vote, so it promised no
    /// leader a lease, and it may vote at once instead of one lease after starting (the
    /// invariant above). A cluster's first elections then succeed at the first try. A wiped
    /// data directory looks the same, which is why a node must never rejoin under its old
    /// identity with an empty disk.
    pub fn never_voted(&mut self) {
        self.votes_from = NodeInstant::now();
        self.serving_its_groups();
    }

    /// This node has opened the groups it hosts (its store held none, or the catalog
    /// follower opened every group the catalog gives it): it pings its peers and answers
    /// their pings from now on.
    pub fn serving_its_groups(&self) {
        if !self.serving.swap(true, Ordering::AcqRel) {
            tracing::info!(
                node = self.node_id,
                "hosting its groups: answering peers' pings"
            );
        }
    }

    /// Whether [`MultiRaft::serving_its_groups`] was called.
    pub(crate) fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// openraft's leader lease (a follower refuses votes this long after hearing its leader).
    pub(crate) fn leader_lease(&self) -> Duration {
        self.config.leader_lease()
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Milliseconds since this node started (the clock of liveness and sleep).
    pub(crate) fn now_ms(&self) -> u64 {
        self.liveness.now_ms()
    }

    /// Whether this node takes `peer` for alive (`crate::liveness`; this node always is).
    pub fn is_alive(&self, peer: NodeId) -> bool {
        peer == self.node_id || self.liveness.is_alive(peer, self.now_ms())
    }

    /// Switch the timers of `g` (running as `raft`) on (it campaigns: openraft retries a
    /// failed election).
    pub(crate) fn wake(&self, g: &Group, raft: &Raft) {
        if g.sleep.wake() {
            raft.runtime_config().tick(true);
            tracing::debug!(node = self.node_id, group = g.id, "group woke");
        }
    }

    /// Campaign for `g` once a campaign slot is free, and hold the slot until the group has
    /// a leader (this node or another) or [`CAMPAIGN_HOLD`] passed. Does nothing if a
    /// campaign for `g` is already queued or running here, or if the group got a live
    /// leader while this one waited. `pre_vote` is false only for a new group's first
    /// election, where no leader can be disturbed. True when the group has a live leader at
    /// the end.
    pub(crate) async fn campaign(&self, g: &Group, pre_vote: bool) -> bool {
        if !g.sleep.start_campaign() {
            return false;
        }
        let led = self.campaign_in_slot(g, pre_vote).await;
        g.sleep.end_campaign();
        led
    }

    async fn campaign_in_slot(&self, g: &Group, pre_vote: bool) -> bool {
        let Ok(_slot) = self.campaign_slots.acquire().await else {
            return false;
        };
        // As the supervisor counts a leader: a leader removed from the group's voters is
        // none, or the campaign would end as soon as it started; this node counts only once
        // it has taken office.
        let has_live_leader = |m: &Metrics| {
            m.current_leader.is_some_and(|l| {
                let me = l == self.node_id;
                sleep::leader_counts(
                    me && m.state == ServerState::Leader,
                    !me && self.is_alive(l),
                    is_voter(m, l),
                    true,
                )
            })
        };
        if g.metrics(has_live_leader) {
            return true;
        }
        let Ok(raft) = self.instance(g).await else {
            return false;
        };
        self.campaigns.fetch_add(1, Ordering::Relaxed);
        self.wake(g, &raft);
        if raft.trigger().elect(pre_vote).await.is_err() {
            return false;
        }
        raft.wait(Some(CAMPAIGN_HOLD))
            .metrics(|m| has_live_leader(m), "group has a leader")
            .await
            .is_ok()
    }

    /// Switch a group's timers off (it has a live leader).
    pub(crate) fn sleep(&self, g: &Group) {
        if g.sleep.sleep() {
            // An evicted instance runs no timers either.
            if let Some(raft) = g.running() {
                raft.runtime_config().tick(false);
            }
            tracing::debug!(node = self.node_id, group = g.id, "group asleep");
        }
    }

    /// Every other node in the membership of a hosted group: the peers liveness watches.
    pub(crate) fn peers(&self) -> BTreeSet<NodeId> {
        let mut peers = BTreeSet::new();
        for g in self.groups() {
            g.metrics(|m| {
                peers.extend(
                    m.membership_config
                        .membership()
                        .nodes()
                        .map(|(n, _)| *n)
                        .filter(|n| *n != self.node_id),
                )
            });
        }
        peers
    }

    /// Before a membership change on `g`: if this node leads it on a leader lease that
    /// lapsed (no heartbeats run while a group sleeps, and openraft refuses membership
    /// changes on a stale lease), renew the lease with one heartbeat round, waiting at most
    /// until `deadline`.
    async fn awake_for_write(&self, raft: &Raft, deadline: tokio::time::Instant) {
        if let Some(lease) = self.lease_of(raft) {
            if !lease.fresh {
                self.renew_lease(raft, lease.acked, deadline).await;
            }
        }
    }

    /// Before a write on `g` ([`sleep::write_gate`]): whether to propose it. False when this
    /// node leads `g` on a stale lease without a live quorum and no heartbeat round renewed
    /// the lease by `deadline`: the write is refused before anything was appended.
    async fn ready_for_write(&self, raft: &Raft, deadline: tokio::time::Instant) -> bool {
        let Some(lease) = self.lease_of(raft) else {
            return true;
        };
        match sleep::write_gate(lease.fresh, lease.voters, lease.voters_alive) {
            WriteGate::Propose => true,
            WriteGate::RenewLease => self.renew_lease(raft, lease.acked, deadline).await,
        }
    }

    /// The lease of `g` if this node leads it with other voters (a single voter is its own
    /// quorum: no lease to renew).
    fn lease_of(&self, raft: &Raft) -> Option<LeaseView> {
        let m = raft.metrics();
        let m = m.borrow_watched();
        if m.state != ServerState::Leader {
            return None;
        }
        let acked = m.last_quorum_acked.as_ref().map(|i| **i);
        // Half a lease of margin: the write itself takes a moment.
        let fresh = acked.is_some_and(|t| NodeInstant::now() - t < self.config.leader_lease() / 2);
        let (mut voters, mut voters_alive) = (0, 0);
        for v in m.membership_config.membership().voter_ids() {
            voters += 1;
            // Liveness is only asked when the answer matters (`sleep::write_gate`).
            if !fresh && self.is_alive(v) {
                voters_alive += 1;
            }
        }
        (voters >= 2).then_some(LeaseView {
            fresh,
            acked,
            voters,
            voters_alive,
        })
    }

    /// One heartbeat round on `g`, waiting until a quorum acknowledged something newer than
    /// `before` or `deadline` passed; whether the lease was renewed.
    async fn renew_lease(
        &self,
        raft: &Raft,
        before: Option<NodeInstant>,
        deadline: tokio::time::Instant,
    ) -> bool {
        self.lease_renewals.fetch_add(1, Ordering::Relaxed);
        if raft.trigger().heartbeat().await.is_err() {
            return false;
        }
        let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
        raft.wait(Some(wait))
            .metrics(
                |m| m.last_quorum_acked.as_ref().map(|i| **i) > before,
                "leader lease renewed",
            )
            .await
            .is_ok()
    }

    /// Start hosting data group `group` (recovering its state from the log store and
    /// snapshot if any).
    pub async fn open_group(&self, group: GroupId) -> io::Result<Arc<Group>> {
        let records: SharedRecords = Arc::new(RwLock::new(RecordStore::new()));
        self.open(group, GroupData::Records(records)).await
    }

    /// Start hosting the metadata group, whose applied catalog is published to `catalog`.
    pub async fn open_meta_group(
        &self,
        group: GroupId,
        catalog: SharedCatalog,
    ) -> io::Result<Arc<Group>> {
        self.open(group, GroupData::Catalog(catalog)).await
    }

    fn lock_group(&self, group: GroupId) -> io::Result<Arc<tokio::sync::Mutex<()>>> {
        Ok(self
            .creating
            .lock()
            .map_err(|_| lock_err())?
            .entry(group)
            .or_default()
            .clone())
    }

    async fn open(&self, group: GroupId, data: GroupData) -> io::Result<Arc<Group>> {
        let _guard = self.lock_group(group)?.lock_owned().await;
        if let Some(g) = self.group(group) {
            return Ok(g);
        }
        let records = match &data {
            GroupData::Records(r) => r.clone(),
            GroupData::Catalog(_) => Arc::new(RwLock::new(RecordStore::new())),
        };
        let is_catalog = matches!(data, GroupData::Catalog(_));
        let vote = Arc::new(VoteCell::default());
        let applied = SharedApplied::default();
        let raft = self
            .start_instance(group, &data, &applied, &vote, false)
            .await?;
        let g = Arc::new(Group {
            id: group,
            records,
            data,
            applied,
            instance: std::sync::Mutex::new(Instance::Running(Arc::new(raft))),
            restarting: Arc::default(),
            used_ms: AtomicU64::new(self.now_ms()),
            committed_seen: AtomicU64::new(0),
            removed: Default::default(),
            vote,
            receiving: tokio::sync::Mutex::new(()),
            sleep: SleepCell::default(),
            is_catalog,
        });

        self.groups
            .write()
            .map_err(|_| lock_err())?
            .insert(group, g.clone());
        Ok(g)
    }

    /// Start an openraft instance for `group` over its log and `data`, its state machine
    /// standing where `applied` says. `restore_leader`: the group's log was synced after its
    /// last instance stopped, so a leader may take office again at once
    /// (`RaftConfig::to_openraft`).
    pub(crate) async fn start_instance(
        &self,
        group: GroupId,
        data: &GroupData,
        applied: &SharedApplied,
        vote: &Arc<VoteCell>,
        restore_leader: bool,
    ) -> io::Result<Raft> {
        let is_catalog = matches!(data, GroupData::Catalog(_));
        let sm =
            GroupStateMachine::new(group, data.clone(), applied.clone(), self.snapshots.clone());
        let network = NetworkFactory {
            group,
            transport: self.transport.clone(),
            snapshot_chunk: self.config.snapshot_chunk_bytes,
            votes_from: self.votes_from,
            liveness: self.liveness.clone(),
        };
        let log = GroupLogStore::new(group, self.log.clone(), vote.clone())
            .sharing_tail_budget(self.tail_budget.clone());
        let log = if is_catalog {
            log.storing_every_commit()
        } else {
            log
        };
        let span = tracing::info_span!("group", node = self.node_id, group);
        // A data group opens asleep: it campaigns only when told to (its first election,
        // started by the replica that initializes it) or when the supervisor names this node
        // its successor, and wakes when its leader sends it entries. Thousands of groups
        // opening at once with their timers running elected each other in a storm.
        let config = self
            .config
            .to_openraft(group, !is_catalog, restore_leader)
            .map_err(io::Error::other)?;
        Raft::new(self.node_id, config, network, log, sm)
            .instrument(span)
            .await
            .map_err(io::Error::other)
    }

    /// Stop hosting `group` and delete everything this node stored for it (its log, its Raft
    /// metadata and its snapshot): its namespace was dropped.
    pub async fn remove_group(&self, group: GroupId) -> io::Result<()> {
        let _guard = self.lock_group(group)?.lock_owned().await;
        let removed = self.groups.write().map_err(|_| lock_err())?.remove(&group);
        if let Some(g) = removed {
            // A request still holding the group must not start its instance again over the
            // log deleted below.
            let _restarting = g.restarting.lock().await;
            g.removed.store(true, Ordering::Release);
            if let Some(raft) = g.running() {
                let _ = raft.shutdown().await;
            }
        }
        self.log.remove_group(group).map_err(io::Error::other)?;
        self.snapshots.remove(group).map_err(io::Error::other)?;
        Ok(())
    }

    /// Groups with anything stored on this node (log, Raft metadata or snapshot), hosted or not.
    pub fn stored_groups(&self) -> io::Result<Vec<GroupId>> {
        let mut v = self.log.groups().map_err(io::Error::other)?;
        v.extend(self.snapshots.groups().map_err(io::Error::other)?);
        v.sort_unstable();
        v.dedup();
        Ok(v)
    }

    /// Whether `group` has a membership (it was initialized here or has heard from a leader).
    pub fn is_initialized(&self, group: GroupId) -> bool {
        self.group(group).is_some_and(|g| {
            g.metrics(|m| {
                m.membership_config
                    .membership()
                    .voter_ids()
                    .next()
                    .is_some()
            })
        })
    }

    pub fn group(&self, group: GroupId) -> Option<Arc<Group>> {
        self.groups.read().ok()?.get(&group).cloned()
    }

    pub fn groups(&self) -> Vec<Arc<Group>> {
        let mut v: Vec<_> = self
            .groups
            .read()
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by_key(|g| g.id);
        v
    }

    /// Make `members` the first voters of `group`. Safe to call on several nodes with the same
    /// members; a group that is already initialized is left alone.
    pub async fn initialize(&self, group: GroupId, members: BTreeSet<NodeId>) -> io::Result<()> {
        let g = self
            .group(group)
            .ok_or_else(|| io::Error::other("no such group"))?;
        match self.instance(&g).await?.initialize(members).await {
            Ok(()) => {
                // The group's first election: this replica campaigns, with its timer on so
                // it tries again if the first round fails (the others sleep meanwhile). The
                // metadata group's timers always run.
                if !g.is_catalog {
                    let _ = self.campaign(&g, false).await;
                }
                Ok(())
            }
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(io::Error::other(e)),
        }
    }

    /// Start an election for `group` at once (no pre-vote): for a group that has no leader
    /// yet, where none can be disturbed.
    pub async fn elect(&self, group: GroupId) -> io::Result<()> {
        let g = self
            .group(group)
            .ok_or_else(|| io::Error::other("no such group"))?;
        self.instance(&g)
            .await?
            .trigger()
            .elect(false)
            .await
            .map_err(io::Error::other)
    }

    pub fn status(&self, group: GroupId) -> Option<GroupStatus> {
        let g = self.group(group)?;
        Some(g.metrics(|m| GroupStatus {
            // A leader taken for dead is not reported: its successor is about to campaign
            // (`crate::supervisor`), and routing to it would only time out.
            leader: m.current_leader.filter(|l| self.is_alive(*l)),
            term: m.current_term,
            voters: m.membership_config.membership().voter_ids().collect(),
            last_applied: m.last_applied.as_ref().map(|l| l.index),
        }))
    }

    /// `group`'s leader as this node knows it (None: unknown, or taken for dead). Cheaper than
    /// [`MultiRaft::status`]: the periodic tasks ask it of every group.
    pub fn leader(&self, group: GroupId) -> Option<NodeId> {
        let g = self.group(group)?;
        let leader = g.metrics(|m| m.current_leader);
        leader.filter(|l| self.is_alive(*l))
    }

    /// Whether this node leads `group`.
    pub fn leads(&self, group: GroupId) -> bool {
        let Some(g) = self.group(group) else {
            return false;
        };
        g.metrics(|m| m.state == ServerState::Leader && m.current_leader == Some(self.node_id))
    }

    /// `group`'s learners (non-voting members) as this node knows them.
    pub fn learners(&self, group: GroupId) -> BTreeSet<NodeId> {
        let Some(g) = self.group(group) else {
            return BTreeSet::new();
        };
        g.metrics(|m| m.membership_config.membership().learner_ids().collect())
    }

    /// Propose a command on this node's group and wait until it is committed and applied.
    pub async fn write(
        &self,
        group: GroupId,
        cmd: Command,
        timeout: Duration,
    ) -> Result<Outcome, WriteError> {
        self.write_at(group, cmd, timeout).await.map(|(o, _)| o)
    }

    /// [`MultiRaft::write`], also answering the log index the command was applied at.
    pub async fn write_at(
        &self,
        group: GroupId,
        cmd: Command,
        timeout: Duration,
    ) -> Result<(Outcome, u64), WriteError> {
        let g = self.group(group).ok_or(WriteError::NoGroup)?;
        let raft = self
            .instance(&g)
            .await
            .map_err(|e| WriteError::InDoubt(format!("group could not start: {e}")))?;
        let deadline = tokio::time::Instant::now() + timeout;
        if !self.ready_for_write(&raft, deadline).await {
            return Err(WriteError::NotLeader(None));
        }
        match tokio::time::timeout_at(deadline, raft.client_write(cmd)).await {
            Ok(Ok(resp)) => {
                let index = resp.log_id.index();
                Ok((resp.data, index))
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(WriteError::NotLeader(f.leader_id))
            }
            Ok(Err(e)) => Err(WriteError::InDoubt(e.to_string())),
            Err(_) => Err(WriteError::InDoubt("timed out waiting for commit".into())),
        }
    }

    /// Confirm leadership with a quorum (ReadIndex), wait until the state machine has applied
    /// everything committed before the read arrived, then read.
    pub async fn read<T>(
        &self,
        group: GroupId,
        timeout: Duration,
        f: impl FnOnce(&RecordStore) -> T,
    ) -> Result<T, ReadError> {
        self.read_confirmed(group, ReadConfirm::Quorum, timeout, f)
            .await
    }

    /// [`MultiRaft::read`] with leadership confirmed as `confirm` says.
    pub async fn read_confirmed<T>(
        &self,
        group: GroupId,
        confirm: ReadConfirm,
        timeout: Duration,
        f: impl FnOnce(&RecordStore) -> T,
    ) -> Result<T, ReadError> {
        let g = self.group(group).ok_or(ReadError::NoGroup)?;
        // One deadline for both ways of confirming: a read whose peers did not answer falls
        // back to openraft's round with the time left, not with a fresh `timeout`.
        let deadline = tokio::time::Instant::now() + timeout;
        // Per-peer rounds need no running instance: an evicted group's kept metrics are its
        // state (nothing changes it without starting the instance again), and it was
        // evicted with everything committed applied. A query confirming thousands of idle
        // groups at once does not start thousands of instances.
        if confirm == ReadConfirm::Quorum {
            if let Some(plan) = g.metrics(|m| self.read_plan(m)) {
                let wait = timeout.min(self.config.leader_lease());
                if self.confirm_by_peers(&g, &plan, wait).await {
                    self.reads.by_peers.fetch_add(1, Ordering::Relaxed);
                    return read_records(&g, f);
                }
            }
        }
        let raft = self
            .instance(&g)
            .await
            .map_err(|e| ReadError::Unavailable(format!("group could not start: {e}")))?;
        let option = match confirm {
            ReadConfirm::Quorum => LinearizerOption::from(ReadPolicy::ReadIndex),
            // A stale lease sends a heartbeat round at once and waits for it, like ReadIndex.
            ReadConfirm::Lease => LinearizerOption::new(Some(self.config.lease_read_age()), true),
        };
        match tokio::time::timeout_at(deadline, raft.ensure_linearizable(option)).await {
            Ok(Ok(_)) => {}
            Ok(Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f)))) => {
                return Err(ReadError::NotLeader(f.leader_id))
            }
            Ok(Err(e)) => return Err(ReadError::Unavailable(e.to_string())),
            Err(_) => {
                return Err(ReadError::Unavailable(
                    "timed out confirming leadership".into(),
                ))
            }
        }
        self.reads.by_raft.fetch_add(1, Ordering::Relaxed);
        read_records(&g, f)
    }

    /// What the sleeping groups cost and did since this node started.
    pub fn sleep_figures(&self) -> SleepFigures {
        SleepFigures {
            awake: self
                .groups()
                .iter()
                .filter(|g| !g.is_catalog && g.sleep.is_awake())
                .count() as u64,
            lease_renewals: self.lease_renewals.load(Ordering::Relaxed),
            campaigns: self.campaigns.load(Ordering::Relaxed),
            evicted: self.groups().iter().filter(|g| g.is_evicted()).count() as u64,
            evictions: self.evictions.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
        }
    }

    /// How many linearizable reads this node confirmed, by which path, since it started.
    pub fn read_figures(&self) -> ReadFigures {
        ReadFigures {
            by_peers: self.reads.by_peers.load(Ordering::Relaxed),
            by_raft: self.reads.by_raft.load(Ordering::Relaxed),
        }
    }

    /// How a read of `g` can be confirmed by per-peer rounds, from one snapshot of its
    /// metrics; None when openraft's own round must do it.
    fn read_plan(&self, m: &Metrics) -> Option<ReadPlan> {
        plan(&LeaderView {
            me: self.node_id,
            is_leader: m.state == ServerState::Leader && m.current_leader == Some(self.node_id),
            vote: &m.vote,
            last_applied: m.last_applied.as_ref(),
            membership_log: m.membership_config.log_id().as_ref(),
            joint: m.membership_config.membership().get_joint_config(),
        })
    }

    /// Whether enough peers confirm `plan.leader` as `g`'s leader within `timeout`, and this
    /// node's own stored vote still is that leader afterwards (checked last: it completes the
    /// quorum only as of a moment after the read arrived).
    async fn confirm_by_peers(&self, g: &Group, plan: &ReadPlan, timeout: Duration) -> bool {
        let (tally, decided) = Tally::new(plan.needed_from_peers, plan.peers.len());
        for peer in &plan.peers {
            self.confirmer.ask(*peer, g.id, plan.leader, tally.clone());
        }
        matches!(tokio::time::timeout(timeout, decided).await, Ok(Ok(true)))
            && g.vote.leader() == Some(plan.leader)
    }

    /// Answer a peer's [`RaftRequest::ConfirmLeaders`] from each group's stored vote.
    fn confirm_leaders(&self, asks: &[(GroupId, LeaderId)]) -> Vec<bool> {
        let Ok(groups) = self.groups.read() else {
            return vec![false; asks.len()];
        };
        asks.iter()
            .map(|(group, leader)| {
                groups
                    .get(group)
                    .is_some_and(|g| confirms(g.vote.leader().as_ref(), leader))
            })
            .collect()
    }

    /// A peer was heard from: record it, and if it just came back (or restarted), send a
    /// heartbeat round in every group this node leads with it, so it learns its leaders (and
    /// catches up) before it would campaign for groups it thinks leaderless.
    pub(crate) fn heard(self: &Arc<Self>, peer: NodeId, incarnation: u64) {
        if self.liveness.heard(peer, incarnation, self.now_ms()) == Some(Change::Returned) {
            tracing::info!(node = self.node_id, peer, "peer is back");
            self.heartbeat_led_with(peer);
        }
    }

    /// Groups evicted here are started again for it: the peer may lack entries (a group is
    /// evicted with members taken for dead behind) or, restarted, take itself for the
    /// leader it was. A heartbeat is one request without retry, and a restarted peer is
    /// busiest just then: a group whose heartbeat the peer has not acknowledged is sent
    /// another, up to [`RETURN_ROUNDS`] times. Its follower there learns the commit index
    /// from it (what it replayed stopped at the last commit index it had stored).
    fn heartbeat_led_with(self: &Arc<Self>, peer: NodeId) {
        let mut led: Vec<Arc<Group>> = self
            .groups()
            .into_iter()
            .filter(|g| {
                g.metrics(|m| {
                    m.state == ServerState::Leader
                        && m.membership_config
                            .membership()
                            .nodes()
                            .any(|(n, _)| *n == peer)
                })
            })
            .collect();
        if led.is_empty() {
            return;
        }
        let multi = self.clone();
        tokio::spawn(async move {
            for _ in 0..RETURN_ROUNDS {
                let sent = NodeInstant::now();
                for g in &led {
                    let Ok(raft) = multi.instance(g).await else {
                        continue;
                    };
                    // Replication to the peer backed off while it was away (`crate::network`).
                    let _ = raft.trigger().reset_backoff([peer]).await;
                    let _ = raft.trigger().heartbeat().await;
                }
                tokio::time::sleep(RETURN_ROUND_WAIT).await;
                // Still leading, and no acknowledgement from the peer since this round.
                led.retain(|g| {
                    g.metrics(|m| {
                        let acked = m
                            .heartbeat
                            .as_ref()
                            .and_then(|h| h.get(&peer).cloned().flatten());
                        m.state == ServerState::Leader && acked.is_none_or(|at| *at < sent)
                    })
                });
                if led.is_empty() {
                    return;
                }
            }
            tracing::warn!(
                node = multi.node_id,
                peer,
                groups = led.len(),
                "a returned peer acknowledged no heartbeat of these groups"
            );
        });
    }

    /// Read this replica's state without confirming leadership: not linearizable.
    pub fn read_local<T>(
        &self,
        group: GroupId,
        f: impl FnOnce(&RecordStore) -> T,
    ) -> Result<T, ReadError> {
        let g = self.group(group).ok_or(ReadError::NoGroup)?;
        read_records(&g, f)
    }

    /// Handle one inbound Raft RPC for a hosted group and encode the reply.
    pub async fn handle_rpc(self: &Arc<Self>, group: GroupId, payload: &[u8]) -> Vec<u8> {
        let request = decode_request(payload);
        if let Ok(RaftRequest::ConfirmLeaders(asks)) = &request {
            return encode_reply(&RaftReply::LeadersConfirmed(self.confirm_leaders(asks)));
        }
        if let Ok(RaftRequest::Ping { from, incarnation }) = &request {
            if !self.is_serving() {
                return encode_reply(&RaftReply::Error("still opening its groups".into()));
            }
            self.heard(*from, *incarnation);
            return encode_reply(&RaftReply::Pong {
                incarnation: self.incarnation,
            });
        }
        let reply = match (self.group(group), request) {
            (None, _) => {
                RaftReply::Error(format!("group {group} not hosted on node {}", self.node_id))
            }
            (_, Err(e)) => RaftReply::Error(format!("bad request: {e}")),
            (
                Some(g),
                Ok(RaftRequest::SnapshotChunk {
                    vote,
                    offset,
                    total,
                    data,
                }),
            ) => self.snapshot_chunk(&g, vote, offset, total, data).await,
            (_, Ok(RaftRequest::Vote(r) | RaftRequest::PreVote(r)))
                if vote_held_back(&r, NodeInstant::now(), self.votes_from) =>
            {
                RaftReply::Error("started less than a leader lease ago: grants no vote yet".into())
            }
            (Some(g), Ok(req @ (RaftRequest::Vote(_) | RaftRequest::PreVote(_)))) => {
                if let RaftRequest::Vote(r) | RaftRequest::PreVote(r) = &req {
                    g.sleep.vote_seen(r.vote.leader_id.node_id, self.now_ms());
                }
                self.dispatch(&g, req).await
            }
            (Some(g), Ok(RaftRequest::Append(r))) => {
                let reply = self.dispatch(&g, RaftRequest::Append(r)).await;
                // Any answer but a higher vote: the sender leads (as far as this replica
                // knows).
                if matches!(&reply, RaftReply::Append(r) if !matches!(r, AppendEntriesResponse::HigherVote(_)))
                {
                    g.sleep.append_seen(self.now_ms());
                }
                reply
            }
            // The target of a leadership transfer campaigns: with its timer on it tries
            // again if the transfer's election fails.
            (Some(g), Ok(req @ RaftRequest::TransferLeader(_))) => match self.instance(&g).await {
                Ok(raft) => {
                    self.wake(&g, &raft);
                    dispatch(&raft, req).await
                }
                Err(e) => RaftReply::Error(format!("group could not start: {e}")),
            },
            (Some(g), Ok(req)) => self.dispatch(&g, req).await,
        };
        encode_reply(&reply)
    }

    /// Hand `req` to `g`'s instance, started again if it was evicted.
    async fn dispatch(&self, g: &Group, req: RaftRequest) -> RaftReply {
        match self.instance(g).await {
            Ok(raft) => dispatch(&raft, req).await,
            Err(e) => RaftReply::Error(format!("group could not start: {e}")),
        }
    }

    /// Stores one chunk of a snapshot sent by `group`'s leader; the last one installs it
    /// (openraft checks the vote then, so a deposed leader's snapshot is refused).
    async fn snapshot_chunk(
        &self,
        g: &Group,
        vote: Vote,
        offset: u64,
        total: u64,
        data: Vec<u8>,
    ) -> RaftReply {
        let _one_at_a_time = g.receiving.lock().await;
        // A transfer in progress is a use: the group is not evicted between its chunks.
        g.used_ms.store(self.now_ms(), Ordering::Relaxed);
        let (files, group) = (self.snapshots.clone(), g.id);
        let stored =
            tokio::task::spawn_blocking(move || files.receive_chunk(group, offset, total, &data))
                .await;
        let file = match stored {
            Ok(Ok(None)) => return RaftReply::ChunkStored,
            Ok(Ok(Some(file))) => file,
            Ok(Err(e)) => return RaftReply::Error(format!("snapshot chunk refused: {e}")),
            Err(e) => return RaftReply::Error(e.to_string()),
        };
        let meta = match decode::<SnapshotMeta>(file.meta()) {
            Ok(m) => m,
            Err(e) => return RaftReply::Error(format!("snapshot meta: {e}")),
        };
        tracing::info!(group, bytes = total, last_log_id = ?meta.last_log_id, "received a snapshot");
        let raft = match self.instance(g).await {
            Ok(raft) => raft,
            Err(e) => return RaftReply::Error(format!("group could not start: {e}")),
        };
        let reply = raft
            .install_full_snapshot(
                vote,
                Snapshot {
                    meta,
                    snapshot: file.clone(),
                },
            )
            .await
            .map(RaftReply::Snapshot)
            .unwrap_or_else(|e| RaftReply::Error(e.to_string()));
        // Installing moved the file into place; one refused (a stale vote) is not kept.
        if let Err(e) = self.snapshots.discard(g.id, &file) {
            tracing::warn!(group, error = %e, "could not remove a refused snapshot");
        }
        reply
    }

    /// Wait until this node has applied `group`'s log up to `index`; false on timeout.
    pub async fn wait_applied(&self, group: GroupId, index: u64, timeout: Duration) -> bool {
        let Some(g) = self.group(group) else {
            return false;
        };
        let Ok(raft) = self.instance(&g).await else {
            return false;
        };
        raft.wait(Some(timeout))
            .applied_index_at_least(Some(index), "catalog change")
            .await
            .is_ok()
    }

    /// Whether this node knows `group`'s leader and has applied everything that leader told
    /// it is committed: what it decides from the group's state is then not from a stale prefix
    /// (as it would be while replaying after a restart).
    pub fn applied_to_cluster_commit(&self, group: GroupId) -> bool {
        let Some(g) = self.group(group) else {
            return false;
        };
        g.metrics(|m| {
            m.current_leader.is_some()
                && m.last_applied.as_ref().map(|l| l.index)
                    >= m.cluster_committed.as_ref().map(|l| l.index)
        })
    }

    /// Every node in `group`'s membership (voters and learners), as this node knows it.
    pub fn members(&self, group: GroupId) -> BTreeSet<NodeId> {
        let Some(g) = self.group(group) else {
            return BTreeSet::new();
        };
        g.metrics(|m| {
            m.membership_config
                .membership()
                .nodes()
                .map(|(id, _)| *id)
                .collect()
        })
    }

    /// On the leader of `group`: start replicating to `node` as a learner (non-voting).
    pub async fn add_learner(&self, group: GroupId, node: NodeId) -> io::Result<()> {
        self.for_membership_change(group)
            .await?
            .add_learner(node, openraft::EmptyNode {}, false)
            .await
            .map(|_| ())
            .map_err(io::Error::other)
    }

    /// On the leader of `group`: make `voters` its voters through joint consensus (openraft
    /// commits the joint configuration, then the new one); nodes left out are removed, not
    /// kept as learners. Returns once the new configuration is committed.
    pub async fn change_membership(
        &self,
        group: GroupId,
        voters: BTreeSet<NodeId>,
    ) -> io::Result<()> {
        self.for_membership_change(group)
            .await?
            .change_membership(voters, false)
            .await
            .map(|_| ())
            .map_err(io::Error::other)
    }

    /// Hand leadership of `group` to `to` (used to spread leaders across nodes).
    pub async fn transfer_leader(&self, group: GroupId, to: NodeId) -> io::Result<()> {
        let raft = self.for_membership_change(group).await?;
        if let Some(g) = self.group(group) {
            g.sleep.transfer_started(self.now_ms());
        }
        raft.trigger()
            .transfer_leader(to)
            .await
            .map_err(io::Error::other)
    }

    /// On the leader of `group`: how many entries `target` is behind (None: not replicating
    /// to it, or not the leader).
    pub fn replication_lag(&self, group: GroupId, target: NodeId) -> Option<u64> {
        let g = self.group(group)?;
        g.metrics(|m| {
            let last = m.last_log_index.unwrap_or(0);
            let matched = m
                .replication
                .as_ref()?
                .get(&target)?
                .as_ref()
                .map_or(0, |l| l.index);
            Some(last.saturating_sub(matched))
        })
    }

    /// On the leader of `group`: drop `nodes` (learners) from its membership.
    pub async fn remove_learners(&self, group: GroupId, nodes: BTreeSet<NodeId>) -> io::Result<()> {
        self.for_membership_change(group)
            .await?
            .change_membership(openraft::ChangeMembers::RemoveNodes(nodes), false)
            .await
            .map(|_| ())
            .map_err(io::Error::other)
    }

    /// Whether this node leads `group` and `target` has every entry of its log, so handing
    /// leadership over costs no unavailability.
    pub fn caught_up(&self, group: GroupId, target: NodeId) -> bool {
        let Some(g) = self.group(group) else {
            return false;
        };
        g.metrics(|m| match &m.replication {
            Some(r) => r
                .get(&target)
                .is_some_and(|l| l.as_ref().map(|l| l.index) == m.last_log_index),
            None => false,
        })
    }

    /// `group`'s instance, ready for a membership change (or leadership transfer): its
    /// lease renewed if it lapsed, waiting at most one leader lease for that.
    async fn for_membership_change(&self, group: GroupId) -> io::Result<Arc<Raft>> {
        let g = self
            .group(group)
            .ok_or_else(|| io::Error::other("no such group"))?;
        let raft = self.instance(&g).await?;
        let deadline = tokio::time::Instant::now() + self.config.leader_lease();
        self.awake_for_write(&raft, deadline).await;
        Ok(raft)
    }

    pub async fn shutdown(&self) {
        self.confirmer.stop();
        for raft in self.groups().iter().filter_map(|g| g.running()) {
            let _ = raft.shutdown().await;
        }
    }
}

fn read_records<T>(g: &Group, f: impl FnOnce(&RecordStore) -> T) -> Result<T, ReadError> {
    let records = g
        .records
        .read()
        .map_err(|_| ReadError::Unavailable("record store lock poisoned".into()))?;
    Ok(f(&records))
}

async fn dispatch(raft: &Raft, req: RaftRequest) -> RaftReply {
    match req {
        RaftRequest::Append(r) => raft
            .append_entries(r)
            .await
            .map(RaftReply::Append)
            .unwrap_or_else(|e| RaftReply::Error(e.to_string())),
        RaftRequest::Vote(r) => raft
            .vote(r)
            .await
            .map(RaftReply::Vote)
            .unwrap_or_else(|e| RaftReply::Error(e.to_string())),
        RaftRequest::PreVote(r) => raft
            .pre_vote(r)
            .await
            .map(RaftReply::Vote)
            .unwrap_or_else(|e| RaftReply::Error(e.to_string())),
        // Handled by `MultiRaft::snapshot_chunk`, which owns the snapshot files.
        RaftRequest::SnapshotChunk { .. } => RaftReply::Error("misrouted snapshot chunk".into()),
        // Handled by `MultiRaft::handle_rpc` before any group is looked up.
        RaftRequest::ConfirmLeaders(_) | RaftRequest::Ping { .. } => {
            RaftReply::Error("misrouted peer request".into())
        }
        RaftRequest::TransferLeader(r) => raft
            .handle_transfer_leader(r)
            .await
            .map(RaftReply::TransferLeader)
            .unwrap_or_else(|e| RaftReply::Error(e.to_string())),
    }
}
