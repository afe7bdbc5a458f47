//! The checkers on hand-made histories whose verdict is known, plus randomized histories that
//! are linearizable by construction (and become non-linearizable after one targeted edit).
//!
//! Times are in nanoseconds but tests use small numbers; only their order matters.

use jepsen::checker::{
    check_append, check_availability, check_cas_register, check_counter, check_register, check_set,
    overall, CheckResult, LinearizabilityOptions, Validity,
};
use jepsen::history::{read_jsonl, write_jsonl, History, NemesisEvent, Op, OpType};
use jepsen::report::write_report;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Builds a history from whole operations; events are ordered by time when built.
#[derive(Default)]
struct Builder {
    events: Vec<Op>,
}

impl Builder {
    fn event(&mut self, process: u64, kind: OpType, f: &str, key: u64, value: Value, time: u64) {
        self.events.push(Op {
            index: 0,
            process,
            kind,
            f: f.into(),
            key,
            value,
            time,
            node: Some("n1".into()),
            error: (kind == OpType::Info || kind == OpType::Fail).then(|| "timeout".into()),
        });
    }

    /// An operation invoked at `t0` with `arg` that completed at `t1` as `kind` with `result`.
    #[allow(clippy::too_many_arguments)]
    fn op(
        &mut self,
        process: u64,
        f: &str,
        key: u64,
        arg: Value,
        t0: u64,
        kind: OpType,
        result: Value,
        t1: u64,
    ) -> &mut Self {
        self.event(process, OpType::Invoke, f, key, arg, t0);
        self.event(process, kind, f, key, result, t1);
        self
    }

    /// An operation that never completed.
    fn pending(&mut self, process: u64, f: &str, key: u64, arg: Value, t0: u64) -> &mut Self {
        self.event(process, OpType::Invoke, f, key, arg, t0);
        self
    }

    fn ok(&mut self, p: u64, f: &str, arg: Value, t0: u64, result: Value, t1: u64) -> &mut Self {
        self.op(p, f, 0, arg, t0, OpType::Ok, result, t1)
    }

    fn ops(&self) -> Vec<Op> {
        let mut ops = self.events.clone();
        ops.sort_by_key(|o| o.time); // stable: an invoke stays before its completion
        for (i, o) in ops.iter_mut().enumerate() {
            o.index = i as u64;
        }
        ops
    }

    fn history(&self) -> History {
        let h = History::from_ops(&self.ops());
        assert!(h.problems.is_empty(), "{:?}", h.problems);
        h
    }
}

fn opts() -> LinearizabilityOptions {
    LinearizabilityOptions {
        budget: Duration::from_secs(10),
        threads: 2,
        max_cache_entries: 1_000_000,
    }
}

fn assert_verdict(r: &CheckResult, want: Validity) {
    assert_eq!(
        r.valid,
        want,
        "{}: {}\n{}",
        r.name,
        r.summary,
        serde_json::to_string_pretty(&r.details).unwrap()
    );
    if want == Validity::Invalid {
        assert!(r.failing_window.is_some(), "invalid without a window");
    }
}

const NULL: Value = Value::Null;

// ---------------------------------------------------------------- register

#[test]
fn register_concurrent_with_info_write_that_shows_up_later_is_valid() {
    let mut b = Builder::default();
    b.ok(0, "write", json!(1), 0, json!(1), 10)
        .ok(1, "read", NULL, 5, json!(1), 15) // concurrent with the write
        .op(2, "write", 0, json!(2), 12, OpType::Info, NULL, 18) // timed out
        .ok(3, "read", NULL, 20, json!(1), 30) // info write not applied yet
        .ok(0, "write", json!(3), 25, json!(3), 35)
        .ok(1, "read", NULL, 32, json!(3), 38)
        .ok(1, "read", NULL, 40, json!(2), 50) // ... and now it has been
        .ok(4, "read", NULL, 45, json!(2), 55)
        .pending(5, "read", 0, NULL, 60); // never completed: no constraint
    let r = check_register(&b.history(), &opts());
    assert_verdict(&r, Validity::Valid);
    assert_eq!(r.op_counts["write"].info, 1);
    assert_eq!(r.op_counts["read"].ok, 5);
}

#[test]
fn register_stale_read_is_invalid() {
    let mut b = Builder::default();
    b.ok(0, "write", json!(1), 0, json!(1), 10)
        .ok(0, "write", json!(2), 20, json!(2), 30)
        .ok(1, "read", NULL, 40, json!(2), 50)
        .ok(2, "read", NULL, 60, json!(1), 70);
    let r = check_register(&b.history(), &opts());
    assert_verdict(&r, Validity::Invalid);
    let (start, end) = r.failing_window.unwrap();
    assert!(start <= 20 && end == 70, "window {start}..{end}");
    let bad = &r.details["invalid_keys"][0];
    assert_eq!(bad["op"]["invoke_time"], 60);
    assert!(bad["explanation"].as_str().unwrap().contains("holds 2"));
}

#[test]
fn register_lost_write_is_invalid() {
    // write 2 is acknowledged, yet every later read still shows 1.
    let mut b = Builder::default();
    b.ok(0, "write", json!(1), 0, json!(1), 10)
        .ok(1, "write", json!(2), 20, json!(2), 30)
        .ok(0, "read", NULL, 40, json!(1), 50)
        .ok(1, "read", NULL, 60, json!(1), 70);
    let r = check_register(&b.history(), &opts());
    assert_verdict(&r, Validity::Invalid);
    assert_eq!(r.details["invalid_keys"][0]["op"]["invoke_time"], 40);
}

#[test]
fn register_info_write_that_never_appears_is_valid() {
    let mut b = Builder::default();
    b.ok(0, "write", json!(1), 0, json!(1), 10)
        .op(1, "write", 0, json!(2), 20, OpType::Info, NULL, 30)
        .ok(2, "read", NULL, 40, json!(1), 50)
        .ok(3, "read", NULL, 60, json!(1), 70)
        .pending(4, "write", 0, json!(3), 80)
        .ok(2, "read", NULL, 90, json!(1), 100);
    assert_verdict(&check_register(&b.history(), &opts()), Validity::Valid);
}

