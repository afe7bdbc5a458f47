//! Node statistics, and the record counts other families report.

use crate::context::Context as Node;
use crate::protocol::info_command::{InfoCommand, InfoResult};
use crate::stats::Stats;
use std::collections::BTreeMap;
use storage::catalog::Namespace;

/// Records of one namespace held on this node.
#[derive(Default, Debug, Clone)]
pub struct Counts {
    /// In groups this node leads.
    pub master: u64,
    /// In groups this node follows.
    pub replica: u64,
    /// Bytes of the copies held (records' encoded size).
    pub bytes: u64,
    /// Copies held per set ("" for records without a set).
    pub per_set: BTreeMap<String, (u64, u64)>,
    /// Records the expiry sweep removed from this node's copies since it started.
    pub expired: u64,
}

/// Count the records of `ns` this node holds (every copy: led and followed groups).
pub fn namespace_counts(node: &Node, ns: &Namespace) -> Counts {
    let mut c = Counts::default();
    for g in 0..ns.settings.groups {
        let id = ns.group_id(g);
        let Some(group) = node.multi.group(id) else {
            continue;
        };
        let leads = node.multi.leads(id);
        let Ok(records) = group.records.read() else {
            continue;
        };
        c.expired += records.expired_count();
        for (_, r) in records.iter() {
            if leads {
                c.master += 1;
            } else {
                c.replica += 1;
            }
            let size = r.packed_len() as u64;
            c.bytes += size;
            let e = c.per_set.entry(r.set().to_string()).or_default();
            e.0 += 1;
            e.1 += size;
        }
    }
    c
}

pub fn statistics(node: &Node, _: &InfoCommand) -> InfoResult {
    let s = &node.stats;
    let catalog = node.catalog();
    let objects: u64 = catalog
        .namespaces
        .values()
        .map(|ns| namespace_counts(node, ns).master)
        .sum();
    let cluster_size = node.cluster_size();
    let moves = catalog
        .namespaces
        .values()
        .map(|ns| super::roster::figures(&catalog, ns, |id| node.is_up(id)))
        .fold((0, 0), |(m, u), f| {
            (
                m + f.migrate_partitions_remaining,
                u + f.unavailable_partitions,
            )
        });
    let ns_cluster_size = catalog.roster.iter().filter(|id| node.is_up(**id)).count();
    let wal = node.log_stats();
    let reads = node.multi.read_figures();
    let sleep = node.multi.sleep_figures();
    let groups = node.multi.groups();
    let statuses: Vec<_> = groups
        .iter()
        .filter_map(|g| node.multi.status(g.id))
        .collect();
    let leaders = statuses
        .iter()
        .filter(|st| st.leader == Some(node.config.node_id))
        .count();
    // Every election raises a group's term: the sum moving while no node fails or joins
    // means leaders are being lost to timeouts (tuning the election timeout watches it).
    let terms: u64 = statuses.iter().map(|st| st.term).sum();
    Ok([
        ("cluster_size", cluster_size as u64),
        ("ns_cluster_size", ns_cluster_size as u64),
        ("migrate_partitions_remaining", moves.0 as u64),
        ("unavailable_partitions", moves.1 as u64),
        ("uptime", node.started.elapsed().as_secs()),
        ("objects", objects),
        ("namespaces", catalog.namespaces.len() as u64),
        ("catalog_version", catalog.version),
        ("raft_groups", groups.len() as u64),
        ("raft_groups_led", leaders as u64),
        ("raft_terms", terms),
        ("raft_groups_awake", sleep.awake),
        ("raft_lease_renewals", sleep.lease_renewals),
        ("raft_campaigns", sleep.campaigns),
        ("raft_groups_evicted", sleep.evicted),
        ("raft_evictions", sleep.evictions),
        ("raft_restarts", sleep.restarts),
        ("client_connections", Stats::get(&s.client_connections)),
        ("client_read_requests", Stats::get(&s.reads)),
        ("client_read_not_found", Stats::get(&s.read_not_found)),
        ("client_write_requests", Stats::get(&s.writes)),
        ("client_delete_requests", Stats::get(&s.deletes)),
        ("client_errors", Stats::get(&s.errors)),
        ("client_in_doubt", Stats::get(&s.in_doubt)),
        ("proxied_requests", Stats::get(&s.forwarded)),
        ("read_touch_success", Stats::get(&s.read_touch_success)),
        ("read_touch_skip", Stats::get(&s.read_touch_skip)),
        ("read_touch_error", Stats::get(&s.read_touch_error)),
        ("expiry_sweeps", Stats::get(&s.expiry_sweeps)),
        ("scans", Stats::get(&s.scans)),
        ("queries", Stats::get(&s.queries)),
        ("info_requests", Stats::get(&s.info_requests)),
        ("read_index_peer_confirmed", reads.by_peers),
        ("read_index_raft_confirmed", reads.by_raft),
        ("wal_fsyncs", wal.flushes),
        ("wal_synced_requests", wal.synced_requests),
        ("wal_fsync_bytes", wal.flushed_bytes),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={v}"))
    .collect::<Vec<_>>()
    .join(";"))
}
