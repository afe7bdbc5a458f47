//! Proposing a command on a group led elsewhere: the fabric's `Propose` request.
//!
//! A node that receives a catalog change (or a set deletion) may not lead the group it
//! belongs to; it sends the command to the leader, which proposes it and answers how it went.

use crate::fabric::ForwardError;
use crate::node::Node;
use raft::{GroupId, NodeId, WriteError};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use storage::command::{Command, Outcome};

/// Pause before retrying while a group has no known leader (an election is under way).
const RETRY_PAUSE: Duration = Duration::from_millis(30);

/// What the node asked to propose answers.
#[derive(Debug, Serialize, Deserialize)]
pub enum ProposeReply {
    Applied {
        outcome: Outcome,
        index: u64,
    },
    /// Not proposed: this node does not lead the group (a hint if it knows who does).
    NotLeader(Option<NodeId>),
    /// Not proposed: the group is not hosted on this node.
    NoGroup,
    /// Not proposed, for the reason given.
    Refused(String),
    /// Proposed, outcome unknown.
    InDoubt(String),
}

impl ProposeReply {
    pub fn from_local(r: Result<(Outcome, u64), WriteError>) -> ProposeReply {
        match r {
            Ok((outcome, index)) => ProposeReply::Applied { outcome, index },
            Err(WriteError::NotLeader(h)) => ProposeReply::NotLeader(h),
            Err(WriteError::NoGroup) => ProposeReply::NoGroup,
            Err(WriteError::InDoubt(why)) => ProposeReply::InDoubt(why),
        }
    }
}

/// Why a proposal has no outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Certainly not applied (no leader reached before the deadline, or refused).
    #[error("not applied: {0}")]
    NotApplied(String),
    /// May have been applied.
    #[error("outcome unknown: {0}")]
    InDoubt(String),
}

pub fn encode_command(cmd: &Command) -> Vec<u8> {
    bincode::serde::encode_to_vec(cmd, bincode::config::standard()).unwrap_or_default()
}

pub fn decode_command(bytes: &[u8]) -> Result<Command, String> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(c, _)| c)
        .map_err(|e| e.to_string())
}

pub fn encode_reply(r: &ProposeReply) -> Vec<u8> {
    bincode::serde::encode_to_vec(r, bincode::config::standard()).unwrap_or_default()
}

fn decode_reply(bytes: &[u8]) -> Result<ProposeReply, String> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(c, _)| c)
        .map_err(|e| e.to_string())
}

/// See [`Node::propose`].
pub async fn propose(
    node: &Node,
    group: GroupId,
    cmd: Command,
    candidates: &[NodeId],
    deadline: Instant,
) -> Result<(Outcome, u64), ProposeError> {
    let me = node.config.node_id;
    let encoded = encode_command(&cmd);
    let mut hint: Option<NodeId> = None;
    let mut attempt = 0usize;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(ProposeError::NotApplied(format!(
                "no leader of group {group} accepted the command in time"
            )));
        }
        let target = match hint.take().filter(|h| *h != me) {
            Some(h) => Some(h),
            None => match node.multi.write_at(group, cmd.clone(), remaining).await {
                Ok(done) => return Ok(done),
                Err(WriteError::InDoubt(why)) => return Err(ProposeError::InDoubt(why)),
                Err(WriteError::NotLeader(Some(h))) if h != me => Some(h),
                Err(_) => {
                    let live: Vec<NodeId> = candidates
                        .iter()
                        .copied()
                        .filter(|c| *c != me && node.is_up(*c))
                        .collect();
                    (!live.is_empty()).then(|| live[attempt % live.len()])
                }
            },
        };
        attempt += 1;
        if let Some(target) = target {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match node
                .fabric
                .propose(target, group, &encoded, remaining)
                .await
                .map(|b| decode_reply(&b))
            {
                Ok(Ok(ProposeReply::Applied { outcome, index })) => return Ok((outcome, index)),
                Ok(Ok(ProposeReply::InDoubt(why))) => return Err(ProposeError::InDoubt(why)),
                Ok(Ok(ProposeReply::NotLeader(h))) => {
                    hint = h;
                    if hint.is_some() {
                        continue;
                    }
                }
                Ok(Ok(ProposeReply::NoGroup)) => {}
                Ok(Ok(ProposeReply::Refused(why))) => return Err(ProposeError::NotApplied(why)),
                Ok(Err(why)) => return Err(ProposeError::InDoubt(why)),
                Err(ForwardError::NotSent(_)) => {}
                Err(ForwardError::Unknown(why)) => return Err(ProposeError::InDoubt(why)),
            }
        }
        tokio::time::sleep(RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now())))
            .await;
    }
}
