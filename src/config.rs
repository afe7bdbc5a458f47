//! A node's settings, validated once at start-up.

use raft::config::RaftConfig;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub node_id: u64,
    /// Address every listener binds to.
    pub host: IpAddr,
    /// Service port; the fabric listens on port + 1 and gossip on port + 2.
    pub port: u16,
    pub data_dir: PathBuf,
    /// Other nodes' gossip addresses.
    pub seeds: Vec<SocketAddr>,
    /// Form a new cluster once this many nodes (this one included) are discovered; 0: never
    /// form one, only join the cluster the seeds lead to.
    pub bootstrap_expect: usize,
    pub cluster_name: String,
    /// Namespaces the cluster forms with (later ones are created at run time).
    pub namespaces: Vec<NamespaceConfig>,
    pub raft: RaftConfig,
    /// How long a request may wait for commit or leadership confirmation.
    pub request_timeout: Duration,
    /// Pause of the write-ahead log's flusher after the first sync request (group commit).
    pub wal_linger: Duration,
    /// Most rows a batch may carry (Aerospike's `batch-max-requests`; 0 = no limit, its
    /// default since 8.1). A larger batch is refused whole with 151.
    pub batch_max_requests: u32,
    /// Groups this node moves at once (as their leader) after a recluster.
    pub max_moves: usize,
    /// Accept fault-injection info commands (`clock-rate`). For tests only.
    pub fault_injection: bool,
}

#[derive(Clone, Debug)]
pub struct NamespaceConfig {
    pub name: String,
    pub replication_factor: usize,
    pub groups: u16,
    /// TTL (seconds) for writes that ask for the namespace default; 0 = never expire.
    pub default_ttl: u32,
    /// Whether clients may ask for relaxed (not linearizable) replica reads.
    pub allow_relaxed_reads: bool,
    /// Reads near expiry touch the record (percentage of its TTL; 0 = never).
    pub read_touch_ttl_pct: u32,
    /// Seconds between expiry sweeps; 0 = never remove expired records.
    pub nsup_period: u32,
}

impl Default for NamespaceConfig {
    fn default() -> Self {
        NamespaceConfig {
            name: "test".into(),
            replication_factor: 3,
            groups: storage::catalog::DEFAULT_GROUPS,
            default_ttl: 0,
            allow_relaxed_reads: false,
            read_touch_ttl_pct: 0,
            nsup_period: storage::catalog::DEFAULT_NSUP_PERIOD,
        }
    }
}

impl NamespaceConfig {
    pub fn settings(&self) -> storage::catalog::NamespaceSettings {
        storage::catalog::NamespaceSettings {
            replication_factor: self.replication_factor,
            default_ttl: self.default_ttl,
            groups: self.groups,
            allow_relaxed_reads: self.allow_relaxed_reads,
            read_touch_ttl_pct: self.read_touch_ttl_pct,
            nsup_period: self.nsup_period,
        }
    }
}

impl NodeConfig {
    pub fn service_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    pub fn fabric_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port + 1)
    }

    pub fn gossip_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port + 2)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.node_id == 0 {
            return Err("--node-id must be at least 1".into());
        }
        if self.port > u16::MAX - 2 {
            return Err(format!(
                "--port {} leaves no room for the fabric and gossip ports (port + 1, port + 2)",
                self.port
            ));
        }
        if self.bootstrap_expect == 0 && self.seeds.is_empty() {
            return Err(
                "a node without --seeds must form its own cluster (--bootstrap-expect 1)".into(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for ns in &self.namespaces {
            storage::catalog::validate_namespace_name(&ns.name)
                .map_err(|e| format!("namespace {:?}: {e}", ns.name))?;
            storage::catalog::validate_settings(&ns.settings())
                .map_err(|e| format!("namespace {}: {e}", ns.name))?;
            if !seen.insert(&ns.name) {
                return Err(format!("namespace {} is configured twice", ns.name));
            }
        }
        if self.namespaces.len() > storage::catalog::MAX_NAMESPACES {
            return Err(format!(
                "at most {} namespaces",
                storage::catalog::MAX_NAMESPACES
            ));
        }
        if self.cluster_name.is_empty() || self.cluster_name.contains(['\t', '\n']) {
            return Err("--cluster-name must be non-empty text without tabs or newlines".into());
        }
        Ok(())
    }
}
