//! Errors a group reports to the request path, classified the way a client must act on them.

use crate::types::NodeId;

/// Why a write was not acknowledged.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// Definitely not applied here: this node is not the leader (a hint if one is known).
    #[error("not the leader (leader hint {0:?})")]
    NotLeader(Option<NodeId>),
    /// Definitely not applied: the group is not hosted on this node.
    #[error("group not hosted here")]
    NoGroup,
    /// The command may or may not have been applied (timeout after proposing, leadership lost,
    /// node shutting down).
    #[error("outcome unknown: {0}")]
    InDoubt(String),
}

/// Why a linearizable read could not be served.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ReadError {
    #[error("not the leader (leader hint {0:?})")]
    NotLeader(Option<NodeId>),
    #[error("group not hosted here")]
    NoGroup,
    /// No quorum confirmed leadership in time.
    #[error("unavailable: {0}")]
    Unavailable(String),
}
