//! openraft's network traits over [`Transport`]: one client per (target, group), all sharing
//! the node's connections.

use crate::clock::NodeInstant;
use crate::liveness::Liveness;
use crate::rpc::{decode_reply, encode_request, RaftReply, RaftRequest};
use crate::transport::{Transport, TransportError};
use crate::types::{GroupId, NodeId, Snapshot, SnapshotData, TypeConfig, Vote};
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::Instant as _;
use openraft::{RaftNetworkFactory, RaftNetworkV2};
use std::sync::Arc;
use std::time::Duration;

/// No Raft RPC gives up sooner than this. openraft asks for a heartbeat interval (100 ms)
/// for appends and heartbeats, which a node busy with thousands of groups (start-up, a
/// failover) misses under load; each miss tears down a replication stream that is then
/// rebuilt and resent, adding work exactly when there is least CPU to spare. Waiting longer
/// costs no safety (a lease counts from when a request was sent, not answered) and no
/// liveness (peer death is judged by `crate::liveness`, not by RPC timeouts).
const RPC_TIMEOUT_FLOOR: Duration = Duration::from_millis(1000);

/// Whether a vote or pre-vote request must wait until `votes_from` (pure): a node that
/// started less than a lease ago neither stands for election nor grants a vote, since
/// openraft forgot across the restart the lease it may have promised a leader that still
/// serves lease reads. A leadership transfer is exempt: the leader that asked for it
/// stopped serving reads, and openraft accepts it only from the voter's current leader.
pub(crate) fn vote_held_back(
    rpc: &VoteRequest<TypeConfig>,
    now: NodeInstant,
    votes_from: NodeInstant,
) -> bool {
    !rpc.leadership_transfer && now < votes_from
}

#[derive(Clone)]
pub struct NetworkFactory {
    pub group: GroupId,
    pub transport: Arc<dyn Transport>,
    /// Bytes per snapshot chunk.
    pub snapshot_chunk: usize,
    /// No vote or pre-vote request leaves before this instant (see [`crate::MultiRaft`]).
    pub votes_from: NodeInstant,
    /// Every reply is a sign of life of its sender (`crate::liveness`).
    pub liveness: Arc<Liveness>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = GroupClient;

    async fn new_client(&mut self, target: NodeId, _node: &openraft::EmptyNode) -> GroupClient {
        GroupClient {
            target,
            group: self.group,
            transport: self.transport.clone(),
            snapshot_chunk: self.snapshot_chunk.max(1),
            votes_from: self.votes_from,
            liveness: self.liveness.clone(),
        }
    }
}

pub struct GroupClient {
    target: NodeId,
    group: GroupId,
    transport: Arc<dyn Transport>,
    snapshot_chunk: usize,
    votes_from: NodeInstant,
    liveness: Arc<Liveness>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

fn unreachable(s: impl Into<String>) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::new(&Msg(s.into())))
}

impl GroupClient {
    fn may_vote(&self, rpc: &VoteRequest<TypeConfig>) -> Result<(), RPCError<TypeConfig>> {
        if vote_held_back(rpc, NodeInstant::now(), self.votes_from) {
            return Err(unreachable("started less than a leader lease ago"));
        }
        Ok(())
    }

    async fn call(
        &self,
        req: RaftRequest,
        timeout: Duration,
    ) -> Result<RaftReply, RPCError<TypeConfig>> {
        let bytes = encode_request(&req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let reply = self
            .transport
            .call(
                self.target,
                self.group,
                bytes,
                timeout.max(RPC_TIMEOUT_FLOOR),
            )
            .await
            .map_err(|e| match e {
                TransportError::Unreachable(s) => unreachable(s),
                // A timeout is reported as unreachable so openraft backs off instead of hammering.
                TransportError::Timeout => unreachable("timeout"),
            })?;
        self.liveness.touch(self.target);
        match decode_reply(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))? {
            // The peer is up but cannot serve this group now (not created yet, shutting down):
            // never synthesize an answer, just report it unreachable.
            RaftReply::Error(e) => Err(unreachable(e)),
            r => Ok(r),
        }
    }
}

