//! Deleting one record, through Raft like any write.

use super::routing::write;
use super::{error, Envelope, Reply};
use crate::context::Context as Node;
use crate::protocol::request::Request;
use crate::stats::Stats;
use futures::future::BoxFuture;
use std::sync::Arc;
use storage::command::{Command, DeleteCommand};
use storage::record::ResultCode;

pub fn handle<'a>(
    node: &'a Arc<Node>,
    req: Request,
    env: &'a Envelope<'a>,
) -> BoxFuture<'a, Reply> {
    Box::pin(async move {
        let Request::Delete {
            key, generation, ..
        } = req
        else {
            return Reply::One(error(node, ResultCode::Parameter));
        };
        let cmd = Command::Delete(DeleteCommand {
            digest: key.digest,
            generation,
            now: node.clock.now_since_2010(),
        });
        Stats::bump(&node.stats.deletes);
        Reply::One(write(node, env, &key, cmd).await)
    })
}
