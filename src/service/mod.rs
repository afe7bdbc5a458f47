//! The service port: Aerospike clients' data and info requests.

mod commands;
pub mod info;

pub use commands::{dispatch, handle_message, Reply};

use crate::context::Context as Node;
use crate::protocol::frame::{self, read_frame, FrameError};
use crate::stats::Stats;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Idle client connections are closed after this long (clients reconnect from their pool).
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Read buffer of a client connection: most requests fit whole; larger bodies bypass it.
const READ_BUFFER: usize = 16 * 1024;

pub async fn serve(listener: TcpListener, node: Arc<Node>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let node = node.clone();
                tokio::spawn(async move {
                    Stats::bump(&node.stats.client_connections);
                    if let Err(e) = connection(stream, &node).await {
                        tracing::debug!(%peer, error = %e, "client connection closed");
                    }
                    node.stats
                        .client_connections
                        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "service accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One client connection: one request at a time, as Aerospike clients use it. A framing
/// error closes the connection; an error inside a well-framed request gets a result code.
async fn connection(stream: TcpStream, node: &Arc<Node>) -> Result<(), FrameError> {
    stream.set_nodelay(true).ok();
    // Buffered reads: a request's header and body (and any request the client pipelined)
    // arrive in one syscall instead of one per header and one per body.
    let mut stream = BufReader::with_capacity(READ_BUFFER, stream);
    loop {
        let f =
            match tokio::time::timeout(IDLE_TIMEOUT, read_frame(&mut stream, frame::MAX_MSG_BODY))
                .await
            {
                Ok(Ok(Some(f))) => f,
                Ok(Ok(None)) | Err(_) => return Ok(()),
                Ok(Err(e)) => return Err(e),
            };
        let reply = match f.kind {
            frame::TYPE_INFO => {
                Stats::bump(&node.stats.info_requests);
                info::answer(node, &f.body).await
            }
            frame::TYPE_ADMIN => crate::protocol::admin::security_not_enabled_reply(),
            frame::TYPE_MSG => match dispatch(node, &f.body, 0).await {
                Reply::One(b) => b,
                Reply::Stream(mut rx) => {
                    while let Some(b) = rx.recv().await {
                        if stream.write_all(&b).await.is_err() {
                            return Ok(());
                        }
                    }
                    continue;
                }
            },
            // Compression is an Enterprise feature; answer as Aerospike CE does.
            _ => {
                crate::protocol::response::encode_error(storage::record::ResultCode::EnterpriseOnly)
            }
        };
        if stream.write_all(&reply).await.is_err() {
            return Ok(());
        }
    }
}
