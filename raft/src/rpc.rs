//! Raft RPC messages as they cross the fabric, and their dispatch on the receiving node.

use crate::read_index::LeaderId;
use crate::types::{GroupId, NodeId, TypeConfig, Vote};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

/// Format version of [`RaftRequest`]/[`RaftReply`]; a peer speaking another one is refused.
pub const RPC_VERSION: u8 = 2;

#[derive(Serialize, Deserialize)]
pub enum RaftRequest {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    /// Bytes `offset..offset + data.len()` of a snapshot file of `total` bytes (header,
    /// meta and data as the sender stores it). Chunks go one at a time, in order; the last
    /// one installs the snapshot and is answered with [`RaftReply::Snapshot`].
    SnapshotChunk {
        vote: Vote,
        offset: u64,
        total: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    TransferLeader(TransferLeaderRequest<TypeConfig>),
    /// Whether the receiver's stored vote for each group is still the given leader: one
    /// request per peer for every read waiting on it (`crate::read_index`). Not addressed to
    /// a group; appended, so every earlier request decodes as before.
    ConfirmLeaders(Vec<(GroupId, LeaderId)>),
    /// The supervisor's liveness ping (`crate::liveness`) from node `from` in its
    /// incarnation. Not addressed to a group; appended like `ConfirmLeaders`.
    Ping {
        from: NodeId,
        incarnation: u64,
    },
}

#[derive(Serialize, Deserialize)]
pub enum RaftReply {
    Append(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    Snapshot(SnapshotResponse<TypeConfig>),
    /// A snapshot chunk other than the last was stored.
    ChunkStored,
    TransferLeader(TransferLeaderResponse<TypeConfig>),
    /// The receiver could not handle the request (group missing, shutting down, bad bytes).
    Error(String),
    /// One answer per pair of [`RaftRequest::ConfirmLeaders`], in order.
    LeadersConfirmed(Vec<bool>),
    /// The answer to [`RaftRequest::Ping`]: the answering node's incarnation.
    Pong {
        incarnation: u64,
    },
}

pub fn encode_request(r: &RaftRequest) -> std::io::Result<Vec<u8>> {
    let mut out = vec![RPC_VERSION];
    out.extend(crate::types::encode(r)?);
    Ok(out)
}

pub fn decode_request(b: &[u8]) -> std::io::Result<RaftRequest> {
    match b.split_first() {
        Some((&RPC_VERSION, rest)) => crate::types::decode(rest),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "unsupported raft rpc version",
        )),
    }
}

pub fn encode_reply(r: &RaftReply) -> Vec<u8> {
    let mut out = vec![RPC_VERSION];
    match crate::types::encode(r) {
        Ok(b) => out.extend(b),
        Err(e) => {
            out.extend(crate::types::encode(&RaftReply::Error(e.to_string())).unwrap_or_default())
        }
    }
    out
}

pub fn decode_reply(b: &[u8]) -> std::io::Result<RaftReply> {
    match b.split_first() {
        Some((&RPC_VERSION, rest)) => crate::types::decode(rest),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "unsupported raft rpc version",
        )),
    }
}
