//! The nemesis: faults on a randomised, seeded schedule, Jepsen style.
//!
//! The schedule flip-flops: a healthy period (2–5 s by default), then one fault — or, when
//! several fault classes are enabled, sometimes two of different classes at once, e.g. a
//! partition plus a kill — held for 3–8 s, then undone (heal / restart / resume). Durations
//! straddle Strato's default election timeout (0.5 s) and request timeout (5 s), so some faults
//! end before clients give up and others outlast them. Leader-targeted faults read the current
//! masters from the nodes' `replicas` answers, since those are the productive targets (Jepsen's
//! `:primaries`). Choices come from one RNG seeded with `rng_seed`, so the same seed gives the
//! same sequence of fault kinds and durations (targets that depend on who leads can differ).
//!
//! Every applied fault becomes one [`NemesisEvent`] spanning from just before it was applied
//! to just after it was undone, in nanoseconds since `t0`; `kind` is the fault class
//! (`partition`, `kill`, `pause`: the plot colour), `detail` names the variant and targets.

use crate::cluster::{Cluster, NodeState, DEFAULT_READY_TIMEOUT};
use crate::history::NemesisEvent;
use crate::net::Grudge;
use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};
use tracing::{error, info, info_span, warn, Instrument};

/// One kind of fault the nemesis can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// Random split into a minority and a majority (Jepsen's `partition-random-halves`).
    PartitionHalves,
    /// Cut one node that masters partitions off from all others.
    PartitionIsolateLeader,
    /// Every node sees a majority, no two nodes the same one (Jepsen's `majorities-ring`);
    /// with fewer than 4 nodes no such ring exists and random halves are used instead.
    PartitionMajorityRing,
    /// SIGKILL a random node, restart it on its data dir afterwards.
    Kill,
    /// SIGKILL a node that masters partitions.
    KillLeader,
    /// SIGKILL every node at once, restart them all afterwards: no node is left to elect a
    /// new leader, so the old leaders come back first (a leader that restored its leadership
    /// in the same term after losing an unflushed entry made replicas diverge).
    KillAll,
    /// SIGSTOP a random node, SIGCONT afterwards.
    Pause,
    /// SIGSTOP a node that masters partitions.
    PauseLeader,
    /// Put a spare node (observed, not on the roster) on every namespace's roster and
    /// recluster, through the info commands an operator uses. Not undone: the roster moves on.
    MemberAdd,
    /// Take a random node off every roster (while the roster is larger than 3) and recluster.
    MemberRemove,
    /// Replace a random roster node by a spare in one roster change and recluster.
    MemberReplace,
    /// Make a random node's Raft clock run slow or fast ([`DRIFT_RATES`]), within the
    /// assumption lease reads rest on (no clock more than twice as fast as another).
    ClockDrift,
    /// Make a leader's Raft clock run at [`SLOW_RATE`], the slowest the lease-read assumption
    /// allows, and cut it off from the others: its lease must end before its followers'
    /// leases do, so it stops serving lease reads before a new leader takes writes.
    ClockSlowLeader,
    /// Make a leader's Raft clock run at [`BREAK_RATE`] and cut it off from the others:
    /// breaks the lease-read assumption, so with lease reads on, the isolated leader keeps
    /// answering reads from its old state after a new leader took writes. ReadIndex reads
    /// do not depend on clocks and must stay linearizable under it.
    ClockBreak,
    /// Kill -9 the node mastering the most partitions, restart it, then again the node
    /// mastering the most, several times in a row (each kill leaves about a third of the
    /// groups leaderless at once), and leave the last one down for the hold.
    KillStorm,
    /// Wait until nearly every group sleeps (no timers running, `raft_groups_awake`), then cut
    /// the node mastering the most partitions off from the others: its sleeping groups must
    /// get new leaders through the others' liveness view, and it must not serve stale data
    /// when it wakes on a request or when the partition heals.
    SleepWake,
}

/// Kills of a [`Fault::KillStorm`] before the one left in force for the hold.
const STORM_KILLS: usize = 3;

/// Rates of [`Fault::ClockDrift`]: at most 1.6 times faster or slower than real time, so no
/// clock runs twice as fast as another's.
pub const DRIFT_RATES: [f64; 4] = [0.6, 0.8, 1.25, 1.6];

