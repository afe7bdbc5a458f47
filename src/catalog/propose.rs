//! Proposing a command on a group led elsewhere: the fabric's `Propose` request.
//!
//! A node that receives a catalog change (or a set deletion) may not lead the group it
//! belongs to; it sends the command to the leader, which proposes it and answers how it went.

use raft::{NodeId, WriteError};
use serde::{Deserialize, Serialize};
use storage::command::{Command, Outcome};

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

pub fn decode_reply(bytes: &[u8]) -> Result<ProposeReply, String> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(c, _)| c)
        .map_err(|e| e.to_string())
}
