//! ReadIndex with leadership confirmed per peer instead of per group.
//!
//! openraft confirms a leader's reads with a heartbeat round of its own group: with many
//! groups on a node that is many small rounds, each through the group's core and
//! replication tasks on both sides. Here a leader asks each peer, in one fabric request
//! shared by every read of every group waiting at that moment, "is your stored vote for
//! group G still leader L?". A peer answers from the vote it last stored, which openraft
//! stores before it grants a vote, counts its own, or accepts a newer leader.
//!
//! Why a quorum of such answers makes a read linearizable: a leader L (vote `(t, L)`) that
//! has applied an entry of its own term holds every entry committed before it was elected.
//! A leader with a greater vote elected before the read arrived had a quorum whose stored
//! votes were already greater than `(t, L)`, and stored votes only grow, so any quorum that
//! answers "still `(t, L)`" after the read arrived (L itself included, checked last)
//! intersects it in a node that could not have answered so. Every write acknowledged before
//! the read arrived was therefore applied on L by then, and L reads its state after the
//! answers. The quorum is that of L's membership as its metrics show it, and only when that
//! membership is a single, applied configuration: a configuration that needs no majority of
//! it can only take effect after a joint one containing it is committed, by which time the
//! metrics show the joint one. Anything less certain falls back to openraft's own round.

use crate::transport::Transport;
use crate::types::{GroupId, LogId, NodeId, TypeConfig, Vote};
use openraft::vote::RaftLeaderId;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

pub type LeaderId = openraft::type_config::alias::LeaderIdOf<TypeConfig>;

/// The group id the per-peer confirmation request travels under; the receiver handles the
/// request before looking any group up.
pub(crate) const PEER_REQUEST_GROUP: GroupId = 0;

/// Reads waiting on one peer beyond this many are pruned of those that gave up.
const PRUNE_ABOVE: usize = 4096;

/// The vote a group last stored on this node, set as openraft starts storing it (before it
/// acts on it): what a peer's confirmation request is answered from.
#[derive(Default)]
pub struct VoteCell(Mutex<Option<LeaderId>>);

impl VoteCell {
    pub fn set(&self, vote: &Vote) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(vote.leader_id);
    }

    pub fn leader(&self) -> Option<LeaderId> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether a node whose stored vote is `stored` confirms `asked` as its group's leader (pure).
pub(crate) fn confirms(stored: Option<&LeaderId>, asked: &LeaderId) -> bool {
    stored == Some(asked)
}

/// What a leader's read takes from one snapshot of its group's metrics.
pub(crate) struct LeaderView<'a> {
    pub me: NodeId,
    pub is_leader: bool,
    pub vote: &'a Vote,
    pub last_applied: Option<&'a LogId>,
    pub membership_log: Option<&'a LogId>,
    pub joint: &'a [BTreeSet<NodeId>],
}

/// Whom a read asks, and how many of them must confirm.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ReadPlan {
    pub leader: LeaderId,
    pub peers: Vec<NodeId>,
    pub needed_from_peers: usize,
}

/// The per-peer confirmation a read may use, or None where openraft's own round must serve
/// it (pure): this node leads under a committed vote, has applied an entry of its own term,
/// and its membership is one voter set that it has applied and belongs to.
pub(crate) fn plan(v: &LeaderView<'_>) -> Option<ReadPlan> {
    let leader = v.vote.leader_id;
    if !v.is_leader || !v.vote.committed || *leader.node_id() != v.me {
        return None;
    }
    let applied = v.last_applied?;
    if applied.committed_leader_id() != &leader {
        return None;
    }
    if v.membership_log
        .is_some_and(|m| m.index() > applied.index())
    {
        return None;
    }
    let [voters] = v.joint else { return None };
    if !voters.contains(&v.me) {
        return None;
    }
    let peers: Vec<NodeId> = voters.iter().copied().filter(|n| *n != v.me).collect();
    Some(ReadPlan {
        leader,
        needed_from_peers: voters.len() / 2,
        peers,
    })
}

/// One read's count of the answers it still needs: the peers' tasks answer into it, and
/// the read is woken once, when the outcome is certain.
pub(crate) struct Tally(Mutex<TallyState>);

struct TallyState {
    /// Confirmations still needed.
    needed: usize,
    /// Peers asked that have not answered yet.
    unanswered: usize,
    done: Option<oneshot::Sender<bool>>,
}

impl Tally {
    /// A tally of `asked` peers of which `needed` must confirm, and what the read awaits.
    pub fn new(needed: usize, asked: usize) -> (Arc<Tally>, oneshot::Receiver<bool>) {
        let (tx, rx) = oneshot::channel();
        // Decided before any answer: nobody to ask, or too few peers to ask.
        let done = if needed == 0 || asked < needed {
            let _ = tx.send(needed == 0);
            None
        } else {
            Some(tx)
        };
        let state = TallyState {
            needed,
            unanswered: asked,
            done,
        };
        (Arc::new(Tally(Mutex::new(state))), rx)
    }

