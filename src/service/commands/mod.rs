//! Client commands (AS_MSG): one file per command, found through [`TABLE`].
//!
//! A message is parsed and decoded once ([`dispatch`]); the decoded request names its command
//! and the table picks the file that answers it. An answer is one message or a stream of
//! messages (batch, scan and query answer with many; the last carries INFO3_LAST).
//!
//! Routing (in [`routing`]): a node serves a request on the group it leads; otherwise it
//! forwards the request to the leader (or a replica that may know it), so clients with a
//! stale partition map still succeed. A write whose outcome cannot be known is answered with
//! TIMEOUT (9), which clients report as in doubt; a write that certainly did not happen gets
//! PARTITION_UNAVAILABLE (11).

mod delete;
mod multi;
mod read;
mod routing;
mod scan;
mod write;

use crate::context::Context as Node;
use crate::protocol::message::parse_as_msg;
use crate::protocol::request::{decode_request, Request};
use crate::protocol::response::{encode_error, encode_response};
use crate::stats::Stats;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::command::Outcome;
use storage::record::ResultCode;
use tokio::sync::mpsc;

/// What a command answers: one response frame, or a stream of them (the connection writes
/// each as it comes; the stream's last message carries INFO3_LAST).
pub enum Reply {
    One(Vec<u8>),
    Stream(mpsc::Receiver<Vec<u8>>),
}

impl Reply {
    /// Every frame of the answer, concatenated (for a forwarded request, which travels as one
    /// fabric reply).
    pub async fn collect(self) -> Vec<u8> {
        match self {
            Reply::One(b) => b,
            Reply::Stream(mut rx) => {
                let mut out = Vec::new();
                while let Some(b) = rx.recv().await {
                    out.extend_from_slice(&b);
                }
                out
            }
        }
    }
}

/// The message as received, for forwarding, and the time the answer is due.
pub struct Envelope<'a> {
    pub body: &'a [u8],
    /// How many times it was forwarded already.
    pub hops: u32,
    pub deadline: Instant,
}

type Handler = for<'a> fn(&'a Arc<Node>, Request, &'a Envelope<'a>) -> BoxFuture<'a, Reply>;

/// Every client command, by the name its decoded request gives.
const TABLE: &[(&str, Handler)] = &[
    ("read", read::handle),
    ("write", write::handle),
    ("delete", delete::handle),
    ("batch", multi::batch),
    ("scan", scan::handle),
    ("unsupported", multi::unsupported),
];

/// Parse, decode and answer one AS_MSG.
pub async fn dispatch(node: &Arc<Node>, body: &[u8], hops: u32) -> Reply {
    let msg = match parse_as_msg(body) {
        Ok(m) => m,
        Err(_) => return Reply::One(error(node, ResultCode::Parameter)),
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
        Err(e) => return Reply::One(error(node, e.code)),
    };
    let env = Envelope {
        body,
        hops,
        deadline: Instant::now() + server_timeout,
    };
    match TABLE.iter().find(|(name, _)| *name == req.name()) {
        Some((_, handler)) => handler(node, req, &env).await,
        None => Reply::One(error(node, ResultCode::UnsupportedFeature)),
    }
}

/// A message forwarded by another node: the whole answer as one buffer.
pub async fn handle_message(node: &Arc<Node>, body: &[u8], hops: u32) -> Vec<u8> {
    dispatch(node, body, hops).await.collect().await
}

pub(crate) fn error(node: &Node, code: ResultCode) -> Vec<u8> {
    Stats::bump(&node.stats.errors);
    encode_error(code)
}

pub(crate) fn respond(node: &Node, o: &Outcome) -> Vec<u8> {
    match o.code {
        ResultCode::Ok => {}
        ResultCode::NotFound => Stats::bump(&node.stats.read_not_found),
        _ => Stats::bump(&node.stats.errors),
    }
    encode_response(o)
}
