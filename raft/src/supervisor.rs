//! The node's one supervisor task over all its groups (`crate::sleep`): each round it pings
//! every peer (liveness), starts the campaigns this node owes for groups whose leader is
//! gone, switches a group's timers off once it has a live leader again, and hands on a
//! leadership transfer that did not complete.

use crate::evict;
use crate::multi_raft::{is_voter, Group, MultiRaft};
use crate::read_index::PEER_REQUEST_GROUP;
use crate::rpc::{decode_reply, encode_request, RaftReply, RaftRequest};
use crate::sleep::{campaign_due, campaign_rank, campaign_waited, leader_counts, SUPERVISE_EVERY};
use crate::types::{Metrics, NodeId};
use openraft::ServerState;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// How long a round waits for a peer's answer to its ping.
const PING_TIMEOUT: Duration = Duration::from_millis(250);

/// Rounds between two looks at every group while all are settled.
const LOOK_EVERY: u64 = 5;

/// The peers to ping are gathered from the groups' memberships once per this many rounds.
const PEERS_EVERY: u64 = 10;

/// Run rounds until the task is aborted (the node owns it).
pub async fn run(multi: Arc<MultiRaft>) {
    let mut every = tokio::time::interval(SUPERVISE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut peers = BTreeSet::new();
    let mut unsettled = true;
    for n in 0u64.. {
        every.tick().await;
        // Every round while none is known yet (the groups are still opening).
        if n % PEERS_EVERY == 0 || peers.is_empty() {
            peers = multi.peers();
        }
        ping(&multi, &peers).await;
        let now = multi.now_ms();
        let died = multi.liveness.sweep(now);
        for peer in &died {
            tracing::info!(node = multi.node_id(), peer, "peer taken for dead");
        }
        // With every group settled, a look is due only when a peer died (or, as a backstop
        // and for leaders elected meanwhile, every `LOOK_EVERY` rounds): looking at thousands
        // of groups every round was most of an idle node's CPU.
        if !died.is_empty() || unsettled || n % LOOK_EVERY == 0 {
            let plan = look(&multi, now);
            unsettled = plan.unsettled;
            act(&multi, plan);
        }
    }
}

/// Ping every peer at once; answers update liveness (and a peer that came back gets a
/// heartbeat round in every group this node leads with it).
async fn ping(multi: &Arc<MultiRaft>, peers: &BTreeSet<NodeId>) {
    // A node still opening its groups stays silent (`MultiRaft::serving_its_groups`).
    if !multi.is_serving() {
        return;
    }
    let now = multi.now_ms();
    for peer in peers {
        multi.liveness.pinged(*peer, now);
    }
    let Ok(bytes) = encode_request(&RaftRequest::Ping {
        from: multi.node_id(),
        incarnation: multi.incarnation,
    }) else {
        return;
    };
    let sends = peers.iter().map(|peer| {
        let (transport, bytes, peer) = (multi.transport.clone(), bytes.clone(), *peer);
        async move {
            let reply = transport
                .call(peer, PEER_REQUEST_GROUP, bytes, PING_TIMEOUT)
                .await
                .ok()
                .and_then(|b| decode_reply(&b).ok());
            (peer, reply)
        }
    });
    for (peer, reply) in futures::future::join_all(sends).await {
        if let Some(RaftReply::Pong { incarnation }) = reply {
            multi.heard(peer, incarnation);
        }
    }
}

/// What one pass over the groups decided.
#[derive(Default)]
struct Plan {
    /// Some group has no live leader, or its timers run: look again next round.
    unsettled: bool,
    campaigns: Vec<Arc<Group>>,
    asleep: Vec<Arc<Group>>,
    transfers: Vec<(Arc<Group>, NodeId)>,
    /// Idle long enough for their instances to be stopped (`crate::evict`).
    evictions: Vec<Arc<Group>>,
}

fn look(multi: &MultiRaft, now: u64) -> Plan {
    let mut plan = Plan::default();
    for g in multi.groups() {
        if g.is_catalog {
            continue;
        }
        let evicted = g.is_evicted();
        g.metrics(|m| look_at(multi, &g, m, evicted, now, &mut plan));
    }
    plan
}

/// [`look`] at one group, whose metrics are `m`.
fn look_at(
    multi: &MultiRaft,
    g: &Arc<Group>,
    m: &Metrics,
    evicted: bool,
    now: u64,
    plan: &mut Plan,
) {
    let me = multi.node_id();
    let alive = |n: NodeId| multi.is_alive(n);
    let leading = m.state == ServerState::Leader && m.current_leader == Some(me);
    if m.current_leader.is_some() {
        g.sleep.leader_seen();
    }
    let voters = || -> BTreeSet<NodeId> { m.membership_config.membership().voter_ids().collect() };
    // A leader taken for dead, removed from the group's voters, or contested by a
    // campaign this replica heard of since it last heard from a leader, does not count.
    let live_leader = m.current_leader.filter(|l| {
        leader_counts(
            *l == me,
            alive(*l),
            is_voter(m, *l),
            leading || !g.sleep.is_contested(*l, now),
        )
    });
    let settled = leading || (live_leader.is_some() && m.state == ServerState::Follower);
    if g.sleep.transfer_overdue(leading, now) {
        let to = voters().into_iter().find(|n| *n != me && alive(*n));
        if let Some(to) = to {
            plan.transfers.push((g.clone(), to));
        }
    }
    let Some(leaderless) = g.sleep.leaderless_for(live_leader.is_some(), now) else {
        if g.sleep.is_awake() {
            if settled {
                plan.asleep.push(g.clone());
            } else {
                tracing::debug!(node = me, group = g.id, state = ?m.state, leader = ?m.current_leader, "awake with a live leader, not settled");
                plan.unsettled = true;
            }
        } else if !evicted && evict::is_candidate(multi, g, m, settled, now) {
            plan.evictions.push(g.clone());
        }
        return;
    };
    plan.unsettled = true;
    if g.sleep.is_awake() || g.sleep.is_campaigning() {
        // Campaigning already (or queued to): openraft's timer retries the election.
        return;
    }
    let waited = campaign_waited(
        g.sleep.had_leader(),
        now,
        leaderless,
        g.sleep.lease_wait(now, multi.leader_lease()),
    );
    let Some(waited) = waited else {
        return;
    };
    let rank = campaign_rank(g.id, &voters(), m.current_leader, me, alive);
    if rank.is_some_and(|r| campaign_due(r, waited)) {
        plan.campaigns.push(g.clone());
    }
}

fn act(multi: &Arc<MultiRaft>, plan: Plan) {
    for g in &plan.asleep {
        multi.sleep(g);
    }
    if !plan.evictions.is_empty() {
        let multi = multi.clone();
        tokio::spawn(async move { multi.evict(plan.evictions).await });
    }
    if !plan.transfers.is_empty() || !plan.campaigns.is_empty() {
        let multi = multi.clone();
        tokio::spawn(async move {
            for (g, to) in plan.transfers {
                tracing::info!(
                    node = multi.node_id(),
                    group = g.id,
                    to,
                    "leadership transfer did not complete: handing leadership on"
                );
                if let Ok(raft) = multi.instance(&g).await {
                    let _ = raft.trigger().transfer_leader(to).await;
                }
            }
            if plan.campaigns.is_empty() {
                return;
            }
            // The groups themselves when they are few: a group that keeps coming back here
            // is worth finding in the log.
            let few: Vec<_> = plan.campaigns.iter().take(8).map(|g| g.id).collect();
            tracing::info!(
                node = multi.node_id(),
                groups = plan.campaigns.len(),
                first = ?few,
                "campaigning for groups without a live leader"
            );
            // Each waits for one of the node's campaign slots, in plan order.
            let started = std::time::Instant::now();
            let led =
                futures::future::join_all(plan.campaigns.iter().map(|g| multi.campaign(g, true)))
                    .await;
            tracing::info!(
                node = multi.node_id(),
                groups = led.len(),
                led = led.iter().filter(|l| **l).count(),
                elapsed = ?started.elapsed(),
                "campaigns ended"
            );
        });
    }
}
