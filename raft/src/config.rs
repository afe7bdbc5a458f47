//! Timing and log-retention settings of every group on a node.

use std::sync::Arc;

/// Raft settings shared by all groups of a node.
#[derive(Clone, Debug)]
pub struct RaftConfig {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Take a snapshot (and purge the log before it) after this many applied entries.
    pub snapshot_every: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        // Many groups share two cores: a 200 ms heartbeat keeps idle cost low, and an election
        // timeout of 1-2 s leaves room for fsync and scheduler stalls without false elections.
        RaftConfig {
            heartbeat_ms: 200,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            snapshot_every: 20_000,
        }
    }
}

impl RaftConfig {
    pub fn to_openraft(&self) -> Result<Arc<openraft::Config>, openraft::ConfigError> {
        let c = openraft::Config {
            cluster_name: "strato".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            // Pre-vote keeps a node that was partitioned away from disrupting a healthy leader.
            enable_pre_vote: Some(true),
            max_payload_entries: 1024,
            purge_batch_size: self.snapshot_every.clamp(1, 512),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            replication_lag_threshold: self.snapshot_every * 2,
            // Keep some log behind a snapshot so briefly lagging followers catch up from the log.
            max_in_snapshot_log_to_keep: self.snapshot_every.min(1000),
            install_snapshot_timeout: 5000,
            ..Default::default()
        };
        Ok(Arc::new(c.validate()?))
    }
}