#[test]
fn register_garbage_read_is_invalid_without_search() {
    let mut b = Builder::default();
    b.ok(0, "write", json!(1), 0, json!(1), 10)
        .ok(1, "read", NULL, 20, json!(99), 30);
    // Even with no budget: the pre-check needs no search.
    let o = LinearizabilityOptions {
        budget: Duration::ZERO,
        ..opts()
    };
    let r = check_register(&b.history(), &o);
    assert_verdict(&r, Validity::Invalid);
    assert_eq!(r.failing_window, Some((20, 30)));
}

#[test]
fn register_read_of_failed_write_is_invalid() {
    let mut b = Builder::default();
    b.op(0, "write", 0, json!(1), 0, OpType::Fail, NULL, 10)
        .ok(1, "read", NULL, 20, json!(1), 30);
    assert_verdict(&check_register(&b.history(), &opts()), Validity::Invalid);
}

#[test]
fn register_keys_are_independent() {
    // Each key alone is fine; mixing them up would not be.
    let mut b = Builder::default();
    b.op(0, "write", 1, json!(10), 0, OpType::Ok, json!(10), 10)
        .op(1, "write", 2, json!(20), 5, OpType::Ok, json!(20), 15)
        .op(0, "read", 1, NULL, 20, OpType::Ok, json!(10), 30)
        .op(1, "read", 2, NULL, 20, OpType::Ok, json!(20), 30)
        .op(2, "read", 3, NULL, 20, OpType::Ok, NULL, 30);
    let r = check_register(&b.history(), &opts());
    assert_verdict(&r, Validity::Valid);
    assert_eq!(r.details["keys"], 3);
}

#[test]
fn cas_register_duplicated_cas_is_invalid() {
    // Two CAS from the same old value both succeed: one of them overwrote the other.
    let mut b = Builder::default();
    b.ok(0, "write", json!(0), 0, json!(0), 10)
        .ok(1, "cas", json!([0, 1]), 20, json!([0, 1]), 40)
        .ok(2, "cas", json!([0, 2]), 25, json!([0, 2]), 45)
        .ok(0, "read", NULL, 50, json!(2), 60);
    let r = check_cas_register(&b.history(), &opts());
    assert_verdict(&r, Validity::Invalid);
    assert_eq!(r.name, "cas-register");
    let (start, end) = r.failing_window.unwrap();
    assert!(start <= 25 && end >= 40, "window {start}..{end}");
}

#[test]
fn cas_register_with_failed_and_info_cas_is_valid() {
    let mut b = Builder::default();
    b.ok(0, "write", json!(0), 0, json!(0), 10)
        .ok(1, "cas", json!([0, 1]), 20, json!([0, 1]), 30)
        .op(2, "cas", 0, json!([0, 3]), 22, OpType::Fail, NULL, 32) // value was not 0 any more
        .op(3, "cas", 0, json!([1, 2]), 40, OpType::Info, NULL, 50) // maybe applied
        .ok(0, "read", NULL, 45, json!(1), 55) // not yet
        .ok(1, "read", NULL, 60, json!(2), 70) // now it has
        .op(4, "cas", 0, json!([2, 4]), 80, OpType::Info, NULL, 90) // never applied
        .ok(0, "read", NULL, 100, json!(2), 110);
    assert_verdict(&check_cas_register(&b.history(), &opts()), Validity::Valid);
}

#[test]
fn cas_register_info_cas_cannot_apply_twice() {
    // An indeterminate CAS 0->1 explains one change to 1, not a return to 1 after 2.
    let mut b = Builder::default();
    b.ok(0, "write", json!(0), 0, json!(0), 10)
        .op(1, "cas", 0, json!([0, 1]), 20, OpType::Info, NULL, 30)
        .ok(0, "read", NULL, 40, json!(1), 50)
        .ok(0, "write", json!(2), 60, json!(2), 70)
        .ok(0, "read", NULL, 80, json!(1), 90);
    assert_verdict(
        &check_cas_register(&b.history(), &opts()),
        Validity::Invalid,
    );
}

#[test]
fn equal_timestamps_are_concurrent() {
    // Closed intervals: a read returning at 10 and a write invoked at 10 overlap, so the
    // read may observe the write.
    let mut b = Builder::default();
    b.ok(0, "write", json!(1), 10, json!(1), 20)
        .ok(1, "read", NULL, 0, json!(1), 10);
    assert_verdict(&check_register(&b.history(), &opts()), Validity::Valid);
}

// ---------------------------------------------------------------- budget

/// A register history with enough concurrency that the search must do real work.
fn busy_history(seed: u64) -> Vec<Op> {
    let mut rng = StdRng::seed_from_u64(seed);
    random_register_history(&mut rng, 300, 60, true).ops
}

#[test]
fn zero_budget_gives_unknown_never_valid() {
    let ops = busy_history(7);
    let history = History::from_ops(&ops);
    let zero = LinearizabilityOptions {
        budget: Duration::ZERO,
        ..opts()
    };
    let r = check_cas_register(&history, &zero);
    assert_verdict(&r, Validity::Unknown);
    assert!(r.summary.contains("budget"), "{}", r.summary);
    // The same history with a budget is valid (it was generated linearizable).
    assert_verdict(&check_cas_register(&history, &opts()), Validity::Valid);
}

#[test]
fn tiny_cache_cap_gives_unknown() {
    let history = History::from_ops(&busy_history(8));
    let capped = LinearizabilityOptions {
        max_cache_entries: 1,
        ..opts()
    };
    assert_verdict(&check_cas_register(&history, &capped), Validity::Unknown);
}

// ---------------------------------------------------------------- randomized register

