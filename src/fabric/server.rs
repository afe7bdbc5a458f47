//! The fabric listener: accepts peers' connections and serves their requests concurrently,
//! so one slow group (waiting on its log flush) never holds up another.

use super::codec::{self, FrameKind};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What the node does with inbound fabric requests.
pub trait Handler: Send + Sync + 'static {
    /// A Raft RPC for `group`; returns the encoded reply.
    fn raft(&self, group: u32, payload: Vec<u8>) -> BoxFuture<'static, Vec<u8>>;
    /// A client request forwarded by another node (`hops` so far); returns a response frame.
    fn forward(&self, hops: u32, payload: Vec<u8>) -> BoxFuture<'static, Vec<u8>>;
    /// A command to propose on `group` (an encoded command); returns the encoded result.
    fn propose(&self, group: u32, payload: Vec<u8>) -> BoxFuture<'static, Vec<u8>>;
}

const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn serve(listener: TcpListener, cluster: String, handler: Arc<dyn Handler>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let (handler, cluster) = (handler.clone(), cluster.clone());
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, &cluster, handler).await {
                        tracing::debug!(%peer, error = %e, "fabric connection closed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "fabric accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    cluster: &str,
    handler: Arc<dyn Handler>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (rd, mut wr) = stream.into_split();
    // Peers coalesce frames into one write; read them back with as few syscalls.
    let mut rd = tokio::io::BufReader::with_capacity(codec::READ_BUFFER, rd);
    let hello = tokio::time::timeout(HELLO_TIMEOUT, codec::read(&mut rd))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no hello"))??
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before hello")
        })?;
    codec::check_hello(&hello, cluster).map_err(std::io::Error::other)?;

    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        let mut buf = Vec::new();
        while let Some(frame) = rx.recv().await {
            buf.clear();
            buf.extend_from_slice(&frame);
            while buf.len() < 1024 * 1024 {
                match rx.try_recv() {
                    Ok(f) => buf.extend_from_slice(&f),
                    Err(_) => break,
                }
            }
            if wr.write_all(&buf).await.is_err() {
                break;
            }
        }
    });
    let result = loop {
        let frame = match codec::read(&mut rd).await {
            Ok(Some(f)) => f,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        let fut = match frame.kind {
            FrameKind::Raft => handler.raft(frame.tag, frame.payload),
            FrameKind::Forward => handler.forward(frame.tag, frame.payload),
            FrameKind::Propose => handler.propose(frame.tag, frame.payload),
            FrameKind::Hello | FrameKind::Reply => {
                break Err(std::io::Error::other("unexpected fabric frame kind"))
            }
        };
        let tx = tx.clone();
        let id = frame.id;
        tokio::spawn(async move {
            let reply = fut.await;
            let mut out = Vec::with_capacity(reply.len() + 17);
            codec::encode(FrameKind::Reply, id, 0, &reply, &mut out);
            let _ = tx.send(out);
        });
    };
    drop(tx);
    let _ = writer.await;
    result
}
