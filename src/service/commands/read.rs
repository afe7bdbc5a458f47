//! Reading one record: linearizable by default (ReadIndex on the leader); ALLOW_REPLICA
//! reads this replica's state only where the namespace allows relaxed reads. A read that
//! finds its record close to expiry (`read_touch_ttl_percent`) answers at once and then
//! proposes a touch on the group, as Aerospike does.

use super::routing::{forward_or_pause, route};
use super::{error, respond, Envelope, Reply};
use crate::context::{Context as Node, Route};
use crate::protocol::request::{KeyRef, ReadBins, ReadMode, ReadOp, Request};
use crate::stats::Stats;
use futures::future::BoxFuture;
use raft::{ReadError, WriteError};
use std::sync::Arc;
use std::time::Instant;
use storage::command::{Command, Outcome, ReadTouchCommand};
use storage::record::touch::read_touch_ttl;
use storage::record::{Digest, ResultCode};
use storage::record_store::RecordStore;

/// How long a read touch may take to commit before it is given up (it is only a hint: the
/// next read near expiry tries again).
const TOUCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

pub fn handle<'a>(
    node: &'a Arc<Node>,
    req: Request,
    env: &'a Envelope<'a>,
) -> BoxFuture<'a, Reply> {
    Box::pin(async move {
        let Request::Read {
            key,
            bins,
            mode,
            touch_pct,
            filter,
        } = req
        else {
            return Reply::One(error(node, ResultCode::Parameter));
        };
        let ask = ReadAsk {
            key: &key,
            bins: &bins,
            touch_pct,
            filter: filter.as_deref(),
            now_ms: node.clock.now_ms_since_2010(),
        };
        Reply::One(read(node, env, &ask, mode).await)
    })
}

/// What a read asks of its record.
struct ReadAsk<'a> {
    key: &'a KeyRef,
    bins: &'a ReadBins,
    /// The read's `read_touch_ttl_percent` (0 = the namespace's).
    touch_pct: u32,
    /// A filter expression the record must pass.
    filter: Option<&'a [u8]>,
    /// This node's clock (ms since 2010), for the filter's time-dependent parts.
    now_ms: u64,
}

async fn read(node: &Arc<Node>, env: &Envelope<'_>, ask: &ReadAsk<'_>, mode: ReadMode) -> Vec<u8> {
    let (body, hops, deadline) = (env.body, env.hops, env.deadline);
    let key = ask.key;
    Stats::bump(&node.stats.reads);
    let Route {
        group,
        replicas,
        allow_relaxed_reads,
        read_touch_ttl_pct,
        read_confirm,
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
        if let Ok((o, touch)) = node
            .multi
            .read_local(group, |s| read_outcome(s, ask, read_touch_ttl_pct, now))
        {
            start_touch(node, group, key.digest, touch);
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
            .read_confirmed(group, read_confirm, remaining, |s| {
                read_outcome(s, ask, read_touch_ttl_pct, now)
            })
            .await
        {
            Ok((o, touch)) => {
                start_touch(node, group, key.digest, touch);
                return respond(node, &o);
            }
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

/// Propose a read touch on `group` in the background (this node only: a touch is not worth
/// a forward). Bounded by [`TOUCH_TIMEOUT`], so the task ends on its own.
fn start_touch(node: &Arc<Node>, group: raft::GroupId, digest: Digest, ttl: Option<u32>) {
    let Some(ttl) = ttl else { return };
    let cmd = Command::ReadTouch(ReadTouchCommand {
        digest,
        ttl,
        now: node.clock.now_since_2010(),
        last_update: node.clock.now_ms_since_2010(),
    });
    let node = node.clone();
    tokio::spawn(async move {
        let counter = match node.multi.write(group, cmd, TOUCH_TIMEOUT).await {
            Ok(o) if o.code == ResultCode::Ok => &node.stats.read_touch_success,
            Ok(_) | Err(WriteError::NotLeader(_) | WriteError::NoGroup) => {
                &node.stats.read_touch_skip
            }
            Err(WriteError::InDoubt(why)) => {
                tracing::debug!(group, %why, "read touch in doubt");
                &node.stats.read_touch_error
            }
        };
        Stats::bump(counter);
    });
}

/// Answer a read from a group's records, and whether the record wants a read touch (the TTL
/// to touch it with).
fn read_outcome(
    store: &RecordStore,
    ask: &ReadAsk<'_>,
    default_touch_pct: u32,
    now: u32,
) -> (Outcome, Option<u32>) {
    let Some(record) = store.get(&ask.key.digest, now) else {
        return (Outcome::error(ResultCode::NotFound), None);
    };
    let r = &record;
    let (generation, void_time) = (r.generation, r.void_time);
    if let Some(exp) = ask.filter {
        let subject = storage::exp::Subject {
            record: Some(r),
            digest: &ask.key.digest,
            now,
            now_ms: ask.now_ms,
        };
        match storage::exp::passes(exp, &subject) {
            Ok(true) => {}
            Ok(false) => return (Outcome::error(ResultCode::FilteredOut), None),
            Err(code) => return (Outcome::error(code), None),
        }
    }
    let touch = match read_touch_ttl(
        r.void_time,
        r.last_update,
        ask.touch_pct,
        default_touch_pct,
        now,
    ) {
        Ok(t) => t,
        Err(code) => return (Outcome::error(code), None),
    };
    let bins = match ask.bins {
        // The record is this read's own unpacked copy: its values move into the answer.
        ReadBins::All => record
            .bins
            .into_iter()
            .map(|b| (b.name.into_string(), b.value))
            .collect(),
        ReadBins::NoBins => Vec::new(),
        // Aerospike: "bin op(s) expected, none present", after the record lookup.
        ReadBins::Named(names) if names.is_empty() => {
            return (Outcome::error(ResultCode::Parameter), None)
        }
        ReadBins::Named(names) => names
            .iter()
            .filter_map(|n| r.bin(n).map(|v| (n.clone(), v.clone())))
            .collect(),
        ReadBins::Ops(ops) => {
            let mut out = Vec::with_capacity(ops.len());
            for op in ops {
                match op {
                    ReadOp::Bin(n) => {
                        if let Some(v) = r.bin(n) {
                            out.push((n.clone(), v.clone()));
                        }
                    }
                    ReadOp::Compute {
                        family,
                        bin,
                        payload,
                    } => {
                        let subject = storage::exp::Subject {
                            record: Some(r),
                            digest: &ask.key.digest,
                            now,
                            now_ms: ask.now_ms,
                        };
                        match storage::apply::compute(*family, r.bin(bin), payload, false, &subject)
                        {
                            Ok(effect) => out.push((bin.clone(), effect.result)),
                            Err(code) => return (Outcome::error(code), None),
                        }
                    }
                    ReadOp::Cdt { bin, payload } => {
                        match storage::cdt::apply(r.bin(bin), payload, false) {
                            Ok(effect) => out.push((bin.clone(), effect.result)),
                            Err(code) => return (Outcome::error(code), None),
                        }
                    }
                }
            }
            out
        }
    };
    let outcome = Outcome {
        code: ResultCode::Ok,
        generation,
        void_time,
        bins,
    };
    (outcome, touch)
}
