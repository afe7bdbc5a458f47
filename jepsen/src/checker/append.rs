//! List-append checker: exact linearizability for per-key lists of unique elements with
//! whole-list reads, in O(n log n) — no search, so it is immune to concurrency blow-up.
//!
//! Because every read returns the whole list and elements are unique, each read reveals the
//! key's version order directly. Per key:
//!
//! - *Structure.* The longest `ok` read `L` defines the order; every `ok` read must be a prefix
//!   of it (else *incompatible orders*: replicas diverged or elements were reordered). No read
//!   may hold an element twice (*duplicated*), an element no one tried to append
//!   (*unexpected*), or an element whose append definitely failed (*aborted*).
//! - *Durability.* Every `ok` append must be in the final read (the last one invoked, which the
//!   harness issues after healing) if it was acknowledged before that read began (else
//!   *lost*). One acknowledged after the final read began was never confirmed either way:
//!   the verdict is then at best `Unknown`.
//! - *Real time.* Each operation gets a position key: the append at index `i` of `L` gets
//!   `(i+1, 0)`, a read of `k` elements `(k, 1)`. Sweeping events in time order while tracking
//!   the largest key among completed operations, every invocation's key must be at least that
//!   maximum, else an operation that finished earlier saw (or made) a later state than one
//!   that started afterwards: a *stale read*, *non-monotonic read*, *future read* (a read
//!   showed an element before its append was invoked) or *append order inversion*. `info`
//!   appends in `L` are invoked but never complete; `info` appends missing from `L` never
//!   happened; `ok` appends missing from `L` (no read shows them) must follow all of `L`, so
//!   they get the key `(|L|+1, 0)` — an append of `L` invoked after one of them was
//!   acknowledged is an inversion even when no read began after it (the reference algorithm
//!   we started from missed this case; the brute-force cross-check in the tests found it).
//!
//! If structure and real time both hold, ordering operations by (key, invocation time) is a
//! valid linearization, so the check is complete as well as sound.

use super::{as_int, as_int_list, count_ops, element_anomalies, span, CheckResult, ElementVerdict};
use crate::history::{History, PairedOp};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

const APPEND_FS: [&str; 2] = ["append", "read"];

/// Reads with more than this many other reads are compared only with the longest read when
/// looking for the closest incompatible partner (keeps the pairwise search bounded).
const PAIRWISE_LIMIT: usize = 2_000;

#[derive(Default)]
struct Findings {
    lost: Vec<Value>,
    unexpected: Vec<Value>,
    duplicated: Vec<Value>,
    aborted: Vec<Value>,
    incompatible: Vec<Value>,
    realtime: Vec<Value>,
    unconfirmed: Vec<Value>,
    malformed: Vec<Value>,
    windows: Vec<(u64, u64)>,
    reads: usize,
}

fn is_prefix(a: &[i64], b: &[i64]) -> bool {
    a.len() <= b.len() && a == &b[..a.len()]
}

/// Read value as a list; `null` (no record yet) is the empty list.
fn read_list(op: &PairedOp) -> Option<Vec<i64>> {
    match &op.value {
        Value::Null => Some(Vec::new()),
        v => as_int_list(v),
    }
}

