//! Catalog checker: namespaces, sets and records survive or vanish as the acknowledged
//! catalog changes demand (history format: [`crate::workload::catalog`]).
//!
//! # What an operation may have done, and when
//!
//! Only completions are trusted, and only as far as they go: an `ok` change took effect once,
//! between its invocation and its completion; a `fail` change took no effect; an `info` change
//! (in doubt, or never completed) may take effect at *any* time after its invocation — even
//! long after its completion was recorded, since a proposal stuck in a Raft log can be
//! committed by a later leader — or never. So an operation `o` *may take effect at or after*
//! time `t` when it is `info`, or `ok` with a completion at or after `t`. Every rule below
//! uses that predicate, so concurrency and doubt can only excuse, never accuse. Times are
//! those of the harness's one monotonic clock.
//!
//! # The final state
//!
//! After the final heal the harness records, through every node: the `namespaces` list, the
//! `sets/NS` list of each namespace, a `final-read` of every key ever written, and a probe
//! read and a probe write in each namespace. *The nodes* are those with final operations.
//! A rule that needs a final observation a node never gave (it did not answer within the
//! harness's budget) leaves the verdict `unknown` rather than valid.
//!
//! # Rules (each violation is an anomaly, the verdict is then invalid)
//!
//! - **missing-namespace** (a): an `ok` `create-ns` of N such that no `drop-ns` of N may take
//!   effect at or after the create's invocation: every node lists N.
//! - **dropped-namespace-listed** (b): an `ok` `drop-ns` of N such that no `create-ns` of N may
//!   take effect at or after the drop's invocation: no node lists N.
//! - **dropped-namespace-served** (b): for such a dropped N, every final read, probe read and
//!   probe write in N that a node answered got result code 20 (namespace not found); any
//!   other answer (data, not found, or an error) is a violation.
//! - **lost-write** (c): an `ok` `write` of key k (value v) in namespace N, set S, such that no
//!   `drop-ns` of N and no `delete-set` of (N, S) may take effect at or after the write's
//!   invocation: every node's final read of k answers v.
//! - **resurrected-write** (d): an `ok` `write` of k in (N, S) that completed before an `ok`
//!   `delete-set` of (N, S) was invoked: no node's final read of k finds a record (the delete
//!   applies after the write in the write's group; keys are written once, so nothing else
//!   can bring k back).
//! - **missing-set** (e): an `ok` `create-set` of (N, S) such that no `drop-ns` of N and no
//!   `delete-set` of (N, S) may take effect at or after its invocation: every node's
//!   `sets/N` lists S.
//! - **aborted-read** / **unexpected-read**: a read (during the run or final) finds key k
//!   with a value although the only write of k certainly failed / with a value no write of k
//!   carried.
//! - **stale-read**: a read during the run answers "no record" (2) for key k although an `ok`
//!   write of k completed before the read was invoked, and no `drop-ns` of N or `delete-set`
//!   of (N, S) that may take effect at or after the write's invocation was invoked before the
//!   read completed. A read answered 20 (this node does not know the namespace) is not
//!   counted: a node's view of the catalog may lag.
//! - **write-in-dropped-namespace**: an `ok` `write` in N invoked after an `ok` `drop-ns` of N
//!   completed, such that no `create-ns` of N that may take effect at or after the drop's
//!   invocation was invoked before the write completed: N did not exist at any moment of the
//!   write, which had to be refused (20) rather than acknowledged.
//!
//! # What it does not check
//!
//! That a set whose deletion was acknowledged is no longer listed (writes recreate sets
//! implicitly), that a namespace is served by a node as soon as its creation was
//! acknowledged elsewhere (a node's view of the catalog may lag: a refusal with 20 is always
//! allowed), or that listings agreed while changes were under way: only acknowledged data
//! and the final, converged state are held to account.

use super::{count_ops, span, CheckResult, ElementVerdict, OpCounts, MAX_LISTED};
use crate::history::{History, PairedOp};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The `f`s of the workload, run-time and final.
const CATALOG_FS: [&str; 11] = [
    "create-ns",
    "drop-ns",
    "create-set",
    "delete-set",
    "write",
    "read",
    "namespaces",
    "sets",
    "final-read",
    "probe-read",
    "probe-write",
];

/// The `f`s of the final phase.
const FINAL_FS: [&str; 5] = [
    "namespaces",
    "sets",
    "final-read",
    "probe-read",
    "probe-write",
];

const NAMESPACE_NOT_FOUND: u64 = 20;
const NOT_FOUND: u64 = 2;

/// Whether `o` may take effect at or after time `t` (see the module documentation).
fn may_take_effect_from(o: &PairedOp, t: u64) -> bool {
    match o.kind {
        crate::history::OpType::Fail => false,
        crate::history::OpType::Ok => o.complete_time.unwrap_or(u64::MAX) >= t,
        _ => true,
    }
}

fn field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

fn node_of(o: &PairedOp) -> String {
    o.node.clone().unwrap_or_default()
}

