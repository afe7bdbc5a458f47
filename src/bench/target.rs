//! The stores a run can drive. Each client task owns a [`Session`]; the runner only knows
//! key numbers and operation kinds, so Strato and etcd see exactly the same key sequence.

use super::stats::Outcome;
use super::value::ValueGen;
use super::workload::OpKind;
use crate::client::{ClientError, Cluster, ClusterSession, ReadMode, WriteSpec, IN_DOUBT};
use crate::client::{ResultCode, UserKey};
use rand::rngs::SmallRng;
use std::future::Future;

/// One client task's connection(s) to a store.
pub trait Session: Send + 'static {
    /// Read key number `key`.
    fn read(&mut self, key: u64) -> impl Future<Output = Outcome> + Send;
    /// Write key number `key` as an update, replace or insert.
    fn write(&mut self, key: u64, kind: OpKind) -> impl Future<Output = Outcome> + Send;
    /// Read `key`, then write it only if nobody wrote it in between.
    fn read_modify_write(&mut self, key: u64) -> impl Future<Output = Outcome> + Send;
}

/// asbench's default set.
pub const SET: &str = "testset";

/// Strato through the partition-aware client: integer user keys, asbench-style.
pub struct StratoSession {
    session: ClusterSession,
    mode: ReadMode,
    values: ValueGen,
    rng: SmallRng,
}

impl StratoSession {
    pub fn new(cluster: &Cluster, mode: ReadMode, values: ValueGen, rng: SmallRng) -> Self {
        StratoSession {
            session: cluster.session(),
            mode,
            values,
            rng,
        }
    }
}

fn strato_error(e: &ClientError) -> Outcome {
    match e {
        ClientError::NotSent(_) => Outcome::Error("not sent (connect failed)".into()),
        ClientError::TimedOut(_) => Outcome::Timeout("no answer in time".into()),
        ClientError::NoAnswer(_) => Outcome::Error("connection lost".into()),
    }
}

fn strato_code(code: u8) -> Outcome {
    match code {
        0 => Outcome::Ok,
        c if c == ResultCode::NotFound as u8 => Outcome::NotFound,
        IN_DOUBT => Outcome::Timeout("code 9 (timeout / in doubt)".into()),
        c if c == ResultCode::Unavailable as u8 => {
            Outcome::Error("code 11 (partition unavailable)".into())
        }
        c if c == ResultCode::Generation as u8 => {
            Outcome::Error("code 3 (generation conflict)".into())
        }
        c => Outcome::Error(format!("code {c}")),
    }
}

impl Session for StratoSession {
    async fn read(&mut self, key: u64) -> Outcome {
        match self
            .session
            .get(SET, &UserKey::Int(key as i64), self.mode)
            .await
        {
            Ok(r) => strato_code(r.code),
            Err(e) => strato_error(&e),
        }
    }

    async fn write(&mut self, key: u64, kind: OpKind) -> Outcome {
        let full = kind != OpKind::Update;
        let ops = self.values.ops(&mut self.rng, full);
        let spec = WriteSpec {
            replace: kind == OpKind::Replace,
            ..Default::default()
        };
        match self
            .session
            .operate(SET, &UserKey::Int(key as i64), &ops, spec)
            .await
        {
            Ok(r) => strato_code(r.code),
            Err(e) => strato_error(&e),
        }
    }

    async fn read_modify_write(&mut self, key: u64) -> Outcome {
        let k = UserKey::Int(key as i64);
        let generation = match self.session.get(SET, &k, ReadMode::Linearize).await {
            Ok(r) if r.code == 0 => Some(r.generation as u16),
            Ok(r) if r.code == ResultCode::NotFound as u8 => None,
            Ok(r) => return strato_code(r.code),
            Err(e) => return strato_error(&e),
        };
        let ops = self.values.ops(&mut self.rng, false);
        let spec = WriteSpec {
            expect_generation: generation,
            // An absent record cannot be generation-checked: create it whole.
            replace: generation.is_none(),
        };
        match self.session.operate(SET, &k, &ops, spec).await {
            Ok(r) => strato_code(r.code),
            Err(e) => strato_error(&e),
        }
    }
}

