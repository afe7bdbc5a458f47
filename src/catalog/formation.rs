//! Forming a brand-new cluster, and the metadata leader's standing duties.
//!
//! A node with an empty data directory waits until `--bootstrap-expect` nodes are discovered;
//! every node waiting for the same K nodes picks the same K lowest ids, remembers them, and the
//! lowest initializes the metadata group with the first five as voters. Whichever node then
//! leads the metadata group proposes `Form` (the roster and the start-up namespaces) while the
//! catalog is unformed; once formed, it adds the roster nodes beyond the voters as learners so
//! every node follows the catalog.

use crate::context::Context as Node;
use anyhow::Context;
use raft::NodeId;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::catalog::{CatalogCommand, MAX_META_VOTERS, META_GROUP};
use storage::command::Command;
use storage::log_store::NODE_META_GROUP;
use storage::record::ResultCode;

/// Node metadata key holding the ids this node formed (or is forming) the cluster with.
const META_FORMATION: &str = "formation";

/// How often the metadata leader checks its duties.
const DUTY_PERIOD: Duration = Duration::from_millis(200);
/// The metadata group's first election is retried this often, this many times (see `run`).
const FIRST_ELECTION_RETRY: Duration = Duration::from_millis(100);
const FIRST_ELECTION_TRIES: usize = 10;

pub async fn run(node: Arc<Node>) {
    if let Err(e) = form(&node).await {
        tracing::error!(node = node.config.node_id, error = %e, "cluster formation failed");
    }
}

/// The K lowest ids among the discovered nodes, once K are up.
pub fn formation_ids(up: &[NodeId], expect: usize) -> Option<Vec<NodeId>> {
    if up.len() < expect {
        return None;
    }
    let mut up = up.to_vec();
    up.sort_unstable();
    up.dedup();
    up.truncate(expect);
    (up.len() == expect).then_some(up)
}

async fn form(node: &Arc<Node>) -> anyhow::Result<()> {
    let me = node.config.node_id;
    let expect = node.config.bootstrap_expect;
    let ids = match stored_ids(node)? {
        Some(ids) => ids,
        None if expect == 0 => {
            tracing::info!(
                node = me,
                "joining: waiting for the cluster's metadata leader to add this node"
            );
            return Ok(());
        }
        None => {
            tracing::info!(node = me, expect, "waiting for nodes to form a cluster");
            let mut members = node.members.clone();
            let ids = loop {
                let mut up: Vec<NodeId> = members
                    .borrow_and_update()
                    .values()
                    .filter(|m| m.up)
                    .map(|m| m.node_id)
                    .collect();
                up.push(me);
                if let Some(ids) = formation_ids(&up, expect) {
                    break ids;
                }
                members.changed().await.context("gossip stopped")?;
            };
            if !ids.contains(&me) {
                anyhow::bail!("more than {expect} nodes were discovered and this node is not among the lowest ids; not joining");
            }
            let bytes = bincode::serde::encode_to_vec(&ids, bincode::config::standard())?;
            node.log.put_meta(NODE_META_GROUP, META_FORMATION, bytes)?;
            node.log.sync_blocking()?;
            ids
        }
    };
    if ids.first() == Some(&me) {
        let voters: BTreeSet<NodeId> = ids.iter().copied().take(MAX_META_VOTERS).collect();
        node.multi.initialize(META_GROUP, voters).await?;
        tracing::info!(node = me, nodes = ?ids, "cluster formed; metadata group initialized");
        // The other nodes start at about the same moment and may not host the metadata
        // group yet, which fails the first election: try again at short intervals instead
        // of an election timeout later.
        for _ in 0..FIRST_ELECTION_TRIES {
            tokio::time::sleep(FIRST_ELECTION_RETRY).await;
            if node.multi.leader(META_GROUP).is_some() {
                break;
            }
            node.multi.elect(META_GROUP).await?;
        }
    }
    Ok(())
}