fn streaming_network(s: String) -> StreamingError<TypeConfig> {
    StreamingError::Network(NetworkError::new(&Msg(s)))
}

fn unexpected() -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(&Msg("unexpected reply kind".into())))
}

/// The pause before openraft retries replication to a peer that failed, while the peer is
/// taken for alive, and while it is taken for dead. Thousands of groups retrying towards a
/// dead node every 200 ms were most of the survivors' CPU during a failover, just when they
/// must run the campaigns; a peer that comes back ends the pause at once (the supervisor's
/// ping sees it, and `MultiRaft::heard` resets the backoff of every group led with it).
const RETRY_ALIVE: Duration = Duration::from_millis(200);
const RETRY_DEAD: Duration = Duration::from_secs(3);

impl RaftNetworkV2<TypeConfig> for GroupClient {
    type SnapshotData = SnapshotData;

    fn backoff(&self) -> Option<openraft::network::Backoff> {
        let (liveness, target) = (self.liveness.clone(), self.target);
        Some(openraft::network::Backoff::new(std::iter::repeat_with(
            move || {
                if liveness.is_alive(target, liveness.now_ms()) {
                    RETRY_ALIVE
                } else {
                    RETRY_DEAD
                }
            },
        )))
    }

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
        self.may_vote(&rpc)?;
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
        self.may_vote(&rpc)?;
        match self
            .call(RaftRequest::PreVote(rpc), option.hard_ttl())
            .await?
        {
            RaftReply::Vote(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    /// Sends the snapshot file as it is on disk, one chunk per request and one request at a
    /// time, so neither side ever holds it whole; the receiver checks the reassembled file
    /// with its own header and checksum before installing it.
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let file = snapshot.snapshot;
        let total = file.len();
        // A chunk must cross a loaded fabric: allow far longer than a heartbeat.
        let timeout = option.hard_ttl().max(Duration::from_secs(30));
        let mut cancel = std::pin::pin!(cancel);
        let (mut offset, mut chunks) = (0u64, 0u32);
        loop {
            let (f, at, max) = (file.clone(), offset, self.snapshot_chunk);
            let data = tokio::task::spawn_blocking(move || f.read_chunk(at, max))
                .await
                .map_err(|e| streaming_network(e.to_string()))?
                .map_err(|e| streaming_network(format!("reading the snapshot: {e}")))?;
            let len = data.len() as u64;
            let last = offset + len >= total;
            let req = RaftRequest::SnapshotChunk {
                vote,
                offset,
                total,
                data,
            };
            let reply = tokio::select! {
                closed = &mut cancel => return Err(StreamingError::Closed(closed)),
                r = self.call(req, timeout) => r,
            };
            chunks += 1;
            match reply {
                Ok(RaftReply::Snapshot(r)) if last => {
                    tracing::info!(
                        group = self.group,
                        target = self.target,
                        bytes = total,
                        chunks,
                        "sent a snapshot in {chunks} chunks"
                    );
                    return Ok(r);
                }
                Ok(RaftReply::ChunkStored) if !last => offset += len,
                Ok(_) => return Err(streaming_network("unexpected reply kind".into())),
                Err(RPCError::Unreachable(u)) => return Err(StreamingError::Unreachable(u)),
                Err(RPCError::Network(n)) => return Err(StreamingError::Network(n)),
                Err(e) => return Err(streaming_network(e.to_string())),
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn votes_wait_one_lease_after_start_unless_a_leader_hands_over() {
        let start = NodeInstant::now();
        let votes_from = start + Duration::from_millis(600);
        let mut req = VoteRequest::<TypeConfig>::new(Vote::new(3, 2), None);
        assert!(vote_held_back(&req, start, votes_from));
        assert!(vote_held_back(
            &req,
            start + Duration::from_millis(599),
            votes_from
        ));
        assert!(!vote_held_back(&req, votes_from, votes_from));
        req.leadership_transfer = true;
        assert!(!vote_held_back(&req, start, votes_from));
    }
}
