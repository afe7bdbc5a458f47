//! One AS_MSG request: decode, route to the key's Raft group, and answer with a result code.
//!
//! Routing: a node serves a request on the group it leads; otherwise it forwards the request
//! to the leader (or a replica that may know it), so clients with a stale partition map still
//! succeed. A write whose outcome cannot be known is answered with TIMEOUT (9), which clients
//! report as in doubt; a write that certainly did not happen gets PARTITION_UNAVAILABLE (11).

use crate::clock::now_since_2010;
use crate::fabric::ForwardError;
use crate::node::{Node, Route};
use crate::protocol::message::parse_as_msg;
use crate::protocol::request::{
    decode_request, ttl_to_void_time, KeyRef, ReadBins, ReadMode, Request,
};
use crate::protocol::response::{encode_error, encode_response};
use crate::stats::Stats;
use raft::{NodeId, ReadError, WriteError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::command::{Command, DeleteCommand, Outcome, WriteCommand};
use storage::record::{partition_id, ResultCode};
use storage::record_store::RecordStore;

/// A request is forwarded at most this many times (stale hints can bounce it once or twice).
const MAX_HOPS: u32 = 3;
/// Pause before retrying while a group has no known leader (an election is under way).
const RETRY_PAUSE: Duration = Duration::from_millis(30);

pub async fn handle_message(node: &Arc<Node>, body: &[u8], hops: u32) -> Vec<u8> {
    let msg = match parse_as_msg(body) {
        Ok(m) => m,
        Err(_) => return error(node, ResultCode::Parameter),
    };
    // Answer a little before the client gives up, so it hears our verdict (not applied, or
    // in doubt) instead of timing out on its own.
    let server_timeout = match msg.header.transaction_ttl {
        0 => node.config.request_timeout,
        ms => {
            let ms = u64::from(ms);
            Duration::from_millis(ms - (ms / 10).min(200)).min(node.config.request_timeout)
        }
    };
    let req = match decode_request(&msg) {
        Ok(r) => r,
        Err(e) => return error(node, e.code),
    };
    let deadline = Instant::now() + server_timeout;
    match req {
        Request::Unsupported(code) => error(node, code),
        Request::Read { key, bins, mode } => {
            read(node, body, hops, deadline, &key, &bins, mode).await
        }
        Request::Write {
            key,
            exists,
            generation,
            record_ttl,
            ops,
            respond_all_ops,
            ..
        } => {
            let now = now_since_2010();
            let default_ttl = match route(node, &key) {
                Ok(r) => r.default_ttl,
                Err(code) => return error(node, code),
            };
            let expiry = match ttl_to_void_time(record_ttl, now, default_ttl) {
                Ok(e) => e,
                Err(code) => return error(node, code),
            };
            let cmd = Command::Write(WriteCommand {
                digest: key.digest,
                set: key.set.clone(),
                key: key.user_key.clone(),
                exists,
                generation,
                expiry,
                now,
                ops,
                respond_all_ops,
            });
            Stats::bump(&node.stats.writes);
            write(node, body, hops, deadline, &key, cmd).await
        }
        Request::Delete {
            key, generation, ..
        } => {
            let cmd = Command::Delete(DeleteCommand {
                digest: key.digest,
                generation,
                now: now_since_2010(),
            });
            Stats::bump(&node.stats.deletes);
            write(node, body, hops, deadline, &key, cmd).await
        }
    }
}

fn error(node: &Node, code: ResultCode) -> Vec<u8> {
    Stats::bump(&node.stats.errors);
    encode_error(code)
}

/// The group of a key (NAMESPACE for an unknown namespace).
fn route(node: &Node, key: &KeyRef) -> Result<Route, ResultCode> {
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

async fn write(
    node: &Arc<Node>,
    body: &[u8],
    hops: u32,
    deadline: Instant,
    key: &KeyRef,
    cmd: Command,
) -> Vec<u8> {
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

async fn read(
    node: &Arc<Node>,
    body: &[u8],
    hops: u32,
    deadline: Instant,
    key: &KeyRef,
    bins: &ReadBins,
    mode: ReadMode,
) -> Vec<u8> {
    Stats::bump(&node.stats.reads);
    let Route {
        group,
        replicas,
        allow_relaxed_reads,
        ..
    } = match route(node, key) {
        Ok(r) => r,
        Err(code) => return error(node, code),
    };
    let now = now_since_2010();
    let relaxed =
        matches!(mode, ReadMode::AllowReplica | ReadMode::AllowUnavailable) && allow_relaxed_reads;
    if relaxed {
        // Documented as not linearizable: this replica's state, whatever it is.
        if let Ok(o) = node
            .multi
            .read_local(group, |s| read_outcome(s, key, bins, now))
        {
            return respond(node, &o);
        }
    }
    let mut attempt = 0;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return error(node, ResultCode::Timeout);
        }
        let hint = match node
            .multi
            .read(group, remaining, |s| read_outcome(s, key, bins, now))
            .await
        {
            Ok(o) => return respond(node, &o),
            Err(ReadError::NotLeader(hint)) => hint,
            Err(ReadError::NoGroup) => None,
            // Leadership could not be confirmed (it may be moving): retry, possibly
            // elsewhere, until the deadline; a read has no effect to be in doubt about.
            Err(ReadError::Unavailable(why)) => {
                tracing::debug!(group, %why, "read could not confirm leadership");
                None
            }
        };
        match forward_or_pause(node, body, hops, hint, &replicas, attempt, deadline).await {
            Some(Ok(reply)) => return reply,
            Some(Err(_)) => return error(node, ResultCode::Timeout),
            None => attempt += 1,
        }
    }
}

/// Hand a request this node could not serve to the node that can (the leader hint, else a
/// live replica), or pause before the next local attempt. `Some` is final: the other node's
/// reply, or `Err` when the request was sent but no reply came (it may have been acted on).
async fn forward_or_pause(
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

fn respond(node: &Node, o: &Outcome) -> Vec<u8> {
    match o.code {
        ResultCode::Ok => {}
        ResultCode::NotFound => Stats::bump(&node.stats.read_not_found),
        _ => Stats::bump(&node.stats.errors),
    }
    encode_response(o)
}

/// Answer a read from a group's records.
fn read_outcome(store: &RecordStore, key: &KeyRef, bins: &ReadBins, now: u32) -> Outcome {
    let Some(r) = store.get(&key.digest, now) else {
        return Outcome::error(ResultCode::NotFound);
    };
    let bins = match bins {
        ReadBins::All => r
            .bins
            .iter()
            .map(|b| (b.name.clone(), b.value.clone()))
            .collect(),
        ReadBins::NoBins => Vec::new(),
        ReadBins::Named(names) => names
            .iter()
            .filter_map(|n| r.bin(n).map(|v| (n.clone(), v.clone())))
            .collect(),
    };
    Outcome {
        code: ResultCode::Ok,
        generation: r.generation,
        void_time: r.void_time,
        bins,
    }
}