fn stored_ids(node: &Node) -> anyhow::Result<Option<Vec<NodeId>>> {
    Ok(match node.log.get_meta(NODE_META_GROUP, META_FORMATION)? {
        Some(b) => Some(
            bincode::serde::decode_from_slice::<Vec<NodeId>, _>(&b, bincode::config::standard())
                .context("decoding the stored formation ids")?
                .0,
        ),
        None => None,
    })
}

/// What the metadata leader does, forever: propose `Form` while the catalog is unformed, and
/// add every roster node that is not yet a member as a learner.
pub async fn meta_duties(node: Arc<Node>) {
    let me = node.config.node_id;
    loop {
        tokio::time::sleep(DUTY_PERIOD).await;
        let leads = node
            .multi
            .status(META_GROUP)
            .is_some_and(|s| s.leader == Some(me));
        if !leads {
            continue;
        }
        let catalog = node.catalog();
        if !catalog.formed {
            let Ok(Some(ids)) = stored_ids(&node) else {
                continue;
            };
            let cmd = CatalogCommand::Form {
                roster: ids,
                namespaces: node
                    .config
                    .namespaces
                    .iter()
                    .map(|n| (n.name.clone(), n.settings()))
                    .collect(),
            };
            let deadline = Instant::now() + node.config.request_timeout;
            match node
                .propose(META_GROUP, Command::Catalog(cmd), &[], deadline)
                .await
            {
                Ok((o, _)) if o.code == ResultCode::Ok => {
                    tracing::info!(node = me, "catalog formed")
                }
                // Formed already (this leader had not yet re-applied the log after a restart).
                Ok(_) => {}
                Err(e) => tracing::warn!(node = me, error = %e, "forming the catalog failed"),
            }
            continue;
        }
        let members = node.multi.members(META_GROUP);
        // Every node seen (on a roster or not yet) follows the catalog as a learner, so a
        // joining node can answer roster commands and start hosting once it is on a roster.
        let seen = node.live_nodes();
        for r in catalog
            .roster
            .iter()
            .chain(&seen)
            .filter(|r| !members.contains(r))
        {
            if node.is_up(*r) {
                if let Err(e) = node.multi.add_learner(META_GROUP, *r).await {
                    tracing::debug!(node = me, learner = r, error = %e, "adding a metadata learner failed");
                }
            }
        }
        if let Err(e) = follow_roster(&node, &catalog.meta_voters()).await {
            tracing::warn!(node = me, error = %e, "changing the metadata voters failed");
        }
    }
}

/// The metadata group's voters follow the roster (its first five nodes), by the same
/// procedure as a data group: the new voters are learners already (see above); once they
/// are close behind, one joint-consensus change swaps the voters. A leaving leader hands
/// leadership over first.
async fn follow_roster(node: &Node, wanted: &[NodeId]) -> anyhow::Result<()> {
    let me = node.config.node_id;
    let target: BTreeSet<NodeId> = wanted.iter().copied().collect();
    let Some((step, _)) = super::mover::step_for(node, META_GROUP, &target) else {
        return Ok(());
    };
    match step {
        super::mover::Step::HandOver(to) => node.multi.transfer_leader(META_GROUP, to).await?,
        super::mover::Step::ChangeVoters => {
            tracing::info!(node = me, voters = ?target, "metadata voters follow the roster");
            node.multi.change_membership(META_GROUP, target).await?
        }
        // Learners are added above; nothing to record for the metadata group.
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_ids_once_enough() {
        assert_eq!(formation_ids(&[3, 1], 3), None);
        assert_eq!(formation_ids(&[3, 1, 2], 3), Some(vec![1, 2, 3]));
        assert_eq!(formation_ids(&[5, 3, 1, 2], 3), Some(vec![1, 2, 3]));
        assert_eq!(formation_ids(&[1, 1, 2], 3), None);
    }
}
