//! Following the applied catalog: this node hosts exactly the data groups the catalog places
//! on it, and deletes what it stored for dropped namespaces.
//!
//! [`plan`] decides (pure); [`run`] carries the plan out whenever the catalog changes, and
//! re-checks periodically so a failed step is retried.

use crate::context::Context as Node;
use futures::StreamExt;
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
/// Groups opened at once.
const OPEN_CONCURRENCY: usize = 64;
/// Groups initialized at once.
const INIT_CONCURRENCY: usize = 512;

/// A group this node should host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub group: GroupId,
    /// The first voters, when this node may start the group itself: it is one of the group's
    /// original replicas and the group never moved. A replica a move adds (`None`) only ever
    /// joins through the group's leader, so it can never start a second copy of the group.
    pub initial: Option<Vec<NodeId>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Groups placed here or moving here (hosted or not yet).
    pub wanted: Vec<Wanted>,
    /// Groups to stop and delete: of dropped namespaces, or moved off this node (the move
    /// is committed: the catalog records it only after the group's new membership committed).
    pub remove: Vec<GroupId>,
}

/// What this node should host and delete, from the catalog and what it has (hosted or
/// stored). Groups the catalog does not know yet (a namespace id not handed out in the
/// catalog replayed so far) are left alone.
///
/// `caught_up` says the catalog is not a stale prefix (this node applied what the metadata
/// leader committed): only then is a group no longer placed here deleted, or a group started,
/// because a prefix replayed after a restart may predate the moves since.
pub fn plan(catalog: &Catalog, me: NodeId, present: &BTreeSet<GroupId>, caught_up: bool) -> Plan {
    let mut wanted = Vec::new();
    let mut mine = BTreeSet::new();
    for ns in catalog.namespaces.values() {
        for g in 0..ns.settings.groups {
            let id = ns.group_id(g);
            let placed = &ns.placement[usize::from(g)];
            let target = catalog.targets.get(&id);
            if !placed.contains(&me) && !target.is_some_and(|t| t.contains(&me)) {
                continue;
            }
            mine.insert(id);
            let initial =
                (placed.contains(&me) && !catalog.moved.contains(&id)).then(|| placed.clone());
            wanted.push(Wanted { group: id, initial });
        }
    }
    let remove = present
        .iter()
        .copied()
        .filter(|g| *g != META_GROUP)
        .filter(|g| {
            catalog.is_dropped_group(*g)
                || (caught_up && catalog.namespace_of_group(*g).is_some() && !mine.contains(g))
        })
        .collect();
    Plan { wanted, remove }
}

/// The groups this node has: hosted, or stored on disk without being open.
pub fn present_groups(node: &Node) -> std::io::Result<BTreeSet<GroupId>> {
    let mut present: BTreeSet<GroupId> = node.multi.stored_groups()?.into_iter().collect();
    present.extend(node.multi.groups().iter().map(|g| g.id));
    Ok(present)
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
    let present = present_groups(node)?;
    let caught_up = node.multi.applied_to_cluster_commit(META_GROUP);
    let plan = plan(catalog, me, &present, caught_up);
    for g in &plan.remove {
        tracing::info!(
            node = me,
            group = g,
            "group dropped or moved off this node: deleting it"
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
    // Opening a group loads its snapshot and replays its log: open the ones not hosted yet
    // in parallel, each on a task of its own (a restarting node opens all of them).
    // A bounded number at a time: thousands of ready tasks at once delayed every other task
    // of the node (its liveness pings, gossip) for a second, and peers took it for dead.
    let started = Instant::now();
    let opening: Vec<_> = plan
        .wanted
        .iter()
        .filter(|w| node.multi.group(w.group).is_none())
        .map(|w| {
            let (multi, group) = (node.multi.clone(), w.group);
            // Spawned only when its turn comes, on a task of its own (both cores replay).
            async move { tokio::spawn(async move { multi.open_group(group).await }).await }
        })
        .collect();
    let opened = opening.len();
    let results: Vec<_> = futures::stream::iter(opening)
        .buffer_unordered(OPEN_CONCURRENCY)
        .collect()
        .await;
    for r in results {
        r.map_err(std::io::Error::other)??;
    }
    node.multi.serving_its_groups();
    if opened > 0 {
        tracing::info!(node = me, groups = opened, elapsed = ?started.elapsed(), "opened groups");
    }
    let mut initializing = Vec::new();
    for w in &plan.wanted {
        let Some(replicas) = &w.initial else {
            continue;
        };
        if node.multi.is_initialized(w.group) {
            waiting.remove(&w.group);
            continue;
        }
        let since = *waiting.entry(w.group).or_insert_with(Instant::now);
        let preferred = replicas.first() == Some(&me);
        if preferred || since.elapsed() >= INIT_FALLBACK {
            let (multi, group) = (node.multi.clone(), w.group);
            let members = replicas.iter().copied().collect();
            initializing.push(async move { multi.initialize(group, members).await });
        }
    }
    // A new namespace has thousands of groups to initialize (each then runs its first
    // election): side by side, so their log writes share fsyncs and their votes share frames.
    let (started, count) = (Instant::now(), initializing.len());
    let results: Vec<std::io::Result<()>> = futures::stream::iter(initializing)
        .buffer_unordered(INIT_CONCURRENCY)
        .collect()
        .await;
    if count > 0 {
        tracing::info!(node = me, groups = count, elapsed = ?started.elapsed(), "initialized groups and ran their first elections");
    }
    results.into_iter().collect()
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
        let present: BTreeSet<GroupId> = [
            META_GROUP,
            group_id(1, 0),
            group_id(1, 1),
            group_id(2, 5),
            group_id(9, 1),
        ]
        .into();
        let p = plan(&c, 2, &present, true);
        // rf 1, 6 groups over 3 nodes, rotation shifted by the namespace id (1).
        let mine: Vec<u16> = p
            .wanted
            .iter()
            .map(|w| storage::catalog::split_group_id(w.group).1)
            .collect();
        assert_eq!(mine, vec![0, 3]);
        assert!(p.wanted.iter().all(|w| w.initial == Some(vec![2])));
        // The dropped namespace's group goes, and a live group not placed here; unknown id 9
        // is left alone.
        assert_eq!(p.remove, vec![group_id(1, 1), group_id(2, 5)]);
        // A recluster onto node 4: the groups moving to it are wanted there, never started
        // there; once a move commits, the node it left deletes the group.
        c.apply(&CatalogCommand::SetRoster {
            namespace: "test".into(),
            nodes: vec![1, 2, 3, 4],
        })
        .unwrap();
        c.apply(&CatalogCommand::Recluster).unwrap();
        let p4 = plan(&c, 4, &BTreeSet::new(), true);
        assert!(!p4.wanted.is_empty());
        assert!(p4.wanted.iter().all(|w| w.initial.is_none()));
        let (&g, target) = c
            .targets
            .iter()
            .next()
            .map(|(g, t)| (g, t.clone()))
            .unwrap();
        let (_, idx) = storage::catalog::split_group_id(g);
        let before = c.namespace("test").unwrap().placement[usize::from(idx)].clone();
        let leaver = before[0];
        let held: BTreeSet<GroupId> = [g].into();
        assert!(
            plan(&c, leaver, &held, true).remove.is_empty(),
            "not before the move commits"
        );
        c.apply(&CatalogCommand::GroupMoved {
            group: g,
            replicas: target,
        })
        .unwrap();
        assert_eq!(plan(&c, leaver, &held, true).remove, vec![g]);
        // ... and never from a catalog that may be a stale prefix
        assert!(plan(&c, leaver, &held, false).remove.is_empty());
    }
}
