//! The operation history: Jepsen's op model, stored as JSON Lines.
//!
//! Every client operation appears twice: once as an `invoke` (stamped just before the request
//! is sent) and once as its completion (`ok`, `fail` or `info`, stamped just after the answer
//! arrived or the client gave up). The field names are Jepsen's, so a history can be converted
//! to EDN and cross-checked with Jepsen's own checkers.
//!
//! Semantics of the completion types (these drive every checker):
//! - `ok`: the operation took effect, exactly once, somewhere between invoke and completion.
//! - `fail`: the operation certainly did not take effect.
//! - `info`: unknown; it may take effect at any time after its invocation, or never. An invoke
//!   with no completion at all (the harness stopped first) means the same thing.
//!
//! [`History`] pairs invocations with completions once, so each checker works on whole
//! operations ([`PairedOp`]) and never on raw events.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

/// The four event types of a Jepsen history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The client is about to send the request.
    Invoke,
    /// The operation took effect.
    Ok,
    /// The operation certainly did not take effect.
    Fail,
    /// The outcome is unknown: it may take effect at any later time, or never.
    Info,
}

impl OpType {
    /// Lower-case name as written in the history (`"ok"`, `"info"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }
}

/// One history event (one line of `history.jsonl`).
///
/// Value conventions per workload (invoke / ok completion):
/// - register: `read` → `null` / int or `null` (never written); `write` → int (unique per key).
/// - cas-register: as register, plus `cas` → `[old, new]` (ok = swapped; fail = the value was
///   not `old`).
/// - counter: `incr` → int delta; `read` → `null` / int.
/// - append: `append` → int element (unique per key); `read` → `null` / list of ints in order.
/// - set: `add` → int element; `read` → `null` / list of ints (order irrelevant).
/// - index: `write` → int (unique in the whole run); `query` (key 0) → `{"lo","hi"}` /
///   sorted list of `[key, value]` pairs (see [`crate::workload::index`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history; strictly increasing.
    pub index: u64,
    /// Logical client process; at most one outstanding operation per process.
    pub process: u64,
    /// Event type.
    #[serde(rename = "type")]
    pub kind: OpType,
    /// The function: `read`, `write`, `cas`, `incr`, `append` or `add`.
    pub f: String,
    /// The record key; histories are checked independently per key.
    pub key: u64,
    /// Argument (invoke) or result (completion), see the type documentation.
    pub value: Value,
    /// Nanoseconds since the test started, from one monotonic clock in the harness.
    pub time: u64,
    /// The server the client talked to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node: Option<String>,
    /// Why the operation failed or is indeterminate.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// A fault the nemesis held active from `start` to `end` (nanoseconds since the test start).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NemesisEvent {
    /// When the fault started.
    pub start: u64,
    /// When the fault was healed.
    pub end: u64,
    /// Fault class (`partition`, `kill`, `pause`, `clock`, `packet`, ...); picks the plot colour.
    pub kind: String,
    /// Free-form description (targets, grudge, ...).
    pub detail: String,
}

fn write_lines<T: Serialize>(path: &Path, items: &[T]) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    for item in items {
        serde_json::to_writer(&mut out, item)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<Vec<T>> {
    let input = BufReader::new(File::open(path)?);
    let mut items = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let item = serde_json::from_str(&line).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}:{}: {e}", path.display(), n + 1),
            )
        })?;
        items.push(item);
    }
    Ok(items)
}

/// Write a history as JSON Lines, one [`Op`] per line, in slice order.
pub fn write_jsonl(path: impl AsRef<Path>, ops: &[Op]) -> io::Result<()> {
    write_lines(path.as_ref(), ops)
}

/// Read a JSON Lines history. Blank lines are skipped; a malformed line is an
/// `InvalidData` error naming the file and line.
pub fn read_jsonl(path: impl AsRef<Path>) -> io::Result<Vec<Op>> {
    read_lines(path.as_ref())
}

