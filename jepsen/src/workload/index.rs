//! The index workload: writers set the integer bin [`BIN`] of keys to globally unique values;
//! readers query the numeric secondary index [`INDEX`] on it, by equality (a value recently
//! written) or by range, over all 4096 partitions. [`crate::checker::index`] holds every
//! query to the writes: no acknowledged, certainly current value missed; no value returned
//! that was never written to that key, definitely failed, or certainly overwritten; every
//! record returned really in the queried range.
//!
//! Operations and their history values:
//!
//! | `f` | key | invocation value | ok value | ok / fail / info |
//! |---|---|---|---|---|
//! | `write` | k | unique int v | v | result 0 / definite error / 9, no answer |
//! | `query` | 0 | `{"lo","hi"}` (inclusive) | `[[key, v], ...]` sorted | every partition answered / otherwise |
//!
//! In a query's ok value, `key` is the record's user key (the client always sends it, so
//! the server stores it) and `v` its bin [`BIN`]; either is `null` when the record lacks it.
//!
//! # How a query covers every partition
//!
//! Only the leader of a partition's Raft group answers a query of it (after a ReadIndex
//! confirmation); any other node answers the partition "unavailable" (result 11 with
//! PARTITION_DONE). A query therefore asks the process's own node for all 4096 partitions,
//! then each other node in turn for those still unanswered, and makes one more pass after a
//! short pause if leadership was moving. A node's answer counts only if its stream ended
//! with result 0: a broken or failed stream may have skipped partitions that hold no match,
//! and nothing in it says which, so all of it is dropped and its partitions asked elsewhere.
//! Every partition is thus read exactly once, by one node, at one point between the query's
//! invocation and completion — so every key is too (a key lives in one partition), which is
//! all the checker assumes. A query that still lacks partitions after its budget is `fail`:
//! a read has no effect, it just observed too little to be recorded.
//!
//! The harness creates the index once the cluster is ready ([`create_index`]) and waits until
//! every node reports it fully built; after the final heal every node runs a query of the
//! whole integer range ([`final_query`]), retried until it covers every partition.

use super::{Completion, Invocation};
use crate::cluster::Cluster;
use crate::history::OpType;
use anyhow::Context;
use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::{json, Value as Json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use strato::client::{ResultCode, Value};
use strato::protocol::frame::{encode_frame, read_frame, MAX_MSG_BODY, TYPE_MSG};
use strato::protocol::message::{field, info1, info3, AsMsg, Field, MsgHeader};
use strato::protocol::particle::{value_from_wire, Null};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The bin the writers set and the index covers.
pub const BIN: &str = "v";
/// The index's name (on set [`super::SET`], bin [`BIN`], numeric).
pub const INDEX: &str = "jepsen_v";
/// Number of partitions a query must cover.
pub const PARTITIONS: u16 = 4096;
/// Writes remembered for choosing query values.
const RECENT: usize = 64;
/// Widest range of a range query (values are handed out one by one, so this spans at most
/// as many writes).
const RANGE_WIDTH: i64 = 32;
/// Passes over the nodes a query makes before it gives up on unanswered partitions.
const PASSES: usize = 2;
/// Pause between two passes (leadership may be moving).
const PASS_PAUSE: Duration = Duration::from_millis(200);
/// How long `sindex-create` may take (a catalog change) and how long the build may take.
const CREATE_TIMEOUT: Duration = Duration::from_secs(10);
const BUILD_TIMEOUT: Duration = Duration::from_secs(60);

/// Chooses query values among the writes handed out lately (whatever their outcome).
#[derive(Default)]
pub struct IndexGen {
    /// (key, value), oldest first.
    recent: VecDeque<(u64, u64)>,
}

fn query(lo: i64, hi: i64) -> Invocation {
    Invocation {
        f: "query",
        key: 0,
        value: json!({"lo": lo, "hi": hi}),
    }
}

/// The query of the whole integer range the harness runs through every node at the end.
pub fn final_query() -> Invocation {
    query(i64::MIN, i64::MAX)
}

impl IndexGen {
    /// Remember a write handed out.
    pub fn wrote(&mut self, key: u64, value: u64) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((key, value));
    }

    /// A query: mostly equality on the latest value handed out for some recent key (likely
    /// current, so a miss is likely to be decidable), sometimes on an older one (likely
    /// overwritten: a hit would be stale), a short range, or the whole range.
    pub fn query(&self, rng: &mut SmallRng) -> Invocation {
        if self.recent.is_empty() {
            // Values start at 2: nothing matches.
            return query(1, 1);
        }
        let roll = rng.gen_range(0..100);
        let any = |rng: &mut SmallRng| self.recent[rng.gen_range(0..self.recent.len())].1 as i64;
        match roll {
            0..50 => {
                let mut latest: Vec<u64> = Vec::new();
                let mut keys: Vec<u64> = Vec::new();
                for &(k, v) in self.recent.iter().rev() {
                    if !keys.contains(&k) {
                        keys.push(k);
                        latest.push(v);
                    }
                }
                let v = latest[rng.gen_range(0..latest.len())] as i64;
                query(v, v)
            }
            50..75 => {
                let v = any(rng);
                query(v, v)
            }
            75..95 => {
                let lo = any(rng);
                query(lo, lo + rng.gen_range(1..=RANGE_WIDTH))
            }
            _ => query(i64::MIN, i64::MAX),
        }
    }
}

