//! Index checker: secondary-index queries against the writes of the indexed bin (history
//! format: [`crate::workload::index`]).
//!
//! # What a write may have done, and when
//!
//! Every write puts a value used nowhere else in the run, so a value names its write. An
//! `ok` write took effect once, between its invocation and completion; a `fail` write never
//! did; an `info` write (in doubt, or never completed) may take effect at *any* time after its
//! invocation — even after later writes of the same key, since a proposal stuck in a Raft log
//! can be committed by a later leader — or never. The query reads each key at one moment
//! between its invocation and completion (each partition is read once, on its leader).
//!
//! Key k's value is *certainly x throughout* query Q when the write of x is `ok` and
//! completed before Q was invoked, and every other write of k that did not fail either
//! certainly took effect before it (`ok`, completed before the write of x was invoked) or was
//! invoked after Q completed. Doubt and concurrency only ever excuse.
//!
//! # Rules (each violation is an anomaly, the verdict is then invalid)
//!
//! - **lost**: k's value is certainly x throughout an `ok` query of a range holding x, and the
//!   query did not return (k, x).
//! - **unexpected**: a query returned (k, v) although no write of k ever carried v (v never
//!   written, or written to another key), the write of v was invoked only after the query
//!   completed, or the record had no user key.
//! - **aborted**: a query returned (k, v) although the write of v definitely failed.
//! - **stale**: a query returned (k, v) although v was certainly overwritten before the query
//!   began: the write of v is `ok` and completed before an `ok` write of k with another value
//!   was invoked, which completed before the query was invoked (values are never rewritten,
//!   so k never holds v again).
//! - **wrong-value**: a query returned a record whose bin is missing, not an integer, or
//!   outside the queried range (an index entry not matching its record).
//! - **duplicated**: a query returned one key twice.
//!
//! A history where no `ok` query had any key with a certain value in its range proves
//! nothing about misses: the verdict is then at best unknown.

use super::{count_ops, span, CheckResult, ElementVerdict, MAX_LISTED};
use crate::history::{History, PairedOp};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

const INDEX_FS: [&str; 2] = ["write", "query"];

#[derive(Default)]
struct Findings {
    lost: Vec<Value>,
    unexpected: Vec<Value>,
    aborted: Vec<Value>,
    stale: Vec<Value>,
    wrong_value: Vec<Value>,
    duplicated: Vec<Value>,
    unconfirmed: Vec<Value>,
    malformed: Vec<Value>,
    windows: Vec<(u64, u64)>,
    /// (query, key) pairs whose value was certain throughout the query and in its range.
    expectations: usize,
    /// Records returned by ok queries.
    rows: usize,
}

/// The writes of one key that did not fail, by invocation time, with the latest time each
/// prefix may still take effect at (`u64::MAX` once an `info` write is in it).
struct KeyWrites<'a> {
    writes: Vec<(&'a PairedOp, i64)>,
    /// `settled[i]`: latest completion among `writes[..=i]`, `u64::MAX` if any is not ok.
    settled: Vec<u64>,
}

