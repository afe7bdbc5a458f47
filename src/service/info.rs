//! Info commands: the text protocol clients use to discover and tend the cluster, and
//! operators use through `strato info`.

use crate::cluster::placement::{group_id, Roster};
use crate::node::Node;
use crate::protocol::info::{encode_info_response, parse_info_request};
use crate::stats::Stats;
use base64::Engine;
use raft::NodeId;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use storage::record::PARTITIONS;

/// The Aerospike server version we answer with: new enough for partition queries and the
/// batch-index protocol, older than 8.1's changed info syntaxes.
pub const BUILD: &str = "8.0.0.0";

const FEATURES: &str = "batch-index;blob-bits;cdt-list;cdt-map;float;peers;pipelining;replicas;replicas-all;replicas-master;replicas-max;relaxed-sc";

pub fn answer(node: &Node, body: &[u8]) -> Vec<u8> {
    let mut cmds = parse_info_request(body);
    if cmds.is_empty() {
        cmds = vec![
            "node".into(),
            "build".into(),
            "cluster-name".into(),
            "edition".into(),
        ];
    }
    let pairs: Vec<(String, String)> = cmds
        .into_iter()
        .map(|c| {
            let v = command(node, &c);
            (c, v)
        })
        .collect();
    encode_info_response(&pairs)
}

/// The value of one command (`name[:params]`).
pub fn command(node: &Node, cmd: &str) -> String {
    let (name, params) = cmd.split_once(':').unwrap_or((cmd, ""));
    let cfg = &node.config;
    match name {
        "node" => Node::node_name(cfg.node_id),
        "build" => BUILD.into(),
        "edition" => "Strato".into(),
        "version" => format!("Strato build {BUILD}"),
        "status" => "ok".into(),
        "features" => FEATURES.into(),
        "cluster-name" => cfg.cluster_name.clone(),
        "partitions" => PARTITIONS.to_string(),
        "namespaces" => cfg.namespace.name.clone(),
        "partition-generation" => partition_generation(node).to_string(),
        "rebalance-generation" => "0".into(),
        "replicas" => replicas(node, true),
        "replicas-all" => replicas(node, false),
        "replicas-master" => replicas_master(node),
        "peers-generation" => peers(node).0.to_string(),
        "peers-clear-std" | "peers-clear-alt" => peers(node).1,
        "service-clear-std" | "service-clear-alt" | "service" => cfg.service_addr().to_string(),
        "services" | "services-alumni" => services(node),
        "statistics" => statistics(node),
        "sets" => sets(node),
        "user-agent-set" => "ok".into(),
        "namespace" | "get-config" => namespace_config(node, params),
        _ if name.starts_with("namespace/") => {
            namespace_config(node, &format!("namespace={}", &name["namespace/".len()..]))
        }
        _ => "ERROR:4:unrecognized command".into(),
    }
}

fn fingerprint<T: Hash>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

/// Who this node is for each partition: (leader, replicas in placement order) per group.
fn ownership(node: &Node, roster: &Roster) -> Vec<(Option<NodeId>, Vec<NodeId>, u64)> {
    (0..roster.groups)
        .map(|g| {
            let status = node.multi.status(group_id(0, g));
            let leader = status.as_ref().and_then(|s| s.leader);
            let term = status.map_or(0, |s| s.term);
            (leader, roster.replicas(g), term)
        })
        .collect()
}

/// -1 until the node holds its groups (clients skip such nodes); afterwards a counter that
/// moves whenever this node's `replicas` answer would change.
fn partition_generation(node: &Node) -> i64 {
    if !node.is_ready() {
        return -1;
    }
    let fp = fingerprint(&replicas(node, true));
    let Ok(mut g) = node.partition_generation.lock() else {
        return 0;
    };
    if g.0 != fp {
        *g = (fp, g.1 + 1);
    }
    g.1
}

/// `<ns>:<regime>,<n>,<bitmap>...`: column 0 holds the partitions this node leads, column i
/// those where it is the i-th follower. The regime is the highest Raft term this node has
/// seen, so a newer leader's claims never rank below an older one's.
fn replicas(node: &Node, with_regime: bool) -> String {
    let ns = &node.config.namespace.name;
    let Some(roster) = node.roster() else {
        let empty = encode_bitmap(&[0u8; 512]);
        return if with_regime {
            format!("{ns}:0,1,{empty}")
        } else {
            format!("{ns}:1,{empty}")
        };
    };
    let me = node.config.node_id;
    let n = roster.replication_factor;
    let mut maps = vec![[0u8; 512]; n];
    let owners = ownership(node, &roster);
    let regime = owners.iter().map(|o| o.2).max().unwrap_or(0).max(1);
    for p in 0..PARTITIONS {
        let (leader, reps, _) = &owners[usize::from(roster.group_of(p))];
        let column = match leader {
            Some(l) if *l == me => Some(0),
            Some(l) => reps
                .iter()
                .filter(|r| *r != l)
                .position(|r| *r == me)
                .map(|i| i + 1),
            None => None,
        };
        if let Some(c) = column.filter(|c| *c < n) {
            maps[c][usize::from(p >> 3)] |= 0x80 >> (p & 7);
        }
    }
    let cols: Vec<String> = maps.iter().map(encode_bitmap).collect();
    if with_regime {
        format!("{ns}:{regime},{n},{}", cols.join(","))
    } else {
        format!("{ns}:{n},{}", cols.join(","))
    }
}

