//! A small Aerospike-protocol client for one node: what the Jepsen harness and tools use to
//! talk to Strato exactly as any client would, with explicit timeouts and an honest account
//! of whether a failed request may have been applied.
//!
//! [`Cluster`] adds what a real Aerospike client does on top of [`Connection`]: it learns the
//! partition map from every node's `replicas` answer (and the nodes from `peers-clear-std`)
//! and sends each request straight to its partition's leader (`strato bench` uses it).

use crate::protocol::frame::{encode_frame, read_frame, MAX_MSG_BODY, TYPE_MSG};
use crate::protocol::message::{
    field, info1, info2, info3, op, parse_as_msg, AsMsg, Field, MsgHeader, MsgOp,
};
use crate::protocol::particle::{value_from_wire, value_to_wire, Null};
use std::net::SocketAddr;
use std::time::Duration;
/// The data model types a client program needs, so it never reaches into server crates.
pub use storage::record::{Digest, ResultCode, UserKey, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A server's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The raw result code (0 = OK).
    pub code: u8,
    pub generation: u32,
    pub void_time: u32,
    pub bins: Vec<(String, Value)>,
}

impl Reply {
    pub fn bin(&self, name: &str) -> Option<&Value> {
        self.bins.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request never reached the server (connect failed): certainly not applied.
    #[error("not sent: {0}")]
    NotSent(String),
    /// Sent, but the connection broke or the answer could not be parsed: may or may not
    /// have been applied.
    #[error("no answer: {0}")]
    NoAnswer(String),
    /// Sent, but no answer came within the timeout: may or may not have been applied.
    #[error("timed out: {0}")]
    TimedOut(String),
}

/// How a read asks to be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    Linearize,
    AllowReplica,
}

/// A write's conditions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Apply only if the record's generation equals this.
    pub expect_generation: Option<u16>,
}

/// One operation of a request.
#[derive(Clone, Debug, PartialEq)]
pub enum Operation {
    Put(String, Value),
    Incr(String, i64),
    Append(String, Value),
    /// Aerospike's list append (CDT op 1) of one element to a list bin, creating the list.
    ListAppend(String, i64),
}

/// One connection to one node.
pub struct Connection {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    timeout: Duration,
}

impl Connection {
    pub fn new(addr: SocketAddr, timeout: Duration) -> Connection {
        Connection {
            addr,
            stream: None,
            timeout,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    async fn stream(&mut self) -> Result<&mut TcpStream, ClientError> {
        if self.stream.is_none() {
            let s = tokio::time::timeout(self.timeout, TcpStream::connect(self.addr))
                .await
                .map_err(|_| ClientError::NotSent(format!("connect to {} timed out", self.addr)))?
                .map_err(|e| ClientError::NotSent(format!("connect to {}: {e}", self.addr)))?;
            s.set_nodelay(true).ok();
            self.stream = Some(s);
        }
        self.stream
            .as_mut()
            .ok_or_else(|| ClientError::NotSent("no connection".into()))
    }

    /// Send one AS_MSG frame and read its answer. Any failure after sending drops the
    /// connection (its byte stream can no longer be trusted) and is reported as `NoAnswer`,
    /// or `TimedOut` when the time ran out.
    pub async fn call(&mut self, frame: &[u8]) -> Result<Reply, ClientError> {
        let timeout = self.timeout;
        let stream = self.stream().await?;
        let result = tokio::time::timeout(timeout, async {
            stream.write_all(frame).await.map_err(|e| e.to_string())?;
            let f = read_frame(stream, MAX_MSG_BODY)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "connection closed".to_string())?;
            decode_reply(&f.body)
        })
        .await;
        match result {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.stream = None;
                Err(ClientError::NoAnswer(e))
            }
            Err(_) => {
                self.stream = None;
                Err(ClientError::TimedOut(format!(
                    "no answer from {} within {timeout:?}",
                    self.addr
                )))
            }
        }
    }

    pub async fn get(
        &mut self,
        ns: &str,
        set: &str,
        key: &UserKey,
        mode: ReadMode,
    ) -> Result<Reply, ClientError> {
        let header = read_header(mode, self.timeout);
        self.call(&encode(header, ns, set, key, &[])).await
    }