    /// One peer's answer.
    fn answer(&self, yes: bool) {
        let mut st = self.0.lock().unwrap_or_else(|e| e.into_inner());
        st.unanswered = st.unanswered.saturating_sub(1);
        if yes {
            st.needed = st.needed.saturating_sub(1);
        }
        let outcome = match (st.needed, st.unanswered) {
            (0, _) => Some(true),
            (needed, unanswered) if unanswered < needed => Some(false),
            _ => None,
        };
        if let Some(ok) = outcome {
            if let Some(tx) = st.done.take() {
                let _ = tx.send(ok);
            }
        }
    }

    /// Decided, or the read gave up waiting.
    fn settled(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .done
            .as_ref()
            .is_none_or(|tx| tx.is_closed())
    }
}

/// One read waiting for a peer's answer.
struct Ask {
    group: GroupId,
    leader: LeaderId,
    tally: Arc<Tally>,
}

#[derive(Default)]
struct PeerQueue {
    pending: Mutex<Vec<Ask>>,
    wake: Notify,
}

/// Sends confirmation rounds: one task per peer, each sending everything asked of that peer
/// since its last round in one request, one round at a time. Dropping it stops the tasks.
pub(crate) struct Confirmer {
    transport: Arc<dyn Transport>,
    timeout: Duration,
    peers: Mutex<HashMap<NodeId, Arc<PeerQueue>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Confirmer {
    pub fn new(transport: Arc<dyn Transport>, timeout: Duration) -> Confirmer {
        Confirmer {
            transport,
            timeout,
            peers: Mutex::default(),
            tasks: Mutex::default(),
        }
    }

    /// Ask `peer` whether its stored vote for `group` is `leader`, answering into `tally`;
    /// the answer is no if the peer is unreachable or slower than the round timeout.
    pub fn ask(&self, peer: NodeId, group: GroupId, leader: LeaderId, tally: Arc<Tally>) {
        let queue = self.queue(peer);
        {
            let mut pending = queue.pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending.len() > PRUNE_ABOVE {
                pending.retain(|a| !a.tally.settled());
            }
            pending.push(Ask {
                group,
                leader,
                tally,
            });
        }
        queue.wake.notify_one();
    }

    fn queue(&self, peer: NodeId) -> Arc<PeerQueue> {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = peers.get(&peer) {
            return q.clone();
        }
        let q = Arc::new(PeerQueue::default());
        peers.insert(peer, q.clone());
        let task = tokio::spawn(rounds(
            peer,
            q.clone(),
            self.transport.clone(),
            self.timeout,
        ));
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
        q
    }

    /// Stop every peer's task; reads waiting on them get `false`.
    pub fn stop(&self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl Drop for Confirmer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The distinct (group, leader) pairs of a round in first-asked order, and for each ask the
/// position of its pair (pure).
fn distinct(asks: &[Ask]) -> (Vec<(GroupId, LeaderId)>, Vec<usize>) {
    let mut keys = Vec::new();
    let mut at: HashMap<(GroupId, u64, NodeId), usize> = HashMap::new();
    let positions = asks
        .iter()
        .map(|a| {
            let key = (a.group, a.leader.term, a.leader.node_id);
            *at.entry(key).or_insert_with(|| {
                keys.push((a.group, a.leader));
                keys.len() - 1
            })
        })
        .collect();
    (keys, positions)
}

async fn rounds(peer: NodeId, q: Arc<PeerQueue>, transport: Arc<dyn Transport>, timeout: Duration) {
    loop {
        q.wake.notified().await;
        loop {
            let asks = std::mem::take(&mut *q.pending.lock().unwrap_or_else(|e| e.into_inner()));
            if asks.is_empty() {
                break;
            }
            let (keys, positions) = distinct(&asks);
            let answers = ask_peer(&*transport, peer, keys, timeout).await;
            for (ask, at) in asks.into_iter().zip(positions) {
                ask.tally.answer(answers.get(at).copied().unwrap_or(false));
            }
        }
    }
}

/// One round to `peer`; an empty answer (every read then falls back) on any failure.
async fn ask_peer(
    transport: &dyn Transport,
    peer: NodeId,
    keys: Vec<(GroupId, LeaderId)>,
    timeout: Duration,
) -> Vec<bool> {
    use crate::rpc::{decode_reply, encode_request, RaftReply, RaftRequest};
    let n = keys.len();
    let Ok(bytes) = encode_request(&RaftRequest::ConfirmLeaders(keys)) else {
        return Vec::new();
    };
    match transport
        .call(peer, PEER_REQUEST_GROUP, bytes, timeout)
        .await
        .map(|b| decode_reply(&b))
    {
        Ok(Ok(RaftReply::LeadersConfirmed(v))) if v.len() == n => v,
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lid(term: u64, node: NodeId) -> LeaderId {
        LeaderId::new(term, node)
    }

    fn log(term: u64, node: NodeId, index: u64) -> LogId {
        LogId::new(lid(term, node), index)
    }

    fn committed(term: u64, node: NodeId) -> Vote {
        let mut v = Vote::new(term, node);
        v.committed = true;
        v
    }

    #[test]
    fn a_peer_confirms_only_the_exact_leader_it_stored() {
        assert!(confirms(Some(&lid(3, 1)), &lid(3, 1)));
        assert!(!confirms(Some(&lid(4, 2)), &lid(3, 1)), "moved on");
        assert!(!confirms(Some(&lid(3, 2)), &lid(3, 1)), "other leader");
        assert!(!confirms(Some(&lid(2, 1)), &lid(3, 1)), "not caught up");
        assert!(!confirms(None, &lid(3, 1)), "nothing stored");
    }

    #[test]
    fn reads_use_peer_rounds_only_under_a_settled_leadership() {
        let voters = [BTreeSet::from([1, 2, 3])];
        let vote = committed(5, 1);
        let applied = log(5, 1, 10);
        let membership = log(2, 3, 4);
        let view = LeaderView {
            me: 1,
            is_leader: true,
            vote: &vote,
            last_applied: Some(&applied),
            membership_log: Some(&membership),
            joint: &voters,
        };
        assert_eq!(
            plan(&view),
            Some(ReadPlan {
                leader: lid(5, 1),
                peers: vec![2, 3],
                needed_from_peers: 1
            })
        );
        let five = [BTreeSet::from([1, 2, 3, 4, 5])];
        assert_eq!(
            plan(&LeaderView {
                joint: &five,
                ..view
            })
            .map(|p| p.needed_from_peers),
            Some(2)
        );
        assert_eq!(
            plan(&LeaderView {
                is_leader: false,
                ..view
            }),
            None
        );
        let uncommitted = Vote::new(5, 1);
        assert_eq!(
            plan(&LeaderView {
                vote: &uncommitted,
                ..view
            }),
            None,
            "candidate"
        );
        let older = log(4, 2, 9);
        assert_eq!(
            plan(&LeaderView {
                last_applied: Some(&older),
                ..view
            }),
            None,
            "nothing of its own term applied yet"
        );
        assert_eq!(
            plan(&LeaderView {
                last_applied: None,
                ..view
            }),
            None
        );
        let pending = log(5, 1, 11);
        assert_eq!(
            plan(&LeaderView {
                membership_log: Some(&pending),
                ..view
            }),
            None,
            "membership not applied"
        );
        let joint = [BTreeSet::from([1, 2, 3]), BTreeSet::from([1, 2, 4])];
        assert_eq!(
            plan(&LeaderView {
                joint: &joint,
                ..view
            }),
            None,
            "joint configuration"
        );
        let without_me = [BTreeSet::from([2, 3, 4])];
        assert_eq!(
            plan(&LeaderView {
                joint: &without_me,
                ..view
            }),
            None,
            "leaving leader"
        );
        let alone = [BTreeSet::from([1])];
        assert_eq!(
            plan(&LeaderView {
                joint: &alone,
                ..view
            }),
            Some(ReadPlan {
                leader: lid(5, 1),
                peers: vec![],
                needed_from_peers: 0
            })
        );
    }

    fn outcome(rx: &mut oneshot::Receiver<bool>) -> Option<bool> {
        rx.try_recv().ok()
    }

    #[test]
    fn a_tally_decides_as_soon_as_the_outcome_is_certain() {
        // Two of four peers must confirm.
        let (t, mut rx) = Tally::new(2, 4);
        t.answer(true);
        t.answer(false);
        assert_eq!(outcome(&mut rx), None);
        t.answer(true);
        assert_eq!(outcome(&mut rx), Some(true));
        t.answer(false); // late answers change nothing
        assert!(t.settled());

        let (t, mut rx) = Tally::new(2, 3);
        t.answer(false);
        assert_eq!(outcome(&mut rx), None);
        t.answer(false);
        assert_eq!(outcome(&mut rx), Some(false), "one left cannot make two");

        let (_, mut rx) = Tally::new(0, 0);
        assert_eq!(outcome(&mut rx), Some(true), "a single voter needs no peer");
        let (_, mut rx) = Tally::new(1, 0);
        assert_eq!(outcome(&mut rx), Some(false));

        let (t, rx) = Tally::new(1, 2);
        assert!(!t.settled());
        drop(rx);
        assert!(t.settled(), "the read gave up");
    }

    #[test]
    fn a_round_asks_each_pair_once() {
        let mk = |group, term| Ask {
            group,
            leader: lid(term, 1),
            tally: Tally::new(1, 1).0,
        };
        let asks = vec![mk(7, 2), mk(8, 2), mk(7, 2), mk(7, 3)];
        let (keys, at) = distinct(&asks);
        assert_eq!(keys, vec![(7, lid(2, 1)), (8, lid(2, 1)), (7, lid(3, 1))]);
        assert_eq!(at, vec![0, 1, 0, 2]);
    }
}
