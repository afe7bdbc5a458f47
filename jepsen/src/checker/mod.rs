//! Checkers: each turns a [`History`] into a [`CheckResult`].
//!
//! | checker | workload | module |
//! |---|---|---|
//! | linearizability (Wing–Gong/Lowe search, per key) | register, cas-register | [`linearizable`] |
//! | prefix order, lost/duplicate/unexpected elements, real-time order | append | [`append`] |
//! | lost/unexpected/duplicate elements in the final read | set | [`set`] |
//! | reads within the bounds implied by increments | counter | [`counter`] |
//! | namespaces, sets and writes survive or vanish as acknowledged changes demand | catalog | [`catalog`] |
//! | index queries miss no certain value, return no phantom, stale or out-of-range record | index | [`index`] |
//! | ok/fail/info per nemesis interval | any | [`availability`] |
//!
//! Verdicts compose as in Jepsen: `Invalid` beats `Unknown` beats `Valid` ([`Validity::merge`]).
//! A checker answers `Unknown` rather than `Valid` whenever it could not look at everything it
//! needed (time budget, missing final read, malformed history), because a vacuous or partial
//! pass is the most dangerous kind of test result.
//!
//! Each checker looks only at the `f`s of its workload and ignores the others, so a history
//! should hold one workload (the harness runs one per test).

pub mod append;
pub mod availability;
pub mod catalog;
pub mod counter;
pub mod index;
pub mod linearizable;
pub mod model;
pub mod set;

use crate::history::{History, OpType, PairedOp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub use append::check_append;
pub use availability::check_availability;
pub use catalog::check_catalog;
pub use counter::check_counter;
pub use index::check_index;
pub use linearizable::{check_cas_register, check_register, LinearizabilityOptions};
pub use set::check_set;

/// A checker's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validity {
    /// Every property held on everything that was checked.
    Valid,
    /// An anomaly was found (sound: the history cannot come from a correct system).
    Invalid,
    /// The checker could not decide (budget exceeded, missing data, malformed history).
    Unknown,
}

impl Validity {
    /// Combine two verdicts: `Invalid` > `Unknown` > `Valid` (Jepsen's priority).
    pub fn merge(self, other: Validity) -> Validity {
        use Validity::*;
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => Valid,
        }
    }

    /// Lower-case name (`"valid"`, `"invalid"`, `"unknown"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::Unknown => "unknown",
        }
    }
}

/// Number of operations of one `f` by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

impl OpCounts {
    /// Count one operation with outcome `kind` (`Invoke` is counted as `info`).
    pub fn add(&mut self, kind: OpType) {
        match kind {
            OpType::Ok => self.ok += 1,
            OpType::Fail => self.fail += 1,
            OpType::Info | OpType::Invoke => self.info += 1,
        }
    }

    /// ok + fail + info.
    pub fn total(&self) -> u64 {
        self.ok + self.fail + self.info
    }
}

/// The result of one checker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Checker name (`register`, `cas-register`, `append`, `set`, `counter`, `availability`).
    pub name: String,
    /// The verdict.
    pub valid: Validity,
    /// One or two human sentences: what was found, or why the checker could not decide.
    pub summary: String,
    /// Machine-readable evidence (anomalies with the operations involved, per-key results).
    pub details: Value,
    /// Time range (ns since test start) of the smallest failing sub-history identified: the
    /// operations involved in the anomaly. `None` when valid or when no anomaly was located.
    pub failing_window: Option<(u64, u64)>,
    /// ok/fail/info per `f`, over the operations this checker looked at.
    pub op_counts: BTreeMap<String, OpCounts>,
}

/// The combined verdict of several checkers; `Unknown` when there are none, since "nothing
/// was checked" must not read as a pass.
pub fn overall(results: &[CheckResult]) -> Validity {
    if results.is_empty() {
        return Validity::Unknown;
    }
    results
        .iter()
        .fold(Validity::Valid, |acc, r| acc.merge(r.valid))
}

/// ok/fail/info per `f` over the operations for which `include` holds.
pub fn count_ops<'a>(
    ops: impl IntoIterator<Item = &'a PairedOp>,
    include: impl Fn(&PairedOp) -> bool,
) -> BTreeMap<String, OpCounts> {
    let mut counts: BTreeMap<String, OpCounts> = BTreeMap::new();
    for op in ops {
        if include(op) {
            counts.entry(op.f.clone()).or_default().add(op.kind);
        }
    }
    counts
}

/// If the history itself is malformed, turn a verdict into `Unknown` and say why. The
/// verdict the checker would have given is kept in `details.verdict_ignoring_problems`, so a
/// harness bug is visible without being mistaken for a database verdict.
pub(crate) fn apply_history_problems(mut result: CheckResult, history: &History) -> CheckResult {
    if history.problems.is_empty() {
        if !history.warnings.is_empty() {
            if let Value::Object(map) = &mut result.details {
                map.insert("history_warnings".into(), json!(history.warnings));
            }
        }
        return result;
    }
    let original = result.valid;
    result.valid = Validity::Unknown;
    result.summary = format!(
        "malformed history ({} problem(s), first: {}); checker alone would say {}: {}",
        history.problems.len(),
        history.problems[0],
        original.as_str(),
        result.summary
    );
    let mut details = match result.details {
        Value::Object(map) => map,
        other => {
            let mut m = serde_json::Map::new();
            m.insert("checker".into(), other);
            m
        }
    };
    details.insert("history_problems".into(), json!(history.problems));
    details.insert("history_warnings".into(), json!(history.warnings));
    details.insert("verdict_ignoring_problems".into(), json!(original));
    result.details = Value::Object(details);
    result
}