/// Rate of [`Fault::ClockSlowLeader`]: the leader's 300 ms lease lasts 500 ms of real time,
/// still within its followers' 600 ms.
pub const SLOW_RATE: f64 = 0.6;

/// Rate of [`Fault::ClockBreak`]: a 300 ms lease lasts 15 s of real time.
pub const BREAK_RATE: f64 = 0.02;

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 16] = [
        Fault::PartitionHalves,
        Fault::PartitionIsolateLeader,
        Fault::PartitionMajorityRing,
        Fault::Kill,
        Fault::KillLeader,
        Fault::KillAll,
        Fault::Pause,
        Fault::PauseLeader,
        Fault::MemberAdd,
        Fault::MemberRemove,
        Fault::MemberReplace,
        Fault::ClockDrift,
        Fault::ClockSlowLeader,
        Fault::ClockBreak,
        Fault::KillStorm,
        Fault::SleepWake,
    ];

    /// Kebab-case name (also accepted by [`Fault::parse_list`]).
    pub fn name(self) -> &'static str {
        match self {
            Fault::PartitionHalves => "partition-halves",
            Fault::PartitionIsolateLeader => "partition-isolate-leader",
            Fault::PartitionMajorityRing => "partition-majority-ring",
            Fault::Kill => "kill",
            Fault::KillLeader => "kill-leader",
            Fault::KillAll => "kill-all",
            Fault::Pause => "pause",
            Fault::PauseLeader => "pause-leader",
            Fault::MemberAdd => "member-add",
            Fault::MemberRemove => "member-remove",
            Fault::MemberReplace => "member-replace",
            Fault::ClockDrift => "clock-drift",
            Fault::ClockSlowLeader => "clock-slow-leader",
            Fault::ClockBreak => "clock-break",
            Fault::KillStorm => "kill-storm",
            Fault::SleepWake => "sleep-wake",
        }
    }

    /// Fault class: `partition`, `kill`, `pause`, `membership` or `clock` (the
    /// [`NemesisEvent::kind`]).
    pub fn class(self) -> &'static str {
        match self {
            Fault::PartitionHalves
            | Fault::PartitionIsolateLeader
            | Fault::PartitionMajorityRing => "partition",
            Fault::Kill | Fault::KillLeader | Fault::KillAll => "kill",
            Fault::Pause | Fault::PauseLeader => "pause",
            Fault::MemberAdd | Fault::MemberRemove | Fault::MemberReplace => "membership",
            Fault::ClockDrift | Fault::ClockSlowLeader | Fault::ClockBreak => "clock",
            Fault::KillStorm | Fault::SleepWake => "groups",
        }
    }

    /// Whether `self` and `other` may be in force together: never two of a class, and
    /// never a partition beside a fault that brings its own.
    fn combines_with(self, other: Fault) -> bool {
        let partitions = |a: Fault, b: Fault| {
            matches!(a, Fault::ClockSlowLeader | Fault::ClockBreak) && b.class() == "partition"
        };
        self.class() != other.class() && !partitions(self, other) && !partitions(other, self)
    }

    /// Parse a CLI list like `partition,kill,pause`: a class name enables every fault of the
    /// class, `all` every partition, kill and pause fault (add `membership` for roster
    /// changes, `clock` for clock rates), `none` (or an empty string) nothing; single faults
    /// are accepted by [`Fault::name`] too. The result is sorted and de-duplicated.
    pub fn parse_list(list: &str) -> Result<Vec<Fault>> {
        let mut out = BTreeSet::new();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                // `all` is every crash fault; roster changes, clocks and the sleeping-group
                // faults are asked for by name.
                "all" => out.extend(
                    Fault::ALL
                        .into_iter()
                        .filter(|f| !matches!(f.class(), "membership" | "clock" | "groups")),
                ),
                "none" => {}
                _ => {
                    let matching: Vec<Fault> = Fault::ALL
                        .into_iter()
                        .filter(|f| f.class() == word || f.name() == word)
                        .collect();
                    if matching.is_empty() {
                        bail!(
                            "unknown fault {word:?}: expected partition, kill, pause, \
                             membership, clock, groups, all, none or one of {}",
                            Fault::ALL.map(Fault::name).join(", ")
                        );
                    }
                    out.extend(matching);
                }
            }
        }
        Ok(out.into_iter().collect())
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Schedule knobs; [`Default`] is what [`run`] uses.
#[derive(Debug, Clone)]
pub struct NemesisOptions {
    /// Range of the fault-free period before each fault.
    pub healthy: (Duration, Duration),
    /// Range of how long a fault is held.
    pub fault: (Duration, Duration),
    /// Chance that a second fault of another class joins the first (when one is enabled).
    pub combine_probability: f64,
    /// How long the final heal may wait for the cluster to be ready again.
    pub ready_timeout: Duration,
}