/// Write nemesis intervals as JSON Lines (one [`NemesisEvent`] per line).
pub fn write_nemesis_jsonl(path: impl AsRef<Path>, events: &[NemesisEvent]) -> io::Result<()> {
    write_lines(path.as_ref(), events)
}

/// Read nemesis intervals written by [`write_nemesis_jsonl`].
pub fn read_nemesis_jsonl(path: impl AsRef<Path>) -> io::Result<Vec<NemesisEvent>> {
    read_lines(path.as_ref())
}

/// An invocation together with its completion.
#[derive(Clone, Debug, PartialEq)]
pub struct PairedOp {
    /// Logical client process.
    pub process: u64,
    /// The function.
    pub f: String,
    /// The record key.
    pub key: u64,
    /// Outcome: `Ok`, `Fail` or `Info` (never `Invoke`); `Info` when there was no completion.
    pub kind: OpType,
    /// The invocation's value: the operation's argument (write value, `[old, new]`, delta,
    /// element) and `null` for reads.
    pub invoke_value: Value,
    /// The completion's value (a read's result); the invocation's value when there was no
    /// completion.
    pub value: Value,
    /// Invocation time (ns).
    pub invoke_time: u64,
    /// Completion time (ns); `None` if the history ended first.
    pub complete_time: Option<u64>,
    /// The invocation's `index`.
    pub invoke_index: u64,
    /// The completion's `index`, if any.
    pub complete_index: Option<u64>,
    /// Server the client talked to (completion's, else invocation's).
    pub node: Option<String>,
    /// Error of the completion, if any.
    pub error: Option<String>,
}

impl PairedOp {
    /// Completion time minus invocation time, when the operation completed.
    pub fn latency(&self) -> Option<u64> {
        self.complete_time
            .map(|c| c.saturating_sub(self.invoke_time))
    }

    /// Whether the operation is known to have taken effect.
    pub fn is_ok(&self) -> bool {
        self.kind == OpType::Ok
    }

    /// Whether the operation certainly did not take effect.
    pub fn is_fail(&self) -> bool {
        self.kind == OpType::Fail
    }

    /// Whether the outcome is unknown.
    pub fn is_info(&self) -> bool {
        self.kind == OpType::Info
    }

    /// A compact JSON description (for checker details and reports).
    pub fn describe(&self) -> Value {
        serde_json::json!({
            "process": self.process,
            "f": self.f,
            "key": self.key,
            "type": self.kind,
            "invoke_value": self.invoke_value,
            "value": self.value,
            "invoke_time": self.invoke_time,
            "complete_time": self.complete_time,
            "index": self.invoke_index,
            "node": self.node,
            "error": self.error,
        })
    }
}

/// A history with every invocation paired to its completion.
///
/// Pairing rule: an invocation's completion is the next event of the same process. A
/// process that invokes again without completing leaves its previous invocation as `Info`
/// (a warning: the harness should not do that). Structural errors that could make a checker
/// wrong — a completion without an invocation, a completion whose `f` or key differs from its
/// invocation's, a completion earlier than its invocation — are recorded in
/// [`History::problems`]; every checker then answers `Unknown`, because a harness bug must
/// never be reported as a database verdict (or hidden behind a pass).
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Operations in invocation order.
    pub ops: Vec<PairedOp>,
    /// Defects that make any verdict untrustworthy.
    pub problems: Vec<String>,
    /// Oddities that do not affect soundness (non-increasing indices, re-invocations).
    pub warnings: Vec<String>,
}

/// At most this many problems/warnings are kept as text; the rest are counted.
const MAX_MESSAGES: usize = 50;

fn note(list: &mut Vec<String>, dropped: &mut usize, msg: String) {
    if list.len() < MAX_MESSAGES {
        list.push(msg);
    } else {
        *dropped += 1;
    }
}

