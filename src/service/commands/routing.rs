//! Getting a request to the node that can serve it: the route of a key, forwarding to the
//! leader (or a live replica), and the propose-or-forward loop every write command shares.

use super::{error, respond, Envelope};
use crate::context::{Context as Node, Route};
use crate::fabric::ForwardError;
use crate::protocol::request::KeyRef;
use crate::stats::Stats;
use raft::{NodeId, WriteError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::command::Command;
use storage::record::{partition_id, ResultCode};

/// A request is forwarded at most this many times (stale hints can bounce it once or twice).
const MAX_HOPS: u32 = 3;
/// Pause before retrying while a group has no known leader (an election is under way).
const RETRY_PAUSE: Duration = Duration::from_millis(30);

/// The group of a key (NAMESPACE for an unknown namespace).
pub fn route(node: &Node, key: &KeyRef) -> Result<Route, ResultCode> {
    node.route(&key.namespace, partition_id(&key.digest))
}

/// Where to send a request this node cannot serve: the known leader, else a live replica.
fn forward_target(
    node: &Node,
    hint: Option<NodeId>,
    replicas: &[NodeId],
    attempt: usize,
) -> Option<NodeId> {
    let me = node.config.node_id;
    if let Some(l) = hint.filter(|l| *l != me) {
        return Some(l);
    }
    let members = node.members.borrow();
    let live: Vec<NodeId> = replicas
        .iter()
        .copied()
        .filter(|r| *r != me && members.get(r).is_some_and(|m| m.up))
        .collect();
    if live.is_empty() {
        None
    } else {
        Some(live[attempt % live.len()])
    }
}

/// Propose a write command on the key's group, forwarding it to the leader when this node
/// does not lead; answers the response frame.
pub async fn write(node: &Arc<Node>, env: &Envelope<'_>, key: &KeyRef, cmd: Command) -> Vec<u8> {
    let (body, hops, deadline) = (env.body, env.hops, env.deadline);
    let Route {
        group, replicas, ..
    } = match route(node, key) {
        Ok(r) => r,
        Err(code) => return error(node, code),
    };
    let mut attempt = 0;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            // Every attempt was refused before it was proposed: certainly not applied.
            return error(node, ResultCode::Unavailable);
        }
        let hint = match node.multi.write(group, cmd.clone(), remaining).await {
            Ok(outcome) => return respond(node, &outcome),
            Err(WriteError::InDoubt(why)) => {
                tracing::debug!(group, %why, "write in doubt");
                Stats::bump(&node.stats.in_doubt);
                return error(node, ResultCode::Timeout);
            }
            Err(WriteError::NotLeader(hint)) => hint,
            Err(WriteError::NoGroup) => None,
        };
        match forward_or_pause(node, body, hops, hint, &replicas, attempt, deadline).await {
            Some(Ok(reply)) => return reply,
            Some(Err(why)) => {
                tracing::debug!(group, %why, "forwarded write in doubt");
                Stats::bump(&node.stats.in_doubt);
                return error(node, ResultCode::Timeout);
            }
            None => attempt += 1,
        }
    }
}

/// Hand a request this node could not serve to the node that can (the leader hint, else a
/// live replica), or pause before the next local attempt. `Some` is final: the other node's
/// reply, or `Err` when the request was sent but no reply came (it may have been acted on).
pub async fn forward_or_pause(
    node: &Node,
    body: &[u8],
    hops: u32,
    hint: Option<NodeId>,
    replicas: &[NodeId],
    attempt: usize,
    deadline: Instant,
) -> Option<Result<Vec<u8>, String>> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if hops < MAX_HOPS {
        if let Some(target) = forward_target(node, hint, replicas, attempt) {
            Stats::bump(&node.stats.forwarded);
            match node.fabric.forward(target, hops + 1, body, remaining).await {
                Ok(reply) => return Some(Ok(reply)),
                Err(ForwardError::Unknown(why)) => return Some(Err(why)),
                Err(ForwardError::NotSent(_)) => {}
            }
        }
    }
    tokio::time::sleep(RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now()))).await;
    None
}