impl Default for NemesisOptions {
    fn default() -> Self {
        NemesisOptions {
            healthy: (Duration::from_secs(2), Duration::from_secs(5)),
            fault: (Duration::from_secs(3), Duration::from_secs(8)),
            combine_probability: 0.3,
            ready_timeout: DEFAULT_READY_TIMEOUT,
        }
    }
}

/// Run the nemesis until `until`, then [`Cluster::final_heal`]. Returns the fault intervals.
/// If the final heal fails (cluster not ready in time), an extra event of kind
/// `final-heal-failed` carries the error, so the failure lands in the history.
pub async fn run(
    cluster: &mut Cluster,
    faults: Vec<Fault>,
    rng_seed: u64,
    until: Instant,
    t0: Instant,
) -> Vec<NemesisEvent> {
    run_with(
        cluster,
        faults,
        rng_seed,
        until,
        t0,
        &NemesisOptions::default(),
        std::future::pending(),
    )
    .await
}

/// [`run`] with explicit options and a `stop` future that ends the schedule early (e.g. when
/// the clients are done): whichever of `until` and `stop` comes first. A fault in force at
/// that moment is undone at once and recorded up to then.
pub async fn run_with(
    cluster: &mut Cluster,
    faults: Vec<Fault>,
    rng_seed: u64,
    until: Instant,
    t0: Instant,
    opts: &NemesisOptions,
    stop: impl Future<Output = ()>,
) -> Vec<NemesisEvent> {
    let span = info_span!("nemesis", seed = rng_seed);
    async move {
        let mut events = Vec::new();
        let mut rng = StdRng::seed_from_u64(rng_seed);
        let deadline = tokio::time::Instant::from_std(until);
        let mut stop = std::pin::pin!(stop);
        let mut stopped = false;
        info!(faults = ?faults.iter().map(|f| f.name()).collect::<Vec<_>>(), "nemesis starts");
        while !faults.is_empty() {
            let healthy = between(&mut rng, opts.healthy);
            let wake = tokio::time::Instant::now() + healthy;
            if !wait(wake, deadline, stop.as_mut(), &mut stopped).await {
                break;
            }
            let chosen = choose_faults(&mut rng, &faults, opts.combine_probability);
            let start = since(t0);
            let mut active: Vec<Active> = Vec::new();
            let mut busy = BTreeSet::new();
            for &fault in &chosen {
                match apply(cluster, fault, &mut rng, &mut busy).await {
                    Ok(a) => {
                        info!(fault = fault.name(), detail = %a.detail, "fault applied");
                        active.push(a);
                    }
                    Err(e) => warn!(fault = fault.name(), "could not apply: {e:#}"),
                }
            }
            if active.is_empty() {
                continue;
            }
            let hold = between(&mut rng, opts.fault);
            let wake = tokio::time::Instant::now() + hold;
            wait(wake, deadline, stop.as_mut(), &mut stopped).await;
            for a in active.iter_mut().rev() {
                if let Err(e) = undo(cluster, &a.undo).await {
                    warn!(fault = a.fault.name(), "undo failed: {e:#}");
                    a.detail.push_str(&format!("; undo failed: {e:#}"));
                } else {
                    info!(fault = a.fault.name(), "fault undone");
                }
            }
            let end = since(t0);
            let names: Vec<&str> = active.iter().map(|a| a.fault.name()).collect();
            for a in &active {
                let mut detail = a.detail.clone();
                if active.len() > 1 {
                    let others: Vec<&str> = names
                        .iter()
                        .copied()
                        .filter(|n| *n != a.fault.name())
                        .collect();
                    detail.push_str(&format!(" (together with {})", others.join(", ")));
                }
                events.push(NemesisEvent {
                    start,
                    end,
                    kind: a.fault.class().to_string(),
                    detail,
                });
            }
        }
        info!(events = events.len(), "nemesis schedule over; final heal");
        let heal_start = since(t0);
        if let Err(e) = cluster.final_heal(opts.ready_timeout).await {
            error!("final heal failed: {e:#}");
            events.push(NemesisEvent {
                start: heal_start,
                end: since(t0),
                kind: "final-heal-failed".into(),
                detail: format!("{e:#}"),
            });
        }
        events
    }
    .instrument(span)
    .await
}

