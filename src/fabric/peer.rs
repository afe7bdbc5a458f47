//! Outgoing fabric connections: one per peer, shared by every group and by forwarded client
//! requests. Requests are matched to replies by id, so many can be in flight at once.

use super::codec::{self, FrameKind};
use futures::future::BoxFuture;
use raft::{GroupId, NodeId, Transport, TransportError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Looks up a node's fabric address (from gossip).
pub type Resolver = Arc<dyn Fn(NodeId) -> Option<SocketAddr> + Send + Sync>;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failed connect, calls fail fast for this long instead of piling up connects.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// Frames are coalesced into one write up to this size.
const WRITE_BATCH: usize = 1024 * 1024;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<(u32, Vec<u8>)>>>>;

struct Conn {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
}

#[derive(Default)]
struct Slot {
    conn: Option<Arc<Conn>>,
    failed_at: Option<Instant>,
}

/// Why a call got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// The request never left this node: the peer certainly did not act on it.
    #[error("not sent: {0}")]
    NotSent(String),
    /// The request was sent but no reply came (timeout or broken connection): it may have
    /// been acted upon.
    #[error("no reply: {0}")]
    Unknown(String),
}

pub struct Fabric {
    node_id: NodeId,
    cluster: String,
    resolve: Resolver,
    slots: Mutex<HashMap<NodeId, Arc<tokio::sync::Mutex<Slot>>>>,
    next_id: AtomicU64,
}

impl Fabric {
    pub fn new(node_id: NodeId, cluster: String, resolve: Resolver) -> Fabric {
        Fabric {
            node_id,
            cluster,
            resolve,
            slots: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    async fn conn(&self, target: NodeId) -> Result<Arc<Conn>, ForwardError> {
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .map_err(|_| ForwardError::NotSent("fabric lock poisoned".into()))?;
            slots.entry(target).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(c) = &slot.conn {
            if !c.tx.is_closed() {
                return Ok(c.clone());
            }
        }
        if slot
            .failed_at
            .is_some_and(|t| t.elapsed() < RECONNECT_BACKOFF)
        {
            return Err(ForwardError::NotSent(format!(
                "node {target} recently unreachable"
            )));
        }
        let addr = (self.resolve)(target)
            .ok_or_else(|| ForwardError::NotSent(format!("no address known for node {target}")))?;
        match self.connect(addr).await {
            Ok(c) => {
                slot.conn = Some(c.clone());
                slot.failed_at = None;
                Ok(c)
            }
            Err(e) => {
                slot.conn = None;
                slot.failed_at = Some(Instant::now());
                Err(ForwardError::NotSent(format!(
                    "connect to node {target} at {addr}: {e}"
                )))
            }
        }
    }

    async fn connect(&self, addr: SocketAddr) -> std::io::Result<Arc<Conn>> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        stream.set_nodelay(true)?;
        let (rd, mut wr) = stream.into_split();
        // Replies arrive coalesced too: read them with as few syscalls.
        let mut rd = tokio::io::BufReader::with_capacity(codec::READ_BUFFER, rd);
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let mut hello = Vec::new();
        codec::encode(
            FrameKind::Hello,
            0,
            0,
            &codec::hello(&self.cluster),
            &mut hello,
        );
        tx.send(hello)
            .map_err(|_| std::io::Error::other("writer gone"))?;
        let node = self.node_id;
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Some(frame) = rx.recv().await {
                buf.clear();
                buf.extend_from_slice(&frame);
                // Coalesce whatever else is queued: many groups' heartbeats share one write.
                while buf.len() < WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(f) => buf.extend_from_slice(&f),
                        Err(_) => break,
                    }
                }
                if let Err(e) = wr.write_all(&buf).await {
                    tracing::debug!(node, %addr, error = %e, "fabric write failed");
                    break;
                }
            }
        });
        let reader_pending = pending.clone();
        let reader_tx = tx.clone();
        tokio::spawn(async move {
            loop {
                match codec::read(&mut rd).await {
                    Ok(Some(f)) if f.kind == FrameKind::Reply => {
                        let waiter = reader_pending.lock().ok().and_then(|mut p| p.remove(&f.id));
                        if let Some(w) = waiter {
                            let _ = w.send((f.tag, f.payload));
                        }
                    }
                    Ok(Some(_)) | Ok(None) | Err(_) => break,
                }
            }
            // Dropping the waiters tells every in-flight caller the connection is gone.
            if let Ok(mut p) = reader_pending.lock() {
                p.clear();
            }
            drop(reader_tx);
        });
        Ok(Arc::new(Conn { tx, pending }))
    }

    /// Send one request and wait for its reply.
    async fn request(
        &self,
        target: NodeId,
        kind: FrameKind,
        tag: u32,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<(u32, Vec<u8>), ForwardError> {
        let conn = self.conn(target).await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (wtx, wrx) = oneshot::channel();
        conn.pending
            .lock()
            .map_err(|_| ForwardError::NotSent("fabric lock poisoned".into()))?
            .insert(id, wtx);
        let mut frame = Vec::with_capacity(payload.len() + 17);
        codec::encode(kind, id, tag, payload, &mut frame);
        if conn.tx.send(frame).is_err() {
            if let Ok(mut p) = conn.pending.lock() {
                p.remove(&id);
            }
            return Err(ForwardError::NotSent(format!(
                "connection to node {target} closed"
            )));
        }
        match tokio::time::timeout(timeout, wrx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(ForwardError::Unknown(format!(
                "connection to node {target} lost"
            ))),
            Err(_) => {
                if let Ok(mut p) = conn.pending.lock() {
                    p.remove(&id);
                }
                Err(ForwardError::Unknown(format!(
                    "no reply from node {target} within {timeout:?}"
                )))
            }
        }
    }

    /// Forward a client's AS_MSG body to another node; returns that node's full response frame.
    pub async fn forward(
        &self,
        target: NodeId,
        hops: u32,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ForwardError> {
        self.request(target, FrameKind::Forward, hops, body, timeout)
            .await
            .map(|(_, p)| p)
    }
}

impl Fabric {
    /// Ask `target` to propose an encoded command on `group`; returns its encoded result.
    pub async fn propose(
        &self,
        target: NodeId,
        group: GroupId,
        command: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ForwardError> {
        self.request(target, FrameKind::Propose, group, command, timeout)
            .await
            .map(|(_, p)| p)
    }
}

/// The fabric as the Raft groups' transport.
pub struct RaftTransport(pub Arc<Fabric>);

impl Transport for RaftTransport {
    fn call(
        &self,
        target: NodeId,
        group: GroupId,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>> {
        let fabric = self.0.clone();
        Box::pin(async move {
            match fabric
                .request(target, FrameKind::Raft, group, &payload, timeout)
                .await
            {
                Ok((_, reply)) => Ok(reply),
                Err(ForwardError::NotSent(e)) => Err(TransportError::Unreachable(e)),
                Err(ForwardError::Unknown(_)) => Err(TransportError::Timeout),
            }
        })
    }
}
