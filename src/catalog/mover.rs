//! Carrying out the catalog's moves: each group with a target is moved by its own leader.
//!
//! For one group the leader: hands leadership to a staying replica if it is itself leaving;
//! adds the new replicas as learners (they catch up by log or by snapshot); once they are
//! close behind, changes the voters to the target through joint consensus (the group keeps
//! serving throughout); then records the move in the catalog (`GroupMoved`), which is what
//! lets a leaving replica delete its copy. Every step is re-derived from the group's and the
//! catalog's state on each pass, so a move interrupted by a crash anywhere resumes or
//! finishes from wherever it stopped. [`next_step`] is that decision, a pure function.

use super::change::change;
use crate::context::Context as Node;
use raft::{GroupId, NodeId};
use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use storage::catalog::CatalogCommand;

/// How often each node looks for moves to drive.
const PERIOD: Duration = Duration::from_millis(300);
/// Rounds between two looks for stray learners.
const STRAY_EVERY: u64 = 10;
/// A learner this close behind the leader may become a voter (it catches up the rest as a
/// voter; requiring an exact match would wait forever under steady writes).
const CATCH_UP_LAG: u64 = 100;

/// What the leader of a moving group does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Record the finished move in the catalog.
    Record,
    /// This leader is leaving: hand leadership to this staying, caught-up voter.
    HandOver(NodeId),
    /// Start replicating to these new replicas as learners.
    AddLearners(Vec<NodeId>),
    /// Make the target the voters (joint consensus).
    ChangeVoters,
    /// Nothing to do yet (a new replica is down or still catching up).
    Wait,
}

/// The state of one group as its leader sees it.
pub struct GroupView<'a> {
    pub me: NodeId,
    pub voters: &'a BTreeSet<NodeId>,
    /// Voters and learners.
    pub members: &'a BTreeSet<NodeId>,
    pub target: &'a BTreeSet<NodeId>,
    pub is_up: &'a dyn Fn(NodeId) -> bool,
    /// Entries a member is behind the leader (None: unknown).
    pub lag: &'a dyn Fn(NodeId) -> Option<u64>,
}

pub fn next_step(v: &GroupView<'_>) -> Step {
    if v.voters == v.target {
        return Step::Record;
    }
    let close = |n: NodeId| (v.lag)(n).is_some_and(|l| l <= CATCH_UP_LAG);
    if !v.target.contains(&v.me) {
        let staying: Vec<NodeId> = v.target.intersection(v.voters).copied().collect();
        if let Some(s) = staying
            .iter()
            .find(|n| (v.is_up)(**n) && (v.lag)(**n) == Some(0))
        {
            return Step::HandOver(*s);
        }
        if !staying.is_empty() {
            return Step::Wait;
        }
        // Every replica is replaced: this leader drives the change and steps down after it.
    }
    let missing: Vec<NodeId> = v.target.difference(v.members).copied().collect();
    if !missing.is_empty() {
        return if missing.iter().all(|n| (v.is_up)(*n)) {
            Step::AddLearners(missing)
        } else {
            Step::Wait
        };
    }
    if v.target.difference(v.voters).all(|n| close(*n)) {
        Step::ChangeVoters
    } else {
        Step::Wait
    }
}

/// The next step for `group` toward `target` as this node sees it, with the group's
/// members; None when this node does not lead the group.
pub fn step_for(
    node: &Node,
    group: GroupId,
    target: &BTreeSet<NodeId>,
) -> Option<(Step, BTreeSet<NodeId>)> {
    let me = node.config.node_id;
    let status = node.multi.status(group)?;
    if status.leader != Some(me) {
        return None;
    }
    let members = node.multi.members(group);
    let is_up = |n: NodeId| node.is_up(n);
    let lag = |n: NodeId| node.multi.replication_lag(group, n);
    let step = next_step(&GroupView {
        me,
        voters: &status.voters,
        members: &members,
        target,
        is_up: &is_up,
        lag: &lag,
    });
    Some((step, members))
}

