//! Sleeping groups: a data group runs no timers at all (openraft's tick is off), so
//! thousands of groups cost nothing while idle and no per-group heartbeats while busy.
//!
//! openraft's tick drives only two things: a follower's election timer and a leader's
//! heartbeats. Both are replaced here by work done once per node, not per group:
//! - **Failure detection** is per node pair ([`crate::liveness`]). When a group's leader is
//!   taken for dead (or a group has no leader), its live voters campaign in a fixed order
//!   ([`campaign_rank`]): the first at once, the next one [`CAMPAIGN_RETRY`] later, and so
//!   on, so one dead node's groups are taken over by the others evenly and without split
//!   votes; a campaigner's tick is on until the group has a live leader again (so openraft
//!   retries its election), then off.
//! - **The leader lease** is renewed on demand. A write on a stale lease is proposed at once
//!   when liveness sees a quorum of the group's voters alive (its append renews the lease);
//!   otherwise it sends one heartbeat round first and is refused if no quorum answers
//!   ([`write_gate`]; the vendored openraft does not refuse writes on a stale lease itself).
//!   A membership change that finds the lease stale always renews it first (openraft's
//!   membership checks need it). Under load, replication acknowledgements keep it fresh.
//! - Followers learn the commit index with the leader's next append; nothing reads a
//!   follower's state linearizably.
//!
//! Sleeping changes no vote, log or lease, and openraft's lease checks compare the clock, not
//! ticks, so every safety argument (commit, ReadIndex, per-peer confirmation, lease reads,
//! the start-up vote wait) holds unchanged: only liveness depends on the rules above.

use crate::types::{GroupId, NodeId};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How often the supervisor pings every peer and looks at every group.
pub const SUPERVISE_EVERY: Duration = Duration::from_millis(100);

/// A node campaigns for groups without any leader only this long after it started: a
/// restarted node first hears from the leaders, which send a heartbeat round in every group
/// they share with a node that comes back.
pub const STARTUP_GRACE: Duration = Duration::from_millis(1500);

/// How long a group with no leader known at all (as opposed to a leader taken for dead) is
/// left to its first election before the supervisor's campaigns start.
pub const NO_LEADER_WAIT: Duration = Duration::from_secs(2);

/// The delay between one campaigner's turn and the next one's (see [`campaign_rank`]): more
/// than an election takes on a loaded machine, so the first campaign usually ends the need.
pub const CAMPAIGN_RETRY: Duration = Duration::from_millis(700);

/// How long a leadership transfer may leave this node leading before it hands leadership to
/// another live voter (a transferring leader refuses writes until it steps down, and no
/// timer of openraft's would end that if the target died).
pub const TRANSFER_GIVEUP: Duration = Duration::from_secs(2);

/// Campaigns a node runs at once; the others wait their turn. Thousands of elections
/// started together (a new namespace, a dead node's groups, a cluster start) each take
/// longer than an election timeout on a loaded machine, so every candidate times out and
/// starts again in a higher term: a storm that never settles. A bounded number in flight
/// keeps each one fast, and the queue drains at the rate the node can sustain.
pub const CAMPAIGN_SLOTS: usize = 64;

/// How long a campaign holds its slot at most while waiting for the group to have a leader
/// (its own or another's); the group's timer, on meanwhile, goes on retrying after that.
pub const CAMPAIGN_HOLD: Duration = Duration::from_millis(1000);

/// A group's timers and campaigns on this node.
#[derive(Default)]
pub struct SleepCell {
    /// openraft's tick is on (this replica campaigns, or just led an election).
    awake: AtomicBool,
    /// Milliseconds since the node's epoch at which the group was first seen without a live
    /// leader (0: it has one).
    leaderless_since_ms: AtomicU64,
    /// When a leadership transfer away from this node started (0: none).
    transfer_since_ms: AtomicU64,
    /// When a vote or pre-vote request for the group last arrived, and when an append from
    /// a leader last did: a vote after the last append means the leader this replica knows
    /// may no longer lead (it restarted, or stepped down), even if its node is alive.
    vote_seen_ms: AtomicU64,
    append_seen_ms: AtomicU64,
    /// The candidate of that vote request.
    vote_from: AtomicU64,
    /// A campaign for the group waits for a slot or runs here (see [`CAMPAIGN_SLOTS`]).
    campaigning: AtomicBool,
    /// This replica has known a leader of the group since it opened it.
    had_leader: AtomicBool,
}

