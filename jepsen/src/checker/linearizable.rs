//! Linearizability checking for registers: the Wing–Gong search with Lowe's memoization,
//! as in Porcupine and Knossos' `wgl`, applied per key (P-compositionality: a history over
//! independent keys is linearizable iff every key's sub-history is).
//!
//! # Algorithm
//!
//! Every operation contributes a *call* and a *return* entry; entries are sorted by time, calls
//! before returns at equal times (intervals are closed, so `[10,20]` and `[20,30]` are
//! concurrent — safe against equal clock readings), and kept in a doubly linked list. The search
//! walks the list from the head:
//!
//! - at a call entry it tries to linearize that operation now: if the model accepts it and the
//!   resulting configuration (set of linearized operations, model state) was never seen, it
//!   pushes a frame, removes the call and its return from the list ("lift") and restarts at the
//!   head;
//! - at a return entry the operation whose return this is was not linearized before its
//!   deadline, so the search backtracks: pop the last frame, put its entries back, try the
//!   next candidate after it;
//! - an empty list means every operation was linearized; an empty stack at a return entry means
//!   no linearization exists.
//!
//! The memo cache makes the search visit each (linearized set, state) pair once. The linearized
//! set is hashed incrementally (Zobrist: XOR of a random word per operation) and stored as
//! "every id below `prefix`, plus these few extras": ids follow call order, so the set is nearly
//! always a dense prefix and the key stays small even for long histories.
//!
//! Indeterminate (`info`) operations get a return at +∞ and the highest ids (so they do not
//! break the dense prefix); the model steps them with unknown output. Since an `info` operation
//! may always be placed after everything else, "never took effect" needs no special case.
//! `fail` operations and `info` reads are dropped: they certainly had no effect.
//!
//! # Budget
//!
//! The problem is NP-complete; the search checks a deadline and a cache-size cap and reports
//! `Unknown` when either is exceeded — never `Valid` for a history it did not finish.

use super::model::{Model, RegisterModel, RegisterOp};
use super::{apply_history_problems, as_int, count_ops, listed, narrowest, CheckResult, Validity};
use crate::history::{History, PairedOp};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits and parallelism of a linearizability check.
#[derive(Clone, Debug)]
pub struct LinearizabilityOptions {
    /// Wall-clock budget for the whole check (all keys). Keys not decided in time are
    /// `Unknown`.
    pub budget: Duration,
    /// Keys are checked on this many threads (at least 1).
    pub threads: usize,
    /// Per-key cap on memo-cache entries (each is roughly 50–100 bytes); exceeding it makes
    /// that key `Unknown` instead of exhausting memory.
    pub max_cache_entries: usize,
}

impl Default for LinearizabilityOptions {
    /// 10 s, up to 2 threads (the dev machines have 2 cores), 5 M cache entries per key.
    fn default() -> Self {
        LinearizabilityOptions {
            budget: Duration::from_secs(10),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(2)),
            max_cache_entries: 5_000_000,
        }
    }
}

/// One operation prepared for the search.
#[derive(Clone, Debug)]
pub struct LinOp<O> {
    /// Invocation time.
    pub call: u64,
    /// Completion time; `None` for an indeterminate operation (return at +∞).
    pub ret: Option<u64>,
    /// The operation as the model sees it.
    pub op: O,
}

/// Why a history is not linearizable: the furthest point (in time) the search reached.
#[derive(Clone, Debug)]
pub struct Failure<S> {
    /// Index (into the searched slice) of the operation that could not be linearized before its
    /// return, at the latest return any branch of the search reached: every operation that
    /// returned earlier is in the partial linearization.
    pub op: usize,
    /// The model state it was tried in.
    pub state: S,
    /// Number of operations in that longest partial linearization.
    pub depth: usize,
    /// Its last operations (indices into the searched slice), in linearization order.
    pub tail: Vec<usize>,
}

/// Result of [`search`].
#[derive(Clone, Debug)]
pub enum SearchOutcome<S> {
    /// A linearization exists.
    Linearizable,
    /// No linearization exists.
    NotLinearizable(Failure<S>),
    /// The search gave up (the reason says why).
    Unknown(String),
}

/// Effort spent by [`search`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SearchStats {
    /// Inner-loop iterations.
    pub iterations: u64,
    /// Memo-cache entries at the end.
    pub cache_entries: usize,
    /// Wall-clock time.
    pub elapsed: Duration,
}