struct Generated {
    ops: Vec<Op>,
    /// (invoke, complete, value written) of each ok write or ok CAS, in linearization order.
    ok_writers: Vec<(u64, u64, i64)>,
    /// (event index of the ok read completion, invoke, complete).
    ok_reads: Vec<(usize, u64, u64)>,
}

/// A history of a real sequential register: each op takes effect at a random point inside a
/// random interval around it, so the history is linearizable by construction. Writes and CAS
/// use fresh values; some ops end `fail` (not applied) or `info` (applied or not, completion
/// lost). `spread` controls the interval length, hence concurrency.
fn random_register_history(rng: &mut StdRng, n: usize, spread: u64, cas: bool) -> Generated {
    struct G {
        t0: u64,
        t1: u64,
        f: &'static str,
        arg: Value,
        kind: OpType,
        result: Value,
        completes: bool,
        writes: Option<i64>,
    }
    let mut state: Option<i64> = None;
    let mut fresh = 0i64;
    let mut written: Vec<i64> = Vec::new();
    let mut point = 1_000u64;
    let mut gen: Vec<G> = Vec::new();
    for _ in 0..n {
        point += rng.gen_range(1..=20);
        let t0 = point.saturating_sub(rng.gen_range(0..=spread));
        let t1 = point + rng.gen_range(0..=spread);
        let roll: f64 = rng.gen();
        let outcome: f64 = rng.gen();
        let g = if roll < 0.4 {
            if outcome < 0.05 {
                G {
                    t0,
                    t1,
                    f: "read",
                    arg: NULL,
                    kind: OpType::Info,
                    result: NULL,
                    completes: rng.gen(),
                    writes: None,
                }
            } else if outcome < 0.08 {
                G {
                    t0,
                    t1,
                    f: "read",
                    arg: NULL,
                    kind: OpType::Fail,
                    result: NULL,
                    completes: true,
                    writes: None,
                }
            } else {
                G {
                    t0,
                    t1,
                    f: "read",
                    arg: NULL,
                    kind: OpType::Ok,
                    result: json!(state),
                    completes: true,
                    writes: None,
                }
            }
        } else if roll < 0.7 || !cas {
            fresh += 1;
            let v = fresh;
            let (kind, applied) = if outcome < 0.05 {
                (OpType::Info, rng.gen_bool(0.5))
            } else if outcome < 0.08 {
                (OpType::Fail, false)
            } else {
                (OpType::Ok, true)
            };
            if applied {
                state = Some(v);
                written.push(v);
            }
            let result = if kind == OpType::Ok { json!(v) } else { NULL };
            let writes = (kind == OpType::Ok).then_some(v);
            G {
                t0,
                t1,
                f: "write",
                arg: json!(v),
                kind,
                result,
                completes: kind != OpType::Info || rng.gen(),
                writes,
            }
        } else {
            fresh += 1;
            let new = fresh;
            let old = match state {
                Some(s) if rng.gen_bool(0.6) => s,
                _ if !written.is_empty() => written[rng.gen_range(0..written.len())],
                _ => 0,
            };
            let matches = state == Some(old);
            let (kind, applied) = if outcome < 0.05 {
                (OpType::Info, matches && rng.gen_bool(0.5))
            } else if matches {
                (OpType::Ok, true)
            } else {
                (OpType::Fail, false)
            };
            if applied {
                state = Some(new);
                written.push(new);
            }
            let result = if kind == OpType::Ok {
                json!([old, new])
            } else {
                NULL
            };
            let writes = (kind == OpType::Ok).then_some(new);
            G {
                t0,
                t1,
                f: "cas",
                arg: json!([old, new]),
                kind,
                result,
                completes: kind != OpType::Info || rng.gen(),
                writes,
            }
        };
        gen.push(g);
    }
    let ok_writers: Vec<(u64, u64, i64)> = gen
        .iter()
        .filter_map(|g| g.writes.map(|v| (g.t0, g.t1, v)))
        .collect();
    // Processes in invocation order: reuse one that is idle, else start a new one. A process
    // whose op ended info (or never completed) is never reused, as in Jepsen.
    let mut order: Vec<usize> = (0..gen.len()).collect();
    order.sort_by_key(|&i| (gen[i].t0, i));
    let mut busy_until: Vec<u64> = Vec::new();
    let mut events: Vec<(u64, u8, Op)> = Vec::new();
    for &i in &order {
        let g = &gen[i];
        let p = match busy_until.iter().position(|&b| b < g.t0) {
            Some(p) => p,
            None => {
                busy_until.push(0);
                busy_until.len() - 1
            }
        };
        busy_until[p] = if g.kind == OpType::Info || !g.completes {
            u64::MAX
        } else {
            g.t1
        };
        let mk = |kind, value, time| Op {
            index: 0,
            process: p as u64,
            kind,
            f: g.f.into(),
            key: 0,
            value,
            time,
            node: None,
            error: None,
        };
        events.push((g.t0, 0, mk(OpType::Invoke, g.arg.clone(), g.t0)));
        if g.completes {
            events.push((g.t1, 1, mk(g.kind, g.result.clone(), g.t1)));
        }
    }
    events.sort_by_key(|e| (e.0, e.1));
    let mut ops: Vec<Op> = events.into_iter().map(|e| e.2).collect();
    let mut ok_reads = Vec::new();
    let mut invoked_at = std::collections::HashMap::new();
    for (i, o) in ops.iter_mut().enumerate() {
        o.index = i as u64;
        if o.kind == OpType::Invoke {
            invoked_at.insert(o.process, o.time);
        } else if o.kind == OpType::Ok && o.f == "read" {
            ok_reads.push((i, invoked_at[&o.process], o.time));
        }
    }
    Generated {
        ops,
        ok_writers,
        ok_reads,
    }
}