impl SleepCell {
    pub fn is_awake(&self) -> bool {
        self.awake.load(Ordering::Acquire)
    }

    /// Mark awake; true if it was asleep (the caller then switches the tick on).
    pub(crate) fn wake(&self) -> bool {
        !self.awake.swap(true, Ordering::AcqRel)
    }

    /// Claim the group's one campaign on this node; false if one is queued or running.
    pub(crate) fn start_campaign(&self) -> bool {
        !self.campaigning.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn end_campaign(&self) {
        self.campaigning.store(false, Ordering::Release);
    }

    /// A campaign of this node's for the group is queued or running.
    pub fn is_campaigning(&self) -> bool {
        self.campaigning.load(Ordering::Acquire)
    }

    /// Mark asleep; true if it was awake (the caller then switches the tick off).
    pub(crate) fn sleep(&self) -> bool {
        self.awake.swap(false, Ordering::AcqRel)
    }

    /// How long the group has had no live leader as of `now_ms` (None: it has one).
    pub(crate) fn leaderless_for(&self, has_leader: bool, now_ms: u64) -> Option<Duration> {
        if has_leader {
            self.leaderless_since_ms.store(0, Ordering::Relaxed);
            return None;
        }
        let since = match self.leaderless_since_ms.load(Ordering::Relaxed) {
            0 => {
                self.leaderless_since_ms
                    .store(now_ms.max(1), Ordering::Relaxed);
                now_ms
            }
            t => t,
        };
        Some(Duration::from_millis(now_ms.saturating_sub(since)))
    }

    pub(crate) fn vote_seen(&self, candidate: NodeId, now_ms: u64) {
        self.vote_from.store(candidate, Ordering::Relaxed);
        self.vote_seen_ms.store(now_ms.max(1), Ordering::Relaxed);
    }

    pub(crate) fn append_seen(&self, now_ms: u64) {
        self.append_seen_ms.store(now_ms.max(1), Ordering::Relaxed);
    }

    /// Whether `leader`, the leader this replica knows, campaigns for the group (its vote
    /// request arrived within [`CONTESTED_FOR`] and no append since): it no longer leads
    /// (it restarted, or stepped down), so the live voters take their turns too
    /// ([`contested`]). Another node's campaign says nothing of the leader: counting it
    /// made every failed campaign start more, a storm under load.
    pub(crate) fn is_contested(&self, leader: NodeId, now_ms: u64) -> bool {
        self.vote_from.load(Ordering::Relaxed) == leader
            && contested(
                self.vote_seen_ms.load(Ordering::Relaxed),
                self.append_seen_ms.load(Ordering::Relaxed),
                now_ms,
            )
    }

    /// Note that the group has a leader known here now.
    pub(crate) fn leader_seen(&self) {
        self.had_leader.store(true, Ordering::Relaxed);
    }

    /// Whether this replica has known a leader of the group since it opened it: a group
    /// without a known leader is new only if not. (Voting for a candidate, or refusing one
    /// with a shorter log, forgets the leader in openraft's view; such a group must not wait
    /// as long as a new one does.)
    pub(crate) fn had_leader(&self) -> bool {
        self.had_leader.load(Ordering::Relaxed)
    }

    /// [`lease_wait`] for this replica's last append.
    pub(crate) fn lease_wait(&self, now_ms: u64, lease: Duration) -> Duration {
        lease_wait(self.append_seen_ms.load(Ordering::Relaxed), now_ms, lease)
    }

    /// A leadership transfer away from this node started and has not been seen to end.
    pub(crate) fn is_transferring(&self) -> bool {
        self.transfer_since_ms.load(Ordering::Relaxed) != 0
    }

    pub(crate) fn transfer_started(&self, now_ms: u64) {
        self.transfer_since_ms
            .store(now_ms.max(1), Ordering::Relaxed);
    }

    /// Whether a transfer started [`TRANSFER_GIVEUP`] ago or more is still pending at
    /// `now_ms` (this node still leads); restarts the wait when it is.
    pub(crate) fn transfer_overdue(&self, still_leading: bool, now_ms: u64) -> bool {
        let since = self.transfer_since_ms.load(Ordering::Relaxed);
        if since == 0 {
            return false;
        }
        if !still_leading {
            self.transfer_since_ms.store(0, Ordering::Relaxed);
            return false;
        }
        if now_ms.saturating_sub(since) < TRANSFER_GIVEUP.as_millis() as u64 {
            return false;
        }
        self.transfer_since_ms
            .store(now_ms.max(1), Ordering::Relaxed);
        true
    }
}

/// How long a vote request without a later append keeps a group contested.
pub const CONTESTED_FOR: Duration = Duration::from_secs(2);

/// Whether a group whose last vote request arrived at `vote_ms` and last append at
/// `append_ms` is contested at `now_ms` (pure; 0 = never).
pub(crate) fn contested(vote_ms: u64, append_ms: u64, now_ms: u64) -> bool {
    vote_ms != 0
        && vote_ms > append_ms
        && now_ms.saturating_sub(vote_ms) < CONTESTED_FOR.as_millis() as u64
}

/// How long a campaign against a dead leader must still wait at `now_ms` (pure): until one
/// leader lease (plus a margin for the other followers, who heard the same last append at
/// about the same moment) has passed since this replica last heard an append from it.
/// Followers refuse a pre-vote while they hold a lease for their leader, and a refused
/// campaign only ends after an election timeout; liveness takes a node for dead sooner than
/// a lease, so campaigning at once failed for every group that was busy when its leader died.
pub(crate) fn lease_wait(append_seen_ms: u64, now_ms: u64, lease: Duration) -> Duration {
    let until = append_seen_ms + (lease + LEASE_MARGIN).as_millis() as u64;
    Duration::from_millis(until.saturating_sub(now_ms))
}

/// How long a group without a live leader has waited for this node's campaigns, as
/// [`campaign_due`] counts it (pure); None while it must not campaign at all. A group that
/// never had a leader here (a new group, or a node that just started) is given time first:
/// nothing before [`STARTUP_GRACE`] after the node started, then [`NO_LEADER_WAIT`] less
/// than it has been leaderless (a new group's first election is run by the replica that
/// initializes it, and a restarted node hears from the leaders). A group that had one
/// waits out its dead leader's lease first ([`lease_wait`]).
pub(crate) fn campaign_waited(
    had_leader: bool,
    now_ms: u64,
    leaderless: Duration,
    lease_wait: Duration,
) -> Option<Duration> {
    match (had_leader, lease_wait.is_zero()) {
        (false, _) if now_ms < STARTUP_GRACE.as_millis() as u64 => None,
        (false, _) => leaderless.checked_sub(NO_LEADER_WAIT),
        (true, false) => None,
        (true, true) => Some(leaderless),
    }
}

/// Whether a replica counts the leader it knows as a live one (pure): itself, or a node
/// liveness takes for alive that is still one of the group's voters; either way one that
/// no campaign heard of since has contested. A leader whose membership change removed it
/// steps down once that change commits, while its node lives on (it left the roster, or
/// only this group moved off it): its followers, their timers off, would otherwise wait
/// for it for ever.
pub(crate) fn leader_counts(is_me: bool, alive: bool, voter: bool, uncontested: bool) -> bool {
    (is_me || (alive && voter)) && uncontested
}

/// What a write on a group this node leads needs first (see [`write_gate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteGate {
    /// Propose at once: its own append renews the lease.
    Propose,
    /// Send one heartbeat round first and propose only once a quorum answered it.
    RenewLease,
}

