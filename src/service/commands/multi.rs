//! Multi-record commands: batch (each row answered as the single-record command it stands
//! for), and those not served yet (scan, query) or other well-formed requests this server
//! does not implement, answered with their result code in a message that carries
//! INFO3_LAST, so a client reading a stream of answers stops at once instead of waiting for
//! more until its timeout.

use super::{dispatch, Envelope, Reply};
use crate::context::Context as Node;
use crate::protocol::batch::{parse_batch, BatchRow, RESPOND_ALL_KEYS};
use crate::protocol::message::{field, info1, info4, parse_as_msg, Field};
use crate::protocol::request::Request;
use crate::protocol::response::{encode_error, encode_stream_end};
use crate::stats::Stats;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use std::sync::Arc;
use storage::record::ResultCode;

/// Rows of one batch served at once (each may wait for a Raft round).
const ROW_CONCURRENCY: usize = 64;
/// Offset of `transaction_ttl` in a response frame (8-byte proto header, then the AS_MSG
/// header's size byte, four info bytes, the result code, generation and record TTL).
const TRANSACTION_TTL_AT: usize = 8 + 14;
/// Offset of the result code in a response frame.
const RESULT_CODE_AT: usize = 8 + 5;

/// A batch row's index and the single-record message body it stands for (None: it cannot be
/// one, such as a row that is itself a batch).
type RowBody = (u32, Option<Vec<u8>>);

fn end(node: &Node, code: ResultCode) -> Reply {
    Stats::bump(&node.stats.errors);
    Reply::One(encode_stream_end(code))
}

/// A batch: every row answered as its single-record command (routed, forwarded and
/// confirmed like one), its answer tagged with the row's index, then the end of the stream.
pub fn batch<'a>(node: &'a Arc<Node>, _: Request, env: &'a Envelope<'a>) -> BoxFuture<'a, Reply> {
    Box::pin(async move {
        let Ok(parent) = parse_as_msg(env.body) else {
            return end(node, ResultCode::Parameter);
        };
        // A transaction: not served yet, and ignoring it would silently answer wrongly.
        if parent.header.info4 & info4::MRT_MASK != 0 {
            return end(node, ResultCode::UnsupportedFeature);
        }
        // The batch's filter applies to every row that has none of its own.
        let parent_filter = parent.field(field::FILTER).copied();
        let (flags, rows): (u8, Vec<RowBody>) = match parse_batch(&parent) {
            Ok((flags, rows)) => (
                flags,
                rows.iter().map(|r| row_body(r, parent_filter)).collect(),
            ),
            Err(e) => {
                tracing::debug!(error = %e, "malformed batch");
                return end(node, ResultCode::Parameter);
            }
        };
        if rows.is_empty() {
            return end(node, ResultCode::Parameter);
        }
        let max = node.config.batch_max_requests;
        if max > 0 && rows.len() > max as usize {
            return end(node, ResultCode::BatchMaxRequests);
        }
        let mut answers = stream::iter(rows)
            .map(|(index, body)| answer_row(node, index, body, env.hops))
            .buffered(ROW_CONCURRENCY);
        let mut out: Vec<u8> = Vec::new();
        let mut last = ResultCode::Ok;
        while let Some(frame) = answers.next().await {
            out.extend_from_slice(&frame);
            // Without respond-all-keys, a row error other than not-found or filtered-out
            // ends the batch after that row, with the error in the closing message
            // (Aerospike's rule; rows already under way may still have been applied).
            let code = frame.get(RESULT_CODE_AT).copied().unwrap_or(0);
            if flags & RESPOND_ALL_KEYS == 0 && !matches!(code, 0 | 2 | 27) {
                last = ResultCode::from_code(code).unwrap_or(ResultCode::ServerError);
                break;
            }
        }
        out.extend_from_slice(&encode_stream_end(last));
        Reply::One(out)
    })
}

fn row_body(row: &BatchRow<'_>, parent_filter: Option<Field<'_>>) -> RowBody {
    let mut msg = row.to_msg();
    if let Some(f) = parent_filter {
        if msg.field(field::FILTER).is_none() {
            msg.fields.push(f);
        }
    }
    if msg.header.info1 & info1::BATCH != 0 {
        return (row.index, None);
    }
    let mut body = Vec::new();
    (row.index, msg.encode_into(&mut body).ok().map(|()| body))
}

/// Answer one row: its single-record answer frame, tagged with the row's index.
async fn answer_row(node: &Arc<Node>, index: u32, body: Option<Vec<u8>>, hops: u32) -> Vec<u8> {
    let mut frame = match body {
        Some(body) => dispatch(node, &body, hops).await.collect().await,
        None => encode_error(ResultCode::Parameter),
    };
    if frame.len() < TRANSACTION_TTL_AT + 4 {
        // Not a single-record answer; never produced by the commands a row can name.
        frame = encode_error(ResultCode::ServerError);
    }
    frame[TRANSACTION_TTL_AT..TRANSACTION_TTL_AT + 4].copy_from_slice(&index.to_be_bytes());
    frame
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