/// How many operations of the partial linearization a [`Failure`] keeps.
const TAIL: usize = 16;
/// The deadline is read every this many iterations (and before the first).
const CLOCK_EVERY: u64 = 256;
const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;

/// FxHash-style hasher: the cache keys are already well mixed (Zobrist words), and SipHash
/// would dominate the inner loop.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

fn fx_hash<T: Hash>(value: &T) -> u64 {
    let mut h = FxHasher::default();
    value.hash(&mut h);
    h.finish()
}

/// SplitMix64: deterministic pseudo-random Zobrist words.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The set of linearized operation ids, with an incremental hash and its dense prefix.
struct LinSet {
    words: Vec<u64>,
    zobrist: Vec<u64>,
    /// Every id below `prefix` is in the set; `prefix` itself is not.
    prefix: usize,
    len: usize,
    hash: u64,
}

impl LinSet {
    fn new(n: usize) -> LinSet {
        LinSet {
            words: vec![0; n.div_ceil(64).max(1)],
            zobrist: (0..n as u64).map(|i| splitmix64(i ^ 0x5eed)).collect(),
            prefix: 0,
            len: 0,
            hash: 0,
        }
    }

    fn contains(&self, id: usize) -> bool {
        self.words[id / 64] & (1 << (id % 64)) != 0
    }

    fn insert(&mut self, id: usize) {
        self.words[id / 64] |= 1 << (id % 64);
        self.hash ^= self.zobrist[id];
        self.len += 1;
        if id == self.prefix {
            let mut p = self.prefix;
            loop {
                let w = p / 64;
                if w >= self.words.len() {
                    break;
                }
                let ones = (self.words[w] >> (p % 64)).trailing_ones() as usize;
                p += ones;
                if ones == 0 || !p.is_multiple_of(64) {
                    break;
                }
            }
            self.prefix = p.min(self.zobrist.len());
        }
    }

    fn remove(&mut self, id: usize) {
        self.words[id / 64] &= !(1 << (id % 64));
        self.hash ^= self.zobrist[id];
        self.len -= 1;
        if id < self.prefix {
            self.prefix = id;
        }
    }

    /// The ids above the prefix, ascending.
    fn extras(&self) -> Box<[u32]> {
        let want = self.len - self.prefix;
        let mut out = Vec::with_capacity(want);
        let mut w = self.prefix / 64;
        while out.len() < want && w < self.words.len() {
            let mut bits = self.words[w];
            if w == self.prefix / 64 {
                bits &= !((1u64 << (self.prefix % 64)) - 1);
            }
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                out.push((w * 64 + b) as u32);
                bits &= bits - 1;
            }
            w += 1;
        }
        out.into_boxed_slice()
    }

    /// Whether this set equals the one stored as (`prefix`, `extras`) — sizes must match too.
    fn equals(&self, prefix: u32, extras: &[u32]) -> bool {
        self.prefix == prefix as usize
            && self.len - self.prefix == extras.len()
            && extras.iter().all(|&e| self.contains(e as usize))
    }
}

struct CacheEntry<S> {
    prefix: u32,
    extras: Box<[u32]>,
    state: S,
}

/// Entries sharing one combined hash: the first inline, collisions in the vector.
type Bucket<S> = (CacheEntry<S>, Vec<CacheEntry<S>>);

/// Memo cache of explored configurations, keyed by a combined hash; entries with the same
/// hash share a bucket (the first inline, so the common case allocates once).
struct Cache<S> {
    buckets: HashMap<u64, Bucket<S>, BuildHasherDefault<FxHasher>>,
    len: usize,
}

impl<S: Eq + Hash> Cache<S> {
    fn new() -> Self {
        Cache {
            buckets: HashMap::default(),
            len: 0,
        }
    }