/// A query's wire request: namespace, set, INDEX_RANGE on [`BIN`] (integer, inclusive),
/// PID_ARRAY, all bins; PARTITION_DONE asks for per-partition status.
pub fn encode_query(ns: &str, set: &str, lo: i64, hi: i64, pids: &[u16], ttl: Duration) -> Vec<u8> {
    let mut range = vec![1, BIN.len() as u8];
    range.extend_from_slice(BIN.as_bytes());
    range.push(1); // particle type: integer
    range.extend_from_slice(&8u32.to_be_bytes());
    range.extend_from_slice(&lo.to_be_bytes());
    range.extend_from_slice(&8u32.to_be_bytes());
    range.extend_from_slice(&hi.to_be_bytes());
    let pid_bytes: Vec<u8> = pids.iter().flat_map(|p| p.to_le_bytes()).collect();
    let msg = AsMsg {
        header: MsgHeader {
            info1: info1::READ,
            info3: info3::PARTITION_DONE,
            transaction_ttl: ttl.as_millis() as u32,
            ..Default::default()
        },
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
                kind: field::INDEX_RANGE,
                data: &range,
            },
            Field {
                kind: field::PID_ARRAY,
                data: &pid_bytes,
            },
        ],
        ops: Vec::new(),
    };
    let mut body = Vec::new();
    // Few fields, short names: always encodable.
    let _ = msg.encode_into(&mut body);
    encode_frame(TYPE_MSG, &body)
}

/// One record of a query's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The partition its digest falls in.
    pub pid: u16,
    /// Its user key, if it carried one (an integer).
    pub key: Option<u64>,
    /// Its bin [`BIN`], if an integer.
    pub v: Option<i64>,
}

/// What one node answered so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    pub rows: Vec<Row>,
    /// Partitions the node could not read (it does not lead them).
    pub unavailable: Vec<u16>,
    /// The stream's end: its result code.
    pub end: Option<u8>,
}

/// Aerospike's partition of a digest: its first 12 bits, little-endian.
fn partition_of(digest: &[u8]) -> Option<u16> {
    match digest {
        [a, b, ..] if digest.len() == 20 => {
            Some((u16::from(*a) | (u16::from(*b) << 8)) & (PARTITIONS - 1))
        }
        _ => None,
    }
}