fn replicas_master(node: &Node) -> String {
    let full = replicas(node, false);
    let ns = &node.config.namespace.name;
    let master = full.split(',').nth(1).unwrap_or_default();
    format!("{ns}:{master}")
}

fn encode_bitmap(m: &[u8; 512]) -> String {
    base64::engine::general_purpose::STANDARD.encode(m)
}

/// (generation, `peers-clear-std` value): every other live node, as clients must see them all.
fn peers(node: &Node) -> (u64, String) {
    let me = node.config.node_id;
    let members = node.members.borrow().clone();
    let list: Vec<String> = members
        .values()
        .filter(|m| m.node_id != me && m.up)
        .map(|m| format!("[{},,[{}]]", Node::node_name(m.node_id), m.service))
        .collect();
    let body = list.join(",");
    let fp = fingerprint(&body);
    let gen = match node.peers_generation.lock() {
        Ok(mut g) => {
            if g.0 != fp {
                *g = (fp, g.1 + 1);
            }
            g.1
        }
        Err(_) => 0,
    };
    (gen, format!("{gen},{},[{body}]", node.config.port))
}

fn services(node: &Node) -> String {
    let me = node.config.node_id;
    let members = node.members.borrow();
    members
        .values()
        .filter(|m| m.node_id != me && m.up)
        .map(|m| m.service.to_string())
        .collect::<Vec<_>>()
        .join(";")
}

fn record_counts(node: &Node) -> (u64, std::collections::BTreeMap<String, u64>) {
    let mut total = 0;
    let mut sets = std::collections::BTreeMap::new();
    let me = node.config.node_id;
    for g in node.multi.groups() {
        // Count each record once in the cluster: on the node that leads its group.
        if node.multi.status(g.id).and_then(|s| s.leader) != Some(me) {
            continue;
        }
        if let Ok(records) = g.records.read() {
            for (_, r) in records.iter() {
                total += 1;
                *sets.entry(r.set.clone()).or_insert(0) += 1;
            }
        }
    }
    (total, sets)
}

fn sets(node: &Node) -> String {
    let ns = &node.config.namespace.name;
    let (_, sets) = record_counts(node);
    sets.iter()
        .filter(|(s, _)| !s.is_empty())
        .map(|(s, n)| format!("ns={ns}:set={s}:objects={n}:tombstones=0:truncate_lut=0;"))
        .collect()
}

fn statistics(node: &Node) -> String {
    let s = &node.stats;
    let (objects, _) = record_counts(node);
    let members = node.members.borrow();
    let cluster_size = members.values().filter(|m| m.up).count();
    let wal = node.log_stats();
    let leaders = node
        .multi
        .groups()
        .iter()
        .filter(|g| node.multi.status(g.id).and_then(|st| st.leader) == Some(node.config.node_id))
        .count();
    [
        ("cluster_size", cluster_size as u64),
        ("uptime", node.started.elapsed().as_secs()),
        ("objects", objects),
        ("raft_groups", node.multi.groups().len() as u64),
        ("raft_groups_led", leaders as u64),
        ("client_connections", Stats::get(&s.client_connections)),
        ("client_read_requests", Stats::get(&s.reads)),
        ("client_read_not_found", Stats::get(&s.read_not_found)),
        ("client_write_requests", Stats::get(&s.writes)),
        ("client_delete_requests", Stats::get(&s.deletes)),
        ("client_errors", Stats::get(&s.errors)),
        ("client_in_doubt", Stats::get(&s.in_doubt)),
        ("proxied_requests", Stats::get(&s.forwarded)),
        ("info_requests", Stats::get(&s.info_requests)),
        ("wal_fsyncs", wal.flushes),
        ("wal_synced_requests", wal.synced_requests),
        ("wal_fsync_bytes", wal.flushed_bytes),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={v}"))
    .collect::<Vec<_>>()
    .join(";")
}

fn namespace_config(node: &Node, params: &str) -> String {
    let ns = &node.config.namespace;
    let asked = params.split(';').find_map(|kv| {
        kv.strip_prefix("namespace=")
            .or_else(|| kv.strip_prefix("id="))
    });
    if asked.is_some_and(|a| a != ns.name) {
        return "ERROR:20:namespace not found".into();
    }
    let rf = node
        .roster()
        .map_or(ns.replication_factor, |r| r.replication_factor);
    format!(
        "strong-consistency=true;replication-factor={rf};default-ttl={};raft-groups={};allow-relaxed-reads={}",
        ns.default_ttl, ns.groups, ns.allow_relaxed_reads
    )
}
