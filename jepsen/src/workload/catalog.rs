//! The catalog workload: processes create and drop namespaces (from [`POOL`]) and sets, and
//! write and read records in them, while the nemesis does its worst; the run's namespace (the
//! *stable* namespace, `--namespace`, default `test`) takes writes and set changes too but is
//! never dropped, so acknowledged writes in it stay checkable whatever happens to the pool.
//!
//! Operations and their history values (`key` is 0 unless said otherwise):
//!
//! | `f` | invocation value | ok value | ok / fail / info |
//! |---|---|---|---|
//! | `create-ns` | `{"ns"}` | same | `ok…` / `ERROR:c` with c ≠ 9 / `ERROR:9`, no answer |
//! | `drop-ns` | `{"ns"}` | same | as `create-ns` |
//! | `create-set` | `{"ns","set"}` | same | as `create-ns` |
//! | `delete-set` | `{"ns","set"}` | same | `ok` / `ERROR:4`, `ERROR:20` / anything else |
//! | `write` (key k) | `{"ns","set","v"}` | same | result 0 / definite error / 9, no answer |
//! | `read` (key k) | `{"ns","set"}` | `{"code","v"}` | answered 0, 2 or 20 / otherwise |
//!
//! A request that could not even connect is `fail`. `delete-set` deletes the set's records
//! group by group before it forgets the set, so an error other than a refusal before it
//! started (4: bad parameter, 20: no such namespace) may come after some records were
//! deleted: it is recorded as `info`. Every key is written at most once (keys are unique across
//! namespaces), with `v` = the key, so a read names exactly one write.
//!
//! After the final heal the harness records, through every node, `namespaces` (ok value: the
//! sorted list), `sets` (`{"ns"}` / `{"ns","sets": [..] or null}` when the namespace is
//! unknown), a `final-read` of every key ever written (as `read`), and for every namespace of
//! the pool and the stable one a `probe-read` and a `probe-write` of key [`PROBE_KEY`] in set
//! [`PROBE_SET`] (ok value `{"code"}`: the result code the node answered).
//! [`crate::checker::catalog`] checks them.

use super::{key, write_code, write_failed, Completion, Invocation};
use crate::history::OpType;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value as Json};
use std::time::Duration;
use strato::client::{
    ClientError, Connection, Operation, ReadMode, ResultCode, UserKey, Value, WriteOptions,
};

/// The namespaces the workload creates and drops.
pub const POOL: [&str; 4] = ["c0", "c1", "c2", "c3"];
/// Sets `create-set` names.
pub const SETS: [&str; 3] = ["s0", "s1", "s2"];
/// Sets writes go to.
pub const WRITE_SETS: [&str; 2] = ["s0", "s1"];
/// The only set `delete-set` names: writes to the other write sets are never deleted.
pub const DELETED_SET: &str = "s1";
/// The set of the final probes (never written by the workload).
pub const PROBE_SET: &str = "probe";
/// The key of the final probes (workload keys start at 1).
pub const PROBE_KEY: u64 = 0;
/// Settings of the namespaces the workload creates: few groups keep a creation cheap on a
/// small machine (each node opens every group it replicates).
pub const CREATE_PARAMS: &str = "replication-factor=3;raft-groups=4;default-ttl=0";
/// How long a catalog change may take: the server's request timeout for the proposal, its
/// wait for the local apply and, for `delete-set`, the deletions before both.
pub const INFO_TIMEOUT: Duration = Duration::from_secs(10);

/// One write handed out: key, namespace, set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub key: u64,
    pub ns: String,
    pub set: String,
}

/// Produces the workload's invocations.
pub struct CatalogGen {
    rng: SmallRng,
    stable: String,
    next_key: u64,
    written: Vec<Written>,
}

impl CatalogGen {
    pub fn new(stable: &str, rng: SmallRng) -> CatalogGen {
        CatalogGen {
            rng,
            stable: stable.to_string(),
            next_key: 1,
            written: Vec::new(),
        }
    }

    fn pool_ns(&mut self) -> String {
        POOL.choose(&mut self.rng)
            .copied()
            .unwrap_or("c0")
            .to_string()
    }

