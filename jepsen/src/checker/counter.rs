//! Counter checker (Jepsen's `checker/counter`, generalised to negative deltas).
//!
//! A read `R` (invoked at `r0`, completed at `r1`) of a counter starting at 0 must equal
//!
//! > (sum of the increments that certainly took effect before `R`) + (the sum of *some subset*
//! > of the increments that may have taken effect by `r1`)
//!
//! where "certainly before" = `ok` and completed before `r0`, and "may have" = every other
//! non-`fail` increment invoked by `r1` (`ok` ones concurrent with `R`, and `info` ones, which
//! may take effect at any time after their invocation). A subset sum lies between the sum of
//! the negative deltas and the sum of the positive ones, so
//!
//! `lower = certain + Σ negative maybe`, `upper = certain + Σ positive maybe`.
//!
//! With only positive deltas this is Jepsen's rule (lower = `ok` increments completed before
//! the read began, upper = all non-failed increments invoked before it completed). The interval
//! is a relaxation of "some subset", so a read outside it is certainly wrong (sound), while a
//! read inside it is accepted. Every read is checked; the final read (the last invoked) is the
//! one that catches lost or double-applied increments once everything has completed. A key
//! with acknowledged increments but no `ok` read is `Unknown`.

use super::{apply_history_problems, as_int, count_ops, listed, narrowest, CheckResult, Validity};
use crate::history::{History, PairedOp};
use serde_json::{json, Value};

const COUNTER_FS: [&str; 2] = ["incr", "read"];

#[derive(Default)]
struct Findings {
    out_of_bounds: Vec<Value>,
    finals: Vec<Value>,
    unconfirmed: Vec<Value>,
    malformed: Vec<Value>,
    windows: Vec<(u64, u64)>,
    reads: usize,
}

/// Prefix sums (total, positive part, negative part) over deltas in some order.
fn prefix_sums(deltas: impl Iterator<Item = i64>) -> Vec<(i128, i128, i128)> {
    let mut acc = (0i128, 0i128, 0i128);
    let mut out = vec![acc];
    for d in deltas {
        let d = d as i128;
        acc.0 += d;
        if d > 0 {
            acc.1 += d;
        } else {
            acc.2 += d;
        }
        out.push(acc);
    }
    out
}

/// A bound as JSON: a number when it fits in an i64 (always, unless deltas are huge), else a
/// string, so sums are never silently truncated.
fn num(x: i128) -> Value {
    i64::try_from(x).map_or_else(|_| Value::String(x.to_string()), Value::from)
}

fn check_key(key: u64, ops: &[&PairedOp], out: &mut Findings) {
    // (invoke time, delta) of non-failed increments; (complete time, delta) of ok ones.
    let mut invoked: Vec<(u64, i64)> = Vec::new();
    let mut completed: Vec<(u64, i64)> = Vec::new();
    let mut reads: Vec<(&PairedOp, i64)> = Vec::new();
    for &op in ops {
        match op.f.as_str() {
            "incr" => {
                let Some(d) = as_int(&op.invoke_value) else {
                    out.malformed.push(json!({"key": key, "reason": "incr delta is not an int", "op": op.describe()}));
                    return;
                };
                if op.is_fail() {
                    continue;
                }
                invoked.push((op.invoke_time, d));
                if op.is_ok() {
                    completed.push((op.complete_time.unwrap_or(op.invoke_time), d));
                }
            }
            "read" if op.is_ok() => {
                let v = match &op.value {
                    Value::Null => Some(0),
                    v => as_int(v),
                };
                let Some(v) = v else {
                    out.malformed.push(json!({"key": key, "reason": "read value is not an int", "op": op.describe()}));
                    return;
                };
                reads.push((op, v));
            }
            _ => {}
        }
    }
    invoked.sort_unstable();
    completed.sort_unstable();
    let inv_sums = prefix_sums(invoked.iter().map(|&(_, d)| d));
    let done_sums = prefix_sums(completed.iter().map(|&(_, d)| d));
    out.reads += reads.len();

    let final_read = reads
        .iter()
        .max_by_key(|(r, _)| (r.invoke_time, r.complete_time))
        .map(|(r, _)| r.invoke_index);
    if final_read.is_none() && !completed.is_empty() {
        out.unconfirmed.push(json!({"key": key, "reason": "acknowledged increments but no ok read", "ok_increments": completed.len()}));
    }
    for (r, value) in &reads {
        let r0 = r.invoke_time;
        let r1 = r.complete_time.unwrap_or(r0);
        // Certain: ok increments completed strictly before the read began (closed intervals).
        let m = completed.partition_point(|&(t, _)| t < r0);
        // Possible: non-failed increments invoked no later than the read completed.
        let k = invoked.partition_point(|&(t, _)| t <= r1);
        let (certain, certain_pos, certain_neg) = done_sums[m];
        let (_, inv_pos, inv_neg) = inv_sums[k];
        let lower = certain + (inv_neg - certain_neg);
        let upper = certain + (inv_pos - certain_pos);
        let is_final = Some(r.invoke_index) == final_read;
        let v = *value as i128;
        let entry = json!({
            "key": key,
            "value": value,
            "lower": num(lower),
            "upper": num(upper),
            "final": is_final,
            "read": r.describe(),
        });
        if is_final {
            out.finals.push(entry.clone());
        }
        if v < lower || v > upper {
            out.out_of_bounds.push(entry);
            out.windows.push((r0, r1));
        }
    }
}

/// Check a counter history (`incr` / `read`) per key. See the module documentation.
pub fn check_counter(history: &History) -> CheckResult {
    let op_counts = count_ops(&history.ops, |o| COUNTER_FS.contains(&o.f.as_str()));
    let mut out = Findings::default();
    let mut keys = 0usize;
    for (key, ops) in history.by_key() {
        let ops: Vec<&PairedOp> = ops
            .into_iter()
            .filter(|o| COUNTER_FS.contains(&o.f.as_str()))
            .collect();
        if ops.is_empty() {
            continue;
        }
        keys += 1;
        check_key(key, &ops, &mut out);
    }
    let (valid, summary) = if let Some(first) = out.out_of_bounds.first() {
        (
            Validity::Invalid,
            format!(
                "{} of {} reads out of bounds; first: key {} read {} outside [{}, {}]",
                out.out_of_bounds.len(),
                out.reads,
                first["key"],
                first["value"],
                first["lower"],
                first["upper"]
            ),
        )
    } else if !out.malformed.is_empty() || !out.unconfirmed.is_empty() {
        (
            Validity::Unknown,
            format!(
                "{keys} keys, {} reads within bounds, but {} malformed key(s) and {} key(s) \
                 without a successful read",
                out.reads,
                out.malformed.len(),
                out.unconfirmed.len()
            ),
        )
    } else {
        (
            Validity::Valid,
            format!("{keys} keys: all {} reads within bounds", out.reads),
        )
    };
    let failing_window = if valid == Validity::Invalid {
        narrowest(out.windows.iter().copied())
    } else {
        None
    };
    let result = CheckResult {
        name: "counter".into(),
        valid,
        summary,
        details: json!({
            "keys": keys,
            "reads": out.reads,
            "out_of_bounds_count": out.out_of_bounds.len(),
            "out_of_bounds": listed(&out.out_of_bounds),
            "final_reads": listed(&out.finals),
            "unconfirmed": listed(&out.unconfirmed),
            "malformed": listed(&out.malformed),
        }),
        failing_window,
        op_counts,
    };
    apply_history_problems(result, history)
}
