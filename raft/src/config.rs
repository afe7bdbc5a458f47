//! Timing and log-retention settings of every group on a node.

use crate::types::GroupId;
use std::sync::Arc;
use std::time::Duration;

/// Default size of a snapshot chunk: big enough that a transfer is not dominated by round
/// trips, small enough to be one ordinary fabric frame.
pub const DEFAULT_SNAPSHOT_CHUNK: usize = 1 << 20;

/// The top of the election timeout window for a bottom of `min` ms: 20% above it (at least
/// 20 ms).
///
/// openraft's leader lease is the window's top, and a follower whose lease is still valid
/// does not start an election when its timer fires: after a leader dies, the first timer
/// (below the top) is always skipped, and a new leader is chosen at the second, about two
/// timeouts after the last heartbeat. A narrow window keeps both timeouts short; the
/// randomness left still separates candidates, whose messages take well under a millisecond
/// on a LAN, next to a spread of 20%. (Measured with `scripts/bench-failover`: a window of
/// 1-2 s gave masters back 3.5-3.8 s after a kill -9, 400-800 ms gave 1.45-1.6 s.)
pub fn election_timeout_max(min: u64) -> u64 {
    min + (min / 5).max(20)
}

/// How much faster one node's clock may run than another's before lease reads can go wrong.
///
/// A follower that acknowledged a heartbeat the leader sent at `t` neither votes nor stands
/// for election before `t + lease` by its own clock (openraft's leader lease), and a node
/// that just started waits out one lease before it does either ([`crate::MultiRaft`]); the
/// leader serves lease reads only while its newest quorum acknowledgement is younger than
/// `lease / LEASE_CLOCK_RATIO` by its own clock. Both windows start at or after `t` in real
/// time, so the leader's ends first unless some clock runs more than this many times faster
/// than the leader's. NTP keeps rates within 0.05% of each other.
pub const LEASE_CLOCK_RATIO: u32 = 2;

/// Raft settings shared by all groups of a node.
#[derive(Clone, Debug)]
pub struct RaftConfig {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Take a snapshot (and purge the log before it) after this many applied entries.
    pub snapshot_every: u64,
    /// A snapshot sent to another node goes in chunks of this many bytes, each its own
    /// request, so neither side holds it whole and other groups' messages interleave.
    pub snapshot_chunk_bytes: usize,
    /// Stop a data group's openraft instance after it has been idle this long, in
    /// milliseconds (`crate::evict`; 0: never). Raised to two leader leases if below.
    pub evict_idle_ms: u64,
}

/// How long a data group stays idle before its openraft instance is stopped: an idle
/// instance holds about 100 KiB, and a node hosts thousands of groups. Starting one again
/// costs a fraction of a millisecond on the request that needs it.
pub const DEFAULT_EVICT_IDLE_MS: u64 = 10_000;

/// Heartbeat interval: a fifth of the election timeout, so a follower misses four or five
/// heartbeats in a row before it stands for election.
pub const DEFAULT_HEARTBEAT_MS: u64 = 100;
/// Bottom of the election timeout window. Failover takes about two of them (see
/// [`election_timeout_max`]): 500 ms gives masters back about 1.2 s after a kill -9, and
/// 20 s of 64 writers on two cores caused no election (`scripts/bench-failover`).
pub const DEFAULT_ELECTION_TIMEOUT_MS: u64 = 500;

/// How long a data group's leader holds back a commit index that no new entry carries
/// (openraft's `commit_notify_delay`, a patch of ours). A write alone in its group, the usual
/// case with thousands of groups, otherwise costs a second round to every follower just to
/// tell it the entry committed: about a fifth of the cluster's CPU per write at 4,096 groups.
/// Followers learn it with the group's next write or after this delay; nothing reads a
/// follower's applied state linearizably, and a new leader applies its log before serving.
/// The metadata group sends it at once: every node follows the applied catalog.
pub const COMMIT_NOTIFY_DELAY: Duration = Duration::from_millis(1000);

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
            election_timeout_min_ms: DEFAULT_ELECTION_TIMEOUT_MS,
            election_timeout_max_ms: election_timeout_max(DEFAULT_ELECTION_TIMEOUT_MS),
            snapshot_every: 20_000,
            snapshot_chunk_bytes: DEFAULT_SNAPSHOT_CHUNK,
            evict_idle_ms: DEFAULT_EVICT_IDLE_MS,
        }
    }
}

impl RaftConfig {
    /// openraft's leader lease: the top of the election timeout window.
    pub fn leader_lease(&self) -> Duration {
        Duration::from_millis(self.election_timeout_max_ms)
    }