    /// A namespace of the pool, or (with probability `stable`) the stable one.
    fn any_ns(&mut self, stable: f64) -> String {
        if self.rng.gen_bool(stable) {
            self.stable.clone()
        } else {
            self.pool_ns()
        }
    }

    pub fn next_invocation(&mut self) -> Invocation {
        let roll = self.rng.gen_range(0..1000);
        let (f, key, value) = match roll {
            0..40 => ("create-ns", 0, json!({"ns": self.pool_ns()})),
            40..70 => ("drop-ns", 0, json!({"ns": self.pool_ns()})),
            70..95 => {
                let set = SETS.choose(&mut self.rng).copied().unwrap_or("s0");
                ("create-set", 0, json!({"ns": self.any_ns(0.3), "set": set}))
            }
            95..115 => (
                "delete-set",
                0,
                json!({"ns": self.any_ns(0.3), "set": DELETED_SET}),
            ),
            115..600 => {
                let k = self.next_key;
                self.next_key += 1;
                let ns = self.any_ns(0.3);
                let set = WRITE_SETS.choose(&mut self.rng).copied().unwrap_or("s0");
                self.written.push(Written {
                    key: k,
                    ns: ns.clone(),
                    set: set.to_string(),
                });
                ("write", k, json!({"ns": ns, "set": set, "v": k}))
            }
            _ => {
                // A recent write (any outcome) or, before the first, the probe key.
                let recent = self.written.len().saturating_sub(200);
                match self.written[recent..].choose(&mut self.rng) {
                    Some(w) => ("read", w.key, json!({"ns": w.ns, "set": w.set})),
                    None => (
                        "read",
                        PROBE_KEY,
                        json!({"ns": self.stable, "set": PROBE_SET}),
                    ),
                }
            }
        };
        Invocation { f, key, value }
    }

    /// Every write handed out, in order.
    pub fn written(&self) -> &[Written] {
        &self.written
    }

    /// The stable namespace and the pool.
    pub fn namespaces(&self) -> Vec<String> {
        namespaces(&self.stable)
    }
}

/// The stable namespace and the pool, the namespaces the final phase looks at.
pub fn namespaces(stable: &str) -> Vec<String> {
    let mut all: Vec<String> = POOL.iter().map(|s| s.to_string()).collect();
    if !all.iter().any(|n| n == stable) {
        all.push(stable.to_string());
    }
    all
}

fn str_field<'a>(v: &'a Json, field: &str) -> &'a str {
    v.get(field).and_then(Json::as_str).unwrap_or_default()
}

/// How a catalog change's answer is recorded.
#[derive(Clone, Copy)]
enum Change {
    /// Any refusal (an `ERROR` other than 9) means nothing was changed.
    Atomic,
    /// `delete-set`: only 4 and 20 are refusals before anything was deleted.
    DeleteSet,
}

/// The completion of an info command that changes the catalog.
fn change_completion(answer: Result<String, String>, kind: Change) -> Completion {
    let answer = match answer {
        Ok(a) => a,
        Err(e) if e.starts_with("cannot connect") => {
            return (OpType::Fail, Json::Null, Some(format!("not sent: {e}")))
        }
        Err(e) => return (OpType::Info, Json::Null, Some(format!("no answer: {e}"))),
    };
    if answer == "ok" || answer.starts_with("ok:") {
        return (OpType::Ok, Json::Null, None);
    }
    let code = answer
        .strip_prefix("ERROR:")
        .and_then(|r| r.split(':').next())
        .and_then(|c| c.parse::<u8>().ok());
    let kind = match (code, kind) {
        (None, _) => OpType::Info,
        (Some(c), _) if c == ResultCode::Timeout as u8 => OpType::Info,
        (Some(_), Change::Atomic) => OpType::Fail,
        (Some(c), Change::DeleteSet)
            if c == ResultCode::Parameter as u8 || c == ResultCode::Namespace as u8 =>
        {
            OpType::Fail
        }
        (Some(_), Change::DeleteSet) => OpType::Info,
    };
    (kind, Json::Null, Some(format!("server: {answer}")))
}