    /// Insert (set, state); false if it was already present (the configuration was explored).
    fn insert(&mut self, set: &LinSet, state: &S) -> bool
    where
        S: Clone,
    {
        let h = set.hash ^ fx_hash(state).rotate_left(17);
        let matches = |e: &CacheEntry<S>| e.state == *state && set.equals(e.prefix, &e.extras);
        match self.buckets.get_mut(&h) {
            Some((first, more)) => {
                if matches(first) || more.iter().any(matches) {
                    return false;
                }
                more.push(CacheEntry {
                    prefix: set.prefix as u32,
                    extras: set.extras(),
                    state: state.clone(),
                });
            }
            None => {
                let entry = CacheEntry {
                    prefix: set.prefix as u32,
                    extras: set.extras(),
                    state: state.clone(),
                };
                self.buckets.insert(h, (entry, Vec::new()));
            }
        }
        self.len += 1;
        true
    }
}

#[derive(Clone, Copy)]
struct Node {
    prev: u32,
    next: u32,
    id: u32,
    matching: u32,
    is_call: bool,
}

/// Remove a call entry and its return from the list.
fn lift(nodes: &mut [Node], call: u32) {
    let c = nodes[call as usize];
    nodes[c.prev as usize].next = c.next;
    if c.next != NIL {
        nodes[c.next as usize].prev = c.prev;
    }
    let r = nodes[c.matching as usize];
    nodes[r.prev as usize].next = r.next;
    if r.next != NIL {
        nodes[r.next as usize].prev = r.prev;
    }
}

/// Undo [`lift`] (the removed nodes still point at their old neighbours).
fn unlift(nodes: &mut [Node], call: u32) {
    let c = nodes[call as usize];
    let ret = c.matching;
    let r = nodes[ret as usize];
    nodes[r.prev as usize].next = ret;
    if r.next != NIL {
        nodes[r.next as usize].prev = ret;
    }
    nodes[c.prev as usize].next = call;
    if c.next != NIL {
        nodes[c.next as usize].prev = call;
    }
}

