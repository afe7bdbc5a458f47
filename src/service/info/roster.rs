//! Strong-consistency roster commands, as Aerospike answers them: `roster`, `roster-set`,
//! `recluster` and `cluster-stable`. Rosters live in the replicated catalog: `roster-set`
//! stores a namespace's pending roster, `recluster` activates every pending roster and gives
//! each group whose replicas change a target that the movers carry out.

use crate::catalog::change::change;
use crate::context::Context as Node;
use crate::protocol::info_command::{InfoCommand, InfoError, InfoResult};
use futures::future::BoxFuture;
use std::sync::Arc;
use storage::catalog::{Catalog, CatalogCommand, Namespace, NodeId};
use storage::record::ResultCode;

/// Node ids as Aerospike prints them: uppercase hex, descending, comma separated; `null`
/// when empty.
pub fn node_list(ids: &[NodeId]) -> String {
    if ids.is_empty() {
        return "null".into();
    }
    let mut ids = ids.to_vec();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.dedup();
    ids.iter()
        .map(|id| format!("{id:X}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parse a `nodes=` list: hex ids (any case), each with an optional `@rack`, the first with
/// an optional `M<rack>|` prefix (racks are accepted and not used).
pub fn parse_nodes(text: &str) -> Result<Vec<NodeId>, InfoError> {
    let text = match text.split_once('|') {
        Some((prefix, rest)) if prefix.starts_with('M') => rest,
        _ => text,
    };
    let mut out = Vec::new();
    for item in text.split(',') {
        let (id, rack) = match item.split_once('@') {
            Some((id, rack)) => (id, Some(rack)),
            None => (item, None),
        };
        if let Some(rack) = rack {
            if rack
                .parse::<u32>()
                .ok()
                .filter(|r| *r <= 1_000_000)
                .is_none()
            {
                return Err(InfoError::parameter(format!("bad rack id in {item:?}")));
            }
        }
        let valid = !id.is_empty() && id.len() <= 16 && id.bytes().all(|b| b.is_ascii_hexdigit());
        let parsed = valid
            .then(|| u64::from_str_radix(id, 16).ok())
            .flatten()
            .filter(|n| *n != 0)
            .ok_or_else(|| InfoError::parameter(format!("bad node id {item:?}")))?;
        if out.contains(&parsed) {
            return Err(InfoError::parameter(format!("node {id} listed twice")));
        }
        out.push(parsed);
    }
    Ok(out)
}

fn roster_of(ns: &Namespace, observed: &[NodeId]) -> String {
    format!(
        "roster={}:pending_roster={}:observed_nodes={}",
        node_list(&ns.roster),
        node_list(&ns.pending_roster),
        node_list(observed)
    )
}

/// `roster:namespace=NS` or `roster:` (every namespace, `ns=NS:` prefixed, `;` between).
pub fn roster(node: &Node, cmd: &InfoCommand) -> InfoResult {
    let catalog = node.catalog();
    let seen = node.live_nodes();
    match cmd.params().get(&["namespace"])? {
        Some(name) => catalog
            .namespace(name)
            .map(|ns| roster_of(ns, &seen))
            .ok_or_else(|| InfoError::no_namespace(name)),
        None => Ok(catalog
            .namespaces
            .values()
            .map(|ns| format!("ns={}:{}", ns.name, roster_of(ns, &seen)))
            .collect::<Vec<_>>()
            .join(";")),
    }
}

/// `roster-set:namespace=NS;nodes=ID,ID,...`: store the pending roster (any node).
pub fn roster_set(node: Arc<Node>, raw: String) -> BoxFuture<'static, InfoResult> {
    Box::pin(async move {
        let cmd = InfoCommand::parse(&raw);
        let params = cmd.params();
        let namespace = params.required(&["namespace"])?.to_string();
        let nodes = parse_nodes(params.required(&["nodes"])?)?;
        change(&node, CatalogCommand::SetRoster { namespace, nodes }).await?;
        Ok("ok".into())
    })
}

/// `recluster:`: activate every pending roster and start moving replicas. Any node takes it
/// (it is forwarded to the metadata leader) and answers `ok` once committed.
pub fn recluster(node: Arc<Node>, _raw: String) -> BoxFuture<'static, InfoResult> {
    Box::pin(async move {
        change(&node, CatalogCommand::Recluster).await?;
        Ok("ok".into())
    })
}

/// A key every node that applied the same catalog and sees the same nodes agrees on; it
/// changes when the membership, a roster or a placement changes. Uppercase hex.
pub fn cluster_key(catalog: &Catalog, observed: &[NodeId]) -> String {
    // FNV-1a (stable across builds) over what defines the cluster's shape.
    let mut shape: Vec<u64> = observed.to_vec();
    for ns in catalog.namespaces.values() {
        shape.extend([u64::from(ns.id), u64::from(catalog.regime(ns))]);
        shape.extend(&ns.roster);
    }
    let bytes: Vec<u8> = shape.iter().flat_map(|x| x.to_le_bytes()).collect();
    format!("{:X}", crate::cluster::gossip::fnv1a(FNV_OFFSET, &bytes))
}

/// FNV-1a's 64-bit offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// `cluster-stable:[size=N;][ignore-migrations=BOOL;][namespace=NS]`: the cluster key while
/// nothing moves, `ERROR:7:unstable cluster` while replicas are still moving.
pub fn cluster_stable(node: &Node, cmd: &InfoCommand) -> InfoResult {
    let params = cmd.params();
    let size = match params.get(&["size"])? {
        None => None,
        Some(v) => Some(
            v.parse::<usize>()
                .map_err(|_| InfoError::parameter("bad size"))?,
        ),
    };
    let ignore = match params.get(&["ignore-migrations"])? {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(InfoError::parameter("bad ignore migrations")),
    };
    let catalog = node.catalog();
    let ns = match params.get(&["namespace"])? {
        Some(name) => Some(
            catalog
                .namespace(name)
                .ok_or_else(|| InfoError::no_namespace(name))?,
        ),
        None => None,
    };
    let seen = node.live_nodes();
    let unstable = || InfoError::new(ResultCode::ClusterKeyMismatch, "unstable cluster");
    if size.is_some_and(|n| n != seen.len()) {
        return Err(InfoError::new(
            ResultCode::ClusterKeyMismatch,
            "cluster not specified size",
        ));
    }
    if !catalog.formed || !node.is_ready() {
        return Err(unstable());
    }
    if !ignore && (catalog.moving(ns) > 0 || !holds_its_placement(node, &catalog)) {
        return Err(unstable());
    }
    Ok(cluster_key(&catalog, &seen))
}

/// Whether this node hosts exactly the groups placed on it: none it still has to delete
/// (moved off it) and none it has yet to open. Every node answering `cluster-stable` with
/// the same key therefore also means no removed node still holds data.
fn holds_its_placement(node: &Node, catalog: &Catalog) -> bool {
    let Ok(present) = crate::catalog::follower::present_groups(node) else {
        return false;
    };
    let plan = crate::catalog::follower::plan(catalog, node.config.node_id, &present, true);
    plan.remove.is_empty() && plan.wanted.iter().all(|w| present.contains(&w.group))
}

/// Partitions a group of a namespace with `groups` groups serves (partition p belongs to
/// group p mod groups).
fn partitions_of(groups: u16, g: u16) -> usize {
    let (n, groups) = (
        usize::from(storage::record::PARTITIONS),
        usize::from(groups.max(1)),
    );
    n / groups + usize::from(usize::from(g) < n % groups)
}

/// A namespace's movement and availability figures, as this node sees them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// Partitions whose group is still moving to new replicas.
    pub migrate_partitions_remaining: usize,
    /// Partitions whose group has no live majority of its replicas (gossip's view).
    pub unavailable_partitions: usize,
}

