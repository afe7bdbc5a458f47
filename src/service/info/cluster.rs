//! The partition map and the peer list: what clients tend every second.

use crate::context::Context as Node;
use crate::protocol::info_command::{InfoCommand, InfoResult};
use base64::Engine;
use raft::NodeId;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use storage::catalog::Namespace;
use storage::record::PARTITIONS;

/// The Aerospike server version we answer with: new enough for partition queries and the
/// batch-index protocol, older than 8.1's changed info syntaxes.
pub const BUILD: &str = "8.0.0.0";

fn fingerprint<T: Hash>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

pub fn partitions(_: &Node, _: &InfoCommand) -> InfoResult {
    Ok(PARTITIONS.to_string())
}

pub fn rebalance_generation(_: &Node, _: &InfoCommand) -> InfoResult {
    Ok("0".into())
}

/// -1 until the node holds its groups (clients skip such nodes); afterwards a counter that
/// moves whenever this node's `replicas` answer would change.
pub fn partition_generation(node: &Node, _: &InfoCommand) -> InfoResult {
    if !node.is_ready() {
        return Ok("-1".into());
    }
    let fp = fingerprint(&replicas_answer(node, Columns::WithRegime, Claims::Stand));
    let Ok(mut g) = node.partition_generation.lock() else {
        return Ok("0".into());
    };
    if g.0 != fp {
        *g = (fp, g.1 + 1);
    }
    Ok(g.1.to_string())
}

pub fn replicas(node: &Node, _: &InfoCommand) -> InfoResult {
    Ok(replicas_answer(node, Columns::WithRegime, Claims::Stand))
}

pub fn replicas_all(node: &Node, _: &InfoCommand) -> InfoResult {
    Ok(replicas_answer(node, Columns::Plain, Claims::Stand))
}

/// Strato's own: like `replicas`, but column 0 holds only the partitions whose group this
/// node leads right now (no stand-in claims); test harnesses wait on it.
pub fn replicas_leaders(node: &Node, _: &InfoCommand) -> InfoResult {
    Ok(replicas_answer(
        node,
        Columns::WithRegime,
        Claims::LeadersOnly,
    ))
}