/// Add the messages of one frame body (concatenated AS_MSGs) to `answer`. Errors on what no
/// correct server sends: an unparsable message, a record without a digest, an error code
/// outside the stream's end, anything after the end.
pub fn decode_body(body: &[u8], answer: &mut Answer) -> Result<(), String> {
    let mut rest = body;
    while !rest.is_empty() {
        if answer.end.is_some() {
            return Err("messages after the stream's end".into());
        }
        let (msg, after) = AsMsg::parse_prefix(rest).map_err(|e| e.to_string())?;
        rest = after;
        let h = &msg.header;
        if h.info3 & info3::LAST != 0 {
            answer.end = Some(h.result_code);
        } else if h.info3 & info3::PARTITION_DONE != 0 {
            if h.result_code != ResultCode::Ok as u8 {
                let pid = u16::try_from(h.generation)
                    .ok()
                    .filter(|p| *p < PARTITIONS)
                    .ok_or_else(|| format!("partition done for partition {}", h.generation))?;
                answer.unavailable.push(pid);
            }
        } else if h.result_code != ResultCode::Ok as u8 {
            return Err(format!("result code {} before the end", h.result_code));
        } else {
            let pid = msg
                .field(field::DIGEST)
                .and_then(|f| partition_of(f.data))
                .ok_or("a record without a digest")?;
            let key = msg.field(field::KEY).and_then(|f| match f.data {
                [1, b @ ..] => b
                    .try_into()
                    .ok()
                    .map(|b: [u8; 8]| i64::from_be_bytes(b) as u64),
                _ => None,
            });
            let v =
                msg.ops.iter().find(|o| o.name == BIN.as_bytes()).and_then(
                    |o| match value_from_wire(o.particle, o.value, Null::Allowed) {
                        Ok(Value::Int(i)) => Some(i),
                        _ => None,
                    },
                );
            answer.rows.push(Row { pid, key, v });
        }
    }
    Ok(())
}

/// Check a complete answer against the partitions asked: rows only from partitions asked
/// and not reported unavailable, unavailable partitions only among those asked. A node
/// breaking that is not trusted for any partition (its rows could not be attributed).
pub fn validate(answer: &Answer, asked: &[u16]) -> Result<(), String> {
    let mut state = vec![0u8; usize::from(PARTITIONS)]; // 1 asked, 2 unavailable
    for &p in asked {
        state[usize::from(p)] = 1;
    }
    for &p in &answer.unavailable {
        match state[usize::from(p)] {
            1 => state[usize::from(p)] = 2,
            2 => return Err(format!("partition {p} reported unavailable twice")),
            _ => return Err(format!("partition {p} reported unavailable but not asked")),
        }
    }
    for r in &answer.rows {
        match state[usize::from(r.pid)] {
            1 => {}
            2 => {
                return Err(format!(
                    "a record of partition {} reported unavailable",
                    r.pid
                ))
            }
            _ => return Err(format!("a record of partition {}, not asked", r.pid)),
        }
    }
    Ok(())
}

/// Queries through every node, each over its own connection (opened on first use, dropped
/// when its byte stream can no longer be trusted).
pub struct QueryClient {
    /// Every node, the process's own first.
    nodes: Vec<(SocketAddr, Option<TcpStream>)>,
    timeout: Duration,
}

impl QueryClient {
    /// Through `addrs`, starting at `own` and going round.
    pub fn new(addrs: &[SocketAddr], own: usize, timeout: Duration) -> QueryClient {
        let n = addrs.len();
        QueryClient {
            nodes: (0..n).map(|i| (addrs[(own + i) % n], None)).collect(),
            timeout,
        }
    }