/// What the run did, indexed for the rules.
#[derive(Default)]
struct Run<'a> {
    creates: BTreeMap<String, Vec<&'a PairedOp>>,
    drops: BTreeMap<String, Vec<&'a PairedOp>>,
    set_creates: BTreeMap<(String, String), Vec<&'a PairedOp>>,
    set_deletes: BTreeMap<(String, String), Vec<&'a PairedOp>>,
    /// key -> (write, namespace, set, value)
    writes: HashMap<u64, (&'a PairedOp, String, String, i64)>,
    /// Run-time reads that the node answered: (read, code, value).
    reads: Vec<(&'a PairedOp, u64, Value)>,
    // The final state.
    nodes: BTreeSet<String>,
    listed: BTreeMap<String, Vec<String>>,
    set_lists: BTreeMap<(String, String), Option<Vec<String>>>,
    /// (node, key) -> (final read, code, value)
    final_reads: BTreeMap<(String, u64), (&'a PairedOp, u64, Value)>,
    /// Probe reads and writes a node answered: (probe, namespace, code).
    probes: Vec<(&'a PairedOp, String, u64)>,
}

impl<'a> Run<'a> {
    fn index(history: &'a History, malformed: &mut Vec<Value>) -> Run<'a> {
        let mut run = Run::default();
        for o in &history.ops {
            let f = o.f.as_str();
            if !CATALOG_FS.contains(&f) {
                continue;
            }
            let arg = &o.invoke_value;
            let ns = field(arg, "ns").map(str::to_string);
            let set = field(arg, "set").map(str::to_string);
            let mut bad = |reason: &str| {
                malformed.push(json!({"reason": reason, "op": o.describe()}));
            };
            if FINAL_FS.contains(&f) {
                run.nodes.insert(node_of(o));
            }
            match f {
                "create-ns" | "drop-ns" => {
                    let Some(ns) = ns else {
                        bad("namespace change without a namespace");
                        continue;
                    };
                    let map = if f == "create-ns" {
                        &mut run.creates
                    } else {
                        &mut run.drops
                    };
                    map.entry(ns).or_default().push(o);
                }
                "create-set" | "delete-set" => {
                    let (Some(ns), Some(set)) = (ns, set) else {
                        bad("set change without a namespace and a set");
                        continue;
                    };
                    let map = if f == "create-set" {
                        &mut run.set_creates
                    } else {
                        &mut run.set_deletes
                    };
                    map.entry((ns, set)).or_default().push(o);
                }
                "write" => {
                    let (Some(ns), Some(set), Some(v)) =
                        (ns, set, arg.get("v").and_then(Value::as_i64))
                    else {
                        bad("write without a namespace, a set and an int value");
                        continue;
                    };
                    if let Some((prev, ..)) = run.writes.insert(o.key, (o, ns, set, v)) {
                        malformed.push(json!({
                            "reason": "key written twice (keys must be unique)",
                            "ops": [prev.describe(), o.describe()],
                        }));
                    }
                }
                "read" | "final-read" | "probe-read" if o.is_ok() => {
                    let Some(code) = o.value.get("code").and_then(Value::as_u64) else {
                        bad("ok read without a result code");
                        continue;
                    };
                    let v = o.value.get("v").cloned().unwrap_or(Value::Null);
                    match f {
                        "read" => run.reads.push((o, code, v)),
                        "final-read" => {
                            run.final_reads.insert((node_of(o), o.key), (o, code, v));
                        }
                        _ => {
                            let Some(ns) = ns else {
                                bad("probe without a namespace");
                                continue;
                            };
                            run.probes.push((o, ns, code));
                        }
                    }
                }
                "probe-write" if o.is_ok() => {
                    let (Some(ns), Some(code)) = (ns, o.value.get("code").and_then(Value::as_u64))
                    else {
                        bad("ok probe write without a namespace or a result code");
                        continue;
                    };
                    run.probes.push((o, ns, code));
                }
                "namespaces" if o.is_ok() => {
                    let Some(list) = o.value.as_array().and_then(|l| {
                        l.iter()
                            .map(|n| n.as_str().map(str::to_string))
                            .collect::<Option<Vec<String>>>()
                    }) else {
                        bad("namespaces listing is not a list of names");
                        continue;
                    };
                    run.listed.insert(node_of(o), list);
                }
                "sets" if o.is_ok() => {
                    let sets = match o.value.get("sets") {
                        Some(Value::Null) | None => None,
                        Some(v) => match v.as_array().and_then(|l| {
                            l.iter()
                                .map(|n| n.as_str().map(str::to_string))
                                .collect::<Option<Vec<String>>>()
                        }) {
                            Some(l) => Some(l),
                            None => {
                                bad("sets listing is not a list of names");
                                continue;
                            }
                        },
                    };
                    let Some(ns) = ns else {
                        bad("sets listing without a namespace");
                        continue;
                    };
                    run.set_lists.insert((node_of(o), ns), sets);
                }
                _ => {}
            }
        }
        run
    }

    /// Changes among `ops` that may take effect at or after `t`.
    fn may_follow<'b>(ops: Option<&'b Vec<&'a PairedOp>>, t: u64) -> Vec<&'a PairedOp> {
        ops.map(|v| {
            v.iter()
                .copied()
                .filter(|o| may_take_effect_from(o, t))
                .collect()
        })
        .unwrap_or_default()
    }
}

#[derive(Default)]
struct Findings {
    missing_namespace: Vec<Value>,
    dropped_listed: Vec<Value>,
    dropped_served: Vec<Value>,
    lost_write: Vec<Value>,
    resurrected_write: Vec<Value>,
    missing_set: Vec<Value>,
    aborted_read: Vec<Value>,
    unexpected_read: Vec<Value>,
    stale_read: Vec<Value>,
    write_in_dropped: Vec<Value>,
    unconfirmed: Vec<Value>,
    malformed: Vec<Value>,
    windows: Vec<(u64, u64)>,
    // What was checked.
    live_namespaces: usize,
    dropped_namespaces: usize,
    writes_checked: usize,
    writes_excused: usize,
    deleted_writes_checked: usize,
    sets_checked: usize,
    reads_checked: usize,
}

/// Rules (a) and (b), per namespace.
fn check_namespaces(run: &Run, out: &mut Findings) {
    let names: BTreeSet<&String> = run.creates.keys().chain(run.drops.keys()).collect();
    for ns in names {
        // (a) the latest acknowledged create that no drop may follow.
        let live = run
            .creates
            .get(ns)
            .into_iter()
            .flatten()
            .filter(|c| c.is_ok())
            .filter(|c| Run::may_follow(run.drops.get(ns), c.invoke_time).is_empty())
            .max_by_key(|c| c.invoke_time);
        if let Some(c) = live {
            out.live_namespaces += 1;
            for node in &run.nodes {
                match run.listed.get(node) {
                    None => out.unconfirmed.push(json!({
                        "rule": "missing-namespace", "namespace": ns, "node": node,
                        "reason": "no namespaces listing from this node", "create": c.describe(),
                    })),
                    Some(list) if !list.contains(ns) => {
                        out.missing_namespace.push(json!({
                            "namespace": ns, "node": node, "listed": list, "create": c.describe(),
                        }));
                        out.windows.push(span(&[c]));
                    }
                    Some(_) => {}
                }
            }
        }
        // (b) the latest acknowledged drop that no create may follow.
        let dropped = run
            .drops
            .get(ns)
            .into_iter()
            .flatten()
            .filter(|d| d.is_ok())
            .filter(|d| Run::may_follow(run.creates.get(ns), d.invoke_time).is_empty())
            .max_by_key(|d| d.invoke_time);
        let Some(d) = dropped else {
            continue;
        };
        out.dropped_namespaces += 1;
        for node in &run.nodes {
            match run.listed.get(node) {
                None => out.unconfirmed.push(json!({
                    "rule": "dropped-namespace-listed", "namespace": ns, "node": node,
                    "reason": "no namespaces listing from this node", "drop": d.describe(),
                })),
                Some(list) if list.contains(ns) => {
                    out.dropped_listed.push(json!({
                        "namespace": ns, "node": node, "listed": list, "drop": d.describe(),
                    }));
                    out.windows.push(span(&[d]));
                }
                Some(_) => {}
            }
            let probes: Vec<_> = run
                .probes
                .iter()
                .filter(|(p, pns, _)| pns == ns && node_of(p) == *node)
                .collect();
            if probes.is_empty() {
                out.unconfirmed.push(json!({
                    "rule": "dropped-namespace-served", "namespace": ns, "node": node,
                    "reason": "no answered probe from this node", "drop": d.describe(),
                }));
            }
            let finals = run
                .final_reads
                .iter()
                .filter(|((n, k), _)| {
                    n == node && run.writes.get(k).is_some_and(|(_, wns, ..)| wns == ns)
                })
                .map(|(_, (r, code, _))| (*r, *code));
            for (o, code) in probes.iter().map(|(p, _, c)| (*p, *c)).chain(finals) {
                if code != NAMESPACE_NOT_FOUND {
                    out.dropped_served.push(json!({
                        "namespace": ns, "node": node, "code": code, "op": o.describe(),
                        "drop": d.describe(),
                    }));
                    out.windows.push(span(&[d, o]));
                }
            }
        }
    }
}

/// Rules (c) and (d), per write, and the read rules.
fn check_writes(run: &Run, out: &mut Findings) {
    let mut keys: Vec<&u64> = run.writes.keys().collect();
    keys.sort();
    for k in keys {
        let (w, ns, set, v) = &run.writes[k];
        let ns_set = (ns.clone(), set.clone());
        if let Some(d) = dropped_before(run, w, ns) {
            out.write_in_dropped.push(json!({
                "key": k, "namespace": ns, "write": w.describe(), "drop": d.describe(),
            }));
            out.windows.push(span(&[d, w]));
        }
        if w.is_ok() {
            let drops = Run::may_follow(run.drops.get(ns), w.invoke_time);
            let deletes = Run::may_follow(run.set_deletes.get(&ns_set), w.invoke_time);
            if drops.is_empty() && deletes.is_empty() {
                // (c)
                out.writes_checked += 1;
                for node in &run.nodes {
                    match run.final_reads.get(&(node.clone(), *k)) {
                        None => out.unconfirmed.push(json!({
                            "rule": "lost-write", "key": k, "node": node,
                            "reason": "no answered final read from this node",
                            "write": w.describe(),
                        })),
                        Some((r, code, got)) => {
                            if *code != 0 || got.as_i64() != Some(*v) {
                                out.lost_write.push(json!({
                                    "key": k, "namespace": ns, "set": set, "node": node,
                                    "code": code, "read": got, "write": w.describe(),
                                    "final_read": r.describe(),
                                }));
                                out.windows.push(span(&[w, r]));
                            }
                        }
                    }
                }
            } else {
                out.writes_excused += 1;
            }
            // (d)
            let deleted_by = run
                .set_deletes
                .get(&ns_set)
                .into_iter()
                .flatten()
                .filter(|x| x.is_ok())
                .find(|x| w.complete_time.is_some_and(|c| c < x.invoke_time));
            if let Some(x) = deleted_by {
                out.deleted_writes_checked += 1;
                for node in &run.nodes {
                    if let Some((r, 0, got)) = run.final_reads.get(&(node.clone(), *k)) {
                        out.resurrected_write.push(json!({
                            "key": k, "namespace": ns, "set": set, "node": node, "read": got,
                            "write": w.describe(), "delete_set": x.describe(),
                            "final_read": r.describe(),
                        }));
                        out.windows.push(span(&[w, x, r]));
                    }
                }
            }
        }
    }
    // Reads: aborted, unexpected (run and final), stale (run).
    let all_reads = run
        .reads
        .iter()
        .map(|(r, c, v)| (*r, *c, v))
        .chain(run.final_reads.values().map(|(r, c, v)| (*r, *c, v)));
    for (r, code, got) in all_reads {
        out.reads_checked += 1;
        if code != 0 {
            continue;
        }
        match run.writes.get(&r.key) {
            None => {
                out.unexpected_read
                    .push(json!({"key": r.key, "read": got, "op": r.describe(), "reason": "key never written"}));
                out.windows.push(span(&[r]));
            }
            Some((w, ..)) if w.is_fail() => {
                out.aborted_read.push(
                    json!({"key": r.key, "read": got, "op": r.describe(), "write": w.describe()}),
                );
                out.windows.push(span(&[w, r]));
            }
            Some((w, _, _, v)) if got.as_i64() != Some(*v) => {
                out.unexpected_read.push(json!({
                    "key": r.key, "read": got, "written": v, "op": r.describe(), "write": w.describe(),
                }));
                out.windows.push(span(&[w, r]));
            }
            Some(_) => {}
        }
    }
    for (r, code, _) in &run.reads {
        if *code != NOT_FOUND {
            continue;
        }
        let Some((w, ns, set, _)) = run.writes.get(&r.key) else {
            continue;
        };
        if !(w.is_ok() && w.complete_time.is_some_and(|c| c < r.invoke_time)) {
            continue;
        }
        let r_end = r.complete_time.unwrap_or(u64::MAX);
        let ns_set = (ns.clone(), set.clone());
        let excused = Run::may_follow(run.drops.get(ns), w.invoke_time)
            .into_iter()
            .chain(Run::may_follow(run.set_deletes.get(&ns_set), w.invoke_time))
            .any(|x| x.invoke_time <= r_end);
        if !excused {
            out.stale_read.push(json!({
                "key": r.key, "namespace": ns, "set": set, "write": w.describe(), "read": r.describe(),
            }));
            out.windows.push(span(&[w, r]));
        }
    }
}

/// For an acknowledged write in `ns`: an acknowledged drop of `ns` that completed before the
/// write was invoked, such that no create of `ns` can have taken effect between the drop and
/// the write's completion.
fn dropped_before<'a>(run: &Run<'a>, w: &PairedOp, ns: &String) -> Option<&'a PairedOp> {
    if !w.is_ok() {
        return None;
    }
    let w_end = w.complete_time.unwrap_or(u64::MAX);
    run.drops
        .get(ns)?
        .iter()
        .copied()
        .filter(|d| d.is_ok() && d.complete_time.is_some_and(|c| c < w.invoke_time))
        .find(|d| {
            !Run::may_follow(run.creates.get(ns), d.invoke_time)
                .iter()
                .any(|c| c.invoke_time <= w_end)
        })
}

/// Rule (e), per acknowledged set creation.
fn check_sets(run: &Run, out: &mut Findings) {
    for ((ns, set), creates) in &run.set_creates {
        let live = creates
            .iter()
            .filter(|c| c.is_ok())
            .filter(|c| {
                Run::may_follow(run.drops.get(ns), c.invoke_time).is_empty()
                    && Run::may_follow(
                        run.set_deletes.get(&(ns.clone(), set.clone())),
                        c.invoke_time,
                    )
                    .is_empty()
            })
            .max_by_key(|c| c.invoke_time);
        let Some(c) = live else {
            continue;
        };
        out.sets_checked += 1;
        for node in &run.nodes {
            match run.set_lists.get(&(node.clone(), ns.clone())) {
                None => out.unconfirmed.push(json!({
                    "rule": "missing-set", "namespace": ns, "set": set, "node": node,
                    "reason": "no sets listing from this node", "create_set": c.describe(),
                })),
                Some(list) if !list.as_ref().is_some_and(|l| l.contains(set)) => {
                    out.missing_set.push(json!({
                        "namespace": ns, "set": set, "node": node, "listed": list,
                        "create_set": c.describe(),
                    }));
                    out.windows.push(span(&[c]));
                }
                Some(_) => {}
            }
        }
    }
}

/// Check a catalog history. See the module documentation for the rules.
pub fn check_catalog(history: &History) -> CheckResult {
    let op_counts: BTreeMap<String, OpCounts> =
        count_ops(&history.ops, |o| CATALOG_FS.contains(&o.f.as_str()));
    let mut out = Findings::default();
    let run = Run::index(history, &mut out.malformed);
    check_namespaces(&run, &mut out);
    check_writes(&run, &mut out);
    check_sets(&run, &mut out);
    let checked = out.live_namespaces
        + out.dropped_namespaces
        + out.writes_checked
        + out.deleted_writes_checked
        + out.sets_checked;
    if checked == 0 && out.malformed.is_empty() {
        out.unconfirmed.push(json!({
            "reason": "no acknowledged change or write was checkable (nothing to hold the \
                       final state to)",
        }));
    }
    if run.nodes.is_empty() && !history.ops.is_empty() {
        out.unconfirmed
            .push(json!({"reason": "the history has no final phase"}));
    }
    let scope = format!(
        "{} nodes; {} live and {} dropped namespaces, {} acknowledged writes ({} excused by a \
         possible drop or set deletion), {} deleted writes, {} sets, {} reads checked",
        run.nodes.len(),
        out.live_namespaces,
        out.dropped_namespaces,
        out.writes_checked,
        out.writes_excused,
        out.deleted_writes_checked,
        out.sets_checked,
        out.reads_checked,
    );
    let mut details = serde_json::Map::new();
    details.insert("nodes".into(), json!(run.nodes));
    details.insert("final_listings".into(), json!(run.listed));
    for (k, v) in [
        ("live_namespaces_checked", out.live_namespaces),
        ("dropped_namespaces_checked", out.dropped_namespaces),
        ("writes_checked", out.writes_checked),
        ("writes_excused", out.writes_excused),
        ("deleted_writes_checked", out.deleted_writes_checked),
        ("sets_checked", out.sets_checked),
        ("reads_checked", out.reads_checked),
    ] {
        details.insert(k.into(), json!(v));
    }
    details.insert("max_listed".into(), json!(MAX_LISTED));
    ElementVerdict {
        name: "catalog",
        scope,
        classes: &[
            ("missing_namespace", &out.missing_namespace),
            ("dropped_namespace_listed", &out.dropped_listed),
            ("dropped_namespace_served", &out.dropped_served),
            ("lost_write", &out.lost_write),
            ("resurrected_write", &out.resurrected_write),
            ("missing_set", &out.missing_set),
            ("aborted_read", &out.aborted_read),
            ("unexpected_read", &out.unexpected_read),
            ("stale_read", &out.stale_read),
            ("write_in_dropped_namespace", &out.write_in_dropped),
        ],
        unconfirmed: &out.unconfirmed,
        malformed: &out.malformed,
        unconfirmed_is: "change(s) or write(s) the final phase could not confirm",
        valid_summary: "the final state matches every acknowledged change and write".into(),
        windows: &out.windows,
        details,
    }
    .into_result(op_counts, history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::Validity;
    use crate::history::{Op, OpType};

    /// Builds histories from whole operations; events are sorted by time at the end.
    #[derive(Default)]
    struct H {
        events: Vec<Op>,
        next_process: u64,
    }

    impl H {
        #[allow(clippy::too_many_arguments)]
        fn op(
            &mut self,
            f: &str,
            key: u64,
            arg: Value,
            t0: u64,
            kind: OpType,
            result: Value,
            t1: Option<u64>,
            node: &str,
        ) -> &mut Self {
            let process = self.next_process;
            self.next_process += 1;
            let mut ev = |kind, value, time| {
                self.events.push(Op {
                    index: 0,
                    process,
                    kind,
                    f: f.into(),
                    key,
                    value,
                    time,
                    node: Some(node.into()),
                    error: None,
                })
            };
            ev(OpType::Invoke, arg.clone(), t0);
            if let Some(t1) = t1 {
                let v = if kind == OpType::Ok { result } else { arg };
                ev(kind, v, t1);
            }
            self
        }

        fn change(&mut self, f: &str, ns: &str, t0: u64, kind: OpType, t1: u64) -> &mut Self {
            self.op(
                f,
                0,
                json!({"ns": ns}),
                t0,
                kind,
                json!({"ns": ns}),
                Some(t1),
                "n1",
            )
        }

        fn set_change(
            &mut self,
            f: &str,
            ns: &str,
            set: &str,
            t0: u64,
            kind: OpType,
            t1: u64,
        ) -> &mut Self {
            let v = json!({"ns": ns, "set": set});
            self.op(f, 0, v.clone(), t0, kind, v, Some(t1), "n1")
        }

        fn write(&mut self, ns: &str, key: u64, t0: u64, kind: OpType, t1: u64) -> &mut Self {
            let v = json!({"ns": ns, "set": "s0", "v": key});
            self.op("write", key, v.clone(), t0, kind, v, Some(t1), "n1")
        }

        fn read(&mut self, ns: &str, key: u64, t0: u64, code: u64, v: Value, t1: u64) -> &mut Self {
            self.op(
                "read",
                key,
                json!({"ns": ns, "set": "s0"}),
                t0,
                OpType::Ok,
                json!({"code": code, "v": v}),
                Some(t1),
                "n1",
            )
        }

        /// The final phase on `node`: its namespace list, the set lists, final reads of
        /// `reads` (key, ns, code, value) and a probe per namespace answering `probe`.
        fn finals(
            &mut self,
            node: &str,
            listed: &[&str],
            sets: &[(&str, Option<&[&str]>)],
            reads: &[(u64, &str, u64, Value)],
            probes: &[(&str, u64)],
        ) -> &mut Self {
            let t = 1_000;
            self.op(
                "namespaces",
                0,
                Value::Null,
                t,
                OpType::Ok,
                json!(listed),
                Some(t + 1),
                node,
            );
            for (ns, list) in sets {
                self.op(
                    "sets",
                    0,
                    json!({"ns": ns}),
                    t + 2,
                    OpType::Ok,
                    json!({"ns": ns, "sets": list}),
                    Some(t + 3),
                    node,
                );
            }
            for (k, ns, code, v) in reads {
                self.op(
                    "final-read",
                    *k,
                    json!({"ns": ns, "set": "s0"}),
                    t + 4,
                    OpType::Ok,
                    json!({"code": code, "v": v}),
                    Some(t + 5),
                    node,
                );
            }
            for (ns, code) in probes {
                let arg = json!({"ns": ns, "set": "probe"});
                self.op(
                    "probe-write",
                    0,
                    arg,
                    t + 6,
                    OpType::Ok,
                    json!({"code": code}),
                    Some(t + 7),
                    node,
                );
            }
            self
        }

        fn check(&self) -> CheckResult {
            let mut events = self.events.clone();
            events.sort_by_key(|e| e.time);
            for (i, e) in events.iter_mut().enumerate() {
                e.index = i as u64;
            }
            check_catalog(&History::from_ops(&events))
        }
    }

    fn count(r: &CheckResult, class: &str) -> u64 {
        r.details[format!("{class}_count")].as_u64().unwrap()
    }

    use OpType::{Fail, Info, Ok as Acked};

    /// c0 created and written, c1 created then dropped; every node agrees.
    fn healthy() -> H {
        let mut h = H::default();
        h.change("create-ns", "c0", 10, Acked, 20)
            .change("create-ns", "c1", 10, Acked, 20)
            .write("c0", 1, 30, Acked, 40)
            .write("c1", 2, 30, Acked, 40)
            .change("drop-ns", "c1", 50, Acked, 60)
            .set_change("create-set", "c0", "s2", 30, Acked, 40)
            .read("c0", 1, 45, 0, json!(1), 46);
        for n in ["n1", "n2"] {
            h.finals(
                n,
                &["c0", "test"],
                &[("c0", Some(&["s0", "s2"])), ("c1", None)],
                &[(1, "c0", 0, json!(1)), (2, "c1", 20, Value::Null)],
                &[("c0", 0), ("c1", 20)],
            );
        }
        h
    }

    #[test]
    fn a_converged_final_state_is_valid() {
        let r = healthy().check();
        assert_eq!(r.valid, Validity::Valid, "{}: {}", r.summary, r.details);
        assert_eq!(r.details["live_namespaces_checked"], json!(1));
        assert_eq!(r.details["dropped_namespaces_checked"], json!(1));
        assert_eq!(r.details["writes_checked"], json!(1));
        assert_eq!(r.details["writes_excused"], json!(1));
        assert_eq!(r.details["sets_checked"], json!(1));
    }

    #[test]
    fn an_acknowledged_create_missing_on_one_node_is_invalid() {
        let mut h = healthy();
        h.finals(
            "n3",
            &["test"],
            &[("c0", Some(&["s0", "s2"]))],
            &[(1, "c0", 0, json!(1))],
            &[("c1", 20)],
        );
        let r = h.check();
        assert_eq!(r.valid, Validity::Invalid, "{}", r.summary);
        assert_eq!(count(&r, "missing_namespace"), 1);
        assert!(r.failing_window.is_some());
    }

    #[test]
    fn a_drop_that_may_follow_the_create_excuses_its_absence() {
        // In doubt, invoked even before the create: it may still land after it.
        for (t0, kind, t1) in [(5, Info, 8), (15, Acked, 25), (100, Info, 110)] {
            let mut h = H::default();
            h.change("create-ns", "c0", 10, Acked, 20)
                .change("drop-ns", "c0", t0, kind, t1)
                .finals("n1", &["test"], &[], &[], &[("c0", 20)]);
            let r = h.check();
            assert_eq!(
                count(&r, "missing_namespace"),
                0,
                "{t0} {kind:?}: {}",
                r.summary
            );
        }
        // A drop that certainly failed, or completed before the create began, excuses nothing.
        for (t0, kind, t1) in [(30, Fail, 40), (1, Acked, 5)] {
            let mut h = H::default();
            h.change("create-ns", "c0", 10, Acked, 20)
                .change("drop-ns", "c0", t0, kind, t1)
                .finals("n1", &["test"], &[], &[], &[]);
            let r = h.check();
            assert_eq!(r.valid, Validity::Invalid, "{kind:?}");
            assert_eq!(count(&r, "missing_namespace"), 1);
        }
    }

    #[test]
    fn a_dropped_namespace_still_listed_or_served_is_invalid() {
        let mut h = H::default();
        h.change("create-ns", "c1", 10, Acked, 20)
            .write("c1", 7, 25, Acked, 28)
            .change("drop-ns", "c1", 30, Acked, 40)
            .finals(
                "n1",
                &["c1", "test"],
                &[],
                &[(7, "c1", 0, json!(7))],
                &[("c1", 0)],
            )
            .finals(
                "n2",
                &["test"],
                &[],
                &[(7, "c1", 20, Value::Null)],
                &[("c1", 11)],
            );
        let r = h.check();
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(count(&r, "dropped_namespace_listed"), 1);
        // n1: the probe (0) and the final read (0); n2: the probe answered 11.
        assert_eq!(count(&r, "dropped_namespace_served"), 3);
    }

    #[test]
    fn a_create_that_may_follow_the_drop_excuses_the_listing() {
        for (t0, kind, t1) in [(5, Info, 6), (35, Acked, 45), (200, Info, 300)] {
            let mut h = H::default();
            h.change("create-ns", "c1", 1, Acked, 2)
                .change("drop-ns", "c1", 30, Acked, 40)
                .change("create-ns", "c1", t0, kind, t1)
                .finals("n1", &["c1"], &[], &[], &[("c1", 0)]);
            let r = h.check();
            assert_eq!(count(&r, "dropped_namespace_listed"), 0, "{kind:?}");
            assert_eq!(count(&r, "dropped_namespace_served"), 0, "{kind:?}");
        }
        // A failed create, or one completed before the drop began, does not.
        let mut h = H::default();
        h.change("create-ns", "c1", 1, Acked, 2)
            .change("create-ns", "c1", 3, Fail, 50)
            .change("drop-ns", "c1", 30, Acked, 40)
            .finals("n1", &["c1"], &[], &[], &[("c1", 20)]);
        assert_eq!(count(&h.check(), "dropped_namespace_listed"), 1);
    }

    #[test]
    fn a_lost_write_is_invalid_unless_a_drop_or_set_deletion_may_follow_it() {
        let base = || {
            let mut h = H::default();
            h.change("create-ns", "c0", 1, Acked, 2)
                .write("c0", 5, 10, Acked, 20);
            h
        };
        let mut h = base();
        h.finals("n1", &["c0"], &[], &[(5, "c0", 2, Value::Null)], &[]);
        let r = h.check();
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(count(&r, "lost_write"), 1);
        // A wrong value is lost too.
        let mut h = base();
        h.finals("n1", &["c0"], &[], &[(5, "c0", 0, json!(6))], &[]);
        assert_eq!(count(&h.check(), "lost_write"), 1);

        // An in-doubt drop invoked long before the write still excuses it (it may land later).
        let mut h = base();
        h.change("drop-ns", "c0", 3, Info, 4).finals(
            "n1",
            &["c0"],
            &[],
            &[(5, "c0", 20, Value::Null)],
            &[],
        );
        let r = h.check();
        assert_eq!(count(&r, "lost_write"), 0);
        assert_eq!(r.details["writes_excused"], json!(1));
        // So does a delete-set of the write's set with any outcome but fail.
        let mut h = base();
        h.set_change("delete-set", "c0", "s0", 30, Info, 40).finals(
            "n1",
            &["c0"],
            &[],
            &[(5, "c0", 2, Value::Null)],
            &[],
        );
        assert_eq!(count(&h.check(), "lost_write"), 0);
        // A delete-set of another set, or a failed drop, does not.
        let mut h = base();
        h.set_change("delete-set", "c0", "s1", 30, Acked, 40)
            .change("drop-ns", "c0", 30, Fail, 40)
            .finals("n1", &["c0"], &[], &[(5, "c0", 2, Value::Null)], &[]);
        assert_eq!(count(&h.check(), "lost_write"), 1);
    }

    #[test]
    fn a_write_that_survives_its_set_deletion_is_resurrected() {
        let mut h = H::default();
        h.write("test", 5, 10, Acked, 20)
            .write("test", 6, 10, Info, 20)
            .set_change("delete-set", "test", "s0", 30, Acked, 40)
            .finals(
                "n1",
                &["test"],
                &[],
                &[(5, "test", 0, json!(5)), (6, "test", 0, json!(6))],
                &[],
            );
        let r = h.check();
        assert_eq!(r.valid, Validity::Invalid);
        // The in-doubt write (6) may have landed after the deletion.
        assert_eq!(count(&r, "resurrected_write"), 1);
        // Deleted: valid.
        let mut h = H::default();
        h.write("test", 5, 10, Acked, 20)
            .set_change("delete-set", "test", "s0", 30, Acked, 40)
            .finals("n1", &["test"], &[], &[(5, "test", 2, Value::Null)], &[]);
        assert_eq!(h.check().valid, Validity::Valid);
        // A deletion invoked before the write completed proves nothing.
        let mut h = H::default();
        h.write("test", 5, 10, Acked, 35)
            .set_change("delete-set", "test", "s0", 30, Acked, 40)
            .finals("n1", &["test"], &[], &[(5, "test", 0, json!(5))], &[]);
        assert_eq!(count(&h.check(), "resurrected_write"), 0);
    }

    #[test]
    fn an_acknowledged_set_must_be_listed() {
        let mut h = H::default();
        h.set_change("create-set", "test", "s2", 10, Acked, 20)
            .finals("n1", &["test"], &[("test", Some(&["s0"]))], &[], &[]);
        let r = h.check();
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(count(&r, "missing_set"), 1);
        // Unless a deletion of it may follow.
        let mut h = H::default();
        h.set_change("create-set", "test", "s2", 10, Acked, 20)
            .set_change("delete-set", "test", "s2", 15, Acked, 25)
            .finals("n1", &["test"], &[("test", Some(&["s0"]))], &[], &[]);
        assert_eq!(count(&h.check(), "missing_set"), 0);
    }

    #[test]
    fn reads_of_failed_or_unknown_writes_are_invalid() {
        let mut h = H::default();
        h.write("test", 5, 10, Fail, 20)
            .write("test", 6, 10, Acked, 20)
            .read("test", 5, 30, 0, json!(5), 31)
            .read("test", 6, 30, 0, json!(9), 31)
            .read("test", 99, 30, 0, json!(99), 31)
            .finals("n1", &["test"], &[], &[(6, "test", 0, json!(6))], &[]);
        let r = h.check();
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(count(&r, "aborted_read"), 1);
        assert_eq!(count(&r, "unexpected_read"), 2);
    }

    #[test]
    fn a_read_missing_an_acknowledged_write_is_stale() {
        let mut h = H::default();
        h.write("test", 5, 10, Acked, 20)
            .read("test", 5, 30, 2, Value::Null, 31)
            // Concurrent with the write: fine.
            .read("test", 5, 15, 2, Value::Null, 25)
            // This node does not know the namespace yet: not counted.
            .read("test", 5, 32, 20, Value::Null, 33)
            .finals("n1", &["test"], &[], &[(5, "test", 0, json!(5))], &[]);
        let r = h.check();
        assert_eq!(count(&r, "stale_read"), 1, "{}", r.details);
        // A drop that may have landed between the write and the read excuses it.
        let mut h = H::default();
        h.write("c0", 5, 10, Acked, 20)
            .change("drop-ns", "c0", 25, Info, 26)
            .read("c0", 5, 30, 2, Value::Null, 31)
            .finals(
                "n1",
                &["c0"],
                &[],
                &[(5, "c0", 2, Value::Null)],
                &[("c0", 0)],
            );
        assert_eq!(count(&h.check(), "stale_read"), 0);
    }

    #[test]
    fn a_write_acknowledged_after_the_drop_of_its_namespace_is_invalid() {
        // The history of seed 32 (5 nodes, partitions), cut down: c2 dropped (ok), a write to
        // c2 acknowledged 6 ms later, c2 created again only after the write completed.
        let mut h = H::default();
        h.change("create-ns", "c2", 1, Acked, 2)
            .change("drop-ns", "c2", 24_019, Acked, 24_024)
            .write("c2", 1602, 24_030, Acked, 24_031)
            .change("create-ns", "c2", 24_077, Acked, 24_086)
            .read("c2", 1602, 24_124, 2, Value::Null, 24_125)
            .change("drop-ns", "c2", 24_197, Acked, 24_203)
            .finals(
                "n1",
                &["test"],
                &[],
                &[(1602, "c2", 20, Value::Null)],
                &[("c2", 20)],
            );
        let r = h.check();
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(count(&r, "write_in_dropped_namespace"), 1);
        assert_eq!(count(&r, "stale_read"), 1);
        // A create that may have landed in between (in doubt, or concurrent) excuses it.
        for (t0, kind, t1) in [
            (10, Info, 20),
            (24_029, Acked, 24_040),
            (24_020, Info, 24_021),
        ] {
            let mut h = H::default();
            h.change("create-ns", "c2", 1, Acked, 2)
                .change("drop-ns", "c2", 24_019, Acked, 24_024)
                .change("create-ns", "c2", t0, kind, t1)
                .write("c2", 1602, 24_030, Acked, 24_031)
                .finals("n1", &["c2"], &[], &[(1602, "c2", 0, json!(1602))], &[]);
            let r = h.check();
            assert_eq!(count(&r, "write_in_dropped_namespace"), 0, "{t0} {kind:?}");
        }
        // A drop concurrent with the write proves nothing; nor does a failed write.
        let mut h = H::default();
        h.change("create-ns", "c2", 1, Acked, 2)
            .change("drop-ns", "c2", 24_019, Acked, 24_031)
            .write("c2", 1602, 24_030, Acked, 24_035)
            .write("c2", 1603, 24_040, Fail, 24_041)
            .finals("n1", &["test"], &[], &[], &[]);
        assert_eq!(count(&h.check(), "write_in_dropped_namespace"), 0);
    }

    #[test]
    fn a_node_without_final_answers_leaves_the_verdict_unknown() {
        let mut h = healthy();
        // n3 took part in the final phase but its listing and reads never succeeded.
        h.op(
            "namespaces",
            0,
            Value::Null,
            1_000,
            Fail,
            Value::Null,
            Some(1_001),
            "n3",
        );
        let r = h.check();
        assert_eq!(r.valid, Validity::Unknown, "{}", r.summary);
        assert!(count(&r, "unconfirmed") > 0);
    }

    #[test]
    fn no_final_phase_or_nothing_checkable_is_unknown() {
        let mut h = H::default();
        h.change("create-ns", "c0", 10, Acked, 20);
        assert_eq!(h.check().valid, Validity::Unknown);
        let mut h = H::default();
        h.change("create-ns", "c0", 10, Fail, 20)
            .finals("n1", &["test"], &[], &[], &[]);
        assert_eq!(h.check().valid, Validity::Unknown);
    }

    #[test]
    fn malformed_operations_are_unknown_not_valid() {
        let mut h = healthy();
        h.op(
            "write",
            42,
            json!({"set": "s0"}),
            10,
            Acked,
            Value::Null,
            Some(11),
            "n1",
        );
        let r = h.check();
        assert_eq!(r.valid, Validity::Unknown, "{}", r.summary);
        assert_eq!(count(&r, "malformed"), 1);
    }
}
