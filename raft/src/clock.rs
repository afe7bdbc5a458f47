//! The clock and runtime every Raft group of this process runs on.
//!
//! openraft reads time only through its runtime: election timers, heartbeats and the leader
//! lease all use the runtime's `Instant` and its sleeps. [`NodeRuntime`] is tokio's runtime
//! with one difference: the rate at which its clock advances can be changed while the process
//! runs ([`set_rate`]), so a fault-injection test can make one node's clock run slow or fast
//! and check what lease reads do when their clock assumption is kept or broken. Nothing in
//! production changes the rate, and until something does, [`NodeInstant::now`] is tokio's
//! monotonic clock plus one relaxed atomic load.
//!
//! Time as the groups see it ("node time") advances at `rate` × real time from the last
//! change of rate: continuous and monotonic across changes. A sleep of `d` node time sleeps
//! `d / rate` real time, and a deadline in node time is converted to the real instant at which
//! the node's clock will reach it at the current rate.

use openraft::rt::{AsyncRuntime, OptionalSend};
use openraft::TokioRuntime;
use std::future::Future;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant as RealInstant;

/// Lowest and highest accepted clock rates: beyond them durations overflow or sleeps never
/// end within a test.
pub const MIN_RATE: f64 = 0.001;
pub const MAX_RATE: f64 = 1000.0;

/// Whether the rate was ever changed: until then node time is real time.
static SKEWED: AtomicBool = AtomicBool::new(false);

/// Node time advances at `rate` × real time since (`real`, `node`).
#[derive(Clone, Copy, Debug)]
struct Anchor {
    real: RealInstant,
    node: RealInstant,
    rate: f64,
}

static ANCHOR: Mutex<Option<Anchor>> = Mutex::new(None);

fn anchor() -> Option<Anchor> {
    *ANCHOR.lock().unwrap_or_else(|e| e.into_inner())
}

/// Node time at real instant `real` (pure).
fn node_at(a: &Anchor, real: RealInstant) -> RealInstant {
    a.node + real.saturating_duration_since(a.real).mul_f64(a.rate)
}

/// The real instant at which node time reaches `node`, at the anchor's rate (pure). A node
/// instant already passed maps to the anchor's real instant, which is in the past too.
fn real_at(a: &Anchor, node: RealInstant) -> RealInstant {
    a.real + node.saturating_duration_since(a.node).div_f64(a.rate)
}

/// Make this process's Raft clock advance at `rate` × real time from now on (1.0 = real
/// time). For fault-injection tests only: a node whose clock runs at another rate than its
/// peers' breaks the assumption lease reads rest on once the ratio exceeds
/// [`crate::config::LEASE_CLOCK_RATIO`].
pub fn set_rate(rate: f64) -> Result<(), String> {
    if !(MIN_RATE..=MAX_RATE).contains(&rate) {
        return Err(format!(
            "clock rate {rate} is outside {MIN_RATE}..={MAX_RATE}"
        ));
    }
    let mut guard = ANCHOR.lock().unwrap_or_else(|e| e.into_inner());
    let real = RealInstant::now();
    let node = match *guard {
        Some(a) => node_at(&a, real),
        None => real,
    };
    *guard = Some(Anchor { real, node, rate });
    SKEWED.store(true, Ordering::Release);
    Ok(())
}

/// The current rate of this process's Raft clock.
pub fn rate() -> f64 {
    anchor().map_or(1.0, |a| a.rate)
}

/// A point in node time.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Ord, PartialOrd, Hash)]
pub struct NodeInstant(RealInstant);

impl NodeInstant {
    /// The real instant at which node time reaches `self` (the same instant when the rate
    /// was never changed).
    fn to_real(self) -> RealInstant {
        if !SKEWED.load(Ordering::Acquire) {
            return self.0;
        }
        match anchor() {
            Some(a) => real_at(&a, self.0),
            None => self.0,
        }
    }
}

/// A node-time duration as real time at the current rate.
fn real_duration(d: Duration) -> Duration {
    if !SKEWED.load(Ordering::Acquire) {
        return d;
    }
    d.div_f64(rate())
}