    /// Ask node `i` for `pids`; its complete, consistent answer, or why there is none.
    async fn ask(
        &mut self,
        i: usize,
        ns: &str,
        lo: i64,
        hi: i64,
        pids: &[u16],
        timeout: Duration,
    ) -> Result<Answer, String> {
        let (addr, slot) = &mut self.nodes[i];
        let addr = *addr;
        if slot.is_none() {
            let s = tokio::time::timeout(timeout, TcpStream::connect(addr))
                .await
                .map_err(|_| format!("connect to {addr} timed out"))?
                .map_err(|e| format!("connect to {addr}: {e}"))?;
            s.set_nodelay(true).ok();
            *slot = Some(s);
        }
        let Some(stream) = slot.as_mut() else {
            return Err("no connection".into());
        };
        let frame = encode_query(ns, super::SET, lo, hi, pids, timeout);
        let result = tokio::time::timeout(timeout, async {
            stream.write_all(&frame).await.map_err(|e| e.to_string())?;
            let mut answer = Answer::default();
            while answer.end.is_none() {
                let f = read_frame(stream, MAX_MSG_BODY)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("connection closed")?;
                if f.kind != TYPE_MSG {
                    return Err(format!("frame of type {}", f.kind));
                }
                decode_body(&f.body, &mut answer)?;
            }
            Ok(answer)
        })
        .await
        .unwrap_or_else(|_| Err(format!("no complete answer within {timeout:?}")));
        let answer = match result {
            Ok(a) => a,
            Err(e) => {
                *slot = None;
                return Err(format!("{addr}: {e}"));
            }
        };
        match answer.end {
            Some(0) => {}
            Some(code) => return Err(format!("{addr}: query ended with result code {code}")),
            None => return Err(format!("{addr}: no end")),
        }
        validate(&answer, pids).map_err(|e| {
            tracing::warn!(%addr, "inconsistent query answer: {e}");
            format!("{addr}: inconsistent answer: {e}")
        })?;
        Ok(answer)
    }

    /// Query `[lo, hi]` over every partition (see the module documentation): the rows, or
    /// why some partitions stayed unanswered.
    pub async fn query(&mut self, ns: &str, lo: i64, hi: i64) -> Result<Vec<Row>, String> {
        let deadline = Instant::now() + self.timeout * PASSES as u32;
        let mut pending: Vec<u16> = (0..PARTITIONS).collect();
        let mut rows = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        for pass in 0..PASSES {
            if pass > 0 {
                tokio::time::sleep(PASS_PAUSE).await;
            }
            for i in 0..self.nodes.len() {
                let left = deadline.saturating_duration_since(Instant::now());
                if pending.is_empty() || left.is_zero() {
                    break;
                }
                match self
                    .ask(i, ns, lo, hi, &pending, left.min(self.timeout))
                    .await
                {
                    Ok(mut a) => {
                        rows.append(&mut a.rows);
                        a.unavailable.sort_unstable();
                        pending = a.unavailable;
                    }
                    Err(e) => errors.push(e),
                }
            }
            if pending.is_empty() {
                return Ok(rows);
            }
        }
        errors.truncate(3);
        Err(format!(
            "{} of {PARTITIONS} partitions not answered by any node (first: {}){}",
            pending.len(),
            pending[0],
            if errors.is_empty() {
                String::new()
            } else {
                format!("; {}", errors.join("; "))
            }
        ))
    }
}

/// The history value of a query's rows: `[key, v]` pairs, sorted.
pub fn rows_value(rows: &[Row]) -> Json {
    let mut pairs: Vec<(Option<u64>, Option<i64>)> = rows.iter().map(|r| (r.key, r.v)).collect();
    pairs.sort_unstable();
    json!(pairs.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>())
}

/// Run a query invocation.
pub async fn invoke(q: &mut QueryClient, ns: &str, inv: &Invocation) -> Completion {
    let bound = |f: &str| inv.value.get(f).and_then(Json::as_i64);
    let (Some(lo), Some(hi)) = (bound("lo"), bound("hi")) else {
        return (OpType::Fail, Json::Null, Some("malformed query".into()));
    };
    match q.query(ns, lo, hi).await {
        Ok(rows) => (OpType::Ok, rows_value(&rows), None),
        Err(e) => (OpType::Fail, Json::Null, Some(e)),
    }
}

