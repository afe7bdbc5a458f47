//! Workloads: what each logical process asks the cluster, and how an answer becomes a
//! history completion (ok, fail = certainly not applied, info = maybe applied).
//!
//! Every workload runs in one namespace (`jepsen test --namespace`, default
//! [`DEFAULT_NAMESPACE`]); the catalog workload ([`catalog`]) also creates and drops
//! namespaces of its own; the index workload ([`index`]) queries a secondary index it creates.

pub mod catalog;
pub mod index;

use crate::history::OpType;
use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::{json, Value as Json};
use std::net::SocketAddr;
use std::time::Duration;
use strato::client::{
    ClientError, Connection, Operation, ReadMode, Reply, ResultCode, UserKey, Value, WriteOptions,
    IN_DOUBT,
};

/// The namespace every node has from start-up; workloads run in it unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = crate::cluster::STARTUP_NAMESPACE;
pub const SET: &str = "jepsen";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    Register,
    CasRegister,
    Counter,
    Append,
    Set,
    /// Namespaces and sets created and dropped at run time, with writes and reads in them.
    Catalog,
    /// Unique values written to an indexed bin, read back by secondary-index queries.
    Index,
}

/// One invocation: `f`, key and value as recorded in the history.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub f: &'static str,
    pub key: u64,
    pub value: Json,
}

/// Produces invocations. Keys rotate: each key takes a bounded number of operations, so
/// per-key histories stay small enough for the linearizability search.
pub struct Generator {
    workload: Workload,
    catalog: Option<catalog::CatalogGen>,
    index: index::IndexGen,
    rng: SmallRng,
    next_value: u64,
    active: Vec<(u64, u32)>,
    next_key: u64,
    per_key: u32,
}

impl Generator {
    /// Invocations of `workload`; `namespace` is the namespace the run is in (the catalog
    /// workload writes there too, beside the namespaces it creates).
    pub fn new(workload: Workload, namespace: &str, rng: SmallRng) -> Generator {
        let (window, per_key) = match workload {
            Workload::Register => (3, 120),
            Workload::CasRegister => (3, 100),
            Workload::Counter => (1, u32::MAX),
            Workload::Append => (3, 150),
            Workload::Set => (2, 400),
            Workload::Catalog => (1, u32::MAX),
            // Only writes take a key. A key whose write is in doubt cannot be held to any
            // query after it (the write may land at any time), so keys retire quickly.
            Workload::Index => (8, 40),
        };
        let catalog = (workload == Workload::Catalog)
            .then(|| catalog::CatalogGen::new(namespace, rng.clone()));
        Generator {
            workload,
            catalog,
            index: index::IndexGen::default(),
            rng,
            next_value: 1,
            active: (0..window).map(|k| (k, 0)).collect(),
            next_key: window,
            per_key,
        }
    }

    fn key(&mut self) -> u64 {
        let i = self.rng.gen_range(0..self.active.len());
        self.active[i].1 += 1;
        let key = self.active[i].0;
        if self.active[i].1 >= self.per_key {
            self.active[i] = (self.next_key, 0);
            self.next_key += 1;
        }
        key
    }

    fn unique(&mut self) -> u64 {
        self.next_value += 1;
        self.next_value
    }

    pub fn next_invocation(&mut self) -> Invocation {
        if let Some(c) = self.catalog.as_mut() {
            return c.next_invocation();
        }
        if self.workload == Workload::Index {
            if self.rng.gen_bool(0.5) {
                return self.index.query(&mut self.rng);
            }
            let (key, v) = (self.key(), self.unique());
            self.index.wrote(key, v);
            return Invocation {
                f: "write",
                key,
                value: json!(v),
            };
        }
        let key = self.key();
        let read = self.rng.gen_bool(0.5);
        match self.workload {
            Workload::Register if read => Invocation {
                f: "read",
                key,
                value: Json::Null,
            },
            Workload::Register => Invocation {
                f: "write",
                key,
                value: json!(self.unique()),
            },
            Workload::CasRegister => match self.rng.gen_range(0..3) {
                0 => Invocation {
                    f: "read",
                    key,
                    value: Json::Null,
                },
                1 => Invocation {
                    f: "write",
                    key,
                    value: json!(self.rng.gen_range(0..5)),
                },
                _ => Invocation {
                    f: "cas",
                    key,
                    value: json!([self.rng.gen_range(0..5), self.rng.gen_range(0..5)]),
                },
            },
            Workload::Counter if self.rng.gen_bool(0.2) => Invocation {
                f: "read",
                key,
                value: Json::Null,
            },
            Workload::Counter => Invocation {
                f: "incr",
                key,
                value: json!(self.rng.gen_range(1..5)),
            },
            Workload::Append if self.rng.gen_bool(0.3) => Invocation {
                f: "read",
                key,
                value: Json::Null,
            },
            Workload::Append => Invocation {
                f: "append",
                key,
                value: json!(self.unique()),
            },
            Workload::Set if self.rng.gen_bool(0.05) => Invocation {
                f: "read",
                key,
                value: Json::Null,
            },
            Workload::Set => Invocation {
                f: "add",
                key,
                value: json!(self.unique()),
            },
            Workload::Catalog | Workload::Index => {
                unreachable!("handled before the match")
            }
        }
    }

