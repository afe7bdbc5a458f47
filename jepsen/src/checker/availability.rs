//! Availability and basic statistics: ok/fail/info overall, per `f`, and per nemesis interval.
//!
//! Safety checkers pass vacuously when nothing succeeds, so this checker is the guard against
//! "valid because nothing happened": it answers `Unknown` when some `f` never succeeded (as
//! Jepsen's `stats` checker does). It never answers `Invalid` — unavailability under faults is
//! allowed — but the per-interval numbers and the time to the first `ok` after each fault
//! ends show how the cluster behaved, and a cluster that never recovers shows up as an
//! interval followed by no `ok` at all.
//!
//! An operation counts toward an interval if its completion fell inside it (inclusive).
//! Operations that never completed are counted only in the totals (as `pending`).
//!
//! Each interval also reports its longest stall: the longest stretch inside it in which no
//! operation succeeded (from its start to the first success, between successes, from the
//! last success to its end). For roster changes (`membership`) the summary names the
//! longest such stall: how long requests failed during a change.

use super::{apply_history_problems, count_ops, CheckResult, OpCounts, Validity};
use crate::history::{History, NemesisEvent, OpType};
use serde_json::{json, Value};

fn ratio(c: &OpCounts) -> Value {
    if c.total() == 0 {
        Value::Null
    } else {
        json!(c.ok as f64 / c.total() as f64)
    }
}

fn counts_json(c: &OpCounts) -> Value {
    json!({"ok": c.ok, "fail": c.fail, "info": c.info, "availability": ratio(c)})
}

/// The longest stretch of `[start, end]` without a success (`oks` sorted).
fn longest_stall(oks: &[u64], start: u64, end: u64) -> u64 {
    let from = oks.partition_point(|&t| t < start);
    let to = oks.partition_point(|&t| t <= end);
    let mut last = start;
    let mut longest = 0;
    for &t in &oks[from..to] {
        longest = longest.max(t - last);
        last = t;
    }
    longest.max(end.saturating_sub(last))
}

/// Count outcomes overall, per `f`, per nemesis interval and outside all intervals.
pub fn check_availability(history: &History, nemesis: &[NemesisEvent]) -> CheckResult {
    let op_counts = count_ops(&history.ops, |_| true);
    let mut overall = OpCounts::default();
    let mut pending = 0u64;
    let mut outside = OpCounts::default();
    let mut per_interval = vec![OpCounts::default(); nemesis.len()];
    // Completion times of ok operations, sorted, for time-to-recovery.
    let mut ok_times: Vec<u64> = Vec::new();
    for op in &history.ops {
        overall.add(op.kind);
        let Some(t) = op.complete_time else {
            pending += 1;
            continue;
        };
        if op.kind == OpType::Ok {
            ok_times.push(t);
        }
        let mut inside = false;
        for (i, ev) in nemesis.iter().enumerate() {
            if ev.start <= t && t <= ev.end {
                per_interval[i].add(op.kind);
                inside = true;
            }
        }
        if !inside {
            outside.add(op.kind);
        }
    }
    ok_times.sort_unstable();
    let intervals: Vec<Value> = nemesis
        .iter()
        .zip(&per_interval)
        .map(|(ev, c)| {
            let first_ok_after = ok_times.get(ok_times.partition_point(|&t| t <= ev.end));
            let stall = longest_stall(&ok_times, ev.start, ev.end);
            json!({
                "kind": ev.kind,
                "detail": ev.detail,
                "start": ev.start,
                "end": ev.end,
                "ok": c.ok,
                "fail": c.fail,
                "info": c.info,
                "availability": ratio(c),
                "recovery_ns": first_ok_after.map(|t| t - ev.end),
                "longest_stall_ns": stall,
            })
        })
        .collect();
    let never_ok: Vec<&String> = op_counts
        .iter()
        .filter(|(_, c)| c.ok == 0)
        .map(|(f, _)| f)
        .collect();
    let (valid, summary) = if history.ops.is_empty() {
        (Validity::Unknown, "no client operations".to_string())
    } else if !never_ok.is_empty() {
        (
            Validity::Unknown,
            format!(
                "no successful {} (a safety verdict over it would be vacuous); {} ops, {:.1}% ok",
                never_ok
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("/"),
                overall.total(),
                100.0 * overall.ok as f64 / overall.total() as f64
            ),
        )
    } else {
        let worst = nemesis
            .iter()
            .zip(&per_interval)
            .filter(|(_, c)| c.total() > 0)
            .map(|(ev, c)| (ev, c.ok as f64 / c.total() as f64))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let membership_stall = nemesis
            .iter()
            .filter(|ev| ev.kind == "membership")
            .map(|ev| longest_stall(&ok_times, ev.start, ev.end))
            .max();
        (
            Validity::Valid,
            format!(
                "{} ops, {:.1}% ok ({} fail, {} info, {} pending); {:.1}% ok outside faults{}{}",
                overall.total(),
                100.0 * overall.ok as f64 / overall.total() as f64,
                overall.fail,
                overall.info,
                pending,
                100.0 * ratio(&outside).as_f64().unwrap_or(1.0),
                worst.map_or(String::new(), |(ev, r)| format!(
                    "; worst fault window: {} at {:.1}s with {:.1}% ok",
                    ev.kind,
                    ev.start as f64 / 1e9,
                    100.0 * r
                )),
                membership_stall.map_or(String::new(), |ns| format!(
                    "; longest stall during a roster change: {:.2}s",
                    ns as f64 / 1e9
                ))
            ),
        )
    };
    let result = CheckResult {
        name: "availability".into(),
        valid,
        summary,
        details: json!({
            "overall": counts_json(&overall),
            "pending": pending,
            "outside_faults": counts_json(&outside),
            "intervals": intervals,
            "never_ok": never_ok,
        }),
        failing_window: None,
        op_counts,
    };
    apply_history_problems(result, history)
}