pub async fn run(node: Arc<Node>) {
    let me = node.config.node_id;
    let busy: Arc<Mutex<HashSet<GroupId>>> = Arc::default();
    let mut changes = node.catalog_changes();
    for round in 0u64.. {
        let _ = tokio::time::timeout(PERIOD, changes.changed()).await;
        let catalog = node.catalog();
        // Stray learners are rare (a recluster replaced a move's target): every group is
        // looked at for them only every few rounds.
        if round % STRAY_EVERY == 0 {
            drop_stray_learners(&node, &catalog).await;
        }
        for (&group, target) in &catalog.targets {
            if !node.multi.leads(group) {
                continue;
            }
            {
                let mut b = busy.lock().unwrap_or_else(|e| e.into_inner());
                if b.len() >= node.config.max_moves || !b.insert(group) {
                    continue;
                }
            }
            let (node, busy, target) = (node.clone(), busy.clone(), target.clone());
            tokio::spawn(async move {
                if let Err(e) = drive(&node, group, &target).await {
                    tracing::warn!(node = me, group, error = %e, "moving the group failed; retrying");
                }
                busy.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&group);
            });
        }
    }
}

/// A data group that is not moving has no learners: those left by a target that a later
/// recluster replaced are removed by the group's leader (the metadata group keeps its
/// learners: every seen node follows the catalog).
async fn drop_stray_learners(node: &Node, catalog: &storage::catalog::Catalog) {
    let me = node.config.node_id;
    for g in node.multi.groups() {
        if g.id == storage::catalog::META_GROUP || catalog.targets.contains_key(&g.id) {
            continue;
        }
        if !node.multi.leads(g.id) {
            continue;
        }
        let strays: BTreeSet<NodeId> = node.multi.learners(g.id);
        if !strays.is_empty() {
            tracing::info!(
                node = me,
                group = g.id,
                ?strays,
                "removing learners of an abandoned move"
            );
            if let Err(e) = node.multi.remove_learners(g.id, strays).await {
                tracing::debug!(node = me, group = g.id, error = %e, "removing learners failed");
            }
        }
    }
}