    /// What every node is asked after the final heal, each retried until ok: a read of every
    /// key that was ever handed out; for the index workload one query of the whole range;
    /// nothing for the catalog workload (see [`Generator::catalog_writes`]).
    pub fn final_invocations(&self) -> Vec<Invocation> {
        match self.workload {
            Workload::Catalog => Vec::new(),
            Workload::Index => vec![index::final_query()],
            _ => (0..self.next_key)
                .map(|key| Invocation {
                    f: "read",
                    key,
                    value: Json::Null,
                })
                .collect(),
        }
    }

    /// The catalog workload's writes handed out so far (for its final reads).
    pub fn catalog_writes(&self) -> Vec<catalog::Written> {
        self.catalog
            .as_ref()
            .map(|c| c.written().to_vec())
            .unwrap_or_default()
    }
}

/// The outcome of one invocation: (type, value, error).
pub type Completion = (OpType, Json, Option<String>);

/// One logical process's connections: to the node it is pinned to (Jepsen style: every
/// single-record operation goes there and the node forwards as needed), and to every node
/// for index queries, which only a partition's leader answers.
pub struct Client {
    pub conn: Connection,
    pub query: index::QueryClient,
}

impl Client {
    /// A client pinned to `addrs[node]`; connections open on first use.
    pub fn new(addrs: &[SocketAddr], node: usize, timeout: Duration) -> Client {
        Client {
            conn: Connection::new(addrs[node], timeout),
            query: index::QueryClient::new(addrs, node, timeout),
        }
    }
}

fn key(k: u64) -> UserKey {
    UserKey::Int(k as i64)
}

fn read_failed(e: ClientError) -> Completion {
    (OpType::Fail, Json::Null, Some(e.to_string()))
}

/// A write's failure: certainly not applied, or maybe applied.
fn write_failed(e: ClientError) -> Completion {
    match e {
        ClientError::NotSent(m) => (OpType::Fail, Json::Null, Some(m)),
        ClientError::NoAnswer(m) | ClientError::TimedOut(m) => (OpType::Info, Json::Null, Some(m)),
    }
}

fn write_code(r: &Reply) -> Option<Completion> {
    match r.code {
        0 => None,
        IN_DOUBT => Some((
            OpType::Info,
            Json::Null,
            Some("server: in doubt (9)".into()),
        )),
        c => Some((
            OpType::Fail,
            Json::Null,
            Some(format!("server: result code {c}")),
        )),
    }
}

fn parse_list(v: Option<&Value>) -> Vec<u64> {
    match v {
        Some(l @ Value::List(_)) => strato::client::list_ints(l)
            .into_iter()
            .filter_map(|i| u64::try_from(i).ok())
            .collect(),
        Some(Value::Str(b)) => String::from_utf8_lossy(b)
            .split(',')
            .filter_map(|s| s.parse().ok())
            .collect(),
        _ => Vec::new(),
    }
}

/// Read a key; `Ok(None)` = no record.
async fn read(
    conn: &mut Connection,
    ns: &str,
    k: u64,
    mode: ReadMode,
) -> Result<Option<Reply>, Completion> {
    match conn.get(ns, SET, &key(k), mode).await {
        Ok(r) if r.code == 0 => Ok(Some(r)),
        Ok(r) if r.code == ResultCode::NotFound as u8 => Ok(None),
        Ok(r) => Err((
            OpType::Fail,
            Json::Null,
            Some(format!("server: result code {}", r.code)),
        )),
        Err(e) => Err(read_failed(e)),
    }
}