/// Decide whether `ops` (one object's operations) are linearizable with respect to `model`.
///
/// Gives up with [`SearchOutcome::Unknown`] once `deadline` passes (checked before the first
/// step, so a past deadline never yields a verdict from a search) or the cache holds
/// `max_cache_entries` configurations.
pub fn search<M: Model>(
    model: &M,
    ops: &[LinOp<M::Op>],
    deadline: Instant,
    max_cache_entries: usize,
) -> (SearchOutcome<M::State>, SearchStats) {
    let started = Instant::now();
    let mut stats = SearchStats::default();
    let n = ops.len();
    if n == 0 {
        return (SearchOutcome::Linearizable, stats);
    }
    if n >= (i32::MAX as usize) / 2 {
        return (
            SearchOutcome::Unknown(format!("{n} operations is too many for one key")),
            stats,
        );
    }
    // Ids: completed operations by call time, then indeterminate ones by call time.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (ops[i].ret.is_none(), ops[i].call, i));
    // Entries: (time, is_return, id). Returns of indeterminate operations sit at +∞.
    let mut entries: Vec<(u64, bool, u32)> = Vec::with_capacity(2 * n);
    for (id, &i) in order.iter().enumerate() {
        entries.push((ops[i].call, false, id as u32));
        entries.push((ops[i].ret.unwrap_or(u64::MAX), true, id as u32));
    }
    entries.sort_unstable();
    let mut nodes = vec![
        Node {
            prev: NIL,
            next: NIL,
            id: 0,
            matching: NIL,
            is_call: false,
        };
        2 * n + 1
    ];
    let mut call_node = vec![NIL; n];
    for (pos, &(_, is_return, id)) in entries.iter().enumerate() {
        let node = pos as u32 + 1;
        nodes[node as usize] = Node {
            prev: node - 1,
            next: if pos + 1 < entries.len() {
                node + 1
            } else {
                NIL
            },
            id,
            matching: NIL,
            is_call: !is_return,
        };
        if is_return {
            let c = call_node[id as usize];
            nodes[c as usize].matching = node;
            nodes[node as usize].matching = c;
        } else {
            call_node[id as usize] = node;
        }
    }
    nodes[HEAD as usize].next = 1;

    let mut set = LinSet::new(n);
    let mut cache: Cache<M::State> = Cache::new();
    let mut state = model.init();
    // Stack of (call node linearized, state before it).
    let mut calls: Vec<(u32, M::State)> = Vec::new();
    let mut best: Option<Failure<M::State>> = None;
    let mut best_at: Option<(u32, usize)> = None;
    let mut entry = nodes[HEAD as usize].next;
    let finish = |stats: &mut SearchStats, cache_len: usize| {
        stats.cache_entries = cache_len;
        stats.elapsed = started.elapsed();
    };

    while nodes[HEAD as usize].next != NIL {
        if stats.iterations % CLOCK_EVERY == 0 {
            if Instant::now() >= deadline {
                finish(&mut stats, cache.len);
                let reason = format!(
                    "time budget exhausted after {} steps ({} of {n} operations linearized at \
                     best)",
                    stats.iterations,
                    best.as_ref()
                        .map_or(calls.len(), |b| b.depth.max(calls.len()))
                );
                return (SearchOutcome::Unknown(reason), stats);
            }
            if cache.len >= max_cache_entries {
                finish(&mut stats, cache.len);
                let reason = format!("memo cache reached its cap of {max_cache_entries} entries");
                return (SearchOutcome::Unknown(reason), stats);
            }
        }
        stats.iterations += 1;
        if entry == NIL {
            // Cannot happen: the last entry is always a return. Refuse to guess.
            finish(&mut stats, cache.len);
            return (
                SearchOutcome::Unknown("internal error: ran off the entry list".into()),
                stats,
            );
        }
        let node = nodes[entry as usize];
        let id = node.id as usize;
        if node.is_call {
            if let Some(next_state) = model.step(&state, &ops[order[id]].op) {
                set.insert(id);
                if cache.insert(&set, &next_state) {
                    calls.push((entry, std::mem::replace(&mut state, next_state)));
                    lift(&mut nodes, entry);
                    entry = nodes[HEAD as usize].next;
                    continue;
                }
                set.remove(id);
            }
            entry = node.next;
        } else {
            // The operation returning here was not linearized in time: backtrack. Remember the
            // failure that got furthest in time (then deepest): every operation returning
            // earlier was linearized there, so it is the longest linearizable prefix.
            if best_at.is_none_or(|(at, depth)| (entry, calls.len()) > (at, depth)) {
                best_at = Some((entry, calls.len()));
                let tail = calls[calls.len().saturating_sub(TAIL)..]
                    .iter()
                    .map(|&(c, _)| order[nodes[c as usize].id as usize])
                    .collect();
                best = Some(Failure {
                    op: order[id],
                    state: state.clone(),
                    depth: calls.len(),
                    tail,
                });
            }
            let Some((call, previous)) = calls.pop() else {
                finish(&mut stats, cache.len);
                // `best` was set just above, so this never falls back.
                let failure = best.unwrap_or(Failure {
                    op: order[id],
                    state,
                    depth: 0,
                    tail: Vec::new(),
                });
                return (SearchOutcome::NotLinearizable(failure), stats);
            };
            set.remove(nodes[call as usize].id as usize);
            state = previous;
            unlift(&mut nodes, call);
            entry = nodes[call as usize].next;
        }
    }
    finish(&mut stats, cache.len);
    (SearchOutcome::Linearizable, stats)
}

/// Check a register history (`read`/`write`, and `cas` if present). Named `register`.
pub fn check_register(history: &History, opts: &LinearizabilityOptions) -> CheckResult {
    check_register_named("register", history, opts)
}

/// Check a compare-and-set register history (`read`/`write`/`cas`). Named `cas-register`.
pub fn check_cas_register(history: &History, opts: &LinearizabilityOptions) -> CheckResult {
    check_register_named("cas-register", history, opts)
}

const REGISTER_FS: [&str; 3] = ["read", "write", "cas"];

/// A key's operations in model form, with the history operations they came from.
struct KeyOps<'a> {
    key: u64,
    ops: Vec<LinOp<RegisterOp>>,
    sources: Vec<&'a PairedOp>,
    /// Indeterminate operations dropped by [`drop_unobserved_info`].
    dropped_info: usize,
}

enum KeyVerdict {
    Valid,
    Invalid { window: (u64, u64), details: Value },
    Unknown(String),
}

struct KeyResult {
    verdict: KeyVerdict,
    stats: SearchStats,
    dropped_info: usize,
}