/// The etcd key for key number `key`: fixed width, so every key costs the same.
pub fn etcd_key(key: u64) -> String {
    format!("k{key:010}")
}

#[cfg(feature = "etcd")]
pub use etcd::EtcdSession;

#[cfg(feature = "etcd")]
mod etcd {
    use super::*;
    use etcd_client::{Compare, CompareOp, GetOptions, KvClient, Txn, TxnOp};
    use std::time::Duration;

    /// etcd through its v3 gRPC API: puts, and gets with etcd's default (linearizable)
    /// consistency; read-modify-write as a transaction on the key's mod revision.
    pub struct EtcdSession {
        kv: KvClient,
        /// Serializable gets (any member answers from its own state) instead of linearizable.
        get: Option<GetOptions>,
        timeout: Duration,
        values: ValueGen,
        rng: SmallRng,
    }

    impl EtcdSession {
        /// One gRPC client per task (its own HTTP/2 connections to every endpoint), as Strato
        /// gets one connection per node per task.
        pub async fn connect(
            endpoints: &[String],
            timeout: Duration,
            serializable: bool,
            values: ValueGen,
            rng: SmallRng,
        ) -> anyhow::Result<Self> {
            let opts = etcd_client::ConnectOptions::new().with_connect_timeout(timeout);
            let client = etcd_client::Client::connect(endpoints, Some(opts)).await?;
            Ok(EtcdSession {
                kv: client.kv_client(),
                get: serializable.then(|| GetOptions::new().with_serializable()),
                timeout,
                values,
                rng,
            })
        }

        async fn timed<T>(
            timeout: Duration,
            f: impl Future<Output = Result<T, etcd_client::Error>>,
        ) -> Result<T, Outcome> {
            match tokio::time::timeout(timeout, f).await {
                Err(_) => Err(Outcome::Timeout("no answer in time".into())),
                Ok(Ok(v)) => Ok(v),
                Ok(Err(etcd_client::Error::GRpcStatus(s))) => {
                    let code = format!("{:?}", s.code());
                    let label = format!("grpc {code}: {:.40}", s.message());
                    // etcd answers "request timed out" (Unavailable) when a proposal did not
                    // commit in time: like Strato's code 9, the write's fate is unknown.
                    if code == "DeadlineExceeded" || s.message().contains("timed out") {
                        Err(Outcome::Timeout(label))
                    } else {
                        Err(Outcome::Error(label))
                    }
                }
                Ok(Err(e)) => Err(Outcome::Error(
                    e.to_string().chars().take(60).collect::<String>(),
                )),
            }
        }
    }

    impl Session for EtcdSession {
        async fn read(&mut self, key: u64) -> Outcome {
            match Self::timed(self.timeout, self.kv.get(etcd_key(key), self.get.clone())).await {
                Ok(r) if r.kvs().is_empty() => Outcome::NotFound,
                Ok(_) => Outcome::Ok,
                Err(o) => o,
            }
        }

        async fn write(&mut self, key: u64, _kind: OpKind) -> Outcome {
            let v = self.values.bytes(&mut self.rng);
            match Self::timed(self.timeout, self.kv.put(etcd_key(key), v, None)).await {
                Ok(_) => Outcome::Ok,
                Err(o) => o,
            }
        }

        async fn read_modify_write(&mut self, key: u64) -> Outcome {
            let k = etcd_key(key);
            let rev = match Self::timed(self.timeout, self.kv.get(k.clone(), None)).await {
                // An absent key has mod revision 0, which the compare then checks.
                Ok(r) => r.kvs().first().map_or(0, |kv| kv.mod_revision()),
                Err(o) => return o,
            };
            let v = self.values.bytes(&mut self.rng);
            let txn = Txn::new()
                .when([Compare::mod_revision(k.clone(), CompareOp::Equal, rev)])
                .and_then([TxnOp::put(k, v, None)]);
            match Self::timed(self.timeout, self.kv.txn(txn)).await {
                Ok(r) if r.succeeded() => Outcome::Ok,
                Ok(_) => Outcome::Error("txn compare failed (conflict)".into()),
                Err(o) => o,
            }
        }
    }
}