impl History {
    /// Pair the events of `ops` (in slice order, which is the order the harness observed).
    pub fn from_ops(ops: &[Op]) -> History {
        let mut history = History::default();
        let (mut dropped_problems, mut dropped_warnings) = (0usize, 0usize);
        // process -> index in history.ops of its outstanding invocation
        let mut pending: BTreeMap<u64, usize> = BTreeMap::new();
        let mut last_index: Option<u64> = None;
        let mut last_time = 0u64;
        for op in ops {
            if let Some(prev) = last_index {
                if op.index <= prev {
                    note(
                        &mut history.warnings,
                        &mut dropped_warnings,
                        format!("index {} follows index {prev}", op.index),
                    );
                }
            }
            last_index = Some(op.index);
            if op.time < last_time {
                note(
                    &mut history.warnings,
                    &mut dropped_warnings,
                    format!(
                        "index {}: time {} is earlier than the previous event's {last_time}",
                        op.index, op.time
                    ),
                );
            }
            last_time = last_time.max(op.time);
            match op.kind {
                OpType::Invoke => {
                    if let Some(prev) = pending.remove(&op.process) {
                        let p = &history.ops[prev];
                        note(
                            &mut history.warnings,
                            &mut dropped_warnings,
                            format!(
                                "process {} invoked index {} before completing index {}; \
                                 treating the earlier op as info",
                                op.process, op.index, p.invoke_index
                            ),
                        );
                    }
                    pending.insert(op.process, history.ops.len());
                    history.ops.push(PairedOp {
                        process: op.process,
                        f: op.f.clone(),
                        key: op.key,
                        kind: OpType::Info,
                        invoke_value: op.value.clone(),
                        value: op.value.clone(),
                        invoke_time: op.time,
                        complete_time: None,
                        invoke_index: op.index,
                        complete_index: None,
                        node: op.node.clone(),
                        error: None,
                    });
                }
                OpType::Ok | OpType::Fail | OpType::Info => {
                    let Some(i) = pending.remove(&op.process) else {
                        note(
                            &mut history.problems,
                            &mut dropped_problems,
                            format!(
                                "index {}: {} completion of {} by process {} without an invocation",
                                op.index,
                                op.kind.as_str(),
                                op.f,
                                op.process
                            ),
                        );
                        continue;
                    };
                    let p = &mut history.ops[i];
                    if p.f != op.f || p.key != op.key {
                        note(
                            &mut history.problems,
                            &mut dropped_problems,
                            format!(
                                "index {}: completion ({} key {}) does not match invocation \
                                 index {} ({} key {})",
                                op.index, op.f, op.key, p.invoke_index, p.f, p.key
                            ),
                        );
                        continue;
                    }
                    if op.time < p.invoke_time {
                        note(
                            &mut history.problems,
                            &mut dropped_problems,
                            format!(
                                "index {}: completes at {} before its invocation (index {}) at {}",
                                op.index, op.time, p.invoke_index, p.invoke_time
                            ),
                        );
                        continue;
                    }
                    p.kind = op.kind;
                    p.value = op.value.clone();
                    p.complete_time = Some(op.time);
                    p.complete_index = Some(op.index);
                    if op.node.is_some() {
                        p.node = op.node.clone();
                    }
                    p.error = op.error.clone();
                }
            }
        }
        if dropped_problems > 0 {
            history
                .problems
                .push(format!("... and {dropped_problems} more problems"));
        }
        if dropped_warnings > 0 {
            history
                .warnings
                .push(format!("... and {dropped_warnings} more warnings"));
        }
        history
    }

    /// Operations grouped by key, each group in invocation order.
    pub fn by_key(&self) -> BTreeMap<u64, Vec<&PairedOp>> {
        let mut map: BTreeMap<u64, Vec<&PairedOp>> = BTreeMap::new();
        for op in &self.ops {
            map.entry(op.key).or_default().push(op);
        }
        map
    }

    /// The latest time of any event in the history (0 if empty).
    pub fn end_time(&self) -> u64 {
        self.ops
            .iter()
            .map(|o| o.complete_time.unwrap_or(o.invoke_time))
            .max()
            .unwrap_or(0)
    }
}