/// Convert one key's history operations into model operations. `Err` names a malformed one.
fn prepare_key<'a>(key: u64, history_ops: &[&'a PairedOp]) -> Result<KeyOps<'a>, String> {
    let mut out = KeyOps {
        key,
        ops: Vec::new(),
        sources: Vec::new(),
        dropped_info: 0,
    };
    for &p in history_ops {
        if !REGISTER_FS.contains(&p.f.as_str()) || p.is_fail() {
            continue;
        }
        let bad = |what: &str| {
            format!(
                "index {}: {} {what}: {}",
                p.invoke_index,
                p.f,
                if p.f == "read" {
                    &p.value
                } else {
                    &p.invoke_value
                }
            )
        };
        let op = match p.f.as_str() {
            "read" if p.is_info() => continue,
            "read" => match &p.value {
                Value::Null => RegisterOp::Read(None),
                v => RegisterOp::Read(Some(as_int(v).ok_or_else(|| bad("value is not an int"))?)),
            },
            "write" => RegisterOp::Write(
                as_int(&p.invoke_value).ok_or_else(|| bad("value is not an int"))?,
            ),
            _ => {
                let pair = p
                    .invoke_value
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .and_then(|a| Some((as_int(&a[0])?, as_int(&a[1])?)))
                    .ok_or_else(|| bad("value is not [old, new] ints"))?;
                let (old, new) = pair;
                if p.is_ok() {
                    RegisterOp::Cas { old, new }
                } else {
                    RegisterOp::CasInfo { old, new }
                }
            }
        };
        let ret = if p.is_ok() { p.complete_time } else { None };
        out.ops.push(LinOp {
            call: p.invoke_time,
            ret,
            op,
        });
        out.sources.push(p);
    }
    drop_unobserved_info(&mut out);
    Ok(out)
}

/// Drop indeterminate writes and CAS whose written value nobody observes.
///
/// Such an operation never needs to take effect: take any linearization in which it does, at
/// point `p`, setting the register to `v`. Until the next write, every later operation sees
/// `v`; no read returns `v` and no CAS expects it, so the only operations there are `info`
/// CAS that did nothing — move them, and the dropped operation, to the very end (legal for
/// `info` operations, whose return is at +∞, and always legal for the model). What remains
/// is a linearization without it. Dropping them matters because an `info` operation stays
/// concurrent with the whole rest of the history, multiplying the search space; in the
/// register workload (unique values) most timed-out writes are never read.
///
/// Dropping one can make another droppable (an `info` CAS expecting `v` was `v`'s only
/// observer), hence the fixpoint. `ok` operations are never dropped: their real-time
/// constraints are what exposes lost writes.
fn drop_unobserved_info(k: &mut KeyOps) {
    loop {
        let observed: std::collections::HashSet<i64> = k
            .ops
            .iter()
            .filter_map(|o| match o.op {
                RegisterOp::Read(v) => v,
                RegisterOp::Cas { old, .. } | RegisterOp::CasInfo { old, .. } => Some(old),
                RegisterOp::Write(_) => None,
            })
            .collect();
        let droppable = |o: &LinOp<RegisterOp>| {
            o.ret.is_none() && written(&o.op).is_some_and(|v| !observed.contains(&v))
        };
        if !k.ops.iter().any(droppable) {
            return;
        }
        let keep: Vec<bool> = k.ops.iter().map(|o| !droppable(o)).collect();
        k.dropped_info += keep.iter().filter(|&&b| !b).count();
        let mut i = 0;
        k.ops.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        let mut i = 0;
        k.sources.retain(|_| {
            i += 1;
            keep[i - 1]
        });
    }
}

/// The value an operation leaves in the register when it takes effect, if any.
fn written(op: &RegisterOp) -> Option<i64> {
    match *op {
        RegisterOp::Write(v) => Some(v),
        RegisterOp::Cas { new, .. } | RegisterOp::CasInfo { new, .. } => Some(new),
        RegisterOp::Read(_) => None,
    }
}