/// Make one ok read return a value that was certainly overwritten before it began: some ok
/// writer W of `v`, then an ok writer W2 invoked after W completed and completed before the
/// read began. Values are unique, so no linearization can show `v` to that read.
fn corrupt_one_read(g: &mut Generated, rng: &mut StdRng) -> Option<(u64, u64)> {
    let mut reads = g.ok_reads.clone();
    for i in (1..reads.len()).rev() {
        reads.swap(i, rng.gen_range(0..=i));
    }
    for (event, r0, r1) in reads {
        let stale = g.ok_writers.iter().find_map(|&(w0, w1, v)| {
            let _ = w0;
            g.ok_writers
                .iter()
                .any(|&(x0, x1, _)| x0 > w1 && x1 < r0)
                .then_some(v)
        });
        if let Some(v) = stale {
            g.ops[event].value = json!(v);
            return Some((r0, r1));
        }
    }
    None
}

#[test]
fn randomized_linearizable_histories_pass_and_one_corrupted_read_fails() {
    let mut rng = StdRng::seed_from_u64(0x5eed_1234);
    let started = Instant::now();
    let (mut corrupted, mut culprit_found) = (0, 0);
    for round in 0..60 {
        let cas = round % 2 == 1;
        let n = rng.gen_range(20..=200);
        let spread = rng.gen_range(0..=80);
        let mut g = random_register_history(&mut rng, n, spread, cas);
        let check = |ops: &[Op]| {
            let h = History::from_ops(ops);
            assert!(h.problems.is_empty(), "{:?}", h.problems);
            check_cas_register(&h, &opts())
        };
        let r = check(&g.ops);
        assert_verdict(&r, Validity::Valid);
        let Some((r0, r1)) = corrupt_one_read(&mut g, &mut rng) else {
            continue;
        };
        corrupted += 1;
        let r = check(&g.ops);
        assert_verdict(&r, Validity::Invalid);
        let (a, b) = r.failing_window.unwrap();
        assert!(
            a <= r0 && b >= r1,
            "round {round}: window {a}..{b} misses read {r0}..{r1}"
        );
        let op = &r.details["invalid_keys"][0]["op"];
        if op["invoke_time"] == r0 && op["f"] == "read" {
            culprit_found += 1;
        }
    }
    assert!(
        corrupted >= 40,
        "only {corrupted} histories could be corrupted"
    );
    assert_eq!(
        culprit_found, corrupted,
        "the failing op is the corrupted read"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// (call, ret — `None` for info —, f, argument, result) of a register operation.
type RegOp<'a> = (u64, Option<u64>, &'a str, Value, Value);

/// Brute force: is there an order of the (non-failed, non-info-read) operations that respects
/// real time (`a` before `b` if `a` returned before `b` was invoked) and the register's
/// semantics? Indeterminate operations may be left out (= placed at the very end).
fn brute_force_linearizable(ops: &[RegOp<'_>]) -> bool {
    // (call, ret, f, arg, result) with fail ops and info reads already removed.
    fn step(state: Option<i64>, op: &RegOp<'_>) -> Option<Option<i64>> {
        let (_, ret, f, arg, result) = op;
        match *f {
            "read" => (result.as_i64() == state).then_some(state),
            "write" => Some(arg.as_i64()),
            _ => {
                let (old, new) = (arg[0].as_i64(), arg[1].as_i64());
                if ret.is_some() {
                    (state == old).then_some(new)
                } else {
                    Some(if state == old { new } else { state })
                }
            }
        }
    }
    fn go(ops: &[RegOp<'_>], placed: &mut Vec<bool>, state: Option<i64>) -> bool {
        if ops
            .iter()
            .zip(placed.iter())
            .all(|(o, &p)| p || o.1.is_none())
        {
            return true;
        }
        for i in 0..ops.len() {
            if placed[i] {
                continue;
            }
            // Every op that returned before this one was invoked must already be placed.
            let ready = ops
                .iter()
                .enumerate()
                .all(|(j, o)| placed[j] || j == i || o.1.is_none_or(|r| r >= ops[i].0));
            if !ready {
                continue;
            }
            if let Some(next) = step(state, &ops[i]) {
                placed[i] = true;
                if go(ops, placed, next) {
                    return true;
                }
                placed[i] = false;
            }
        }
        false
    }
    go(ops, &mut vec![false; ops.len()], None)
}

#[test]
fn wgl_agrees_with_brute_force_on_small_random_histories() {
    const ROUNDS: usize = 3_000;
    const MAX_N: usize = 7;
    let mut rng = StdRng::seed_from_u64(0xb00f);
    let (mut valid, mut invalid) = (0, 0);
    for _ in 0..ROUNDS {
        let mut b = Builder::default();
        let mut model_ops = Vec::new();
        let n = rng.gen_range(1..=MAX_N) as u64;
        // Each op on its own process: any overlap pattern is possible.
        for p in 0..n {
            let t0 = rng.gen_range(0..40u64);
            let t1 = t0 + rng.gen_range(0..15u64);
            let v = json!(rng.gen_range(0..3));
            let (f, arg, result) = match rng.gen_range(0..3) {
                0 => ("read", NULL, if rng.gen_bool(0.2) { NULL } else { v }),
                1 => ("write", v.clone(), v),
                _ => {
                    let x = json!([rng.gen_range(0..3), rng.gen_range(0..3)]);
                    ("cas", x.clone(), x)
                }
            };
            let kind = match rng.gen_range(0..10) {
                0 => OpType::Fail,
                1 | 2 => OpType::Info,
                _ => OpType::Ok,
            };
            if kind == OpType::Info && rng.gen_bool(0.5) {
                b.pending(p, f, 0, arg.clone(), t0);
            } else {
                b.op(
                    p,
                    f,
                    0,
                    arg.clone(),
                    t0,
                    kind,
                    if kind == OpType::Ok {
                        result.clone()
                    } else {
                        NULL
                    },
                    t1,
                );
            }
            let dropped = kind == OpType::Fail || (kind == OpType::Info && f == "read");
            if !dropped {
                let ret = (kind == OpType::Ok).then_some(t1);
                model_ops.push((t0, ret, f, arg, result));
            }
        }
        let expected = brute_force_linearizable(&model_ops);
        let r = check_cas_register(&b.history(), &opts());
        let want = if expected {
            Validity::Valid
        } else {
            Validity::Invalid
        };
        assert_eq!(r.valid, want, "history {:?}\n{}", b.ops(), r.summary);
        if expected {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    // Both outcomes must be well represented for the comparison to mean something.
    eprintln!("brute force agreed on {valid} valid and {invalid} invalid histories");
    assert!(
        valid > 500 && invalid > 500,
        "valid {valid}, invalid {invalid}"
    );
}

// ---------------------------------------------------------------- append

#[test]
fn append_valid_with_concurrency_and_info() {
    let mut b = Builder::default();
    b.ok(0, "append", json!(1), 0, json!(1), 10)
        .ok(1, "append", json!(2), 5, json!(2), 15)
        .ok(2, "read", NULL, 8, json!([1]), 12)
        .op(3, "append", 0, json!(3), 16, OpType::Info, NULL, 40) // shows up later
        .op(4, "append", 0, json!(4), 17, OpType::Info, NULL, 41) // never shows up
        .op(5, "append", 0, json!(5), 18, OpType::Fail, NULL, 19)
        .ok(2, "read", NULL, 20, json!([1, 2]), 30)
        .ok(0, "read", NULL, 50, json!([1, 2, 3]), 60)
        .ok(1, "read", NULL, 70, json!([1, 2, 3]), 80);
    let r = check_append(&b.history());
    assert_verdict(&r, Validity::Valid);
    assert_eq!(r.op_counts["append"].info, 2);
}

#[test]
fn append_reordered_reads_are_invalid() {
    let mut b = Builder::default();
    b.ok(0, "append", json!(1), 0, json!(1), 10)
        .ok(1, "append", json!(2), 0, json!(2), 10)
        .ok(0, "read", NULL, 20, json!([1, 2]), 30)
        .ok(1, "read", NULL, 40, json!([2, 1]), 50);
    let r = check_append(&b.history());
    assert_verdict(&r, Validity::Invalid);
    assert_eq!(r.details["incompatible-order_count"], 1);
    assert_eq!(r.failing_window, Some((20, 50)));
}

#[test]
fn append_lost_element_is_invalid() {
    let mut b = Builder::default();
    b.ok(0, "append", json!(1), 0, json!(1), 10)
        .ok(1, "append", json!(2), 20, json!(2), 30)
        .ok(0, "read", NULL, 40, json!([1]), 50);
    let r = check_append(&b.history());
    assert_verdict(&r, Validity::Invalid);
    assert_eq!(r.details["lost_count"], 1);
    assert_eq!(r.details["lost"][0]["element"], 2);
    assert_eq!(r.failing_window, Some((20, 50)));
}

#[test]
fn append_duplicate_unexpected_and_aborted_are_invalid() {
    let mut b = Builder::default();
    b.op(0, "append", 1, json!(1), 0, OpType::Ok, json!(1), 10)
        .op(0, "read", 1, NULL, 20, OpType::Ok, json!([1, 1]), 30)
        .op(1, "append", 2, json!(5), 0, OpType::Fail, NULL, 10)
        .op(1, "read", 2, NULL, 20, OpType::Ok, json!([5, 77]), 30);
    let r = check_append(&b.history());
    assert_verdict(&r, Validity::Invalid);
    assert_eq!(r.details["duplicated_count"], 1);
    assert_eq!(r.details["unexpected_count"], 1);
    assert_eq!(r.details["aborted_count"], 1);
}

#[test]
fn append_non_monotonic_read_is_invalid() {
    // Both reads are prefixes of one order, but the later one goes back in time.
    let mut b = Builder::default();
    b.ok(0, "append", json!(1), 0, json!(1), 10)
        .op(1, "append", 0, json!(2), 0, OpType::Info, NULL, 10)
        .ok(0, "read", NULL, 20, json!([1, 2]), 30)
        .ok(1, "read", NULL, 40, json!([1]), 50)
        .ok(0, "read", NULL, 60, json!([1, 2]), 70);
    let r = check_append(&b.history());
    assert_verdict(&r, Validity::Invalid);
    assert_eq!(r.details["realtime"][0]["anomaly"], "non-monotonic-read");
    assert_eq!(r.failing_window, Some((20, 50)));
}

#[test]
fn append_stale_read_is_invalid() {
    let mut b = Builder::default();
    b.ok(0, "append", json!(1), 0, json!(1), 10)
        .ok(0, "append", json!(2), 20, json!(2), 30)
        .ok(1, "read", NULL, 40, json!([1]), 50)
        .ok(1, "read", NULL, 60, json!([1, 2]), 70);
    let r = check_append(&b.history());
    assert_verdict(&r, Validity::Invalid);
    assert_eq!(r.details["realtime"][0]["anomaly"], "stale-read");
}

#[test]
fn append_skipped_acknowledged_element_is_invalid_without_a_later_read() {
    // Found by the brute-force comparison: 2 was acknowledged before 6 was invoked, and a read
    // shows 6 without 2. No read began after 2 was acknowledged, yet the history is invalid.
    let mut b = Builder::default();
    b.ok(0, "append", json!(4), 6, NULL, 20)
        .ok(1, "append", json!(2), 9, NULL, 20)
        .ok(2, "read", NULL, 16, json!([4, 6]), 29)
        .op(3, "append", 0, json!(6), 22, OpType::Info, NULL, 35);
    let r = check_append(&b.history());
    assert_verdict(&r, Validity::Invalid);
    assert_eq!(
        r.details["realtime"][0]["anomaly"],
        "append-order-inversion"
    );
    assert_eq!(r.failing_window, Some((9, 35)));
}

#[test]
fn append_without_final_read_is_unknown() {
    let mut b = Builder::default();
    b.ok(0, "append", json!(1), 0, json!(1), 10)
        .op(1, "read", 0, NULL, 20, OpType::Fail, NULL, 30);
    assert_verdict(&check_append(&b.history()), Validity::Unknown);
}

/// (call, ret — `None` for info —, `Some(element)` for an append or `None` for a read,
/// read result) of a list operation.
type AppendOp = (u64, Option<u64>, Option<i64>, Vec<i64>);

/// Brute force for list-append: an order of the ok appends, the ok reads and any subset of the
/// info appends that respects real time and in which every read returns the list so far.
fn brute_force_append(ops: &[AppendOp]) -> bool {
    // (call, ret, Some(element) for an append / None for a read, read result)
    fn go(ops: &[AppendOp], placed: &mut Vec<bool>, list: &mut Vec<i64>) -> bool {
        if ops
            .iter()
            .zip(placed.iter())
            .all(|(o, &p)| p || o.1.is_none())
        {
            return true;
        }
        for i in 0..ops.len() {
            if placed[i] {
                continue;
            }
            let ready = ops
                .iter()
                .enumerate()
                .all(|(j, o)| placed[j] || j == i || o.1.is_none_or(|r| r >= ops[i].0));
            if !ready {
                continue;
            }
            match ops[i].2 {
                Some(e) => {
                    placed[i] = true;
                    list.push(e);
                    if go(ops, placed, list) {
                        return true;
                    }
                    list.pop();
                    placed[i] = false;
                }
                None if ops[i].3 == *list => {
                    placed[i] = true;
                    if go(ops, placed, list) {
                        return true;
                    }
                    placed[i] = false;
                }
                None => {}
            }
        }
        false
    }
    go(ops, &mut vec![false; ops.len()], &mut Vec::new())
}

#[test]
fn append_checker_agrees_with_brute_force_on_small_random_histories() {
    let mut rng = StdRng::seed_from_u64(0xa11e);
    let (mut valid, mut invalid, mut unknown) = (0, 0, 0);
    for _ in 0..3_000 {
        // Simulate a correct list: each op takes effect at a random point of its interval.
        struct G {
            t0: u64,
            t1: u64,
            point: u64,
            elem: Option<i64>,
            kind: OpType,
            applied: bool,
            result: Vec<i64>,
        }
        let n = rng.gen_range(1..=7);
        let mut gen: Vec<G> = (0..n)
            .map(|i| {
                let t0 = rng.gen_range(0..40u64);
                let t1 = t0 + rng.gen_range(0..15u64);
                let elem = rng.gen_bool(0.55).then_some(i as i64 + 1);
                let kind = match rng.gen_range(0..10) {
                    0 => OpType::Fail,
                    1 | 2 if elem.is_some() => OpType::Info,
                    _ => OpType::Ok,
                };
                let applied = kind == OpType::Ok || (kind == OpType::Info && rng.gen_bool(0.5));
                G {
                    t0,
                    t1,
                    point: rng.gen_range(t0..=t1),
                    elem,
                    kind,
                    applied,
                    result: Vec::new(),
                }
            })
            .collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (gen[i].point, i));
        let mut list = Vec::new();
        for i in order {
            match gen[i].elem {
                Some(e) if gen[i].applied => list.push(e),
                Some(_) => {}
                None => gen[i].result = list.clone(),
            }
        }
        // Half the time, damage one ok read.
        let reads: Vec<usize> = (0..n)
            .filter(|&i| gen[i].elem.is_none() && gen[i].kind == OpType::Ok)
            .collect();
        if !reads.is_empty() && rng.gen_bool(0.5) {
            let r = &mut gen[reads[rng.gen_range(0..reads.len())]].result;
            match rng.gen_range(0..4) {
                0 => {
                    r.pop();
                }
                1 if r.len() >= 2 => r.swap(0, 1),
                2 => r.push(rng.gen_range(1..=n as i64)),
                _ => r.insert(0, rng.gen_range(1..=n as i64)),
            }
        }
        let mut b = Builder::default();
        let mut model_ops = Vec::new();
        for (p, g) in gen.iter().enumerate() {
            let (f, arg) = match g.elem {
                Some(e) => ("append", json!(e)),
                None => ("read", NULL),
            };
            let result = if g.kind == OpType::Ok && g.elem.is_none() {
                json!(g.result)
            } else {
                NULL
            };
            b.op(p as u64, f, 0, arg, g.t0, g.kind, result, g.t1);
            if g.kind == OpType::Fail {
                continue;
            }
            let ret = (g.kind == OpType::Ok).then_some(g.t1);
            model_ops.push((g.t0, ret, g.elem, g.result.clone()));
        }
        let expected = brute_force_append(&model_ops);
        let r = check_append(&b.history());
        match (expected, r.valid) {
            (true, Validity::Valid) => valid += 1,
            (false, Validity::Invalid) => invalid += 1,
            // Linearizable, but an acknowledged append was never confirmed by a later read.
            (true, Validity::Unknown) => unknown += 1,
            (e, v) => panic!(
                "brute force says {e}, checker {v:?}: {}\n{:?}",
                r.summary,
                b.ops()
            ),
        }
    }
    eprintln!("append: agreed on {valid} valid, {invalid} invalid; {unknown} linearizable but unconfirmed");
    assert!(
        valid > 300 && invalid > 300,
        "valid {valid}, invalid {invalid}"
    );
}

// ---------------------------------------------------------------- set

#[test]
fn set_valid_with_info_adds_present_or_absent() {
    let mut b = Builder::default();
    b.ok(0, "add", json!(1), 0, json!(1), 10)
        .op(1, "add", 0, json!(2), 0, OpType::Info, NULL, 10)
        .op(2, "add", 0, json!(3), 0, OpType::Info, NULL, 10)
        .op(3, "add", 0, json!(4), 0, OpType::Fail, NULL, 10)
        .ok(0, "read", NULL, 20, json!([2, 1]), 30);
    let r = check_set(&b.history());
    assert_verdict(&r, Validity::Valid);
    assert_eq!(r.details["recovered_count"], 1);
}

#[test]
fn set_lost_unexpected_and_duplicate_are_each_invalid() {
    let base = |b: &mut Builder| {
        b.ok(0, "add", json!(1), 0, json!(1), 10)
            .ok(1, "add", json!(2), 0, json!(2), 10);
    };
    for (read, class) in [
        (json!([1]), "lost"),
        (json!([1, 2, 3]), "unexpected"),
        (json!([1, 2, 2]), "duplicated"),
    ] {
        let mut b = Builder::default();
        base(&mut b);
        b.ok(0, "read", NULL, 20, read, 30);
        let r = check_set(&b.history());
        assert_verdict(&r, Validity::Invalid);
        assert_eq!(r.details[format!("{class}_count")], 1, "{class}");
        assert_eq!(r.failing_window.unwrap().1, 30);
    }
}

#[test]
fn set_element_that_vanishes_is_invalid() {
    // An info add was seen, then disappeared: data loss even though it was never acknowledged.
    let mut b = Builder::default();
    b.op(0, "add", 0, json!(1), 0, OpType::Info, NULL, 10)
        .ok(1, "read", NULL, 20, json!([1]), 30)
        .ok(1, "read", NULL, 40, json!([]), 50);
    let r = check_set(&b.history());
    assert_verdict(&r, Validity::Invalid);
    assert_eq!(r.details["vanished_count"], 1);
}

// ---------------------------------------------------------------- counter

#[test]
fn counter_within_bounds_is_valid() {
    let mut b = Builder::default();
    b.ok(0, "incr", json!(1), 0, json!(1), 10)
        .ok(1, "incr", json!(1), 5, json!(1), 15)
        .op(2, "incr", 0, json!(2), 6, OpType::Info, NULL, 16)
        .op(3, "incr", 0, json!(5), 7, OpType::Fail, NULL, 17)
        .ok(0, "read", NULL, 12, json!(1), 14) // first incr done, second concurrent
        .ok(4, "read", NULL, 20, json!(4), 30) // 1 + 1 + info 2
        .ok(0, "read", NULL, 40, json!(2), 50); // info not applied after all? fine: [2, 4]
    let r = check_counter(&b.history());
    assert_verdict(&r, Validity::Valid);
    assert_eq!(r.details["final_reads"][0]["lower"], 2);
    assert_eq!(r.details["final_reads"][0]["upper"], 4);
}

#[test]
fn counter_outside_bounds_is_invalid() {
    for (value, why) in [
        (json!(1), "lost increment"),
        (json!(7), "double-applied increment"),
    ] {
        let mut b = Builder::default();
        b.ok(0, "incr", json!(1), 0, json!(1), 10)
            .ok(1, "incr", json!(1), 5, json!(1), 15)
            .op(2, "incr", 0, json!(3), 6, OpType::Info, NULL, 16)
            .ok(0, "read", NULL, 40, value, 50);
        let r = check_counter(&b.history());
        assert_verdict(&r, Validity::Invalid);
        assert_eq!(r.failing_window, Some((40, 50)), "{why}");
    }
}

#[test]
fn counter_intermediate_read_bounded_by_what_was_invoked() {
    // The read completes before the second increment is invoked, so it cannot see it.
    let mut b = Builder::default();
    b.ok(0, "incr", json!(1), 0, json!(1), 10)
        .ok(1, "read", NULL, 20, json!(2), 30)
        .ok(0, "incr", json!(1), 40, json!(1), 50)
        .ok(1, "read", NULL, 60, json!(2), 70);
    let r = check_counter(&b.history());
    assert_verdict(&r, Validity::Invalid);
    assert_eq!(r.failing_window, Some((20, 30)));
}

#[test]
fn counter_negative_deltas() {
    let build = |value: i64| {
        let mut b = Builder::default();
        b.ok(0, "incr", json!(3), 0, json!(3), 10)
            .op(1, "incr", 0, json!(-2), 5, OpType::Info, NULL, 15)
            .ok(0, "read", NULL, 20, json!(value), 30);
        check_counter(&b.history())
    };
    assert_verdict(&build(3), Validity::Valid);
    assert_verdict(&build(1), Validity::Valid);
    assert_verdict(&build(0), Validity::Invalid);
    assert_verdict(&build(4), Validity::Invalid);
}

// ---------------------------------------------------------------- availability

#[test]
fn availability_counts_per_nemesis_interval() {
    let mut b = Builder::default();
    b.ok(0, "write", json!(1), 0, json!(1), 10)
        .op(1, "write", 0, json!(2), 100, OpType::Info, NULL, 150)
        .op(2, "read", 0, NULL, 110, OpType::Fail, NULL, 120)
        .ok(0, "read", NULL, 210, json!(1), 220);
    let nemesis = [NemesisEvent {
        start: 100,
        end: 200,
        kind: "partition".into(),
        detail: "majority".into(),
    }];
    let r = check_availability(&b.history(), &nemesis);
    assert_verdict(&r, Validity::Valid);
    let i = &r.details["intervals"][0];
    assert_eq!(
        (i["ok"].as_u64(), i["fail"].as_u64(), i["info"].as_u64()),
        (Some(0), Some(1), Some(1))
    );
    assert_eq!(i["recovery_ns"], 20);
    // nothing succeeded during the whole interval
    assert_eq!(i["longest_stall_ns"], 100);
    assert_eq!(r.details["outside_faults"]["ok"], 2);
}

#[test]
fn availability_reports_the_longest_stall_of_a_roster_change() {
    let mut b = Builder::default();
    b.ok(0, "write", json!(1), 0, json!(1), 110)
        .ok(0, "write", json!(2), 120, json!(2), 170)
        .ok(0, "read", NULL, 180, json!(2), 190);
    let nemesis = [NemesisEvent {
        start: 100,
        end: 200,
        kind: "membership".into(),
        detail: "member-add".into(),
    }];
    let r = check_availability(&b.history(), &nemesis);
    assert_verdict(&r, Validity::Valid);
    // successes at 110, 170, 190: the longest stretch without one is 110..170
    assert_eq!(r.details["intervals"][0]["longest_stall_ns"], 60);
    assert!(
        r.summary
            .contains("longest stall during a roster change: 0.00s"),
        "{}",
        r.summary
    );
}

#[test]
fn availability_without_any_ok_is_unknown() {
    let mut b = Builder::default();
    b.op(0, "write", 0, json!(1), 0, OpType::Info, NULL, 10);
    assert_verdict(&check_availability(&b.history(), &[]), Validity::Unknown);
}

// ---------------------------------------------------------------- history & malformed input

#[test]
fn malformed_histories_give_unknown_with_a_reason() {
    // A completion without an invocation.
    let mut ops = Builder::default();
    ops.ok(0, "write", json!(1), 0, json!(1), 10);
    let mut raw = ops.ops();
    raw.push(Op {
        index: 2,
        process: 9,
        kind: OpType::Ok,
        f: "read".into(),
        key: 0,
        value: json!(5),
        time: 20,
        node: None,
        error: None,
    });
    let h = History::from_ops(&raw);
    assert_eq!(h.problems.len(), 1);
    for r in [
        check_register(&h, &opts()),
        check_append(&h),
        check_set(&h),
        check_counter(&h),
    ] {
        assert_eq!(r.valid, Validity::Unknown, "{}", r.name);
        assert!(r.summary.contains("malformed history"), "{}", r.summary);
    }

    // Values of the wrong shape: no panic, Unknown for that key.
    let mut b = Builder::default();
    b.ok(0, "write", json!("one"), 0, json!("one"), 10).ok(
        1,
        "read",
        NULL,
        20,
        json!({"x": 1}),
        30,
    );
    let h = b.history();
    for r in [
        check_register(&h, &opts()),
        check_cas_register(&h, &opts()),
        check_counter(&h),
    ] {
        assert_eq!(r.valid, Validity::Unknown, "{}: {}", r.name, r.summary);
    }
    let mut b = Builder::default();
    b.ok(0, "append", json!([1]), 0, NULL, 10)
        .ok(1, "add", json!(1.5), 0, NULL, 10)
        .ok(1, "read", NULL, 20, json!("x"), 30);
    assert_eq!(check_append(&b.history()).valid, Validity::Unknown);
    assert_eq!(check_set(&b.history()).valid, Validity::Unknown);
}

#[test]
fn history_pairs_invocations_and_treats_missing_completions_as_info() {
    let mut b = Builder::default();
    b.pending(0, "write", 0, json!(1), 0)
        .ok(1, "read", NULL, 5, json!(1), 10)
        .pending(0, "write", 0, json!(2), 20); // re-invoked without completing: a warning
    let h = History::from_ops(&b.ops());
    assert!(h.problems.is_empty());
    assert_eq!(h.warnings.len(), 1);
    assert_eq!(h.ops.len(), 3);
    assert!(h
        .ops
        .iter()
        .filter(|o| o.f == "write")
        .all(|o| o.kind == OpType::Info));
    assert_eq!(h.ops[1].latency(), Some(5));
    assert_eq!(h.end_time(), 20);
}

#[test]
fn jsonl_round_trip_uses_jepsen_field_names() {
    let mut b = Builder::default();
    b.ok(0, "write", json!(1), 0, json!(1), 10).op(
        1,
        "cas",
        3,
        json!([1, 2]),
        5,
        OpType::Info,
        NULL,
        15,
    );
    let mut ops = b.ops();
    ops[0].node = None;
    let dir = std::env::temp_dir().join(format!("jepsen-jsonl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("history.jsonl");
    write_jsonl(&path, &ops).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "invoke");
    assert!(first.get("node").is_none() && first.get("error").is_none());
    assert_eq!(read_jsonl(&path).unwrap(), ops);
    std::fs::write(&path, format!("{text}not json\n")).unwrap();
    let err = read_jsonl(&path).unwrap_err();
    assert!(err.to_string().contains(":5:"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------- report

#[test]
fn report_writes_results_summary_and_self_contained_html() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut g = random_register_history(&mut rng, 200, 50, true);
    // Spread the history over a few seconds so the throughput plot has buckets.
    for o in &mut g.ops {
        o.time *= 1_000_000;
    }
    let h = History::from_ops(&g.ops);
    let nemesis = vec![NemesisEvent {
        start: 500_000_000,
        end: 900_000_000,
        kind: "partition".into(),
        detail: "<n1> | n2 n3".into(),
    }];
    let results = vec![
        check_cas_register(&h, &opts()),
        check_availability(&h, &nemesis),
    ];
    let dir = std::env::temp_dir().join(format!("jepsen-report-{}", std::process::id()));
    write_report(
        &dir,
        &g.ops,
        &nemesis,
        &results,
        json!({"name": "cas-register smoke", "seed": 3}),
    )
    .unwrap();
    let results_json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results_json["valid"], json!(overall(&results)));
    assert_eq!(results_json["meta"]["seed"], 3);
    assert_eq!(results_json["checkers"].as_array().unwrap().len(), 2);
    let summary = std::fs::read_to_string(dir.join("summary.txt")).unwrap();
    assert!(summary.contains("cas-register") && summary.contains("operations: "));
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(html.contains("#E9DCA0"), "partition band colour");
    assert!(html.contains("&lt;n1&gt;"), "escaped detail");
    assert!(
        !html.contains("<script") && !html.contains("http://")
            || html.contains("http://www.w3.org/2000/svg")
    );
    assert!(!html.contains("https://"));
    // Nothing at all: still a readable report, no panic.
    write_report(&dir, &[], &[], &[], Value::Null).unwrap();
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(
        html.contains("UNKNOWN") && html.contains("<svg"),
        "no checker is not a pass"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
