//! Multi-record commands not served yet (batch, scan, query) and other well-formed requests
//! this server does not implement: answered with their result code in a message that carries
//! INFO3_LAST, so a client reading a stream of answers stops at once instead of waiting for
//! more until its timeout.

use super::{Envelope, Reply};
use crate::context::Context as Node;
use crate::protocol::request::Request;
use crate::protocol::response::encode_stream_end;
use crate::stats::Stats;
use futures::future::BoxFuture;
use std::sync::Arc;
use storage::record::ResultCode;

fn end(node: &Node, code: ResultCode) -> Reply {
    Stats::bump(&node.stats.errors);
    Reply::One(encode_stream_end(code))
}

pub fn batch<'a>(node: &'a Arc<Node>, _: Request, _: &'a Envelope<'a>) -> BoxFuture<'a, Reply> {
    Box::pin(async move { end(node, ResultCode::UnsupportedFeature) })
}

pub fn scan<'a>(node: &'a Arc<Node>, _: Request, _: &'a Envelope<'a>) -> BoxFuture<'a, Reply> {
    Box::pin(async move { end(node, ResultCode::UnsupportedFeature) })
}

pub fn unsupported<'a>(
    node: &'a Arc<Node>,
    req: Request,
    _: &'a Envelope<'a>,
) -> BoxFuture<'a, Reply> {
    let code = match req {
        Request::Unsupported(code) => code,
        _ => ResultCode::UnsupportedFeature,
    };
    Box::pin(async move { end(node, code) })
}
