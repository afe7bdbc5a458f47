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
    /// Form a new cluster once this many nodes (this one included) are discovered.
    pub bootstrap_expect: usize,
    pub cluster_name: String,
    pub namespace: NamespaceConfig,
    pub raft: RaftConfig,
    /// How long a request may wait for commit or leadership confirmation.
    pub request_timeout: Duration,
    /// Pause of the write-ahead log's flusher after the first sync request (group commit).
    pub wal_linger: Duration,
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
}

impl Default for NamespaceConfig {
    fn default() -> Self {
        NamespaceConfig {
            name: "test".into(),
            replication_factor: 3,
            groups: 16,
            default_ttl: 0,
            allow_relaxed_reads: false,
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
        if self.bootstrap_expect == 0 {
            return Err("--bootstrap-expect must be at least 1".into());
        }
        let ns = &self.namespace.name;
        if ns.is_empty() || ns.len() > storage::record::NAMESPACE_MAX {
            return Err(format!(
                "namespace name must be 1..={} bytes",
                storage::record::NAMESPACE_MAX
            ));
        }
        if self.namespace.replication_factor == 0 {
            return Err("--replication-factor must be at least 1".into());
        }
        if self.namespace.groups == 0 || self.namespace.groups > storage::record::PARTITIONS {
            return Err(format!(
                "--groups must be 1..={}",
                storage::record::PARTITIONS
            ));
        }
        if self.cluster_name.is_empty() || self.cluster_name.contains(['\t', '\n']) {
            return Err("--cluster-name must be non-empty text without tabs or newlines".into());
        }
        Ok(())
    }
}
