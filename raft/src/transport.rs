//! The seam between Raft and the network: the server implements it over TCP.

use crate::types::{GroupId, NodeId};
use futures::future::BoxFuture;
use std::time::Duration;

#[derive(Debug, thiserror::Error, Clone)]
pub enum TransportError {
    /// No connection could be made or it broke; back off before retrying.
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("timed out")]
    Timeout,
}

/// Sends one Raft RPC (already encoded) to a group on another node and returns the encoded
/// reply. Implementations multiplex every group over one connection per peer.
pub trait Transport: Send + Sync + 'static {
    fn call(
        &self,
        target: NodeId,
        group: GroupId,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>>;
}