impl<'a> KeyWrites<'a> {
    fn new(mut writes: Vec<(&'a PairedOp, i64)>) -> KeyWrites<'a> {
        writes.sort_by_key(|(w, _)| (w.invoke_time, w.invoke_index));
        let mut settled = Vec::with_capacity(writes.len());
        let mut latest = 0u64;
        for (w, _) in &writes {
            let done = match (w.is_ok(), w.complete_time) {
                (true, Some(t)) => t,
                _ => u64::MAX,
            };
            latest = latest.max(done);
            settled.push(latest);
        }
        KeyWrites { writes, settled }
    }

    /// The write whose value the key certainly holds throughout `q`, if there is one.
    fn certain_during(&self, q: &PairedOp) -> Option<(&'a PairedOp, i64)> {
        let q_end = q.complete_time?;
        // Writes that may take effect before q ends: those invoked before its completion.
        let n = self.writes.partition_point(|(w, _)| w.invoke_time <= q_end);
        let (w, x) = *self.writes.get(n.checked_sub(1)?)?;
        let done = w.complete_time.filter(|_| w.is_ok())?;
        let before_ok = n < 2 || self.settled[n - 2] < w.invoke_time;
        (done < q.invoke_time && before_ok).then_some((w, x))
    }
}

/// One ok query: its range and returned rows.
struct Query<'a> {
    op: &'a PairedOp,
    lo: i64,
    hi: i64,
    rows: Vec<(Option<u64>, Option<i64>)>,
}

fn parse_query<'a>(op: &'a PairedOp) -> Result<Query<'a>, &'static str> {
    let bound = |f: &str| op.invoke_value.get(f).and_then(Value::as_i64);
    let (Some(lo), Some(hi)) = (bound("lo"), bound("hi")) else {
        return Err("query range is not {lo, hi} integers");
    };
    let rows = op
        .value
        .as_array()
        .ok_or("query result is not a list")?
        .iter()
        .map(|r| match r.as_array().map(Vec::as_slice) {
            Some([k, v]) if (k.is_null() || k.is_u64()) && (v.is_null() || v.is_i64()) => {
                Ok((k.as_u64(), v.as_i64()))
            }
            _ => Err("query row is not [key or null, int or null]"),
        })
        .collect::<Result<_, _>>()?;
    Ok(Query { op, lo, hi, rows })
}

/// Check one returned row (k, v) of `q` against the write of v.
fn check_row(
    q: &Query<'_>,
    k: Option<u64>,
    v: Option<i64>,
    by_value: &HashMap<i64, &PairedOp>,
    by_key: &BTreeMap<u64, Vec<&PairedOp>>,
    out: &mut Findings,
) {
    let qd = q.op.describe();
    let Some(v) = v else {
        out.wrong_value
            .push(json!({"key": k, "reason": "no integer bin", "query": qd}));
        out.windows.push(span(&[q.op]));
        return;
    };
    if v < q.lo || v > q.hi {
        out.wrong_value.push(
            json!({"key": k, "value": v, "reason": "outside the queried range", "query": qd}),
        );
        out.windows.push(span(&[q.op]));
    }
    let Some(k) = k else {
        out.unexpected
            .push(json!({"value": v, "reason": "record without a user key", "query": qd}));
        out.windows.push(span(&[q.op]));
        return;
    };
    let Some(&w) = by_value.get(&v) else {
        out.unexpected
            .push(json!({"key": k, "value": v, "reason": "never written", "query": qd}));
        out.windows.push(span(&[q.op]));
        return;
    };
    let q_end = q.op.complete_time.unwrap_or(u64::MAX);
    let why = if w.key != k {
        Some(format!("written to key {}", w.key))
    } else if w.invoke_time > q_end {
        Some("written only after the query completed".to_string())
    } else {
        None
    };
    if let Some(reason) = why {
        out.unexpected.push(
            json!({"key": k, "value": v, "reason": reason, "write": w.describe(), "query": qd}),
        );
        out.windows.push(span(&[w, q.op]));
        return;
    }
    if w.is_fail() {
        out.aborted
            .push(json!({"key": k, "value": v, "write": w.describe(), "query": qd}));
        out.windows.push(span(&[w, q.op]));
        return;
    }
    let Some(w_done) = w.complete_time.filter(|_| w.is_ok()) else {
        return;
    };
    let overwrite = by_key.get(&k).into_iter().flatten().find(|o| {
        o.is_ok() && o.invoke_time > w_done && o.complete_time.is_some_and(|t| t < q.op.invoke_time)
    });
    if let Some(o) = overwrite {
        out.stale.push(json!({
            "key": k, "value": v, "write": w.describe(), "overwritten_by": o.describe(),
            "query": qd,
        }));
        out.windows.push(span(&[w, o, q.op]));
    }
}

