//! Sequential specifications for the linearizability search.
//!
//! A [`Model`] says which single-threaded executions are legal: starting from
//! [`Model::init`], applying operations one at a time with [`Model::step`]. The search in
//! [`super::linearizable`] looks for an order of the history's operations that respects real
//! time and that the model accepts.
//!
//! Indeterminate (`info`) operations appear in the model with their output unknown, so
//! `step` must accept every outcome the operation could have had. Because the search may
//! always place such an operation after everything else (its return is at +∞), "took effect
//! at the very end" covers "never took effect".

use std::fmt::Debug;
use std::hash::Hash;

/// A sequential object specification.
pub trait Model {
    /// The object's state. Hashed and compared by the search's memo cache, so keep it small.
    type State: Clone + Eq + Hash + Debug + Send;
    /// An operation with its input and (if known) its observed output.
    type Op: Clone + Debug + Send + Sync;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Apply `op` to `state`: the next state if `op` (with its observed output) is legal in
    /// `state`, `None` if not. Called in the search's inner loop, so it must not allocate.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;

    /// Why `op` is illegal in `state`, for reports (not called in the inner loop).
    fn explain(&self, state: &Self::State, op: &Self::Op) -> String;
}

/// One register operation as the model sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegisterOp {
    /// A successful read that returned this value (`None` = never written).
    Read(Option<i64>),
    /// A write (ok or info: a write cannot fail once applied, so both step the same way).
    Write(i64),
    /// A successful compare-and-set: the value was `old` and became `new`.
    Cas { old: i64, new: i64 },
    /// A compare-and-set with unknown outcome: swaps if the value is `old`, otherwise no-op.
    CasInfo { old: i64, new: i64 },
}

/// A read/write/compare-and-set register whose initial value is "never written".
///
/// Failed operations never reach the model (they certainly had no effect) and neither do
/// indeterminate reads (a read has no effect, so an unknown read constrains nothing).
#[derive(Clone, Copy, Debug, Default)]
pub struct RegisterModel;

impl Model for RegisterModel {
    type State = Option<i64>;
    type Op = RegisterOp;

    fn init(&self) -> Option<i64> {
        None
    }

    fn step(&self, state: &Option<i64>, op: &RegisterOp) -> Option<Option<i64>> {
        match *op {
            RegisterOp::Read(v) => (v == *state).then_some(*state),
            RegisterOp::Write(v) => Some(Some(v)),
            RegisterOp::Cas { old, new } => (*state == Some(old)).then_some(Some(new)),
            RegisterOp::CasInfo { old, new } => Some(if *state == Some(old) {
                Some(new)
            } else {
                *state
            }),
        }
    }

    fn explain(&self, state: &Option<i64>, op: &RegisterOp) -> String {
        let show = |v: &Option<i64>| match v {
            Some(v) => v.to_string(),
            None => "nothing (never written)".to_string(),
        };
        match *op {
            RegisterOp::Read(v) => {
                format!("read {} but the register holds {}", show(&v), show(state))
            }
            RegisterOp::Cas { old, new } => format!(
                "cas {old}->{new} succeeded but the register holds {}",
                show(state)
            ),
            RegisterOp::Write(_) | RegisterOp::CasInfo { .. } => format!(
                "{op:?} is always legal in state {}; every order placing it here was already \
                 explored and failed later",
                show(state)
            ),
        }
    }
}