pub fn figures(catalog: &Catalog, ns: &Namespace, is_up: impl Fn(NodeId) -> bool) -> Figures {
    let mut f = Figures::default();
    for g in 0..ns.settings.groups {
        let parts = partitions_of(ns.settings.groups, g);
        if catalog.targets.contains_key(&ns.group_id(g)) {
            f.migrate_partitions_remaining += parts;
        }
        let voters = &ns.placement[usize::from(g)];
        let up = voters.iter().filter(|n| is_up(**n)).count();
        if up * 2 <= voters.len() {
            f.unavailable_partitions += parts;
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_count_moving_and_quorumless_partitions() {
        use storage::catalog::{CatalogCommand, NamespaceSettings};
        assert_eq!((0..16).map(|g| partitions_of(16, g)).sum::<usize>(), 4096);
        assert_eq!((0..7).map(|g| partitions_of(7, g)).sum::<usize>(), 4096);
        let mut c = Catalog::default();
        c.apply(&CatalogCommand::Form {
            roster: vec![1, 2, 3],
            namespaces: vec![("test".into(), NamespaceSettings::default())],
        })
        .unwrap();
        let ns = c.namespace("test").unwrap().clone();
        assert_eq!(figures(&c, &ns, |_| true), Figures::default());
        // two of three replicas down: every partition unavailable; one down: none
        assert_eq!(figures(&c, &ns, |n| n == 1).unavailable_partitions, 4096);
        assert_eq!(figures(&c, &ns, |n| n != 1).unavailable_partitions, 0);
        c.apply(&CatalogCommand::SetRoster {
            namespace: "test".into(),
            nodes: vec![1, 2, 3, 4],
        })
        .unwrap();
        c.apply(&CatalogCommand::Recluster).unwrap();
        let moving = figures(&c, &ns, |_| true).migrate_partitions_remaining;
        // Every moving group moves its share of the 4096 partitions.
        assert_eq!(
            moving,
            c.targets.len() * (4096 / usize::from(ns.settings.groups))
        );
        assert!(moving > 0);
    }

    #[test]
    fn node_lists_print_as_aerospike_does() {
        assert_eq!(node_list(&[]), "null");
        assert_eq!(node_list(&[1, 0xbb9, 3]), "BB9,3,1");
    }

    #[test]
    fn node_lists_parse_hex_racks_and_prefix() {
        assert_eq!(parse_nodes("a,B2,3"), Ok(vec![10, 0xb2, 3]));
        assert_eq!(parse_nodes("M1|BB9@1,bb8@2"), Ok(vec![0xbb9, 0xbb8]));
        for bad in ["", "fred", "1,,2", "1,1", "0", "1@x", "11111111111111111"] {
            assert!(parse_nodes(bad).is_err(), "{bad}");
        }
    }
}
