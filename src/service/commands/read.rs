//! Reading one record: linearizable by default (ReadIndex on the leader); ALLOW_REPLICA
//! reads this replica's state only where the namespace allows relaxed reads.

use super::routing::{forward_or_pause, route};
use super::{error, respond, Envelope, Reply};
use crate::context::{Context as Node, Route};
use crate::protocol::request::{KeyRef, ReadBins, ReadMode, Request};
use crate::stats::Stats;
use futures::future::BoxFuture;
use raft::ReadError;
use std::sync::Arc;
use std::time::Instant;
use storage::command::Outcome;
use storage::record::ResultCode;
use storage::record_store::RecordStore;

pub fn handle<'a>(
    node: &'a Arc<Node>,
    req: Request,
    env: &'a Envelope<'a>,
) -> BoxFuture<'a, Reply> {
    Box::pin(async move {
        let Request::Read { key, bins, mode } = req else {
            return Reply::One(error(node, ResultCode::Parameter));
        };
        Reply::One(read(node, env, &key, &bins, mode).await)
    })
}

async fn read(
    node: &Arc<Node>,
    env: &Envelope<'_>,
    key: &KeyRef,
    bins: &ReadBins,
    mode: ReadMode,
) -> Vec<u8> {
    let (body, hops, deadline) = (env.body, env.hops, env.deadline);
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
    let now = node.clock.now_since_2010();
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
