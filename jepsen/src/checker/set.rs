//! Set checker (Jepsen's `checker/set`, with a little of `set-full`).
//!
//! Per key, against the final read (the last `ok` read invoked; the harness issues it after
//! healing):
//! - *lost*: an `ok` add acknowledged before the final read began is missing from it;
//! - *vanished*: an element some earlier read (completed before the final read began) saw is
//!   missing from the final read — data loss even if its add was only `info`;
//! - on every `ok` read: *unexpected* (never attempted), *duplicated* (listed twice) and
//!   *aborted* (its add definitely failed) elements;
//! - `info` adds may be present (*recovered*, reported for information) or absent.
//!
//! An `ok` add acknowledged after the final read began, or a key with acknowledged adds and
//! no `ok` read at all, cannot be confirmed: the verdict is then at best `Unknown`.

use super::{as_int, as_int_list, count_ops, element_anomalies, span, CheckResult, ElementVerdict};
use crate::history::{History, PairedOp};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

const SET_FS: [&str; 2] = ["add", "read"];

#[derive(Default)]
struct Findings {
    lost: Vec<Value>,
    vanished: Vec<Value>,
    unexpected: Vec<Value>,
    duplicated: Vec<Value>,
    aborted: Vec<Value>,
    unconfirmed: Vec<Value>,
    malformed: Vec<Value>,
    recovered: usize,
    windows: Vec<(u64, u64)>,
    final_reads: usize,
}

fn check_key(key: u64, ops: &[&PairedOp], out: &mut Findings) {
    let mut adds: HashMap<i64, &PairedOp> = HashMap::new();
    let mut reads: Vec<(&PairedOp, Vec<i64>)> = Vec::new();
    for &op in ops {
        match op.f.as_str() {
            "add" => {
                let Some(e) = as_int(&op.invoke_value) else {
                    out.malformed.push(json!({"key": key, "reason": "add value is not an int", "op": op.describe()}));
                    return;
                };
                if let Some(prev) = adds.insert(e, op) {
                    out.malformed.push(json!({
                        "key": key,
                        "reason": format!("element {e} added twice (elements must be unique per key)"),
                        "ops": [prev.describe(), op.describe()],
                    }));
                    return;
                }
            }
            "read" if op.is_ok() => {
                let list = match &op.value {
                    Value::Null => Some(Vec::new()),
                    v => as_int_list(v),
                };
                let Some(list) = list else {
                    out.malformed.push(json!({"key": key, "reason": "read value is not a list of ints", "op": op.describe()}));
                    return;
                };
                reads.push((op, list));
            }
            _ => {}
        }
    }

    let found = element_anomalies(key, &reads, &adds, "add");
    out.unexpected.extend(found.unexpected);
    out.aborted.extend(found.aborted);
    out.duplicated.extend(found.duplicated);
    out.windows.extend(found.windows);

    let final_read = reads
        .iter()
        .max_by_key(|(r, _)| (r.invoke_time, r.complete_time));
    let mut acked: Vec<(i64, &PairedOp)> = adds
        .iter()
        .filter(|(_, a)| a.is_ok())
        .map(|(&e, &a)| (e, a))
        .collect();
    acked.sort_by_key(|&(e, a)| (a.invoke_time, e));
    let Some((f, final_list)) = final_read else {
        for (e, a) in acked {
            out.unconfirmed.push(json!({"key": key, "element": e, "add": a.describe(), "reason": "no ok read of this key"}));
        }
        return;
    };
    out.final_reads += 1;
    let present: HashSet<i64> = final_list.iter().copied().collect();
    out.recovered += adds
        .iter()
        .filter(|(e, a)| a.is_info() && present.contains(e))
        .count();
    for (e, a) in acked {
        if present.contains(&e) {
            continue;
        }
        if a.complete_time.unwrap_or(a.invoke_time) < f.invoke_time {
            out.lost.push(
                json!({"key": key, "element": e, "add": a.describe(), "final_read": f.describe()}),
            );
            out.windows.push(span(&[a, f]));
        } else {
            out.unconfirmed.push(json!({"key": key, "element": e, "add": a.describe(), "reason": "acknowledged after the final read began"}));
        }
    }
    // Elements that an earlier, completed read saw but the final read lacks.
    let mut reported: HashSet<i64> = HashSet::new();
    for (r, list) in &reads {
        if r.complete_time.is_none_or(|c| c >= f.invoke_time) {
            continue;
        }
        for &e in list {
            if present.contains(&e) || !adds.contains_key(&e) || !reported.insert(e) {
                continue;
            }
            out.vanished.push(json!({"key": key, "element": e, "seen_by": r.describe(), "final_read": f.describe()}));
            out.windows.push(span(&[r, f]));
        }
    }
}

/// Check a set history (`add` / `read`) per key. See the module documentation.
pub fn check_set(history: &History) -> CheckResult {
    let op_counts = count_ops(&history.ops, |o| SET_FS.contains(&o.f.as_str()));
    let mut out = Findings::default();
    let mut keys = 0usize;
    for (key, ops) in history.by_key() {
        let ops: Vec<&PairedOp> = ops
            .into_iter()
            .filter(|o| SET_FS.contains(&o.f.as_str()))
            .collect();
        if ops.is_empty() {
            continue;
        }
        keys += 1;
        check_key(key, &ops, &mut out);
    }
    let mut details = serde_json::Map::new();
    details.insert("keys".into(), json!(keys));
    details.insert("final_reads".into(), json!(out.final_reads));
    details.insert("recovered_count".into(), json!(out.recovered));
    ElementVerdict {
        name: "set",
        scope: format!("{keys} keys"),
        classes: &[
            ("lost", &out.lost),
            ("vanished", &out.vanished),
            ("unexpected", &out.unexpected),
            ("duplicated", &out.duplicated),
            ("aborted", &out.aborted),
        ],
        unconfirmed: &out.unconfirmed,
        malformed: &out.malformed,
        unconfirmed_is: "add(s) not confirmed by a final read",
        valid_summary: format!(
            "every acknowledged add present in the final read ({} info adds recovered)",
            out.recovered
        ),
        windows: &out.windows,
        details,
    }
    .into_result(op_counts, history)
}