    /// The oldest quorum acknowledgement a lease read may rest on (see
    /// [`LEASE_CLOCK_RATIO`]). Heartbeats renew it several times within this age.
    pub fn lease_read_age(&self) -> Duration {
        self.leader_lease() / LEASE_CLOCK_RATIO
    }

    /// Entries between two snapshots of `group`: `snapshot_every` plus up to ~47% more,
    /// depending on the group. With one threshold for all, every group of a node snapshotted
    /// at the same moment under uniform load, and the burst of snapshot writes and fsyncs
    /// delayed the log's fsyncs (inserts' 99.9th percentile rose from 26 ms to 150 ms).
    pub fn snapshot_threshold(&self, group: GroupId) -> u64 {
        let spread = u64::from(group & 0xffff) % 16;
        self.snapshot_every
            .saturating_add(self.snapshot_every.saturating_mul(spread) / 32)
    }

    /// How long a data group must be idle before its instance is evicted (None: never).
    /// At least two leader leases: a follower's lease for its leader lives only in its
    /// instance's memory, so one must have lapsed before the instance may go. And at least
    /// twice [`COMMIT_NOTIFY_DELAY`] after the group's last commit, which a leader tells
    /// its followers that long afterwards: a leader evicted before would leave them without
    /// it until the group's next write.
    pub fn evict_after(&self) -> Option<Duration> {
        (self.evict_idle_ms > 0).then(|| {
            Duration::from_millis(self.evict_idle_ms)
                .max(2 * self.leader_lease())
                .max(2 * COMMIT_NOTIFY_DELAY)
        })
    }

    /// openraft's configuration for `group`; a group that starts `asleep` runs no timers
    /// until it is woken (`crate::sleep`). `restore_leader`: the group's log was synced
    /// after its last instance stopped (an eviction, `crate::evict`), so a leader it had
    /// takes office again at once.
    pub fn to_openraft(
        &self,
        group: GroupId,
        asleep: bool,
        restore_leader: bool,
    ) -> Result<Arc<openraft::Config>, openraft::ConfigError> {
        let c = openraft::Config {
            enable_tick: !asleep,
            cluster_name: "strato".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            // Pre-vote keeps a node that was partitioned away from disrupting a healthy leader.
            enable_pre_vote: Some(true),
            max_payload_entries: 1024,
            purge_batch_size: self.snapshot_every.clamp(1, 512),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(
                self.snapshot_threshold(group),
            ),
            replication_lag_threshold: self.snapshot_every * 2,
            // Keep some log behind a snapshot so briefly lagging followers catch up from the log.
            max_in_snapshot_log_to_keep: self.snapshot_every.min(1000),
            install_snapshot_timeout: 5000,
            // A leader sends entries to followers before its own fsync ends, so a kill -9 can
            // leave an entry on a quorum of followers but not on the leader. Restored as leader
            // in the same term after a restart, it would write a different entry under the same
            // log id, which followers keep as "already present" (Raft's log matching): the
            // replicas diverge. A restarted leader must win a new election (in a new term),
            // which a node missing committed entries cannot. After an eviction the log was
            // synced once the instance had stopped, so nothing it sent is missing here, and
            // the group keeps its leader without an election.
            enable_leader_restore: Some(restore_leader),
            commit_notify_delay: asleep.then_some(COMMIT_NOTIFY_DELAY.as_millis() as u64),
            ..Default::default()
        };
        Ok(Arc::new(c.validate()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarted_leader_stands_for_election() {
        let c = RaftConfig::default().to_openraft(0, false, false).unwrap();
        assert_eq!(c.enable_leader_restore, Some(false));
        let c = RaftConfig::default().to_openraft(0, true, true).unwrap();
        assert_eq!(c.enable_leader_restore, Some(true));
    }

    #[test]
    fn snapshot_thresholds_are_spread_across_groups() {
        let c = RaftConfig::default();
        let t: std::collections::BTreeSet<u64> = (0..16).map(|g| c.snapshot_threshold(g)).collect();
        assert_eq!(t.len(), 16);
        assert_eq!(t.first(), Some(&20_000));
        assert!(*t.last().unwrap() < 30_000);
        // The namespace part of the id does not matter, only the group's index in it.
        assert_eq!(c.snapshot_threshold(1 << 16 | 3), c.snapshot_threshold(3));
        let one = RaftConfig {
            snapshot_every: 1,
            ..c
        };
        assert!((0..16).all(|g| one.snapshot_threshold(g) == 1));
    }
}