pub fn replicas_master(node: &Node, _: &InfoCommand) -> InfoResult {
    let full = replicas_answer(node, Columns::Plain, Claims::Stand);
    Ok(full
        .split(';')
        .filter(|s| !s.is_empty())
        .map(|ns| {
            let (name, cols) = ns.split_once(':').unwrap_or((ns, ""));
            format!("{name}:{}", cols.split(',').nth(1).unwrap_or_default())
        })
        .collect::<Vec<_>>()
        .join(";"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Columns {
    WithRegime,
    Plain,
}

/// Whether a live replica stands in as master of a group with no known leader.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Claims {
    Stand,
    LeadersOnly,
}

/// One group as the map reports it.
pub struct GroupView {
    pub leader: Option<NodeId>,
    pub replicas: Vec<NodeId>,
}

/// The column of `me` for one group: 0 = master, i = i-th replica after the master. A group
/// without a known leader is claimed by its first live replica (with `Claims::Stand`), so a
/// client always has a node to send the request to; that node waits for the election or
/// forwards.
pub fn column(
    g: &GroupView,
    me: NodeId,
    is_up: impl Fn(NodeId) -> bool,
    claims: bool,
) -> Option<usize> {
    let master = match g.leader {
        Some(l) => l,
        None if claims => *g.replicas.iter().find(|r| is_up(**r))?,
        None => return None,
    };
    if master == me {
        return Some(0);
    }
    g.replicas
        .iter()
        .filter(|r| **r != master)
        .position(|r| *r == me)
        .map(|i| i + 1)
}

/// `<ns>:<regime>,<n>,<bitmap>...;...` for every namespace: column 0 holds the partitions
/// this node masters, column i those where it is the i-th replica. The regime is
/// [`Namespace::regime`], the same on every node: clients keep the highest regime any node
/// reported for a partition (in any column) and ignore claims below it, so a per-node value
/// such as a Raft term would lock out the real leader of a group whose term is lower than
/// some other group's on a node that only replicates it.
fn replicas_answer(node: &Node, columns: Columns, claims: Claims) -> String {
    let catalog = node.catalog();
    catalog
        .namespaces
        .values()
        .map(|ns| namespace_map(node, ns, columns, claims))
        .collect::<Vec<_>>()
        .join(";")
}

fn namespace_map(node: &Node, ns: &Namespace, columns: Columns, claims: Claims) -> String {
    let me = node.config.node_id;
    let n = ns.effective_replication_factor().max(1);
    let groups: Vec<GroupView> = (0..ns.settings.groups)
        .map(|g| GroupView {
            leader: node.multi.leader(ns.group_id(g)),
            replicas: ns.placement[usize::from(g)].clone(),
        })
        .collect();
    let regime = node.catalog().regime(ns);
    let cols: Vec<Option<usize>> = groups
        .iter()
        .map(|g| column(g, me, |id| node.is_up(id), claims == Claims::Stand))
        .collect();
    let mut maps = vec![[0u8; 512]; n];
    for p in 0..PARTITIONS {
        if let Some(c) = cols[usize::from(ns.group_of(p))].filter(|c| *c < n) {
            maps[c][usize::from(p >> 3)] |= 0x80 >> (p & 7);
        }
    }
    let bitmaps: Vec<String> = maps
        .iter()
        .map(|m| base64::engine::general_purpose::STANDARD.encode(m))
        .collect();
    match columns {
        Columns::WithRegime => format!("{}:{regime},{n},{}", ns.name, bitmaps.join(",")),
        Columns::Plain => format!("{}:{n},{}", ns.name, bitmaps.join(",")),
    }
}

/// (generation, `peers-clear-std` value): every other live node, as clients must see them all.
fn peer_list(node: &Node) -> (u64, String) {
    let me = node.config.node_id;
    let members = node.members.borrow().clone();
    let list: Vec<String> = members
        .values()
        .filter(|m| m.node_id != me && m.up)
        .map(|m| {
            format!(
                "[{},,[{}]]",
                crate::context::node_name(m.node_id),
                m.service
            )
        })
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

pub fn peers_generation(node: &Node, _: &InfoCommand) -> InfoResult {
    Ok(peer_list(node).0.to_string())
}

pub fn peers(node: &Node, _: &InfoCommand) -> InfoResult {
    Ok(peer_list(node).1)
}

pub fn services(node: &Node, _: &InfoCommand) -> InfoResult {
    let me = node.config.node_id;
    let members = node.members.borrow();
    Ok(members
        .values()
        .filter(|m| m.node_id != me && m.up)
        .map(|m| m.service.to_string())
        .collect::<Vec<_>>()
        .join(";"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaderless_groups_are_claimed_by_a_live_replica() {
        let g = GroupView {
            leader: None,
            replicas: vec![1, 2, 3],
        };
        let up = |id: NodeId| id != 1;
        assert_eq!(column(&g, 2, up, true), Some(0));
        assert_eq!(column(&g, 3, up, true), Some(2));
        assert_eq!(column(&g, 1, up, true), Some(1));
        assert_eq!(column(&g, 2, up, false), None);
        let led = GroupView {
            leader: Some(3),
            ..g
        };
        assert_eq!(column(&led, 3, up, false), Some(0));
        assert_eq!(column(&led, 1, up, false), Some(1));
        assert_eq!(column(&led, 2, up, false), Some(2));
        assert_eq!(column(&led, 9, up, true), None);
        let nobody = GroupView {
            leader: None,
            replicas: vec![1],
        };
        assert_eq!(column(&nobody, 1, |_| false, true), None);
    }
}