/// Sleep until `wake` (capped at `deadline`) unless `stop` fires first. Returns whether the
/// schedule may go on (deadline not reached, not stopped).
async fn wait<S: Future<Output = ()>>(
    wake: tokio::time::Instant,
    deadline: tokio::time::Instant,
    stop: std::pin::Pin<&mut S>,
    stopped: &mut bool,
) -> bool {
    if !*stopped {
        tokio::select! {
            _ = tokio::time::sleep_until(wake.min(deadline)) => {}
            _ = stop => *stopped = true,
        }
    }
    !*stopped && tokio::time::Instant::now() < deadline
}

/// Nanoseconds since `t0` (0 if `t0` is in the future).
fn since(t0: Instant) -> u64 {
    u64::try_from(Instant::now().saturating_duration_since(t0).as_nanos()).unwrap_or(u64::MAX)
}

fn between(rng: &mut StdRng, (lo, hi): (Duration, Duration)) -> Duration {
    if hi <= lo {
        lo
    } else {
        rng.gen_range(lo..=hi)
    }
}

/// One fault, sometimes joined by a second fault of a different class.
fn choose_faults(rng: &mut StdRng, faults: &[Fault], combine: f64) -> Vec<Fault> {
    let Some(&first) = faults.choose(rng) else {
        return Vec::new();
    };
    let mut chosen = vec![first];
    let others: Vec<Fault> = faults
        .iter()
        .copied()
        .filter(|f| f.combines_with(first))
        .collect();
    if !others.is_empty() && rng.gen_bool(combine.clamp(0.0, 1.0)) {
        if let Some(&second) = others.choose(rng) {
            chosen.push(second);
        }
    }
    chosen
}

/// How to undo an applied fault.
#[derive(Debug, Clone)]
enum Undo {
    /// Nothing to undo (a roster change stays).
    Nothing,
    Heal,
    Restart(usize),
    RestartAll(Vec<usize>),
    Resume(usize),
    /// Put the node's clock back to real time, after healing the network if `heal`.
    Clock {
        node: usize,
        heal: bool,
    },
}

#[derive(Debug)]
struct Active {
    fault: Fault,
    undo: Undo,
    detail: String,
}

fn names(nodes: &[usize]) -> String {
    nodes
        .iter()
        .map(|&i| Cluster::node_name(i))
        .collect::<Vec<_>>()
        .join(",")
}

/// Random minority/majority split: shuffle, smaller half first.
fn halves(rng: &mut StdRng, n: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let (minority, majority) = order.split_at(n / 2);
    let mut a = minority.to_vec();
    let mut b = majority.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    vec![a, b]
}

/// A majorities ring over a random order of the nodes: each node keeps links to its `k`
/// nearest ring neighbours on either side, `k = ceil(floor(n/2) / 2)`, so it sees `2k + 1 >
/// n/2` nodes (itself included), and since `2k + 1 < n` no two nodes see the same set. For
/// 5 nodes that is the classic ring (each node reaches its two neighbours). Returns the ring
/// order and the grudge, or `None` when no such ring exists (n < 4).
pub fn majority_ring(order: &[usize]) -> Option<(usize, Grudge)> {
    let n = order.len();
    let k = (n / 2).div_ceil(2);
    if 2 * k + 1 >= n {
        return None;
    }
    let mut grudge = BTreeMap::new();
    for (pa, &a) in order.iter().enumerate() {
        let blocked: BTreeSet<usize> = order
            .iter()
            .enumerate()
            .filter(|&(pb, _)| {
                let d = pa.abs_diff(pb);
                d.min(n - d) > k
            })
            .map(|(_, &b)| b)
            .collect();
        grudge.insert(a, blocked);
    }
    Some((k, grudge))
}