/// Send one info command to the node behind `conn`; its value, or why there is none.
pub async fn info(conn: &Connection, cmd: &str, timeout: Duration) -> Result<String, String> {
    let host = conn.addr().to_string();
    strato::info_client::request(&host, &[cmd.to_string()], timeout)
        .await
        .map_err(|e| format!("{e:#}"))?
        .into_iter()
        .next()
        .map(|(_, v)| v)
        .ok_or_else(|| format!("{host} answered nothing to `{cmd}`"))
}

/// A read's completion: ok with the result code when the node answered 0 (found), 2 (no
/// record) or 20 (no such namespace); fail otherwise.
pub async fn read(
    conn: &mut Connection,
    ns: &str,
    set: &str,
    k: u64,
    mode: ReadMode,
) -> Completion {
    match conn.get(ns, set, &key(k), mode).await {
        Ok(r) if r.code == 0 => {
            let v = match r.bin("v") {
                Some(Value::Int(i)) => json!(i),
                Some(other) => json!(format!("{other:?}")),
                None => Json::Null,
            };
            (OpType::Ok, json!({"code": 0, "v": v}), None)
        }
        Ok(r) if r.code == ResultCode::NotFound as u8 || r.code == ResultCode::Namespace as u8 => {
            (OpType::Ok, json!({"code": r.code, "v": null}), None)
        }
        Ok(r) => (
            OpType::Fail,
            Json::Null,
            Some(format!("server: result code {}", r.code)),
        ),
        Err(e) => (OpType::Fail, Json::Null, Some(e.to_string())),
    }
}

/// The final probe write into `ns`: ok with whatever code the node answered; `info` when it
/// did not answer (the write may still land), `fail` when it could not be sent.
pub async fn probe_write(conn: &mut Connection, ns: &str) -> Completion {
    let op = Operation::Put("v".into(), Value::Int(0));
    match conn
        .operate(
            ns,
            PROBE_SET,
            &UserKey::Int(PROBE_KEY as i64),
            &[op],
            WriteOptions::default(),
        )
        .await
    {
        Ok(r) => (OpType::Ok, json!({"code": r.code}), None),
        Err(e @ ClientError::NotSent(_)) => (OpType::Fail, Json::Null, Some(e.to_string())),
        Err(e) => (OpType::Info, Json::Null, Some(e.to_string())),
    }
}

/// Set names in a `sets/NS` answer (`ns=NS:set=S:objects=..;...`); `None` when the node does
/// not know the namespace (`ns_type=unknown`).
pub fn parse_sets(answer: &str) -> Option<Vec<String>> {
    if answer.trim() == "ns_type=unknown" {
        return None;
    }
    let mut sets: Vec<String> = answer
        .split(';')
        .filter_map(|entry| {
            entry
                .split(':')
                .find_map(|kv| kv.strip_prefix("set="))
                .map(str::to_string)
        })
        .collect();
    sets.sort();
    sets.dedup();
    Some(sets)
}

/// Run one invocation of the workload against the node behind `conn`.
pub async fn invoke(conn: &mut Connection, inv: &Invocation, mode: ReadMode) -> Completion {
    let (kind, value, error) = invoke_inner(conn, inv, mode).await;
    // Only reads return something; every other ok completion repeats its argument.
    match kind {
        OpType::Ok if inv.f != "read" => (kind, inv.value.clone(), error),
        _ => (kind, value, error),
    }
}