fn check_key(key: u64, ops: &[&PairedOp], out: &mut Findings) {
    // Appends by element; a repeated element makes positions ambiguous (a harness bug).
    let mut appends: HashMap<i64, &PairedOp> = HashMap::new();
    let mut reads: Vec<(&PairedOp, Vec<i64>)> = Vec::new();
    for &op in ops {
        match op.f.as_str() {
            "append" => {
                let Some(e) = as_int(&op.invoke_value) else {
                    out.malformed.push(json!({"key": key, "reason": "append value is not an int", "op": op.describe()}));
                    return;
                };
                if let Some(prev) = appends.insert(e, op) {
                    out.malformed.push(json!({
                        "key": key,
                        "reason": format!("element {e} appended twice (elements must be unique per key)"),
                        "ops": [prev.describe(), op.describe()],
                    }));
                    return;
                }
            }
            "read" if op.is_ok() => match read_list(op) {
                Some(list) => reads.push((op, list)),
                None => {
                    out.malformed.push(json!({"key": key, "reason": "read value is not a list of ints", "op": op.describe()}));
                    return;
                }
            },
            _ => {}
        }
    }
    out.reads += reads.len();

    // Element-level checks on every read.
    let found = element_anomalies(key, &reads, &appends, "append");
    out.unexpected.extend(found.unexpected);
    out.aborted.extend(found.aborted);
    out.duplicated.extend(found.duplicated);
    out.windows.extend(found.windows);

    // Structure: the longest read defines the order.
    let longest = reads
        .iter()
        .enumerate()
        .max_by_key(|(i, (_, l))| (l.len(), std::cmp::Reverse(*i)))
        .map(|(i, _)| i);
    let empty = Vec::new();
    let order: &[i64] = longest.map_or(&empty, |i| &reads[i].1);
    let mut prefix_reads: Vec<usize> = Vec::new();
    for (i, (r, list)) in reads.iter().enumerate() {
        if is_prefix(list, order) {
            prefix_reads.push(i);
            continue;
        }
        // Find the incompatible partner closest in time (the longest read if there are many).
        let candidates: Vec<usize> = if reads.len() <= PAIRWISE_LIMIT {
            (0..reads.len()).collect()
        } else {
            longest.into_iter().collect()
        };
        let partner = candidates
            .into_iter()
            .filter(|&j| j != i && !is_prefix(list, &reads[j].1) && !is_prefix(&reads[j].1, list))
            .min_by_key(|&j| {
                let (a, b) = span(&[r, reads[j].0]);
                (b - a, a)
            });
        let Some(j) = partner else { continue };
        let other = &reads[j];
        let diverge = list
            .iter()
            .zip(other.1.iter())
            .take_while(|(a, b)| a == b)
            .count();
        out.incompatible.push(json!({
            "key": key,
            "read": r.describe(),
            "other": other.0.describe(),
            "diverge_at": diverge,
        }));
        out.windows.push(span(&[r, other.0]));
    }

    // Durability against the final read.
    let final_read = reads
        .iter()
        .max_by_key(|(r, _)| (r.invoke_time, r.complete_time));
    let in_order: HashMap<i64, usize> = order
        .iter()
        .enumerate()
        .rev()
        .map(|(i, &e)| (e, i))
        .collect();
    let mut ok_missing_from_order: HashSet<i64> = HashSet::new();
    let mut acked: Vec<(&i64, &&PairedOp)> = appends.iter().filter(|(_, a)| a.is_ok()).collect();
    acked.sort_by_key(|(e, a)| (a.invoke_time, **e));
    for (&e, a) in acked {
        if !in_order.contains_key(&e) {
            ok_missing_from_order.insert(e);
        }
        let Some((f, final_list)) = final_read else {
            out.unconfirmed.push(json!({"key": key, "element": e, "append": a.describe(), "reason": "no ok read of this key"}));
            continue;
        };
        if final_list.contains(&e) {
            continue;
        }
        let acked_at = a.complete_time.unwrap_or(a.invoke_time);
        if acked_at < f.invoke_time {
            out.lost.push(json!({"key": key, "element": e, "append": a.describe(), "final_read": f.describe()}));
            out.windows.push(span(&[a, f]));
        } else {
            out.unconfirmed.push(json!({"key": key, "element": e, "append": a.describe(), "reason": "acknowledged after the final read began"}));
        }
    }

    // Real-time order. Events: (time, phase 0 = invoke / 1 = complete, position key, op).
    // An ok append missing from `order` is in no read, so it comes after every element of
    // `order`: it gets the key just past the end.
    let past_end = (order.len() + 1, 0);
    let mut events: Vec<(u64, u8, (usize, u8), &PairedOp)> = Vec::new();
    for (&e, a) in &appends {
        let k = match in_order.get(&e) {
            _ if a.is_fail() => continue,
            Some(&pos) => (pos + 1, 0),
            None if ok_missing_from_order.contains(&e) => past_end,
            None => continue, // an info append that never happened
        };
        events.push((a.invoke_time, 0, k, a));
        if a.is_ok() {
            events.push((a.complete_time.unwrap_or(a.invoke_time), 1, k, a));
        }
    }
    for &i in &prefix_reads {
        let (r, list) = &reads[i];
        let k = (list.len(), 1);
        events.push((r.invoke_time, 0, k, r));
        events.push((r.complete_time.unwrap_or(r.invoke_time), 1, k, r));
    }
    events.sort_by_key(|&(t, phase, k, op)| (t, phase, k, op.invoke_index));
    let mut max_done: Option<((usize, u8), &PairedOp)> = None;
    for (_, phase, k, op) in events {
        if phase == 1 {
            if max_done.is_none_or(|(m, _)| k > m) {
                max_done = Some((k, op));
            }
            continue;
        }
        let Some((m, earlier)) = max_done else {
            continue;
        };
        // A read after a missing append completed is the final read's `lost` report again.
        if k >= m || (m == past_end && k.1 == 1) {
            continue;
        }
        let anomaly = match (m.1, k.1) {
            (0, 1) => "stale-read",
            (1, 1) => "non-monotonic-read",
            (1, 0) => "future-read",
            _ => "append-order-inversion",
        };
        let explanation = match anomaly {
            "stale-read" => format!(
                "read of {} elements began after the append at position {} was acknowledged",
                k.0, m.0
            ),
            "non-monotonic-read" => format!(
                "read of {} elements began after a read of {} elements completed",
                k.0, m.0
            ),
            "future-read" => format!(
                "append at position {} was invoked after a read of {} elements (which included \
                 it) completed",
                k.0, m.0
            ),
            _ if m == past_end => format!(
                "append at position {} was invoked after an append that no read shows was \
                 acknowledged, yet reads show the later append without the earlier one",
                k.0
            ),
            _ => format!(
                "append at position {} was invoked after the append at position {} was \
                 acknowledged",
                k.0, m.0
            ),
        };
        out.realtime.push(json!({
            "key": key,
            "anomaly": anomaly,
            "explanation": explanation,
            "earlier": earlier.describe(),
            "later": op.describe(),
        }));
        out.windows.push(span(&[earlier, op]));
    }
}