    pub async fn operate(
        &mut self,
        ns: &str,
        set: &str,
        key: &UserKey,
        ops: &[Operation],
        opts: WriteOptions,
    ) -> Result<Reply, ClientError> {
        let mut header = MsgHeader {
            info2: info2::WRITE,
            transaction_ttl: self.timeout.as_millis() as u32,
            ..Default::default()
        };
        if let Some(g) = opts.expect_generation {
            header.info2 |= info2::GENERATION;
            header.generation = u32::from(g);
        }
        self.call(&encode(header, ns, set, key, ops)).await
    }
}

/// The header of a whole-record read in the given mode.
fn read_header(mode: ReadMode, timeout: Duration) -> MsgHeader {
    let info3 = match mode {
        ReadMode::Linearize => info3::SC_READ_TYPE,
        ReadMode::AllowReplica => info3::SC_READ_RELAX,
    };
    MsgHeader {
        info1: info1::READ | info1::GET_ALL,
        info3,
        transaction_ttl: timeout.as_millis() as u32,
        ..Default::default()
    }
}

fn key_field(key: &UserKey) -> Vec<u8> {
    match key {
        UserKey::Int(i) => [&[1u8][..], &i.to_be_bytes()].concat(),
        UserKey::Float(f) => [&[2u8][..], &f.to_bits().to_be_bytes()].concat(),
        UserKey::Str(s) => [&[3u8][..], s.as_bytes()].concat(),
        UserKey::Blob(t, b) => [&[*t][..], b].concat(),
    }
}

/// Build a complete request frame.
pub fn encode(header: MsgHeader, ns: &str, set: &str, key: &UserKey, ops: &[Operation]) -> Vec<u8> {
    encode_with_digest(header, ns, set, key, &key.digest(set), ops)
}

/// The payload of a list append of `e`: msgpack `[1, e]` carried as a blob.
fn list_append(e: i64) -> Value {
    use storage::cdt::value::{to_bytes, CdtValue, List};
    let op = CdtValue::List(List {
        flags: 0,
        items: vec![CdtValue::Int(1), CdtValue::Int(e)],
    });
    Value::Blob(storage::record::particle::BLOB, to_bytes(&op))
}