async fn invoke_inner(conn: &mut Connection, inv: &Invocation, mode: ReadMode) -> Completion {
    let ns = str_field(&inv.value, "ns").to_string();
    let set = str_field(&inv.value, "set").to_string();
    match inv.f {
        "create-ns" => {
            let cmd = format!("create-namespace:namespace={ns};{CREATE_PARAMS}");
            change_completion(info(conn, &cmd, INFO_TIMEOUT).await, Change::Atomic)
        }
        "drop-ns" => {
            let cmd = format!("drop-namespace:namespace={ns}");
            change_completion(info(conn, &cmd, INFO_TIMEOUT).await, Change::Atomic)
        }
        "create-set" => {
            let cmd = format!("create-set:namespace={ns};set={set}");
            change_completion(info(conn, &cmd, INFO_TIMEOUT).await, Change::Atomic)
        }
        "delete-set" => {
            let cmd = format!("delete-set:namespace={ns};set={set}");
            change_completion(info(conn, &cmd, INFO_TIMEOUT).await, Change::DeleteSet)
        }
        "write" => {
            let v = inv
                .value
                .get("v")
                .and_then(Json::as_i64)
                .unwrap_or_default();
            let op = Operation::Put("v".into(), Value::Int(v));
            match conn
                .operate(&ns, &set, &key(inv.key), &[op], WriteOptions::default())
                .await
            {
                Ok(r) => write_code(&r).unwrap_or((OpType::Ok, Json::Null, None)),
                Err(e) => write_failed(e),
            }
        }
        "read" => read(conn, &ns, &set, inv.key, mode).await,
        f => (
            OpType::Fail,
            Json::Null,
            Some(format!("the catalog workload has no operation {f}")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn change_answers_become_completions() {
        let kind = |a: Result<&str, &str>, k| {
            change_completion(a.map(str::to_string).map_err(str::to_string), k).0
        };
        assert_eq!(kind(Ok("ok"), Change::Atomic), OpType::Ok);
        assert_eq!(
            kind(Ok("ok:replication-factor 5 capped at 3"), Change::Atomic),
            OpType::Ok
        );
        assert_eq!(
            kind(Ok("ERROR:4:namespace c0 already exists"), Change::Atomic),
            OpType::Fail
        );
        assert_eq!(kind(Ok("ERROR:20:missing"), Change::Atomic), OpType::Fail);
        assert_eq!(
            kind(Ok("ERROR:11:not applied"), Change::Atomic),
            OpType::Fail
        );
        assert_eq!(kind(Ok("ERROR:9:timeout"), Change::Atomic), OpType::Info);
        assert_eq!(kind(Ok("what"), Change::Atomic), OpType::Info);
        assert_eq!(
            kind(Err("cannot connect to 10.0.0.1:3000"), Change::Atomic),
            OpType::Fail
        );
        assert_eq!(kind(Err("no answer from x"), Change::Atomic), OpType::Info);
        assert_eq!(kind(Ok("ERROR:11:x"), Change::DeleteSet), OpType::Info);
        assert_eq!(kind(Ok("ERROR:20:x"), Change::DeleteSet), OpType::Fail);
        assert_eq!(kind(Ok("ERROR:4:x"), Change::DeleteSet), OpType::Fail);
        assert_eq!(kind(Ok("ok"), Change::DeleteSet), OpType::Ok);
    }

    #[test]
    fn parses_set_lists() {
        assert_eq!(parse_sets("ns_type=unknown"), None);
        assert_eq!(parse_sets(""), Some(vec![]));
        assert_eq!(
            parse_sets("ns=c0:set=s1:objects=0:tombstones=0;ns=c0:set=s0:objects=3;"),
            Some(vec!["s0".to_string(), "s1".to_string()])
        );
    }

    #[test]
    fn generator_keys_are_unique_and_deletes_name_one_set() {
        let mut g = CatalogGen::new("test", SmallRng::seed_from_u64(3));
        let mut keys = std::collections::HashSet::new();
        let mut fs = std::collections::BTreeMap::new();
        for _ in 0..5000 {
            let inv = g.next_invocation();
            *fs.entry(inv.f).or_insert(0) += 1;
            match inv.f {
                "write" => {
                    assert!(keys.insert(inv.key), "key {} written twice", inv.key);
                    assert!(inv.key > PROBE_KEY);
                    assert_eq!(inv.value["v"], json!(inv.key));
                }
                "delete-set" => assert_eq!(inv.value["set"], json!(DELETED_SET)),
                "drop-ns" | "create-ns" => {
                    assert!(POOL.contains(&inv.value["ns"].as_str().unwrap()))
                }
                _ => {}
            }
        }
        for f in [
            "create-ns",
            "drop-ns",
            "create-set",
            "delete-set",
            "write",
            "read",
        ] {
            assert!(fs.get(f).copied().unwrap_or(0) > 20, "{f}: {fs:?}");
        }
        assert_eq!(g.written().len(), keys.len());
        assert_eq!(g.namespaces().len(), 5);
    }
}
