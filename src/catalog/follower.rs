//! Following the applied catalog: this node hosts exactly the data groups the catalog places
//! on it, and deletes what it stored for dropped namespaces.
//!
//! [`plan`] decides (pure); [`run`] carries the plan out whenever the catalog changes, and
//! re-checks periodically so a failed step is retried.

use crate::context::Context as Node;
use raft::{GroupId, NodeId};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::catalog::{Catalog, META_GROUP};

/// Re-check the plan this often even without catalog changes.
const PERIOD: Duration = Duration::from_secs(1);
/// A replica other than the preferred leader initializes a still-uninitialized group after
/// this long (the preferred one may be down). Safe: every replica uses the same membership.
const INIT_FALLBACK: Duration = Duration::from_secs(3);

/// A group this node should host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub group: GroupId,
    pub replicas: Vec<NodeId>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Groups placed here (hosted or not yet).
    pub wanted: Vec<Wanted>,
    /// Groups of dropped namespaces to stop and delete.
    pub remove: Vec<GroupId>,
}

/// What this node should host and delete, from the catalog and what it has (hosted or
/// stored). Groups of dropped namespaces are removed; groups the catalog does not know yet
/// (a namespace id not handed out in the catalog replayed so far) are left alone.
pub fn plan(catalog: &Catalog, me: NodeId, present: &BTreeSet<GroupId>) -> Plan {
    let wanted = catalog
        .namespaces
        .values()
        .flat_map(|ns| {
            ns.groups_of(me).map(move |g| Wanted {
                group: ns.group_id(g),
                replicas: ns.placement[usize::from(g)].clone(),
            })
        })
        .collect();
    let remove = present
        .iter()
        .copied()
        .filter(|g| *g != META_GROUP && catalog.is_dropped_group(*g))
        .collect();
    Plan { wanted, remove }
}

pub async fn run(node: Arc<Node>) {
    let me = node.config.node_id;
    let mut changes = node.catalog_changes();
    // When each uninitialized group was first wanted here.
    let mut waiting: HashMap<GroupId, Instant> = HashMap::new();
    loop {
        let catalog = node.catalog();
        if catalog.formed {
            match step(&node, &catalog, &mut waiting).await {
                Ok(()) => node.set_ready(true),
                Err(e) => tracing::warn!(node = me, error = %e, "following the catalog failed"),
            }
        }
        let _ = tokio::time::timeout(PERIOD, changes.changed()).await;
    }
}

async fn step(
    node: &Node,
    catalog: &Catalog,
    waiting: &mut HashMap<GroupId, Instant>,
) -> std::io::Result<()> {
    let me = node.config.node_id;
    let mut present: BTreeSet<GroupId> = node.multi.stored_groups()?.into_iter().collect();
    present.extend(node.multi.groups().iter().map(|g| g.id));
    let plan = plan(catalog, me, &present);
    for g in &plan.remove {
        tracing::info!(
            node = me,
            group = g,
            "namespace dropped: deleting the group"
        );
        node.multi.remove_group(*g).await?;
        waiting.remove(g);
    }
    if !plan.remove.is_empty() {
        let log = node.log.clone();
        tokio::task::spawn_blocking(move || log.sync_blocking())
            .await
            .map_err(std::io::Error::other)?
            .map_err(std::io::Error::other)?;
    }
    for w in &plan.wanted {
        node.multi.open_group(w.group).await?;
        if node.multi.is_initialized(w.group) {
            waiting.remove(&w.group);
            continue;
        }
        let since = *waiting.entry(w.group).or_insert_with(Instant::now);
        let preferred = w.replicas.first() == Some(&me);
        if preferred || since.elapsed() >= INIT_FALLBACK {
            node.multi
                .initialize(w.group, w.replicas.iter().copied().collect())
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::catalog::{group_id, CatalogCommand, NamespaceSettings};

    #[test]
    fn plans_groups_and_removals() {
        let mut c = Catalog::default();
        c.apply(&CatalogCommand::Form {
            roster: vec![1, 2, 3],
            namespaces: vec![(
                "test".into(),
                NamespaceSettings {
                    replication_factor: 1,
                    groups: 6,
                    ..Default::default()
                },
            )],
        })
        .unwrap();
        c.apply(&CatalogCommand::CreateNamespace {
            name: "gone".into(),
            settings: NamespaceSettings::default(),
        })
        .unwrap();
        c.apply(&CatalogCommand::DropNamespace {
            name: "gone".into(),
        })
        .unwrap();
        let present: BTreeSet<GroupId> =
            [META_GROUP, group_id(1, 0), group_id(2, 5), group_id(9, 1)].into();
        let p = plan(&c, 2, &present);
        // rf 1, 6 groups over 3 nodes, rotation shifted by the namespace id (1).
        let mine: Vec<u16> = p
            .wanted
            .iter()
            .map(|w| storage::catalog::split_group_id(w.group).1)
            .collect();
        assert_eq!(mine, vec![0, 3]);
        assert!(p.wanted.iter().all(|w| w.replicas == vec![2]));
        // Only the dropped namespace's group goes; unknown id 9 is left alone.
        assert_eq!(p.remove, vec![group_id(2, 5)]);
    }
}