/// The smallest (shortest) of several candidate windows.
pub(crate) fn narrowest(windows: impl IntoIterator<Item = (u64, u64)>) -> Option<(u64, u64)> {
    windows
        .into_iter()
        .min_by_key(|&(a, b)| (b.saturating_sub(a), a))
}

/// Parse an integer history value, rejecting floats, strings and out-of-range numbers.
pub(crate) fn as_int(v: &Value) -> Option<i64> {
    v.as_i64()
}

/// Parse a list of integers (a list read), or `None` if the value is not one.
pub(crate) fn as_int_list(v: &Value) -> Option<Vec<i64>> {
    v.as_array()?.iter().map(as_int).collect()
}

/// At most this many anomalies of one class are listed in `details`; the rest are counted.
pub(crate) const MAX_LISTED: usize = 20;

/// Keep the first [`MAX_LISTED`] items of a list for `details`.
pub(crate) fn listed<T: Clone>(items: &[T]) -> Vec<T> {
    items.iter().take(MAX_LISTED).cloned().collect()
}

/// The time range covered by `ops`, from the first invocation to the last completion.
pub(crate) fn span(ops: &[&PairedOp]) -> (u64, u64) {
    let start = ops.iter().map(|o| o.invoke_time).min().unwrap_or(0);
    let end = ops
        .iter()
        .map(|o| o.complete_time.unwrap_or(o.invoke_time))
        .max()
        .unwrap_or(start);
    (start, end)
}

/// The verdict of a grow-only collection checker (append, set): invalid if any anomaly class
/// is non-empty, unknown if only malformed keys or unconfirmed elements stop it from
/// deciding, valid otherwise; details list every class with its count.
pub(crate) struct ElementVerdict<'a> {
    pub name: &'static str,
    /// What was checked, opening every summary ("3 keys, 40 reads").
    pub scope: String,
    pub classes: &'a [(&'a str, &'a Vec<Value>)],
    pub unconfirmed: &'a Vec<Value>,
    pub malformed: &'a Vec<Value>,
    /// Completes "… and N acknowledged " in the unknown summary.
    pub unconfirmed_is: &'static str,
    /// The valid summary after the scope.
    pub valid_summary: String,
    pub windows: &'a [(u64, u64)],
    /// Checker-specific details; the classes are added to them.
    pub details: serde_json::Map<String, Value>,
}

impl ElementVerdict<'_> {
    pub(crate) fn into_result(
        self,
        op_counts: BTreeMap<String, OpCounts>,
        history: &History,
    ) -> CheckResult {
        let scope = &self.scope;
        let found: Vec<String> = self
            .classes
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(name, v)| format!("{} {name}", v.len()))
            .collect();
        let (valid, summary) = if !found.is_empty() {
            (Validity::Invalid, format!("{scope}: {}", found.join(", ")))
        } else if !self.malformed.is_empty() || !self.unconfirmed.is_empty() {
            (
                Validity::Unknown,
                format!(
                    "{scope}: no anomaly, but {} malformed key(s) and {} acknowledged {}",
                    self.malformed.len(),
                    self.unconfirmed.len(),
                    self.unconfirmed_is
                ),
            )
        } else {
            (Validity::Valid, format!("{scope}: {}", self.valid_summary))
        };
        let failing_window = if valid == Validity::Invalid {
            narrowest(self.windows.iter().copied())
        } else {
            None
        };
        let mut details = self.details;
        for (name, v) in self.classes.iter().chain(
            [
                ("unconfirmed", self.unconfirmed),
                ("malformed", self.malformed),
            ]
            .iter(),
        ) {
            details.insert(format!("{name}_count"), json!(v.len()));
            details.insert(name.to_string(), json!(listed(v)));
        }
        let result = CheckResult {
            name: self.name.into(),
            valid,
            summary,
            details: Value::Object(details),
            failing_window,
            op_counts,
        };
        apply_history_problems(result, history)
    }
}

/// Anomalies of single elements in the reads of a grow-only collection (an append list or
/// a set), shared by both checkers: elements never attempted, from attempts that certainly
/// failed, or present twice in one read.
#[derive(Default)]
pub(crate) struct ElementAnomalies {
    pub unexpected: Vec<Value>,
    pub aborted: Vec<Value>,
    pub duplicated: Vec<Value>,
    pub windows: Vec<(u64, u64)>,
}

/// Check every read's elements against the attempts that added them (`label` names the
/// attempt in the report: "append" or "add").
pub(crate) fn element_anomalies(
    key: u64,
    reads: &[(&PairedOp, Vec<i64>)],
    attempts: &std::collections::HashMap<i64, &PairedOp>,
    label: &str,
) -> ElementAnomalies {
    let mut out = ElementAnomalies::default();
    for (r, list) in reads {
        let mut seen = std::collections::HashSet::new();
        let mut dups: Vec<i64> = Vec::new();
        for &e in list {
            if !seen.insert(e) && !dups.contains(&e) {
                dups.push(e);
            }
            match attempts.get(&e) {
                None => {
                    out.unexpected
                        .push(json!({"key": key, "element": e, "read": r.describe()}));
                    out.windows.push(span(&[r]));
                }
                Some(a) if a.is_fail() => {
                    let mut v = json!({"key": key, "element": e, "read": r.describe()});
                    v[label] = a.describe();
                    out.aborted.push(v);
                    out.windows.push(span(&[a, r]));
                }
                _ => {}
            }
        }
        if !dups.is_empty() {
            out.duplicated
                .push(json!({"key": key, "elements": dups, "read": r.describe()}));
            out.windows.push(span(&[r]));
        }
    }
    out
}