/// Take one group as far toward `target` as it can go now.
async fn drive(node: &Node, group: GroupId, target: &[NodeId]) -> anyhow::Result<()> {
    let me = node.config.node_id;
    let target: BTreeSet<NodeId> = target.iter().copied().collect();
    // Bounded: each pass either advances one step or stops.
    for _ in 0..8 {
        let Some((step, members)) = step_for(node, group, &target) else {
            return Ok(());
        };
        tracing::debug!(node = me, group, ?step, "moving");
        match step {
            Step::Wait => return Ok(()),
            Step::HandOver(to) => {
                tracing::info!(
                    node = me,
                    group,
                    to,
                    "leaving the group: handing leadership over"
                );
                node.multi.transfer_leader(group, to).await?;
                return Ok(());
            }
            Step::AddLearners(nodes) => {
                for n in nodes {
                    tracing::info!(node = me, group, learner = n, "adding a replica as learner");
                    node.multi.add_learner(group, n).await?;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Step::ChangeVoters => {
                tracing::info!(node = me, group, voters = ?target, "changing voters (joint consensus)");
                node.multi.change_membership(group, target.clone()).await?;
            }
            Step::Record => {
                let strays: BTreeSet<NodeId> = members.difference(&target).copied().collect();
                if !strays.is_empty() {
                    node.multi.remove_learners(group, strays).await?;
                }
                // Record the replicas the voters were just made to be, never a newer target
                // a recluster set meanwhile: recording that one would tell the nodes it
                // drops to delete copies that are still voters, and leave the nodes it adds
                // outside the group. The catalog refuses a move to anything but its current
                // target, so a target that changes after this check fails the record and the
                // next round moves on towards it.
                let Some(replicas) = recorded_replicas(node.catalog().targets.get(&group), &target)
                else {
                    return Ok(());
                };
                change(node, CatalogCommand::GroupMoved { group, replicas })
                    .await
                    .map_err(|e| anyhow::anyhow!("recording the move: {e}"))?;
                tracing::info!(node = me, group, "move recorded");
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The replicas to record for a group whose voters now are `reached` (pure): the catalog's
/// target for it (ordered: its first replica is the preferred leader) if it is still that
/// set; None if there is no target any more or it changed since the move started.
fn recorded_replicas(
    target: Option<&Vec<NodeId>>,
    reached: &BTreeSet<NodeId>,
) -> Option<Vec<NodeId>> {
    let target = target?;
    let same = target.len() == reached.len() && target.iter().all(|n| reached.contains(n));
    same.then(|| target.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[NodeId]) -> BTreeSet<NodeId> {
        v.iter().copied().collect()
    }

    #[test]
    fn a_move_records_only_the_replicas_its_voter_change_reached() {
        let reached = set(&[2, 4, 7]);
        assert_eq!(
            recorded_replicas(Some(&vec![7, 2, 4]), &reached),
            Some(vec![7, 2, 4])
        );
        // A recluster replaced node 2 while the voters changed: nothing is recorded (the
        // bug recorded [5, 4, 7], and node 2 deleted a copy that was still a voter).
        assert_eq!(recorded_replicas(Some(&vec![5, 4, 7]), &reached), None);
        assert_eq!(recorded_replicas(None, &reached), None);
        assert_eq!(recorded_replicas(Some(&vec![2, 4]), &reached), None);
    }

    fn step(
        me: NodeId,
        voters: &[NodeId],
        members: &[NodeId],
        target: &[NodeId],
        down: &[NodeId],
        behind: &[(NodeId, u64)],
    ) -> Step {
        let (voters, members, target) = (set(voters), set(members), set(target));
        let is_up = |n: NodeId| !down.contains(&n);
        let lag = |n: NodeId| {
            members
                .contains(&n)
                .then(|| behind.iter().find(|(m, _)| *m == n).map_or(0, |(_, l)| *l))
        };
        next_step(&GroupView {
            me,
            voters: &voters,
            members: &members,
            target: &target,
            is_up: &is_up,
            lag: &lag,
        })
    }

    #[test]
    fn a_move_goes_learner_then_voters_then_record() {
        // 1,2,3 → 1,2,4 led by 1
        assert_eq!(
            step(1, &[1, 2, 3], &[1, 2, 3], &[1, 2, 4], &[], &[]),
            Step::AddLearners(vec![4])
        );
        assert_eq!(
            step(1, &[1, 2, 3], &[1, 2, 3], &[1, 2, 4], &[4], &[]),
            Step::Wait
        );
        assert_eq!(
            step(1, &[1, 2, 3], &[1, 2, 3, 4], &[1, 2, 4], &[], &[(4, 5000)]),
            Step::Wait
        );
        assert_eq!(
            step(1, &[1, 2, 3], &[1, 2, 3, 4], &[1, 2, 4], &[], &[(4, 20)]),
            Step::ChangeVoters
        );
        assert_eq!(
            step(1, &[1, 2, 4], &[1, 2, 4], &[1, 2, 4], &[], &[]),
            Step::Record
        );
    }

    #[test]
    fn a_leaving_leader_hands_over_first() {
        assert_eq!(
            step(3, &[1, 2, 3], &[1, 2, 3], &[1, 2, 4], &[], &[]),
            Step::HandOver(1)
        );
        assert_eq!(
            step(3, &[1, 2, 3], &[1, 2, 3], &[1, 2, 4], &[1], &[]),
            Step::HandOver(2)
        );
        assert_eq!(
            step(
                3,
                &[1, 2, 3],
                &[1, 2, 3],
                &[1, 2, 4],
                &[],
                &[(1, 3), (2, 9)]
            ),
            Step::Wait
        );
        // every replica replaced: the leaving leader drives it
        assert_eq!(
            step(1, &[1], &[1], &[2], &[], &[]),
            Step::AddLearners(vec![2])
        );
        assert_eq!(step(1, &[1], &[1, 2], &[2], &[], &[]), Step::ChangeVoters);
    }
}