/// Check an append history (`append` / `read`) per key. See the module documentation.
pub fn check_append(history: &History) -> CheckResult {
    let op_counts = count_ops(&history.ops, |o| APPEND_FS.contains(&o.f.as_str()));
    let mut out = Findings::default();
    let by_key = history.by_key();
    let mut keys = 0usize;
    for (key, ops) in &by_key {
        let ops: Vec<&PairedOp> = ops
            .iter()
            .copied()
            .filter(|o| APPEND_FS.contains(&o.f.as_str()))
            .collect();
        if ops.is_empty() {
            continue;
        }
        keys += 1;
        check_key(*key, &ops, &mut out);
    }

    let mut details = serde_json::Map::new();
    details.insert("keys".into(), json!(keys));
    details.insert("reads".into(), json!(out.reads));
    ElementVerdict {
        name: "append",
        scope: format!("{} keys, {} reads", keys, out.reads),
        classes: &[
            ("lost", &out.lost),
            ("unexpected", &out.unexpected),
            ("duplicated", &out.duplicated),
            ("aborted", &out.aborted),
            ("incompatible-order", &out.incompatible),
            ("realtime", &out.realtime),
        ],
        unconfirmed: &out.unconfirmed,
        malformed: &out.malformed,
        unconfirmed_is: "append(s) never confirmed by a later read",
        valid_summary: "every read a prefix of one order, nothing lost, real-time order respected"
            .into(),
        windows: &out.windows,
        details,
    }
    .into_result(op_counts, history)
}