impl openraft::Instant for NodeInstant {
    #[inline]
    fn now() -> Self {
        let real = RealInstant::now();
        if !SKEWED.load(Ordering::Acquire) {
            return NodeInstant(real);
        }
        match anchor() {
            Some(a) => NodeInstant(node_at(&a, real)),
            None => NodeInstant(real),
        }
    }
}

impl Add<Duration> for NodeInstant {
    type Output = Self;
    fn add(self, d: Duration) -> Self {
        NodeInstant(self.0 + d)
    }
}

impl AddAssign<Duration> for NodeInstant {
    fn add_assign(&mut self, d: Duration) {
        self.0 += d;
    }
}

impl Sub<Duration> for NodeInstant {
    type Output = Self;
    fn sub(self, d: Duration) -> Self {
        NodeInstant(self.0 - d)
    }
}

impl Sub<NodeInstant> for NodeInstant {
    type Output = Duration;
    fn sub(self, other: NodeInstant) -> Duration {
        self.0.saturating_duration_since(other.0)
    }
}

impl SubAssign<Duration> for NodeInstant {
    fn sub_assign(&mut self, d: Duration) {
        self.0 -= d;
    }
}

/// tokio's runtime for openraft, on [`NodeInstant`]s.
#[derive(Debug)]
pub struct NodeRuntime(TokioRuntime);

type Tokio = TokioRuntime;

impl AsyncRuntime for NodeRuntime {
    type JoinError = <Tokio as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <Tokio as AsyncRuntime>::JoinHandle<T>;
    type Sleep = tokio::time::Sleep;
    type Instant = NodeInstant;
    type TimeoutError = tokio::time::error::Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = tokio::time::Timeout<T>;
    type ThreadLocalRng = <Tokio as AsyncRuntime>::ThreadLocalRng;
    type Mpsc = <Tokio as AsyncRuntime>::Mpsc;
    type Watch = <Tokio as AsyncRuntime>::Watch;
    type Oneshot = <Tokio as AsyncRuntime>::Oneshot;
    type Mutex<T: OptionalSend + 'static> = <Tokio as AsyncRuntime>::Mutex<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        Tokio::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        tokio::time::sleep(real_duration(duration))
    }

    fn sleep_until(deadline: NodeInstant) -> Self::Sleep {
        tokio::time::sleep_until(deadline.to_real())
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        tokio::time::timeout(real_duration(duration), future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: NodeInstant,
        future: F,
    ) -> Self::Timeout<R, F> {
        tokio::time::timeout_at(deadline.to_real(), future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        Tokio::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        Tokio::thread_rng()
    }

    fn new(threads: usize) -> Self {
        NodeRuntime(Tokio::new(threads))
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.0.block_on(future)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor_at(rate: f64) -> (Anchor, RealInstant) {
        let t = RealInstant::now();
        (
            Anchor {
                real: t,
                node: t + Duration::from_secs(10),
                rate,
            },
            t,
        )
    }

    #[test]
    fn a_slow_clock_advances_at_its_rate_and_its_deadlines_come_late() {
        let (a, t) = anchor_at(0.5);
        let later = t + Duration::from_secs(4);
        assert_eq!(node_at(&a, later), a.node + Duration::from_secs(2));
        // Node time needs 4 s of real time to advance 2 s.
        assert_eq!(real_at(&a, a.node + Duration::from_secs(2)), later);
        // A node instant already passed maps to the past.
        assert_eq!(real_at(&a, a.node - Duration::from_secs(1)), t);
    }

    #[test]
    fn a_fast_clock_reaches_its_deadlines_early() {
        let (a, t) = anchor_at(4.0);
        assert_eq!(
            node_at(&a, t + Duration::from_secs(1)),
            a.node + Duration::from_secs(4)
        );
        assert_eq!(
            real_at(&a, a.node + Duration::from_secs(4)),
            t + Duration::from_secs(1)
        );
    }

    #[test]
    fn rates_out_of_range_are_refused() {
        assert!(set_rate(0.0).is_err());
        assert!(set_rate(f64::NAN).is_err());
        assert!(set_rate(1e9).is_err());
    }
}
