//! A small Aerospike-protocol client for one node: what the Jepsen harness and tools use to
//! talk to Strato exactly as any client would, with explicit timeouts and an honest account
//! of whether a failed request may have been applied.

use crate::protocol::frame::{encode_frame, read_frame, MAX_MSG_BODY, TYPE_MSG};
use crate::protocol::message::{
    field, info1, info2, info3, op, parse_as_msg, AsMsg, Field, MsgHeader, MsgOp,
};
use crate::protocol::particle::{value_from_wire, value_to_wire, Null};
use std::net::SocketAddr;
use std::time::Duration;
use storage::record::{ResultCode, UserKey, Value};
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
    /// Sent, but no (parsable) answer came back in time: may or may not have been applied.
    #[error("no answer: {0}")]
    NoAnswer(String),
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
    /// connection (its byte stream can no longer be trusted) and is reported as `NoAnswer`.
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
                Err(ClientError::NoAnswer(format!(
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
        let info3 = match mode {
            ReadMode::Linearize => info3::SC_READ_TYPE,
            ReadMode::AllowReplica => info3::SC_READ_RELAX,
        };
        let header = MsgHeader {
            info1: info1::READ | info1::GET_ALL,
            info3,
            transaction_ttl: self.timeout.as_millis() as u32,
            ..Default::default()
        };
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
    let digest = key.digest(set);
    let kf = key_field(key);
    let values: Vec<(u8, &str, u8, Vec<u8>)> = ops
        .iter()
        .map(|o| {
            let (code, name, v) = match o {
                Operation::Put(n, v) => (op::WRITE, n.as_str(), v.clone()),
                Operation::Incr(n, d) => (op::INCR, n.as_str(), Value::Int(*d)),
                Operation::Append(n, v) => (op::APPEND, n.as_str(), v.clone()),
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
                data: &digest,
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