/// Whether a leader proposes a write at once (pure): when its lease is fresh, or when a
/// quorum of the group's voters (itself included) is alive as far as liveness knows, the
/// append itself is the round that renews the lease, so a sleeping group pays one round per
/// write, not two. Otherwise this leader may be cut off: a heartbeat round tells, and a
/// leader that cannot renew its lease refuses the write before appending anything, so the
/// client learns that nothing happened instead of waiting for a write that cannot commit.
pub(crate) fn write_gate(lease_fresh: bool, voters: usize, voters_alive: usize) -> WriteGate {
    if lease_fresh || voters_alive > voters / 2 {
        WriteGate::Propose
    } else {
        WriteGate::RenewLease
    }
}

/// See [`lease_wait`].
const LEASE_MARGIN: Duration = Duration::from_millis(50);

/// This node's turn among the campaigners of `group`, whose leader `leader` (if any) is
/// gone (pure): the live voters other than the leader, in an order that starts at a position
/// drawn from a hash of the group, so one dead node's groups are taken over by all the others
/// evenly. A hash, not the group id itself: which groups a node leads follows the placement,
/// and a rotation by id then gave every group of one dead leader the same successor. Every
/// node with the same view of liveness computes the same order. None when this node is not
/// a live voter.
pub(crate) fn campaign_rank(
    group: GroupId,
    voters: &BTreeSet<NodeId>,
    leader: Option<NodeId>,
    me: NodeId,
    alive: impl Fn(NodeId) -> bool,
) -> Option<usize> {
    let v: Vec<NodeId> = voters
        .iter()
        .copied()
        .filter(|n| Some(*n) != leader)
        .collect();
    if v.is_empty() {
        return None;
    }
    let start = (mix(u64::from(group)) % v.len() as u64) as usize;
    (0..v.len())
        .map(|i| v[(start + i) % v.len()])
        .filter(|n| *n == me || alive(*n))
        .position(|n| n == me)
}