/// The integers of a list bin, in order (anything else in it is skipped; not a list: none).
pub fn list_ints(v: &Value) -> Vec<i64> {
    use storage::cdt::value::{decode, CdtValue};
    let Value::List(b) = v else {
        return Vec::new();
    };
    match decode(b) {
        Ok(CdtValue::List(l)) => l
            .items
            .iter()
            .filter_map(|e| match e {
                CdtValue::Int(i) => Some(*i),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// [`encode`] with the key's digest already computed (a routing client needs it first to pick
/// the partition, and RIPEMD-160 is not worth computing twice per request).
pub fn encode_with_digest(
    header: MsgHeader,
    ns: &str,
    set: &str,
    key: &UserKey,
    digest: &Digest,
    ops: &[Operation],
) -> Vec<u8> {
    let kf = key_field(key);
    let values: Vec<(u8, &str, u8, Vec<u8>)> = ops
        .iter()
        .map(|o| {
            let (code, name, v) = match o {
                Operation::Put(n, v) => (op::WRITE, n.as_str(), v.clone()),
                Operation::Incr(n, d) => (op::INCR, n.as_str(), Value::Int(*d)),
                Operation::Append(n, v) => (op::APPEND, n.as_str(), v.clone()),
                Operation::ListAppend(n, e) => (op::CDT_MODIFY, n.as_str(), list_append(*e)),
            };
            let mut bytes = Vec::new();
            value_to_wire(&v, &mut bytes);
            (code, name, v.particle_type(), bytes)
        })
        .collect();
    let msg = AsMsg {
        header,
        fields: vec![
            Field {
                kind: field::NAMESPACE,
                data: ns.as_bytes(),
            },
            Field {
                kind: field::SET,
                data: set.as_bytes(),
            },
            Field {
                kind: field::KEY,
                data: &kf,
            },
            Field {
                kind: field::DIGEST,
                data: digest,
            },
        ],
        ops: values
            .iter()
            .map(|(code, name, particle, v)| MsgOp {
                op: *code,
                particle: *particle,
                flags: 0,
                name: name.as_bytes(),
                value: v,
            })
            .collect(),
    };
    let mut body = Vec::new();
    // Our own messages are always encodable (few fields, short names).
    let _ = msg.encode_into(&mut body);
    encode_frame(TYPE_MSG, &body)
}

fn decode_reply(body: &[u8]) -> Result<Reply, String> {
    let msg = parse_as_msg(body).map_err(|e| e.to_string())?;
    let mut bins = Vec::new();
    for o in &msg.ops {
        let v = value_from_wire(o.particle, o.value, Null::Allowed)
            .map_err(|c| format!("bad value in reply: {c:?}"))?;
        bins.push((String::from_utf8_lossy(o.name).into_owned(), v));
    }
    Ok(Reply {
        code: msg.header.result_code,
        generation: msg.header.generation,
        void_time: msg.header.record_ttl,
        bins,
    })
}

/// The result code meaning "in doubt" for writes (TIMEOUT).
pub const IN_DOUBT: u8 = ResultCode::Timeout as u8;

// ---------------------------------------------------------------------------------------------
// Partition-aware cluster client.
// ---------------------------------------------------------------------------------------------

/// Bytes of one partition bitmap in a `replicas` answer: 4096 partitions, one bit each.
pub const BITMAP_BYTES: usize = storage::record::PARTITIONS as usize / 8;

/// One namespace of a node's `replicas` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceReplicas {
    pub namespace: String,
    /// The node's regime (highest Raft term it has seen); 0 when the answer carried none.
    /// Between two nodes claiming one partition, the higher regime is the newer claim.
    pub regime: u32,
    /// Column 0: the partitions this node leads; column i: those where it is the i-th
    /// follower. Each bitmap is 4096 bits, most significant bit of each byte first.
    pub columns: Vec<Vec<u8>>,
}

impl NamespaceReplicas {
    /// Whether column `column` holds partition `p`.
    pub fn has(&self, column: usize, p: u16) -> bool {
        self.columns.get(column).is_some_and(|m| bitmap_has(m, p))
    }
}

/// Whether bit `p` of a partition bitmap is set (MSB-first per byte, as Aerospike sends it).
pub fn bitmap_has(bitmap: &[u8], p: u16) -> bool {
    bitmap
        .get(usize::from(p >> 3))
        .is_some_and(|b| b & (0x80 >> (p & 7)) != 0)
}

/// Parse a `replicas` answer: `<ns>:<regime>,<n>,<bitmap>...` per namespace, namespaces
/// separated by `;`. The regime-less `replicas-all` form `<ns>:<n>,<bitmap>...` is accepted
/// too (regime 0), so that a client can read either.
pub fn parse_replicas(answer: &str) -> Result<Vec<NamespaceReplicas>, String> {
    use base64::Engine;
    let mut out = Vec::new();
    for part in answer.trim().split(';').filter(|p| !p.is_empty()) {
        let (ns, rest) = part
            .split_once(':')
            .ok_or_else(|| format!("no ':' in {part:?}"))?;
        let fields: Vec<&str> = rest.split(',').collect();
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("{ns}: {s:?} is not a number"))
        };
        // With a regime: regime, n, then n bitmaps; without: n, then n bitmaps.
        let (regime, n, maps) = match fields.as_slice() {
            [a, b, maps @ ..] if num(b).is_ok_and(|n| n as usize == maps.len()) => {
                (num(a)?, num(b)? as usize, maps)
            }
            [a, maps @ ..] if num(a).is_ok_and(|n| n as usize == maps.len()) => {
                (0, num(a)? as usize, maps)
            }
            _ => {
                return Err(format!(
                    "{ns}: bitmap count does not match in {rest:.40}..."
                ))
            }
        };
        let mut columns = Vec::with_capacity(n);
        for m in maps {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(m)
                .map_err(|e| format!("{ns}: bad base64 bitmap: {e}"))?;
            if bytes.len() != BITMAP_BYTES {
                return Err(format!(
                    "{ns}: bitmap of {} bytes, expected {BITMAP_BYTES}",
                    bytes.len()
                ));
            }
            columns.push(bytes);
        }
        out.push(NamespaceReplicas {
            namespace: ns.to_string(),
            regime,
            columns,
        });
    }
    Ok(out)
}

/// Parse a `peers-clear-std` answer, `<gen>,<default port>,[[<name>,<tls>,[<addr>,...]],...]`,
/// into service addresses. Addresses without a port get the default port. Only IPv4 and
/// `host:port` forms are understood (Strato never advertises anything else).
pub fn parse_peers(answer: &str) -> Vec<SocketAddr> {
    let mut it = answer.trim().splitn(3, ',');
    let (_gen, port, rest) = (it.next(), it.next(), it.next().unwrap_or(""));
    let default_port = port.and_then(|p| p.parse::<u16>().ok()).unwrap_or(3000);
    let mut out = Vec::new();
    // The address lists are exactly the innermost bracket groups: names are never bracketed.
    let mut start = None;
    for (i, c) in rest.char_indices() {
        match c {
            '[' => start = Some(i + 1),
            ']' => {
                if let Some(s) = start.take() {
                    for a in rest[s..i].split(',').filter(|a| !a.is_empty()) {
                        let parsed = a.parse::<SocketAddr>().ok().or_else(|| {
                            a.parse::<std::net::IpAddr>()
                                .ok()
                                .map(|ip| SocketAddr::new(ip, default_port))
                        });
                        if let Some(addr) = parsed {
                            out.push(addr);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// No node is known to lead the partition.
const NO_NODE: u16 = u16::MAX;

/// Who serves each partition, from the nodes' `replicas` answers.
#[derive(Clone, Debug)]
struct PartitionTable {
    nodes: Vec<SocketAddr>,
    /// Per partition: index into `nodes` of its leader, or `NO_NODE`.
    leader: Vec<u16>,
    /// Per partition: the regime of the leader's claim.
    regime: Vec<u32>,
    /// Per partition: every node holding a replica (leader first), for relaxed reads.
    replicas: Vec<Vec<u16>>,
    /// Per node: answered the last refresh (requests without a known leader go only to
    /// such nodes, which forward them).
    alive: Vec<bool>,
}

impl PartitionTable {
    fn new(nodes: Vec<SocketAddr>) -> PartitionTable {
        let n = usize::from(storage::record::PARTITIONS);
        PartitionTable {
            alive: vec![false; nodes.len()],
            nodes,
            leader: vec![NO_NODE; n],
            regime: vec![0; n],
            replicas: vec![Vec::new(); n],
        }
    }

    fn node_index(&mut self, addr: SocketAddr) -> u16 {
        match self.nodes.iter().position(|a| *a == addr) {
            Some(i) => i as u16,
            None => {
                self.nodes.push(addr);
                self.alive.push(false);
                (self.nodes.len() - 1) as u16
            }
        }
    }

    /// Merge one node's claims: a leadership claim wins over an older regime's.
    fn merge(&mut self, addr: SocketAddr, r: &NamespaceReplicas) {
        let me = self.node_index(addr);
        for p in 0..storage::record::PARTITIONS {
            let i = usize::from(p);
            if r.has(0, p) && (self.leader[i] == NO_NODE || r.regime > self.regime[i]) {
                self.leader[i] = me;
                self.regime[i] = r.regime;
            }
            if (0..r.columns.len()).any(|c| r.has(c, p)) && !self.replicas[i].contains(&me) {
                self.replicas[i].push(me);
            }
        }
    }

    /// Where to send a request for partition `p`: its leader; for relaxed reads, any of its
    /// replicas (chosen by `spread`); with no known leader, any node that answered the last
    /// refresh with its groups loaded (it forwards to the leader once there is one).
    fn route(&self, p: u16, mode: Option<ReadMode>, spread: usize) -> Option<SocketAddr> {
        let i = usize::from(p);
        let pick = match mode {
            Some(ReadMode::AllowReplica) if !self.replicas[i].is_empty() => {
                self.replicas[i][spread % self.replicas[i].len()]
            }
            _ if self.leader[i] != NO_NODE => self.leader[i],
            _ => {
                let alive: Vec<u16> = (0..self.nodes.len() as u16)
                    .filter(|n| self.alive[usize::from(*n)])
                    .collect();
                match alive.len() {
                    0 if self.nodes.is_empty() => return None,
                    0 => (spread % self.nodes.len()) as u16,
                    n => alive[spread % n],
                }
            }
        };
        self.nodes.get(usize::from(pick)).copied()
    }

    fn led(&self) -> usize {
        self.leader.iter().filter(|l| **l != NO_NODE).count()
    }
}

struct ClusterShared {
    namespace: String,
    seeds: Vec<SocketAddr>,
    timeout: Duration,
    table: std::sync::RwLock<std::sync::Arc<PartitionTable>>,
    /// Wakes the refresher early (a request failed in a way a stale map could explain).
    wake: tokio::sync::Notify,
    refreshes: std::sync::atomic::AtomicU64,
}

/// A partition-aware view of a Strato cluster: which node leads each of the 4096 partitions,
/// refreshed every second and whenever a request hints that the map is stale.
///
/// Routing to the leader saves the forward hop a non-leader would otherwise add (a fabric
/// round trip per request), which is what a load generator must avoid measuring. Cloning is
/// cheap and shares the map; the background refresher ends when the last clone is dropped.
#[derive(Clone)]
pub struct Cluster {
    shared: std::sync::Arc<ClusterShared>,
}

impl Cluster {
    /// Learn the cluster from `seeds` (any subset of the nodes; peers are discovered through
    /// `peers-clear-std`) and start refreshing the map every second in the background.
    /// Fails only when no seed answers.
    pub async fn connect(
        seeds: &[SocketAddr],
        namespace: &str,
        timeout: Duration,
    ) -> Result<Cluster, ClientError> {
        let shared = std::sync::Arc::new(ClusterShared {
            namespace: namespace.to_string(),
            seeds: seeds.to_vec(),
            timeout,
            table: std::sync::RwLock::new(std::sync::Arc::new(PartitionTable::new(seeds.to_vec()))),
            wake: tokio::sync::Notify::new(),
            refreshes: Default::default(),
        });
        let cluster = Cluster { shared };
        cluster.refresh().await?;
        let weak = std::sync::Arc::downgrade(&cluster.shared);
        tokio::spawn(async move {
            loop {
                let Some(shared) = weak.upgrade() else { return };
                let _ = tokio::time::timeout(Duration::from_secs(1), shared.wake.notified()).await;
                let _ = (Cluster { shared }).refresh().await;
                // Never more than ~20 refreshes a second, however many requests fail.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Ok(cluster)
    }

    /// Ask every known node for its `replicas` and peers and rebuild the map. Fails only
    /// when no node answered.
    pub async fn refresh(&self) -> Result<(), ClientError> {
        let known = {
            let t = self.table();
            let mut v = t.nodes.clone();
            for s in &self.shared.seeds {
                if !v.contains(s) {
                    v.push(*s);
                }
            }
            v
        };
        let cmds = [
            "partition-generation".to_string(),
            "replicas".to_string(),
            "peers-clear-std".to_string(),
        ];
        let answers = futures::future::join_all(known.iter().map(|a| {
            let host = a.to_string();
            let cmds = &cmds;
            async move { crate::info_client::request(&host, cmds, self.shared.timeout).await }
        }))
        .await;
        let old = self.table();
        let mut table = PartitionTable::new(known.clone());
        let mut answered = 0;
        let mut busy = Vec::new();
        let mut discovered = Vec::new();
        for (addr, answer) in known.iter().zip(answers) {
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    // Connected but no answer in time: busy, not dead (a refused connection
                    // means the node is down and its claims are void).
                    if e.to_string().contains("within") {
                        busy.push(*addr);
                    }
                    continue;
                }
            };
            answered += 1;
            let get = |k: &str| answer.iter().find(|(c, _)| c == k).map(|(_, v)| v.as_str());
            discovered.extend(parse_peers(get("peers-clear-std").unwrap_or_default()));
            // A node that does not hold its groups yet (-1) claims nothing and cannot even
            // forward (it answers 11), so it gets no requests.
            if get("partition-generation").and_then(|g| g.parse::<i64>().ok()) < Some(0) {
                continue;
            }
            let i = table.node_index(*addr);
            table.alive[usize::from(i)] = true;
            let Ok(namespaces) = parse_replicas(get("replicas").unwrap_or_default()) else {
                continue;
            };
            for r in namespaces
                .iter()
                .filter(|r| r.namespace == self.shared.namespace)
            {
                table.merge(*addr, r);
            }
        }
        if answered == 0 {
            return Err(ClientError::NotSent(format!(
                "no node answered info requests ({known:?})"
            )));
        }
        for d in discovered {
            table.node_index(d);
        }
        // A node too busy to answer in time most likely still leads what it led: keep its
        // old claims where no answering node claims the partition, rather than spraying
        // those requests over every node for a second.
        for p in 0..usize::from(storage::record::PARTITIONS) {
            let Some(prev) = old.nodes.get(usize::from(old.leader[p])) else {
                continue;
            };
            if table.leader[p] == NO_NODE && busy.contains(prev) {
                table.leader[p] = table.node_index(*prev);
                table.regime[p] = old.regime[p];
            }
        }
        if let Ok(mut t) = self.shared.table.write() {
            *t = std::sync::Arc::new(table);
        }
        self.shared
            .refreshes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn table(&self) -> std::sync::Arc<PartitionTable> {
        match self.shared.table.read() {
            Ok(t) => t.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Ask the refresher to refresh now rather than at the next second.
    pub fn request_refresh(&self) {
        self.shared.wake.notify_one();
    }

    /// How many times the map was rebuilt (for diagnostics).
    pub fn refreshes(&self) -> u64 {
        self.shared
            .refreshes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every node known (seeds and discovered peers).
    pub fn nodes(&self) -> Vec<SocketAddr> {
        self.table().nodes.clone()
    }

    /// How many of the 4096 partitions have a known leader.
    pub fn partitions_led(&self) -> usize {
        self.table().led()
    }

    /// The node the map says leads partition `p`.
    pub fn leader_of(&self, p: u16) -> Option<SocketAddr> {
        let t = self.table();
        let i = *t.leader.get(usize::from(p))?;
        t.nodes.get(usize::from(i)).copied()
    }

    /// Where to send a request for partition `p` (see [`PartitionTable::route`]).
    fn route(&self, p: u16, mode: Option<ReadMode>, spread: usize) -> Option<SocketAddr> {
        self.table().route(p, mode, spread)
    }

    /// A handle with its own connections (one per node), for one concurrent client task.
    pub fn session(&self) -> ClusterSession {
        ClusterSession {
            cluster: self.clone(),
            conns: std::collections::HashMap::new(),
            spread: 0,
        }
    }

    pub fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    pub fn timeout(&self) -> Duration {
        self.shared.timeout
    }
}

/// How a write treats an existing record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteSpec {
    /// Apply only if the record's generation equals this.
    pub expect_generation: Option<u16>,
    /// Replace the whole record (create it if absent) instead of updating the named bins.
    pub replace: bool,
}

/// Whether a request is sent again, once, to another node (which forwards it to the leader),
/// as Aerospike's clients move a failed request to the next node (pure): one that certainly
/// was not applied (no connection to the node the map names, e.g. one just killed), or a read
/// whose connection was lost (a read has no effect to be in doubt about). A write whose
/// connection was lost is in doubt and a request that timed out used its time: neither is.
fn worth_another_node(r: &Result<Reply, ClientError>, read: bool) -> bool {
    match r {
        Err(ClientError::NotSent(_)) => true,
        Err(ClientError::NoAnswer(_)) => read,
        Err(ClientError::TimedOut(_)) => false,
        Ok(_) => false,
    }
}

/// One client task's connections to the cluster: requests go to their partition's leader.
pub struct ClusterSession {
    cluster: Cluster,
    conns: std::collections::HashMap<SocketAddr, Connection>,
    spread: usize,
}

impl ClusterSession {
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    async fn send(
        &mut self,
        digest: &Digest,
        mode: Option<ReadMode>,
        frame: &[u8],
    ) -> Result<Reply, ClientError> {
        self.spread = self.spread.wrapping_add(1);
        let p = storage::record::partition_id(digest);
        let addr = self
            .cluster
            .route(p, mode, self.spread)
            .ok_or_else(|| ClientError::NotSent("no node known".into()))?;
        let mut r = self.call(addr, frame).await;
        if worth_another_node(&r, mode.is_some()) {
            self.cluster.request_refresh();
            let others: Vec<SocketAddr> = self
                .cluster
                .nodes()
                .into_iter()
                .filter(|a| *a != addr)
                .collect();
            if !others.is_empty() {
                let other = others[self.spread % others.len()];
                r = self.call(other, frame).await;
            }
        }
        // A stale map shows up as the node not being able to serve (11), an in-doubt answer
        // (9: leadership changed under the request) or a dead node; the server forwards
        // otherwise, so there is no explicit "not leader" answer to wait for.
        let stale = match &r {
            Ok(reply) => reply.code == ResultCode::Unavailable as u8 || reply.code == IN_DOUBT,
            Err(_) => true,
        };
        if stale {
            self.cluster.request_refresh();
        }
        r
    }

    async fn call(&mut self, addr: SocketAddr, frame: &[u8]) -> Result<Reply, ClientError> {
        let timeout = self.cluster.timeout();
        self.conns
            .entry(addr)
            .or_insert_with(|| Connection::new(addr, timeout))
            .call(frame)
            .await
    }

    /// Read every bin of `key` from its partition's leader (or a replica, when relaxed).
    pub async fn get(
        &mut self,
        set: &str,
        key: &UserKey,
        mode: ReadMode,
    ) -> Result<Reply, ClientError> {
        let header = read_header(mode, self.cluster.timeout());
        let digest = key.digest(set);
        let frame = encode_with_digest(header, self.cluster.namespace(), set, key, &digest, &[]);
        self.send(&digest, Some(mode), &frame).await
    }

    /// Apply `ops` to `key` on its partition's leader.
    pub async fn operate(
        &mut self,
        set: &str,
        key: &UserKey,
        ops: &[Operation],
        spec: WriteSpec,
    ) -> Result<Reply, ClientError> {
        let mut header = MsgHeader {
            info2: info2::WRITE,
            transaction_ttl: self.cluster.timeout().as_millis() as u32,
            ..Default::default()
        };
        if let Some(g) = spec.expect_generation {
            header.info2 |= info2::GENERATION;
            header.generation = u32::from(g);
        }
        if spec.replace {
            header.info3 |= info3::CREATE_OR_REPLACE;
        }
        let digest = key.digest(set);
        let frame = encode_with_digest(header, self.cluster.namespace(), set, key, &digest, ops);
        self.send(&digest, None, &frame).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_requests_move_to_another_node_only_when_nothing_can_have_happened() {
        let not_sent = Err(ClientError::NotSent("connect refused".into()));
        let lost = Err(ClientError::NoAnswer("connection closed".into()));
        let late = Err(ClientError::TimedOut("no answer from n1 within 1s".into()));
        assert!(worth_another_node(&not_sent, false));
        assert!(worth_another_node(&not_sent, true));
        assert!(worth_another_node(&lost, true));
        assert!(
            !worth_another_node(&lost, false),
            "a write that lost its connection is in doubt"
        );
        assert!(!worth_another_node(&late, true));
    }
    use base64::Engine;

    fn b64(m: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(m)
    }

    #[test]
    fn bitmap_bits_are_msb_first() {
        let mut m = vec![0u8; BITMAP_BYTES];
        m[0] = 0x80; // partition 0
        m[1] = 0x01; // partition 15
        m[511] = 0x01; // partition 4095
        assert!(bitmap_has(&m, 0));
        assert!(!bitmap_has(&m, 1));
        assert!(!bitmap_has(&m, 7));
        assert!(bitmap_has(&m, 15));
        assert!(bitmap_has(&m, 4095));
        assert!(!bitmap_has(&m, 4094));
        assert!(!bitmap_has(&[], 0));
    }

    #[test]
    fn parses_replicas_with_and_without_regime() {
        let mut lead = vec![0u8; BITMAP_BYTES];
        lead[0] = 0b1010_0000; // partitions 0 and 2
        let follow = vec![0xffu8; BITMAP_BYTES];
        let answer = format!("test:7,2,{},{}", b64(&lead), b64(&follow));
        let r = parse_replicas(&answer).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].namespace, "test");
        assert_eq!(r[0].regime, 7);
        assert_eq!(r[0].columns.len(), 2);
        assert!(r[0].has(0, 0) && !r[0].has(0, 1) && r[0].has(0, 2));
        assert!(r[0].has(1, 4095));
        assert!(!r[0].has(2, 0));

        let all = format!("test:1,{};bar:3,1,{}", b64(&lead), b64(&follow));
        let r = parse_replicas(&all).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].namespace.as_str(), r[0].regime), ("test", 0));
        assert_eq!((r[1].namespace.as_str(), r[1].regime), ("bar", 3));
        assert!(r[1].has(0, 1234));
    }

    #[test]
    fn rejects_malformed_replicas() {
        let m = b64(&vec![0u8; BITMAP_BYTES]);
        assert!(parse_replicas("test").is_err());
        assert!(parse_replicas(&format!("test:1,2,{m}")).is_err()); // 2 promised, 1 given
        assert!(parse_replicas("test:1,1,AAAA").is_err()); // short bitmap
        assert!(parse_replicas("test:1,1,***").is_err());
        assert_eq!(parse_replicas("").unwrap(), vec![]);
    }

    #[test]
    fn higher_regime_wins_a_partition() {
        let a: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:3010".parse().unwrap();
        let all = vec![0xffu8; BITMAP_BYTES];
        let none = vec![0u8; BITMAP_BYTES];
        let mut t = PartitionTable::new(vec![a]);
        let claim = |regime, m: &Vec<u8>| NamespaceReplicas {
            namespace: "test".into(),
            regime,
            columns: vec![m.clone()],
        };
        t.merge(b, &claim(5, &all));
        t.merge(a, &claim(4, &all)); // stale claim: ignored
        assert_eq!(t.leader[100], 1);
        t.merge(a, &claim(6, &none));
        assert_eq!(t.leader[100], 1);
        t.merge(a, &claim(6, &all));
        assert_eq!(t.leader[100], 0);
        assert_eq!(t.led(), 4096);
        assert_eq!(t.replicas[100], vec![1, 0]);
    }

    #[test]
    fn routes_to_leaders_else_to_live_nodes() {
        let a: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:3010".parse().unwrap();
        let c: SocketAddr = "127.0.0.1:3020".parse().unwrap();
        let mut first_half = vec![0u8; BITMAP_BYTES];
        first_half[..BITMAP_BYTES / 2].fill(0xff);
        let mut t = PartitionTable::new(vec![a, b, c]);
        t.merge(
            b,
            &NamespaceReplicas {
                namespace: "test".into(),
                regime: 1,
                columns: vec![first_half, vec![0xff; BITMAP_BYTES]],
            },
        );
        t.alive = vec![true, true, false];
        // Led partitions go to their leader, whatever the spread.
        for spread in 0..5 {
            assert_eq!(t.route(7, None, spread), Some(b));
            assert_eq!(t.route(7, Some(ReadMode::Linearize), spread), Some(b));
        }
        // Leaderless partitions go to live nodes only (c is down).
        let picks: Vec<_> = (0..6).map(|s| t.route(4000, None, s).unwrap()).collect();
        assert!(picks.contains(&a) && picks.contains(&b) && !picks.contains(&c));
        // Relaxed reads may go to any replica the map knows of.
        assert_eq!(t.route(4000, Some(ReadMode::AllowReplica), 3), Some(b));
        assert!(PartitionTable::new(vec![]).route(0, None, 0).is_none());
    }

    #[test]
    fn parses_peers() {
        let p = parse_peers(
            "3,3000,[[BB9000000000002,,[127.0.0.1:3010]],[BB9000000000003,,[127.0.0.1]]]",
        );
        assert_eq!(
            p,
            vec![
                "127.0.0.1:3010".parse::<SocketAddr>().unwrap(),
                "127.0.0.1:3000".parse().unwrap()
            ]
        );
        assert!(parse_peers("0,3000,[]").is_empty());
        assert!(parse_peers("").is_empty());
    }
}