/// Cheap pre-check: a read of `v` needs some write of `v` invoked before the read returned.
/// Catches garbage and future reads without a search (and within any budget).
fn impossible_read(k: &KeyOps) -> Option<KeyVerdict> {
    let mut first_write: HashMap<i64, u64> = HashMap::new();
    for op in &k.ops {
        if let Some(v) = written(&op.op) {
            let t = first_write.entry(v).or_insert(op.call);
            *t = (*t).min(op.call);
        }
    }
    let (i, op) = k
        .ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op.op {
            RegisterOp::Read(Some(v)) => {
                let ret = op.ret.unwrap_or(u64::MAX);
                (first_write.get(&v).is_none_or(|&t| t > ret)).then_some((i, op))
            }
            _ => None,
        })
        .min_by_key(|(_, op)| op.call)?;
    let src = k.sources[i];
    let RegisterOp::Read(Some(v)) = op.op else {
        return None;
    };
    let explanation = match first_write.get(&v) {
        None => format!("read {v}, a value no write or cas on this key ever wrote (garbage read)"),
        Some(t) => format!(
            "read {v}, which was first written by an operation invoked at {t}, after this read \
             completed (future read)"
        ),
    };
    let window = (op.call, op.ret.unwrap_or(op.call));
    Some(KeyVerdict::Invalid {
        window,
        details: json!({
            "key": k.key,
            "anomaly": "impossible-read",
            "explanation": explanation,
            "op": src.describe(),
            "window": [window.0, window.1],
        }),
    })
}

/// Explain a search failure: the operation that could not be linearized, the operations that
/// put the register in its state and that wrote the value the operation expected, and the
/// time window spanning them.
fn explain_failure(
    k: &KeyOps,
    failure: &Failure<Option<i64>>,
    model: &RegisterModel,
) -> KeyVerdict {
    let x = &k.ops[failure.op];
    let mut involved: Vec<usize> = vec![failure.op];
    // The last linearized operation that wrote the current state.
    if let Some(&w) = failure
        .tail
        .iter()
        .rev()
        .find(|&&i| written(&k.ops[i].op).is_some())
    {
        involved.push(w);
    }
    // The most recent writer of the value the failed operation expected.
    let expected = match x.op {
        RegisterOp::Read(v) => v,
        RegisterOp::Cas { old, .. } => Some(old),
        _ => None,
    };
    let x_end = x.ret.unwrap_or(u64::MAX);
    if let Some(v) = expected {
        if let Some((i, _)) = k
            .ops
            .iter()
            .enumerate()
            .filter(|(_, o)| written(&o.op) == Some(v) && o.call <= x_end)
            .max_by_key(|(_, o)| o.call)
        {
            involved.push(i);
        }
    }
    involved.sort_unstable();
    involved.dedup();
    let start = involved
        .iter()
        .map(|&i| k.ops[i].call)
        .min()
        .unwrap_or(x.call);
    let end = involved
        .iter()
        .map(|&i| k.ops[i].ret.unwrap_or(k.ops[i].call))
        .max()
        .unwrap_or(x.call)
        .max(x.ret.unwrap_or(x.call));
    let concurrent: Vec<Value> = k
        .ops
        .iter()
        .enumerate()
        .filter(|&(i, o)| i != failure.op && o.call <= x_end && o.ret.is_none_or(|r| r >= x.call))
        .map(|(i, _)| k.sources[i].describe())
        .collect();
    KeyVerdict::Invalid {
        window: (start, end),
        details: json!({
            "key": k.key,
            "anomaly": "not-linearizable",
            "explanation": model.explain(&failure.state, &x.op),
            "op": k.sources[failure.op].describe(),
            "state": failure.state,
            "longest_linearized_prefix": failure.depth,
            "last_linearized": failure.tail.iter().map(|&i| k.sources[i].describe()).collect::<Vec<_>>(),
            "involved": involved.iter().map(|&i| k.sources[i].describe()).collect::<Vec<_>>(),
            "concurrent": listed(&concurrent),
            "concurrent_count": concurrent.len(),
            "window": [start, end],
        }),
    }
}

fn check_key(k: &KeyOps, deadline: Instant, opts: &LinearizabilityOptions) -> KeyResult {
    if let Some(verdict) = impossible_read(k) {
        return KeyResult {
            verdict,
            stats: SearchStats::default(),
            dropped_info: k.dropped_info,
        };
    }
    let model = RegisterModel;
    let (outcome, stats) = search(&model, &k.ops, deadline, opts.max_cache_entries);
    let verdict = match outcome {
        SearchOutcome::Linearizable => KeyVerdict::Valid,
        SearchOutcome::Unknown(reason) => KeyVerdict::Unknown(reason),
        SearchOutcome::NotLinearizable(f) => explain_failure(k, &f, &model),
    };
    KeyResult {
        verdict,
        stats,
        dropped_info: k.dropped_info,
    }
}

