//! The start-up configuration file (`strato serve --config FILE`), like aerospike.conf but
//! TOML. Every key is optional; command-line flags override the file, the file overrides the
//! defaults. An unknown key or a bad value stops start-up with a message naming it.
//!
//! ```toml
//! [node]
//! id = 1
//! data-dir = "./data"
//! cluster-name = "strato"
//! request-timeout-ms = 5000
//! wal-linger-us = 0
//! snapshot-every = 20000
//! evict-idle-ms = 10000
//!
//! [network]
//! address = "127.0.0.1"
//! port = 3000
//! seeds = ["127.0.0.1:3012", "127.0.0.1:3022"]
//! bootstrap-expect = 3
//! heartbeat-ms = 100
//! election-timeout-ms = 500
//!
//! [logging]
//! level = "info"
//!
//! [[namespaces]]
//! name = "test"
//! replication-factor = 3
//! default-ttl = 0
//! raft-groups = 16
//! allow-relaxed-reads = false
//! default-read-touch-ttl-pct = 0
//! nsup-period = 120
//! ```

use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub node: NodeSection,
    pub network: NetworkSection,
    pub logging: LoggingSection,
    pub namespaces: Vec<NamespaceSection>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeSection {
    pub id: Option<u64>,
    pub data_dir: Option<PathBuf>,
    pub cluster_name: Option<String>,
    pub request_timeout_ms: Option<u64>,
    pub wal_linger_us: Option<u64>,
    pub snapshot_every: Option<u64>,
    pub evict_idle_ms: Option<u64>,
    pub batch_max_requests: Option<u32>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetworkSection {
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
    pub seeds: Option<Vec<String>>,
    pub bootstrap_expect: Option<usize>,
    pub heartbeat_ms: Option<u64>,
    pub election_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LoggingSection {
    /// A tracing filter (`info`, `debug`, `info,strato=debug`); `RUST_LOG` wins when set.
    pub level: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NamespaceSection {
    pub name: String,
    pub replication_factor: Option<usize>,
    pub default_ttl: Option<u32>,
    pub raft_groups: Option<u16>,
    pub allow_relaxed_reads: Option<bool>,
    pub default_read_touch_ttl_pct: Option<u32>,
    pub nsup_period: Option<u32>,
}

/// Read and parse `path`; errors name the file, the line and the key.
pub fn load(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading the configuration file {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("configuration file {}: {e}", path.display()))
}

pub fn parse(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().replace('\n', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file_parses() {
        let c = parse(
            r#"
            [node]
            id = 2
            data-dir = "/var/lib/strato"
            [network]
            port = 3010
            seeds = ["127.0.0.1:3002"]
            bootstrap-expect = 3
            [logging]
            level = "debug"
            [[namespaces]]
            name = "test"
            replication-factor = 2
            [[namespaces]]
            name = "cache"
            default-ttl = 3600
            allow-relaxed-reads = true
            "#,
        )
        .unwrap();
        assert_eq!(c.node.id, Some(2));
        assert_eq!(c.network.port, Some(3010));
        assert_eq!(c.network.bootstrap_expect, Some(3));
        assert_eq!(c.namespaces.len(), 2);
        assert_eq!(c.namespaces[1].default_ttl, Some(3600));
        assert_eq!(parse("").unwrap(), FileConfig::default());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = parse("[node]\nidd = 1\n").unwrap_err();
        assert!(e.contains("idd"), "{e}");
        let e = parse("[network]\nport = 70000\n").unwrap_err();
        assert!(e.contains("port") || e.contains("70000"), "{e}");
        let e = parse("[network]\naddress = \"not an ip\"\n").unwrap_err();
        assert!(e.contains("address") || e.contains("not an ip"), "{e}");
        let e = parse("[[namespaces]]\nreplication-factor = 2\n").unwrap_err();
        assert!(e.contains("name"), "{e}");
        let e = parse("[cluster]\n").unwrap_err();
        assert!(e.contains("cluster"), "{e}");
    }
}