/// splitmix64's finalizer: spreads consecutive or patterned ids over all of `u64`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Whether the campaigner of rank `rank` starts now, the group having had no live leader for
/// `leaderless_for` (pure): rank k waits k × [`CAMPAIGN_RETRY`].
pub(crate) fn campaign_due(rank: usize, leaderless_for: Duration) -> bool {
    leaderless_for >= CAMPAIGN_RETRY * rank as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_removed_from_the_voters_no_longer_counts() {
        assert!(leader_counts(false, true, true, true));
        // Removed by its own membership change, alive elsewhere: the group is leaderless.
        assert!(!leader_counts(false, true, false, true));
        assert!(!leader_counts(false, false, true, true));
        assert!(!leader_counts(false, true, true, false));
        assert!(leader_counts(true, true, false, true));
        assert!(!leader_counts(true, true, true, false));
    }

    #[test]
    fn a_write_renews_the_lease_first_only_without_a_live_quorum() {
        assert_eq!(write_gate(true, 3, 1), WriteGate::Propose);
        assert_eq!(write_gate(false, 3, 2), WriteGate::Propose);
        assert_eq!(write_gate(false, 3, 1), WriteGate::RenewLease);
        assert_eq!(write_gate(false, 4, 2), WriteGate::RenewLease);
        assert_eq!(write_gate(false, 5, 3), WriteGate::Propose);
        assert_eq!(write_gate(false, 1, 1), WriteGate::Propose);
    }

    fn set(v: &[NodeId]) -> BTreeSet<NodeId> {
        v.iter().copied().collect()
    }

    #[test]
    fn campaigners_rotate_with_the_group_and_skip_the_dead() {
        let voters = set(&[1, 2, 3]);
        // Leader 1 dead: the first campaigner alternates between 2 and 3.
        let first: Vec<NodeId> = (0..6)
            .map(|g| {
                [2, 3]
                    .into_iter()
                    .find(|me| campaign_rank(g, &voters, Some(1), *me, |n| n != 1) == Some(0))
                    .unwrap()
            })
            .collect();
        assert!(first.contains(&2) && first.contains(&3));
        // Each group has exactly one rank-0 and one rank-1 campaigner.
        for g in 0..6 {
            let mut ranks: Vec<usize> = [2, 3]
                .into_iter()
                .filter_map(|me| campaign_rank(g, &voters, Some(1), me, |n| n != 1))
                .collect();
            ranks.sort();
            assert_eq!(ranks, vec![0, 1]);
        }
        // The dead leader never campaigns, a dead voter is skipped, and a non-voter has no turn.
        assert_eq!(campaign_rank(0, &voters, Some(1), 1, |_| true), None);
        assert_eq!(campaign_rank(1, &voters, Some(1), 3, |n| n == 3), Some(0));
        assert_eq!(campaign_rank(1, &voters, Some(1), 9, |_| true), None);
        // No leader at all: every voter has a turn.
        let mut all: Vec<usize> = (1..=3)
            .filter_map(|me| campaign_rank(4, &voters, None, me, |_| true))
            .collect();
        all.sort();
        assert_eq!(all, vec![0, 1, 2]);
    }

    #[test]
    fn a_dead_leaders_groups_go_to_every_survivor_evenly() {
        // Node 1 led every third group (as a placement may have it): its successors must
        // still split them about evenly.
        let voters = set(&[1, 2, 3]);
        let groups: Vec<GroupId> = (0..3000).filter(|g| g % 3 == 0).collect();
        let to_2 = groups
            .iter()
            .filter(|g| campaign_rank(**g, &voters, Some(1), 2, |n| n != 1) == Some(0))
            .count();
        assert!(
            (400..=600).contains(&to_2),
            "{to_2} of {} to node 2",
            groups.len()
        );
    }

    #[test]
    fn campaigns_wait_for_the_dead_leaders_lease() {
        let lease = Duration::from_millis(600);
        // Heard an append at 1000: wait until 1650.
        assert_eq!(lease_wait(1000, 1400, lease), Duration::from_millis(250));
        assert_eq!(lease_wait(1000, 1650, lease), Duration::ZERO);
        assert_eq!(lease_wait(1000, 9000, lease), Duration::ZERO);
        // Never heard one (a group asleep since this node started): no wait.
        assert_eq!(lease_wait(0, 700, lease), Duration::ZERO);
    }

    #[test]
    fn new_groups_wait_longer_and_old_ones_wait_out_the_lease() {
        let (s, grace) = (Duration::from_secs(1), STARTUP_GRACE.as_millis() as u64);
        // Never had a leader: nothing during the start-up grace, then NO_LEADER_WAIT less.
        assert_eq!(
            campaign_waited(false, grace - 1, s * 9, Duration::ZERO),
            None
        );
        assert_eq!(
            campaign_waited(false, grace, NO_LEADER_WAIT / 2, Duration::ZERO),
            None
        );
        assert_eq!(
            campaign_waited(false, grace, NO_LEADER_WAIT + s, Duration::ZERO),
            Some(s)
        );
        // Had one: all the time leaderless counts, once its lease at the followers lapsed.
        assert_eq!(campaign_waited(true, 0, s, Duration::from_millis(5)), None);
        assert_eq!(campaign_waited(true, 0, s, Duration::ZERO), Some(s));
    }

    #[test]
    fn one_campaign_per_group_and_a_known_leader_is_remembered() {
        let c = SleepCell::default();
        assert!(!c.is_campaigning());
        assert!(c.start_campaign());
        // A second look at the group while its campaign waits for a slot starts none.
        assert!(!c.start_campaign());
        assert!(c.is_campaigning());
        c.end_campaign();
        assert!(c.start_campaign());
        // A group that had a leader here is not taken for new once openraft forgets it.
        assert!(!c.had_leader());
        c.leader_seen();
        assert!(c.had_leader());
    }

    #[test]
    fn later_campaigners_wait_their_turn() {
        assert!(campaign_due(0, Duration::ZERO));
        assert!(!campaign_due(1, CAMPAIGN_RETRY - Duration::from_millis(1)));
        assert!(campaign_due(1, CAMPAIGN_RETRY));
        assert!(!campaign_due(2, CAMPAIGN_RETRY));
    }

    #[test]
    fn leaderless_time_starts_when_first_seen_and_ends_with_a_leader() {
        let c = SleepCell::default();
        assert_eq!(c.leaderless_for(false, 1000), Some(Duration::ZERO));
        assert_eq!(
            c.leaderless_for(false, 1500),
            Some(Duration::from_millis(500))
        );
        assert_eq!(c.leaderless_for(true, 1600), None);
        assert_eq!(c.leaderless_for(false, 2000), Some(Duration::ZERO));
    }

    #[test]
    fn a_vote_without_a_later_append_contests_the_leader_for_a_while() {
        let c = CONTESTED_FOR.as_millis() as u64;
        assert!(!contested(0, 0, 100));
        assert!(contested(100, 50, 100));
        assert!(contested(100, 50, 100 + c - 1));
        assert!(!contested(100, 50, 100 + c));
        // A leader's append after the vote settles it.
        assert!(!contested(100, 150, 200));
        let cell = SleepCell::default();
        cell.vote_seen(2, 10);
        assert!(cell.is_contested(2, 20));
        // Only the known leader's own campaign contests it.
        assert!(!cell.is_contested(3, 20));
        cell.append_seen(30);
        assert!(!cell.is_contested(2, 40));
    }

    #[test]
    fn a_stuck_transfer_is_noticed_once_per_giveup() {
        let c = SleepCell::default();
        let g = TRANSFER_GIVEUP.as_millis() as u64;
        assert!(!c.transfer_overdue(true, 10));
        c.transfer_started(10);
        assert!(!c.transfer_overdue(true, 10 + g - 1));
        assert!(c.transfer_overdue(true, 10 + g));
        assert!(!c.transfer_overdue(true, 10 + g + 1));
        // Leadership moved: the transfer is over.
        assert!(!c.transfer_overdue(false, 10 + 3 * g));
        assert!(!c.transfer_overdue(true, 10 + 4 * g));
    }
}