/// Create the index in `ns` (retrying on every running node until one answers `ok`; the
/// creation is idempotent) and wait until every node reports all its copies built.
pub async fn create_index(cluster: &mut Cluster, ns: &str) -> anyhow::Result<()> {
    let cmd = format!(
        "sindex-create:ns={ns};set={};indexname={INDEX};indexdata={BIN},NUMERIC",
        super::SET
    );
    let deadline = Instant::now() + BUILD_TIMEOUT;
    let mut attempt = 0usize;
    loop {
        let i = attempt % cluster.nodes();
        attempt += 1;
        let host = cluster.service_addr(i).to_string();
        let answer =
            strato::info_client::request(&host, std::slice::from_ref(&cmd), CREATE_TIMEOUT)
                .await
                .map(|a| a.into_iter().next().map(|(_, v)| v).unwrap_or_default());
        let why = match answer {
            Ok(a) if a == "ok" => break,
            Ok(a) => a,
            Err(e) => format!("{e:#}"),
        };
        anyhow::ensure!(
            Instant::now() < deadline,
            "`{cmd}` never answered ok; last: {why}"
        );
        tracing::debug!(node = i + 1, "sindex-create: {why}; retrying");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let stat = format!("sindex/{ns}/{INDEX}");
    loop {
        let mut unbuilt = Vec::new();
        for i in 0..cluster.nodes() {
            let answer = cluster.info(i, &stat).await;
            if !answer.as_ref().is_ok_and(|a| built(a)) {
                unbuilt.push(format!("n{}: {answer:?}", i + 1));
            }
        }
        if unbuilt.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(anyhow::anyhow!("{}", unbuilt.join("; ")))
                .with_context(|| format!("index {INDEX} not built within {BUILD_TIMEOUT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether a `sindex/NS/NAME` answer says every copy on the node is built.
fn built(answer: &str) -> bool {
    answer.split(';').any(|kv| kv == "load_pct=100")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use strato::protocol::message::{op, MsgOp};
    use strato::protocol::response::{encode_partition_unavailable, encode_stream_end};
    use strato::protocol::scan::decode_scan;

    /// A record message laid out as the server's `encode_record_msg` lays it out.
    fn record(digest: [u8; 20], key: Option<i64>, v: i64, buf: &mut Vec<u8>) {
        let kf = key.map(|k| [&[1u8][..], &k.to_be_bytes()].concat());
        let vb = v.to_be_bytes();
        let bval = 7u64.to_le_bytes();
        let mut fields = vec![
            Field {
                kind: field::NAMESPACE,
                data: b"test",
            },
            Field {
                kind: field::DIGEST,
                data: &digest,
            },
            Field {
                kind: field::SET,
                data: b"jepsen",
            },
        ];
        if let Some(kf) = &kf {
            fields.push(Field {
                kind: field::KEY,
                data: kf,
            });
        }
        fields.push(Field {
            kind: field::BVAL_ARRAY,
            data: &bval,
        });
        let m = AsMsg {
            header: MsgHeader {
                generation: 3,
                ..Default::default()
            },
            fields,
            ops: vec![MsgOp {
                op: op::READ,
                particle: 1,
                flags: 0,
                name: b"v",
                value: &vb,
            }],
        };
        m.encode_into(buf).unwrap();
    }

    fn digest(pid: u16) -> [u8; 20] {
        let mut d = [9u8; 20];
        d[0] = (pid & 0xff) as u8;
        d[1] = (pid >> 8) as u8 | 0xf0;
        d
    }

    #[test]
    fn the_server_decodes_our_query() {
        let frame = encode_query(
            "test",
            "jepsen",
            -5,
            9,
            &[0, 17, 4095],
            Duration::from_secs(3),
        );
        let msg = AsMsg::parse(&frame[8..]).unwrap();
        assert_eq!(msg.field(field::DIGEST), None);
        let q = decode_scan(&msg).unwrap();
        assert_eq!(q.namespace, "test");
        assert_eq!(q.set.as_deref(), Some("jepsen"));
        assert_eq!(
            q.parts.iter().map(|p| p.pid).collect::<Vec<_>>(),
            vec![0, 17, 4095]
        );
        let f = q.filter.unwrap();
        assert_eq!(f.bin, "v");
        // The key type is the server's own; its bounds print as the integers.
        let bounds = format!("{:?} {:?}", f.begin, f.end);
        assert!(bounds.contains("-5") && bounds.contains('9'), "{bounds}");
        assert_eq!(msg.header.info3, info3::PARTITION_DONE);
        // Big-endian, signed: the server sees 9 > -5 and refuses the range backwards.
        let backwards = encode_query("test", "jepsen", 9, -5, &[0], Duration::from_secs(3));
        assert!(decode_scan(&AsMsg::parse(&backwards[8..]).unwrap()).is_err());
    }

    #[test]
    fn decodes_records_unavailable_partitions_and_the_end() {
        let mut body = Vec::new();
        record(digest(17), Some(4), 42, &mut body);
        encode_partition_unavailable(300, &mut body);
        record(digest(4095), None, -1, &mut body);
        let mut a = Answer::default();
        decode_body(&body, &mut a).unwrap();
        assert_eq!(
            a.rows,
            vec![
                Row {
                    pid: 17,
                    key: Some(4),
                    v: Some(42)
                },
                Row {
                    pid: 4095,
                    key: None,
                    v: Some(-1)
                }
            ]
        );
        assert_eq!(a.unavailable, vec![300]);
        assert_eq!(a.end, None);
        assert_eq!(validate(&a, &[17, 300, 4095]), Ok(()));
        assert!(validate(&a, &[17, 4095]).is_err(), "300 was not asked");
        assert!(validate(&a, &[300, 4095]).is_err(), "17 was not asked");
        let end = encode_stream_end(ResultCode::Ok);
        decode_body(&end[8..], &mut a).unwrap();
        assert_eq!(a.end, Some(0));
        assert!(decode_body(&end[8..], &mut a).is_err(), "after the end");
        let mut b = Answer::default();
        decode_body(
            &encode_stream_end(ResultCode::IndexNotReadable)[8..],
            &mut b,
        )
        .unwrap();
        assert_eq!(b.end, Some(203));
        assert!(decode_body(&body[..body.len() - 1], &mut Answer::default()).is_err());
        let mut both = Vec::new();
        record(digest(300), Some(1), 1, &mut both);
        encode_partition_unavailable(300, &mut both);
        let mut c = Answer::default();
        decode_body(&both, &mut c).unwrap();
        assert!(
            validate(&c, &[300]).is_err(),
            "a record of an unavailable partition"
        );
    }

    #[test]
    fn rows_become_sorted_pairs() {
        let rows = [
            Row {
                pid: 1,
                key: Some(5),
                v: Some(9),
            },
            Row {
                pid: 2,
                key: None,
                v: None,
            },
            Row {
                pid: 3,
                key: Some(2),
                v: Some(11),
            },
        ];
        assert_eq!(rows_value(&rows), json!([[null, null], [2, 11], [5, 9]]));
    }

    #[test]
    fn load_pct_must_be_100() {
        assert!(built("entries=3;used_bytes=1;load_pct=100;load_time=0"));
        assert!(!built("entries=3;used_bytes=1;load_pct=10;load_time=0"));
        assert!(!built("ERROR:201:no index"));
    }

    #[test]
    fn queries_name_recent_values_or_ranges() {
        let mut rng = SmallRng::seed_from_u64(5);
        let g = IndexGen::default();
        assert_eq!(g.query(&mut rng).value, json!({"lo": 1, "hi": 1}));
        let mut g = IndexGen::default();
        for v in 2..200u64 {
            g.wrote(v % 7, v);
        }
        let (mut eq, mut range) = (0, 0);
        for _ in 0..1000 {
            let q = g.query(&mut rng);
            let (lo, hi) = (
                q.value["lo"].as_i64().unwrap(),
                q.value["hi"].as_i64().unwrap(),
            );
            assert!(lo <= hi);
            if lo == hi {
                eq += 1;
                assert!((200 - RECENT as i64..200).contains(&lo), "{lo}");
            } else {
                range += 1;
            }
        }
        assert!(eq > 600 && range > 150, "{eq} {range}");
    }
}