/// Check an index history (`write` / `query`). See the module documentation.
pub fn check_index(history: &History) -> CheckResult {
    let op_counts = count_ops(&history.ops, |o| INDEX_FS.contains(&o.f.as_str()));
    let mut out = Findings::default();
    let mut by_value: HashMap<i64, &PairedOp> = HashMap::new();
    let mut by_key: BTreeMap<u64, Vec<&PairedOp>> = BTreeMap::new();
    let mut live: BTreeMap<u64, Vec<(&PairedOp, i64)>> = BTreeMap::new();
    let mut queries: Vec<Query<'_>> = Vec::new();
    let mut query_count = 0usize;
    for op in &history.ops {
        match op.f.as_str() {
            "write" => {
                let Some(v) = op.invoke_value.as_i64() else {
                    out.malformed
                        .push(json!({"reason": "write value is not an int", "op": op.describe()}));
                    continue;
                };
                // A value written twice is a harness bug; the first write keeps the value.
                if let Some(prev) = by_value.get(&v) {
                    out.malformed.push(json!({
                        "reason": format!("value {v} written twice (values must be unique)"),
                        "ops": [prev.describe(), op.describe()],
                    }));
                } else {
                    by_value.insert(v, op);
                }
                by_key.entry(op.key).or_default().push(op);
                if !op.is_fail() {
                    live.entry(op.key).or_default().push((op, v));
                }
            }
            "query" => {
                query_count += 1;
                if !op.is_ok() {
                    continue;
                }
                match parse_query(op) {
                    Ok(q) => queries.push(q),
                    Err(reason) => out
                        .malformed
                        .push(json!({"reason": reason, "op": op.describe()})),
                }
            }
            _ => {}
        }
    }
    let live: BTreeMap<u64, KeyWrites<'_>> = live
        .into_iter()
        .map(|(k, w)| (k, KeyWrites::new(w)))
        .collect();

    for q in &queries {
        out.rows += q.rows.len();
        let mut seen: HashSet<u64> = HashSet::new();
        let mut twice: Vec<u64> = Vec::new();
        for &(k, v) in &q.rows {
            if let Some(k) = k {
                if !seen.insert(k) && !twice.contains(&k) {
                    twice.push(k);
                }
            }
            check_row(q, k, v, &by_value, &by_key, &mut out);
        }
        if !twice.is_empty() {
            out.duplicated
                .push(json!({"keys": twice, "query": q.op.describe()}));
            out.windows.push(span(&[q.op]));
        }
        let returned: HashSet<(u64, i64)> =
            q.rows.iter().filter_map(|&(k, v)| Some((k?, v?))).collect();
        for (&k, writes) in &live {
            let Some((w, x)) = writes.certain_during(q.op) else {
                continue;
            };
            if x < q.lo || x > q.hi {
                continue;
            }
            out.expectations += 1;
            if !returned.contains(&(k, x)) {
                out.lost.push(json!({
                    "key": k, "value": x, "write": w.describe(), "query": q.op.describe(),
                }));
                out.windows.push(span(&[w, q.op]));
            }
        }
    }
    if queries.is_empty() {
        out.unconfirmed
            .push(json!({"reason": "no query succeeded"}));
    } else if out.expectations == 0 {
        out.unconfirmed.push(json!({
            "reason": "no ok query had a key whose value was certain throughout it and in its \
                       range: misses could not be checked",
        }));
    }
    let scope = format!(
        "{} writes, {query_count} queries ({} ok, {} records returned), {} certain (query, \
         key) values checked",
        by_value.len(),
        queries.len(),
        out.rows,
        out.expectations
    );
    let mut details = serde_json::Map::new();
    details.insert("keys".into(), json!(by_key.len()));
    details.insert("ok_queries".into(), json!(queries.len()));
    details.insert("rows".into(), json!(out.rows));
    details.insert("expectations_checked".into(), json!(out.expectations));
    details.insert("max_listed".into(), json!(MAX_LISTED));
    ElementVerdict {
        name: "index",
        scope,
        classes: &[
            ("lost", &out.lost),
            ("unexpected", &out.unexpected),
            ("aborted", &out.aborted),
            ("stale", &out.stale),
            ("wrong_value", &out.wrong_value),
            ("duplicated", &out.duplicated),
        ],
        unconfirmed: &out.unconfirmed,
        malformed: &out.malformed,
        unconfirmed_is: "reason(s) the queries prove nothing",
        valid_summary: "every query returned every certain value and only values written \
                        to their keys"
            .into(),
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

    /// Builds histories from whole operations, one process each; sorted by time at the end.
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
                    node: Some("n1".into()),
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

        fn write(&mut self, key: u64, v: i64, t0: u64, kind: OpType, t1: u64) -> &mut Self {
            self.op("write", key, json!(v), t0, kind, json!(v), Some(t1))
        }

        /// A write that never completed.
        fn pending_write(&mut self, key: u64, v: i64, t0: u64) -> &mut Self {
            self.op("write", key, json!(v), t0, OpType::Info, Value::Null, None)
        }

        fn query(&mut self, lo: i64, hi: i64, t0: u64, rows: Value, t1: u64) -> &mut Self {
            self.op(
                "query",
                0,
                json!({"lo": lo, "hi": hi}),
                t0,
                OpType::Ok,
                rows,
                Some(t1),
            )
        }

        fn check(&mut self) -> CheckResult {
            let mut events = std::mem::take(&mut self.events);
            events.sort_by_key(|e| e.time);
            for (i, e) in events.iter_mut().enumerate() {
                e.index = i as u64;
            }
            check_index(&History::from_ops(&events))
        }
    }

    fn count(r: &CheckResult, class: &str) -> u64 {
        r.details[format!("{class}_count")].as_u64().unwrap()
    }

    /// Key 1 holds 10, then 11; key 2 holds 20; queries see exactly that.
    fn clean() -> H {
        let mut h = H::default();
        h.write(1, 10, 0, OpType::Ok, 5)
            .write(2, 20, 1, OpType::Ok, 4)
            .query(10, 10, 6, json!([[1, 10]]), 8)
            .query(i64::MIN, i64::MAX, 9, json!([[1, 10], [2, 20]]), 12)
            .write(1, 11, 13, OpType::Ok, 15)
            .query(11, 11, 16, json!([[1, 11]]), 18)
            .query(10, 10, 16, json!([]), 18)
            .query(0, 100, 20, json!([[1, 11], [2, 20]]), 22);
        h
    }

    #[test]
    fn a_clean_history_is_valid() {
        let r = clean().check();
        assert_eq!(r.valid, Validity::Valid, "{}", r.summary);
        assert_eq!(r.details["expectations_checked"], json!(6));
    }

    #[test]
    fn a_missed_certain_value_is_lost() {
        let mut h = clean();
        // Key 2 certainly holds 20 throughout: the query misses it.
        h.query(20, 20, 30, json!([]), 32);
        let r = h.check();
        assert_eq!(r.valid, Validity::Invalid, "{}", r.summary);
        assert_eq!(count(&r, "lost"), 1);
        assert_eq!(r.details["lost"][0]["key"], json!(2));
        assert_eq!(r.failing_window, Some((1, 32)));
    }

    #[test]
    fn a_phantom_value_is_unexpected() {
        let mut h = clean();
        h.query(0, 100, 30, json!([[1, 11], [2, 20], [3, 42]]), 32);
        let r = h.check();
        assert_eq!(r.valid, Validity::Invalid, "{}", r.summary);
        assert_eq!(count(&r, "unexpected"), 1);
        assert_eq!(r.details["unexpected"][0]["reason"], json!("never written"));
    }

    #[test]
    fn a_value_under_another_key_or_from_the_future_is_unexpected() {
        let mut h = clean();
        h.query(20, 20, 30, json!([[1, 20], [2, 20]]), 32)
            .query(50, 50, 40, json!([[2, 50]]), 42)
            .write(2, 50, 43, OpType::Info, 50);
        let r = h.check();
        assert_eq!(count(&r, "unexpected"), 2, "{}", r.details);
        assert_eq!(count(&r, "lost"), 0);
    }

    #[test]
    fn a_failed_write_seen_is_aborted() {
        let mut h = clean();
        h.write(2, 21, 30, OpType::Fail, 31)
            .query(21, 21, 32, json!([[2, 21]]), 34);
        let r = h.check();
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(count(&r, "aborted"), 1);
    }

    #[test]
    fn an_overwritten_value_is_stale() {
        let mut h = clean();
        // 10 was overwritten by 11 (completed at 15) before this query.
        h.query(10, 10, 30, json!([[1, 10]]), 32);
        let r = h.check();
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(count(&r, "stale"), 1);
        assert_eq!(count(&r, "lost"), 0);
    }

    #[test]
    fn a_record_outside_the_range_or_without_the_bin_is_a_wrong_value() {
        let mut h = clean();
        h.query(20, 20, 30, json!([[1, 11], [2, 20]]), 32).query(
            0,
            100,
            30,
            json!([[1, 11], [2, null]]),
            32,
        );
        let r = h.check();
        assert_eq!(count(&r, "wrong_value"), 2, "{}", r.details);
        // The second query lacks (2, 20): a miss as well.
        assert_eq!(count(&r, "lost"), 1);
    }

    #[test]
    fn a_key_twice_is_duplicated() {
        let mut h = clean();
        h.query(0, 100, 30, json!([[1, 11], [2, 20], [2, 20]]), 32);
        let r = h.check();
        assert_eq!(count(&r, "duplicated"), 1);
    }

    #[test]
    fn doubt_and_concurrency_excuse_misses_and_old_values() {
        let mut h = H::default();
        h.write(1, 10, 0, OpType::Ok, 5)
            // In doubt before the query: it may land at any time, even after 12.
            .write(1, 11, 6, OpType::Info, 7)
            .write(1, 12, 8, OpType::Ok, 9)
            .query(12, 12, 10, json!([]), 11)
            .query(11, 11, 10, json!([[1, 11]]), 11)
            // Key 2: a write concurrent with the query may have replaced 20 already.
            .write(2, 20, 0, OpType::Ok, 5)
            .write(2, 21, 20, OpType::Ok, 40)
            .query(20, 20, 25, json!([]), 30)
            .query(21, 21, 25, json!([[2, 21]]), 30)
            // Key 3: writes concurrent with each other: either may be the later one.
            .write(3, 30, 0, OpType::Ok, 10)
            .write(3, 31, 5, OpType::Ok, 8)
            .query(30, 31, 20, json!([[3, 31]]), 21)
            .query(30, 31, 22, json!([[3, 30]]), 23)
            // Key 4: a write that never completed, invoked before the query.
            .write(4, 40, 0, OpType::Ok, 1)
            .pending_write(4, 41, 2)
            .query(40, 40, 50, json!([]), 51)
            // Key 5: a certain value gives the expectation that makes the verdict valid.
            .write(5, 50, 0, OpType::Ok, 1)
            .query(50, 50, 50, json!([[5, 50]]), 51);
        let r = h.check();
        assert_eq!(r.valid, Validity::Valid, "{} {}", r.summary, r.details);
        assert_eq!(r.details["expectations_checked"], json!(1));
    }

    #[test]
    fn nothing_certain_is_unknown_and_malformed_values_are_reported() {
        let mut h = H::default();
        h.write(1, 10, 0, OpType::Info, 5)
            .query(10, 10, 6, json!([]), 8);
        let r = h.check();
        assert_eq!(r.valid, Validity::Unknown, "{}", r.summary);
        let mut h = clean();
        h.write(3, 10, 30, OpType::Ok, 31);
        let r = h.check();
        assert_eq!(r.valid, Validity::Unknown, "{}", r.summary);
        assert_eq!(count(&r, "malformed"), 1);
        let mut h = H::default();
        let r = h.check();
        assert_eq!(r.valid, Validity::Unknown);
    }
}
