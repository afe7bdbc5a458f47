//! Writing one record (put, operate, touch, append/prepend, increment): the leader stamps its
//! clock and the void time into the command, then proposes it through Raft.

use super::routing::{route, write};
use super::{error, Envelope, Reply};
use crate::context::Context as Node;
use crate::protocol::request::{ttl_to_void_time, Request};
use crate::stats::Stats;
use futures::future::BoxFuture;
use std::sync::Arc;
use storage::command::{Command, WriteCommand};
use storage::record::ResultCode;

pub fn handle<'a>(
    node: &'a Arc<Node>,
    req: Request,
    env: &'a Envelope<'a>,
) -> BoxFuture<'a, Reply> {
    Box::pin(async move {
        let Request::Write {
            key,
            exists,
            generation,
            record_ttl,
            ops,
            respond_all_ops,
            ..
        } = req
        else {
            return Reply::One(error(node, ResultCode::Parameter));
        };
        let now_ms = node.clock.now_ms_since_2010();
        let now = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
        let default_ttl = match route(node, &key) {
            Ok(r) => r.default_ttl,
            Err(code) => return Reply::One(error(node, code)),
        };
        let expiry = match ttl_to_void_time(record_ttl, now, default_ttl) {
            Ok(e) => e,
            Err(code) => return Reply::One(error(node, code)),
        };
        let cmd = Command::Write(WriteCommand {
            digest: key.digest,
            set: key.set.clone(),
            key: key.user_key.clone(),
            exists,
            generation,
            expiry,
            now,
            last_update: now_ms,
            ops,
            respond_all_ops,
        });
        Stats::bump(&node.stats.writes);
        Reply::One(write(node, env, &key, cmd).await)
    })
}