/// Nodes that run (not paused, not down) and are not targeted by another active fault.
fn candidates(cluster: &mut Cluster, busy: &BTreeSet<usize>) -> Vec<usize> {
    (0..cluster.nodes())
        .filter(|i| !busy.contains(i))
        .filter(|&i| cluster.state(i) == NodeState::Running)
        .collect()
}

/// A node among `pool` that currently masters partitions (random, seeded), with its count; a
/// random node of `pool` (count `None`) when no leader is known.
async fn pick_leader(
    cluster: &mut Cluster,
    rng: &mut StdRng,
    pool: &[usize],
) -> Result<(usize, Option<usize>)> {
    let leaders = match cluster.leaders().await {
        Ok(l) => l,
        Err(e) => {
            warn!("leaders unknown, picking a random node: {e:#}");
            BTreeMap::new()
        }
    };
    let led: Vec<(usize, usize)> = leaders
        .into_iter()
        .filter(|&(i, n)| n > 0 && pool.contains(&i))
        .collect();
    if let Some(&(i, n)) = led.choose(rng) {
        return Ok((i, Some(n)));
    }
    let &i = pool.choose(rng).context("no node available")?;
    Ok((i, None))
}

/// How long a [`Fault::KillStorm`] victim stays down, and how long the cluster runs whole
/// before the next kill.
const STORM_DOWN: Duration = Duration::from_millis(2500);
const STORM_UP: Duration = Duration::from_millis(1500);

/// The node of `pool` mastering the most partitions, with its count; a node of `pool` (count
/// `None`) when no leader is known.
async fn top_leader(cluster: &mut Cluster, pool: &[usize]) -> Result<(usize, Option<usize>)> {
    let leaders = cluster.leaders().await.unwrap_or_default();
    let top = leaders
        .into_iter()
        .filter(|&(i, n)| n > 0 && pool.contains(&i))
        .max_by_key(|&(i, n)| (n, std::cmp::Reverse(i)));
    if let Some((i, n)) = top {
        return Ok((i, Some(n)));
    }
    let &i = pool.first().context("no node available")?;
    Ok((i, None))
}

