//! openraft's network traits over [`Transport`]: one client per (target, group), all sharing
//! the node's connections.

use crate::rpc::{decode_reply, encode_request, RaftReply, RaftRequest};
use crate::transport::{Transport, TransportError};
use crate::types::{GroupId, NodeId, Snapshot, TypeConfig, Vote};
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{RaftNetworkFactory, RaftNetworkV2};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct NetworkFactory {
    pub group: GroupId,
    pub transport: Arc<dyn Transport>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = GroupClient;

    async fn new_client(&mut self, target: NodeId, _node: &openraft::EmptyNode) -> GroupClient {
        GroupClient {
            target,
            group: self.group,
            transport: self.transport.clone(),
        }
    }
}

pub struct GroupClient {
    target: NodeId,
    group: GroupId,
    transport: Arc<dyn Transport>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

fn unreachable(s: impl Into<String>) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::new(&Msg(s.into())))
}

impl GroupClient {
    async fn call(
        &self,
        req: RaftRequest,
        timeout: Duration,
    ) -> Result<RaftReply, RPCError<TypeConfig>> {
        let bytes = encode_request(&req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let reply = self
            .transport
            .call(self.target, self.group, bytes, timeout)
            .await
            .map_err(|e| match e {
                TransportError::Unreachable(s) => unreachable(s),
                // A timeout is reported as unreachable so openraft backs off instead of hammering.
                TransportError::Timeout => unreachable("timeout"),
            })?;
        match decode_reply(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))? {
            // The peer is up but cannot serve this group now (not created yet, shutting down):
            // never synthesize an answer, just report it unreachable.
            RaftReply::Error(e) => Err(unreachable(e)),
            r => Ok(r),
        }
    }
}

fn unexpected() -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(&Msg("unexpected reply kind".into())))
}

impl RaftNetworkV2<TypeConfig> for GroupClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(RaftRequest::Append(rpc), option.hard_ttl())
            .await?
        {
            RaftReply::Append(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(RaftRequest::Vote(rpc), option.hard_ttl()).await? {
            RaftReply::Vote(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(RaftRequest::PreVote(rpc), option.hard_ttl())
            .await?
        {
            RaftReply::Vote(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        _cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let req = RaftRequest::Snapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot,
        };
        // Snapshots can be large: allow far longer than a heartbeat.
        let timeout = option.hard_ttl().max(Duration::from_secs(30));
        match self.call(req, timeout).await {
            Ok(RaftReply::Snapshot(r)) => Ok(r),
            Ok(_) => Err(StreamingError::Network(NetworkError::new(&Msg(
                "unexpected reply kind".into(),
            )))),
            Err(RPCError::Unreachable(u)) => Err(StreamingError::Unreachable(u)),
            Err(RPCError::Network(n)) => Err(StreamingError::Network(n)),
            Err(e) => Err(StreamingError::Network(NetworkError::new(&Msg(
                e.to_string()
            )))),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(RaftRequest::TransferLeader(req), option.hard_ttl())
            .await?
        {
            RaftReply::TransferLeader(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }
}