fn check_register_named(
    name: &str,
    history: &History,
    opts: &LinearizabilityOptions,
) -> CheckResult {
    let started = Instant::now();
    let deadline = started
        .checked_add(opts.budget)
        .unwrap_or(started + Duration::from_secs(86_400 * 365));
    let op_counts = count_ops(&history.ops, |o| REGISTER_FS.contains(&o.f.as_str()));
    let ignored = history
        .ops
        .iter()
        .filter(|o| !REGISTER_FS.contains(&o.f.as_str()))
        .count();

    let mut results: BTreeMap<u64, KeyResult> = BTreeMap::new();
    let mut jobs: Vec<KeyOps> = Vec::new();
    for (key, ops) in history.by_key() {
        match prepare_key(key, &ops) {
            Ok(k) => jobs.push(k),
            Err(reason) => {
                results.insert(
                    key,
                    KeyResult {
                        verdict: KeyVerdict::Unknown(format!("malformed operation: {reason}")),
                        stats: SearchStats::default(),
                        dropped_info: 0,
                    },
                );
            }
        }
    }
    // Largest keys first, so one slow key does not start last.
    jobs.sort_by_key(|k| std::cmp::Reverse(k.ops.len()));
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(u64, KeyResult)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..opts.threads.max(1).min(jobs.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(k) = jobs.get(i) else { break };
                let r = check_key(k, deadline, opts);
                done.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((k.key, r));
            });
        }
    });
    results.extend(done.into_inner().unwrap_or_else(|e| e.into_inner()));

    let mut valid = Validity::Valid;
    let mut invalid_keys: Vec<Value> = Vec::new();
    let mut unknown_keys: Vec<Value> = Vec::new();
    let mut windows: Vec<(u64, u64, String)> = Vec::new();
    let (mut iterations, mut max_cache, mut dropped) = (0u64, 0usize, 0usize);
    let mut slowest: Option<(u64, Duration)> = None;
    for (&key, r) in &results {
        iterations += r.stats.iterations;
        dropped += r.dropped_info;
        max_cache = max_cache.max(r.stats.cache_entries);
        if slowest.is_none_or(|(_, d)| r.stats.elapsed > d) {
            slowest = Some((key, r.stats.elapsed));
        }
        match &r.verdict {
            KeyVerdict::Valid => {}
            KeyVerdict::Invalid { window, details } => {
                valid = valid.merge(Validity::Invalid);
                let explanation = details["explanation"].as_str().unwrap_or("").to_string();
                windows.push((window.0, window.1, format!("key {key}: {explanation}")));
                invalid_keys.push(details.clone());
            }
            KeyVerdict::Unknown(reason) => {
                valid = valid.merge(Validity::Unknown);
                unknown_keys.push(json!({"key": key, "reason": reason}));
            }
        }
    }
    let failing_window = narrowest(windows.iter().map(|&(a, b, _)| (a, b)));
    let keys = results.len();
    let summary = match valid {
        Validity::Valid => format!("all {keys} keys linearizable"),
        Validity::Invalid => {
            let first = windows
                .iter()
                .find(|&&(a, b, _)| Some((a, b)) == failing_window)
                .map_or(String::new(), |w| w.2.clone());
            format!(
                "{} of {keys} keys not linearizable; {first}",
                invalid_keys.len()
            )
        }
        Validity::Unknown => format!(
            "{} of {keys} keys undecided ({}); the rest linearizable",
            unknown_keys.len(),
            unknown_keys[0]["reason"].as_str().unwrap_or("")
        ),
    };
    let result = CheckResult {
        name: name.to_string(),
        valid,
        summary,
        details: json!({
            "keys": keys,
            "invalid_keys": invalid_keys,
            "unknown_keys": unknown_keys,
            "ignored_ops": ignored,
            "dropped_unobserved_info": dropped,
            "search_iterations": iterations,
            "max_cache_entries": max_cache,
            "slowest_key": slowest.map(|(k, d)| json!({"key": k, "ms": d.as_millis() as u64})),
            "elapsed_ms": started.elapsed().as_millis() as u64,
            "budget_ms": opts.budget.as_millis() as u64,
        }),
        failing_window,
        op_counts,
    };
    apply_history_problems(result, history)
}