/// Wait (up to 10 s) until at most 5% of the groups of the running nodes run timers;
/// describes what it saw.
async fn wait_asleep(cluster: &mut Cluster) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (mut awake, mut groups) = (0u64, 0u64);
        for i in 0..cluster.nodes() {
            if !cluster.is_running(i) {
                continue;
            }
            let Ok(stats) = cluster.info(i, "statistics").await else {
                continue;
            };
            for kv in stats.split(';') {
                match kv.split_once('=') {
                    Some(("raft_groups_awake", v)) => awake += v.parse::<u64>().unwrap_or(0),
                    Some(("raft_groups", v)) => groups += v.parse::<u64>().unwrap_or(0),
                    _ => {}
                }
            }
        }
        if groups > 0 && awake * 20 <= groups {
            return format!("{awake} of {groups} group replicas awake");
        }
        if tokio::time::Instant::now() >= deadline {
            return format!("{awake} of {groups} group replicas still awake after 10 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn leader_note(count: Option<usize>) -> String {
    match count {
        Some(n) => format!("masters {n} partitions"),
        None => "no leader known, random node".into(),
    }
}

async fn apply(
    cluster: &mut Cluster,
    fault: Fault,
    rng: &mut StdRng,
    busy: &mut BTreeSet<usize>,
) -> Result<Active> {
    let n = cluster.nodes();
    let (undo, detail) = match fault {
        Fault::PartitionHalves => {
            let comps = halves(rng, n);
            let detail = format!("halves: {} | {}", names(&comps[0]), names(&comps[1]));
            partition_or_heal(cluster, |c| c.partition(&comps))?;
            (Undo::Heal, detail)
        }
        Fault::PartitionIsolateLeader => {
            let all: Vec<usize> = (0..n).collect();
            let (leader, count) = pick_leader(cluster, rng, &all).await?;
            let detail = format!(
                "isolate leader {} ({})",
                Cluster::node_name(leader),
                leader_note(count)
            );
            partition_or_heal(cluster, |c| c.isolate(leader))?;
            (Undo::Heal, detail)
        }
        Fault::PartitionMajorityRing => {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(rng);
            match majority_ring(&order) {
                Some((k, grudge)) => {
                    let detail = format!(
                        "majority ring {} (each node reaches {k} ring neighbour(s) per side)",
                        order
                            .iter()
                            .map(|&i| Cluster::node_name(i))
                            .collect::<Vec<_>>()
                            .join("-")
                    );
                    partition_or_heal(cluster, |c| c.network_mut().cut(&grudge))?;
                    (Undo::Heal, detail)
                }
                None => {
                    let comps = halves(rng, n);
                    let detail = format!(
                        "majority ring impossible with {n} nodes, halves: {} | {}",
                        names(&comps[0]),
                        names(&comps[1])
                    );
                    partition_or_heal(cluster, |c| c.partition(&comps))?;
                    (Undo::Heal, detail)
                }
            }
        }
        Fault::MemberAdd | Fault::MemberRemove | Fault::MemberReplace => {
            let detail = change_roster(cluster, fault, rng, busy).await?;
            (Undo::Nothing, detail)
        }
        Fault::ClockDrift => {
            let pool = candidates(cluster, busy);
            let &node = pool.choose(rng).context("no running node left to target")?;
            let &rate = DRIFT_RATES.choose(rng).context("no rate")?;
            cluster.set_clock_rate(node, rate).await?;
            busy.insert(node);
            let detail = format!(
                "{} clock at {rate}x real time (lease assumption kept)",
                Cluster::node_name(node)
            );
            (Undo::Clock { node, heal: false }, detail)
        }
        Fault::ClockSlowLeader | Fault::ClockBreak => {
            let pool = candidates(cluster, busy);
            if pool.is_empty() {
                bail!("no running node left to target");
            }
            let (node, count) = pick_leader(cluster, rng, &pool).await?;
            let (rate, assumption) = if fault == Fault::ClockBreak {
                (BREAK_RATE, "broken")
            } else {
                (SLOW_RATE, "kept")
            };
            cluster.set_clock_rate(node, rate).await?;
            busy.insert(node);
            if let Err(e) = partition_or_heal(cluster, |c| c.isolate(node)) {
                let _ = cluster.set_clock_rate(node, 1.0).await;
                return Err(e);
            }
            let detail = format!(
                "{} ({}) clock at {rate}x real time and isolated (lease assumption {assumption})",
                Cluster::node_name(node),
                leader_note(count)
            );
            (Undo::Clock { node, heal: true }, detail)
        }
        Fault::KillStorm => {
            let mut killed = Vec::new();
            let mut last = None;
            for round in 0..=STORM_KILLS {
                let pool = candidates(cluster, busy);
                let (node, count) = top_leader(cluster, &pool).await?;
                cluster.kill(node)?;
                killed.push(format!(
                    "{} ({})",
                    Cluster::node_name(node),
                    leader_note(count)
                ));
                if round == STORM_KILLS {
                    last = Some(node);
                    break;
                }
                // Long enough for the survivors to take its groups over, then it comes back.
                tokio::time::sleep(STORM_DOWN).await;
                cluster.restart(node).await?;
                tokio::time::sleep(STORM_UP).await;
            }
            let node = last.context("no kill")?;
            busy.insert(node);
            (
                Undo::Restart(node),
                format!("kill-storm: {}", killed.join(", then ")),
            )
        }
        Fault::SleepWake => {
            let asleep = wait_asleep(cluster).await;
            let pool = candidates(cluster, busy);
            let (node, count) = top_leader(cluster, &pool).await?;
            partition_or_heal(cluster, |c| c.isolate(node))?;
            busy.insert(node);
            (
                Undo::Heal,
                format!(
                    "sleep-wake: {asleep}; isolated {} ({})",
                    Cluster::node_name(node),
                    leader_note(count)
                ),
            )
        }
        Fault::KillAll => {
            let pool = candidates(cluster, busy);
            if pool.is_empty() {
                bail!("no running node left to target");
            }
            for &i in &pool {
                cluster.kill(i)?;
                busy.insert(i);
            }
            let detail = format!("kill-all: {}", names(&pool));
            (Undo::RestartAll(pool), detail)
        }
        Fault::Kill | Fault::KillLeader | Fault::Pause | Fault::PauseLeader => {
            let pool = candidates(cluster, busy);
            if pool.is_empty() {
                bail!("no running node left to target");
            }
            let (node, note) = if matches!(fault, Fault::KillLeader | Fault::PauseLeader) {
                let (i, count) = pick_leader(cluster, rng, &pool).await?;
                (i, format!(" ({})", leader_note(count)))
            } else {
                (*pool.choose(rng).context("empty pool")?, String::new())
            };
            busy.insert(node);
            let name = Cluster::node_name(node);
            if matches!(fault, Fault::Kill | Fault::KillLeader) {
                cluster.kill(node)?;
                (
                    Undo::Restart(node),
                    format!("{}: {name}{note}", fault.name()),
                )
            } else {
                cluster.pause(node)?;
                (
                    Undo::Resume(node),
                    format!("{}: {name}{note}", fault.name()),
                )
            }
        }
    };
    let detail = if detail.starts_with(fault.name()) {
        detail
    } else {
        format!("{}: {detail}", fault.name())
    };
    Ok(Active {
        fault,
        undo,
        detail,
    })
}

/// The smallest roster the nemesis leaves (the replication factor).
const MIN_ROSTER: usize = 3;

/// Change every namespace's roster as `fault` says, through a random running node, with the
/// operator's commands (`roster:`, `roster-set:`, `recluster:`). The nodes added must be up
/// (observed); a removal keeps at least [`MIN_ROSTER`] nodes.
async fn change_roster(
    cluster: &mut Cluster,
    fault: Fault,
    rng: &mut StdRng,
    busy: &BTreeSet<usize>,
) -> Result<String> {
    let pool = candidates(cluster, busy);
    let &via = pool
        .choose(rng)
        .context("no running node to send roster commands to")?;
    let rosters = strato::admin::parse_rosters(&cluster.info(via, "roster:").await?);
    let (_, lists) = rosters.iter().next().context("no namespace listed")?;
    let (roster, observed) = (&lists.roster, &lists.observed);
    let running: BTreeSet<u64> = pool.iter().map(|&i| Cluster::node_id(i)).collect();
    let spares: Vec<u64> = observed
        .iter()
        .copied()
        .filter(|n| !roster.contains(n) && running.contains(n))
        .collect();
    let mut next = roster.clone();
    let what = match fault {
        Fault::MemberAdd => {
            let &add = spares.choose(rng).context("no spare node is up")?;
            next.push(add);
            format!("add n{add}")
        }
        Fault::MemberRemove => {
            if roster.len() <= MIN_ROSTER {
                bail!("the roster has only {} nodes", roster.len());
            }
            let &gone = roster.choose(rng).context("empty roster")?;
            next.retain(|n| *n != gone);
            format!("remove n{gone}")
        }
        _ => {
            let &add = spares.choose(rng).context("no spare node is up")?;
            let &gone = roster.choose(rng).context("empty roster")?;
            next.retain(|n| *n != gone);
            next.push(add);
            format!("replace n{gone} by n{add}")
        }
    };
    let ids = strato::service::info::roster::node_list(&next);
    for ns in rosters.keys() {
        let cmd = format!("roster-set:namespace={ns};nodes={ids}");
        let answer = cluster.info(via, &cmd).await?;
        if answer != "ok" {
            bail!("{cmd} answered {answer}");
        }
    }
    let answer = cluster.info(via, "recluster:").await?;
    if answer != "ok" {
        bail!("recluster: answered {answer}");
    }
    Ok(format!(
        "{what} (roster now {ids}; sent to {})",
        Cluster::node_name(via)
    ))
}

/// Apply a partition; if it fails half-way, heal so no stray rule outlives the attempt.
fn partition_or_heal(
    cluster: &mut Cluster,
    f: impl FnOnce(&mut Cluster) -> Result<()>,
) -> Result<()> {
    if let Err(e) = f(cluster) {
        if let Err(h) = cluster.heal() {
            warn!("heal after failed partition: {h:#}");
        }
        return Err(e);
    }
    Ok(())
}

async fn undo(cluster: &mut Cluster, undo: &Undo) -> Result<()> {
    match *undo {
        Undo::Nothing => Ok(()),
        Undo::Heal => cluster.heal(),
        Undo::Restart(i) => cluster.restart(i).await,
        Undo::RestartAll(ref nodes) => {
            for &i in nodes {
                cluster.restart(i).await?;
            }
            Ok(())
        }
        Undo::Resume(i) => cluster.resume(i),
        Undo::Clock { node, heal } => {
            // Heal first: the node learns of the new term once it hears from its peers.
            let healed = if heal { cluster.heal() } else { Ok(()) };
            let reset = cluster.set_clock_rate(node, 1.0).await;
            healed.and(reset)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fault_lists() {
        assert_eq!(Fault::parse_list("all").unwrap(), Fault::ALL[..8].to_vec());
        assert_eq!(
            Fault::parse_list("all,membership,clock,groups").unwrap(),
            Fault::ALL.to_vec()
        );
        assert_eq!(
            Fault::parse_list("kill-storm,sleep-wake").unwrap(),
            vec![Fault::KillStorm, Fault::SleepWake]
        );
        assert_eq!(
            Fault::parse_list("clock").unwrap(),
            vec![Fault::ClockDrift, Fault::ClockSlowLeader, Fault::ClockBreak]
        );
        assert_eq!(Fault::parse_list("").unwrap(), vec![]);
        assert_eq!(Fault::parse_list("none").unwrap(), vec![]);
        assert_eq!(
            Fault::parse_list("kill, pause").unwrap(),
            vec![
                Fault::Kill,
                Fault::KillLeader,
                Fault::KillAll,
                Fault::Pause,
                Fault::PauseLeader
            ]
        );
        assert_eq!(
            Fault::parse_list("partition").unwrap(),
            vec![
                Fault::PartitionHalves,
                Fault::PartitionIsolateLeader,
                Fault::PartitionMajorityRing
            ]
        );
        assert_eq!(
            Fault::parse_list("kill-leader,kill-leader").unwrap(),
            vec![Fault::KillLeader]
        );
        assert!(Fault::parse_list("partition,clocks").is_err());
    }

    /// Every node reaches a majority (itself included), no two the same set, and the grudge
    /// is symmetric.
    #[test]
    fn majority_ring_shapes() {
        assert!(majority_ring(&[0, 1, 2]).is_none());
        for n in 4..=9 {
            let order: Vec<usize> = (0..n).rev().collect();
            let (_, grudge) = majority_ring(&order).unwrap();
            let mut seen = BTreeSet::new();
            for a in 0..n {
                let reach: BTreeSet<usize> = (0..n).filter(|b| !grudge[&a].contains(b)).collect();
                assert!(reach.contains(&a));
                assert!(reach.len() > n / 2, "n={n} node {a} sees {reach:?}");
                assert!(reach.len() < n, "n={n} node {a} sees everyone");
                assert!(seen.insert(reach), "n={n}: two nodes see the same majority");
                for &b in &grudge[&a] {
                    assert!(grudge[&b].contains(&a));
                }
            }
        }
        // 5 nodes: the classic ring, each node reaches exactly its two neighbours.
        let (k, grudge) = majority_ring(&[0, 1, 2, 3, 4]).unwrap();
        assert_eq!(k, 1);
        assert_eq!(grudge[&0], BTreeSet::from([2, 3]));
    }

    #[test]
    fn halves_split_minority_first() {
        let mut rng = StdRng::seed_from_u64(7);
        for n in 1..=6 {
            let h = halves(&mut rng, n);
            assert_eq!(h[0].len(), n / 2);
            assert_eq!(h[0].len() + h[1].len(), n);
        }
    }

    #[test]
    fn combinations_use_distinct_classes() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut combined = 0;
        for _ in 0..200 {
            let c = choose_faults(&mut rng, &Fault::ALL, 0.5);
            if c.len() == 2 {
                combined += 1;
                assert_ne!(c[0].class(), c[1].class());
            }
        }
        assert!(combined > 50);
        // These isolate their node themselves: never a second partition beside them.
        for _ in 0..200 {
            let c = choose_faults(&mut rng, &Fault::ALL, 1.0);
            if c.contains(&Fault::ClockBreak) || c.contains(&Fault::ClockSlowLeader) {
                assert!(c.iter().all(|f| f.class() != "partition"), "{c:?}");
            }
        }
        let only_kill = [Fault::Kill, Fault::KillLeader];
        assert!((0..50).all(|_| choose_faults(&mut rng, &only_kill, 1.0).len() == 1));
    }
}