async fn write(
    conn: &mut Connection,
    ns: &str,
    k: u64,
    ops: &[Operation],
    opts: WriteOptions,
    value: Json,
) -> Completion {
    match conn.operate(ns, SET, &key(k), ops, opts).await {
        Ok(r) => write_code(&r).unwrap_or((OpType::Ok, value, None)),
        Err(e) => write_failed(e),
    }
}

/// Run one invocation through `client`, in namespace `ns` (the catalog workload's
/// invocations name their own namespaces).
pub async fn invoke(
    client: &mut Client,
    ns: &str,
    workload: Workload,
    inv: &Invocation,
    mode: ReadMode,
) -> Completion {
    let k = inv.key;
    let conn = &mut client.conn;
    match (workload, inv.f) {
        (Workload::Catalog, _) => catalog::invoke(conn, inv, mode).await,
        (Workload::Index, "query") => index::invoke(&mut client.query, ns, inv).await,
        (Workload::Register | Workload::CasRegister, "read") => match read(conn, ns, k, mode).await
        {
            Ok(Some(r)) => match r.bin("v") {
                Some(Value::Int(i)) => (OpType::Ok, json!(i), None),
                _ => (OpType::Ok, Json::Null, None),
            },
            Ok(None) => (OpType::Ok, Json::Null, None),
            Err(c) => c,
        },
        (Workload::Register | Workload::CasRegister | Workload::Index, "write") => {
            let v = inv.value.as_i64().unwrap_or_default();
            write(
                conn,
                ns,
                k,
                &[Operation::Put("v".into(), Value::Int(v))],
                WriteOptions::default(),
                inv.value.clone(),
            )
            .await
        }
        (Workload::CasRegister, "cas") => {
            let old = inv.value[0].as_i64().unwrap_or_default();
            let new = inv.value[1].as_i64().unwrap_or_default();
            // Compare through the generation: read, then write only if nothing changed since.
            let current = match read(conn, ns, k, ReadMode::Linearize).await {
                Ok(r) => r,
                Err((_, _, e)) => return (OpType::Fail, Json::Null, e),
            };
            let Some(r) = current.filter(|r| r.bin("v") == Some(&Value::Int(old))) else {
                return (OpType::Fail, Json::Null, Some("value differs".into()));
            };
            let opts = WriteOptions {
                expect_generation: Some(r.generation as u16),
            };
            write(
                conn,
                ns,
                k,
                &[Operation::Put("v".into(), Value::Int(new))],
                opts,
                inv.value.clone(),
            )
            .await
        }
        (Workload::Counter, "incr") => {
            let d = inv.value.as_i64().unwrap_or_default();
            write(
                conn,
                ns,
                k,
                &[Operation::Incr("c".into(), d)],
                WriteOptions::default(),
                inv.value.clone(),
            )
            .await
        }
        (Workload::Counter, "read") => match read(conn, ns, k, mode).await {
            Ok(Some(r)) => match r.bin("c") {
                Some(Value::Int(i)) => (OpType::Ok, json!(i), None),
                _ => (OpType::Ok, json!(0), None),
            },
            Ok(None) => (OpType::Ok, json!(0), None),
            Err(c) => c,
        },
        (Workload::Append | Workload::Set, "append" | "add") => {
            let e = inv.value.as_u64().unwrap_or_default();
            // The append workload is the classic list-append test: a real list append (CDT)
            // on a list bin. The set workload appends to a string, exercising the other path.
            let op = match workload {
                Workload::Append => Operation::ListAppend("l".into(), e as i64),
                _ => Operation::Append("s".into(), Value::Str(format!("{e},").into_bytes())),
            };
            write(
                conn,
                ns,
                k,
                &[op],
                WriteOptions::default(),
                inv.value.clone(),
            )
            .await
        }
        (Workload::Append | Workload::Set, "read") => match read(conn, ns, k, mode).await {
            Ok(Some(r)) => (
                OpType::Ok,
                json!(parse_list(r.bin("s").or(r.bin("l")))),
                None,
            ),
            Ok(None) => (OpType::Ok, json!(Vec::<u64>::new()), None),
            Err(c) => c,
        },
        (_, f) => (
            OpType::Fail,
            Json::Null,
            Some(format!("workload has no operation {f}")),
        ),
    }
}
