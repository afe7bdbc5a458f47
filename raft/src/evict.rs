//! Evicting idle groups: a data group that has been idle for a while (asleep, settled, its
//! log applied here and, on its leader, held whole by every member) has its openraft
//! instance stopped. An instance holds about 100 KiB (its tasks, channels and watches) and a
//! node hosts thousands of groups, most of them idle; what stays is the group's records, its
//! applied state and vote, and the metrics it last had, a few KiB. Any request that needs
//! the instance (a client's read or write, a peer's append or vote, a campaign) starts it
//! again from the log store, without replaying anything: the state machine's records and
//! applied position were kept.
//!
//! Safety: a group is evicted only after [`RaftConfig::evict_after`] of idleness, two leader
//! leases at least, so the lease a follower held for its leader (kept in the instance's
//! memory only) had lapsed anyway; no heartbeat renews it while a group sleeps. The log of
//! every evicted instance is synced after the instance stopped and before it may start
//! again, so a leader restarted from an eviction has on its disk every entry it ever sent,
//! and may take office again at once in the same term (openraft's leader restore, which a
//! crash must not use: `RaftConfig::to_openraft`). If it was deposed meanwhile, its first
//! append or heartbeat meets the higher vote and it steps down, as a sleeping leader would.
//!
//! [`RaftConfig::evict_after`]: crate::config::RaftConfig::evict_after

use crate::multi_raft::{Group, Instance, MultiRaft};
use crate::types::{Metrics, NodeId, Raft};
use openraft::async_runtime::WatchReceiver;
use openraft::ServerState;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// What eviction looks at in one group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IdleView {
    /// Its timers are off and no campaign of this node's is queued or running for it.
    pub asleep: bool,
    /// This node leads it, or follows a live leader.
    pub settled: bool,
    /// A leadership transfer away from this node is pending.
    pub transferring: bool,
    /// Everything this replica knows committed is applied here (and on its leader, every
    /// entry of its log is committed): the state machine has nothing to do.
    pub applied_all: bool,
    /// On its leader: every other member liveness takes for alive holds the whole log
    /// (true on a follower). A dead member catches up when it returns: its return restarts
    /// every group this node leads with it (`MultiRaft::heard`).
    pub members_have_all: bool,
    /// Since the instance was last handed out.
    pub unused: Duration,
}

impl IdleView {
    /// The view of a group from its metrics `m` (this node is `me`).
    pub(crate) fn of(m: &Metrics, me: NodeId, alive: impl Fn(NodeId) -> bool) -> IdleView {
        let leading = m.state == ServerState::Leader && m.current_leader == Some(me);
        let last = m.last_log_index;
        let members_have_all = !leading
            || m.replication.as_ref().is_some_and(|r| {
                r.iter().all(|(member, matched)| {
                    matched.as_ref().map(|l| l.index) == last || !alive(*member)
                })
            });
        let committed = m.local_committed.as_ref().map(|l| l.index);
        IdleView {
            applied_all: m.last_applied.as_ref().map(|l| l.index) == committed
                && (!leading || committed == last),
            members_have_all,
            ..IdleView::default()
        }
    }
}

/// Whether a group in state `v` may have its instance evicted after `after` of idleness
/// (pure).
pub(crate) fn evictable(v: &IdleView, after: Duration) -> bool {
    v.asleep
        && v.settled
        && !v.transferring
        && v.applied_all
        && v.members_have_all
        && v.unused >= after
}

/// Most groups one eviction pass stops: each waits for its instance's tasks to end.
pub(crate) const EVICT_BATCH: usize = 1024;

impl MultiRaft {
    /// `g`'s running instance, started again if it was evicted; counts as a use of it.
    pub(crate) async fn instance(&self, g: &Group) -> io::Result<Arc<Raft>> {
        g.used_ms.store(self.now_ms(), Ordering::Relaxed);
        if let Some(raft) = g.running() {
            return Ok(raft);
        }
        let _restarting = g.restarting.lock().await;
        if g.removed.load(Ordering::Acquire) {
            return Err(io::Error::other(format!("group {} was removed", g.id)));
        }
        let synced = match &*g.slot() {
            Instance::Running(raft) => return Ok(raft.clone()),
            Instance::Evicted { synced, .. } => *synced,
        };
        let raft = Arc::new(
            self.start_instance(g.id, &g.data, &g.applied, &g.vote, synced)
                .await?,
        );
        *g.slot() = Instance::Running(raft.clone());
        g.used_ms.store(self.now_ms(), Ordering::Relaxed);
        self.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            node = self.node_id(),
            group = g.id,
            synced,
            "group instance started again"
        );
        Ok(raft)
    }

    /// Stop the instances of `groups` that are still unused (nobody holds them, none handed
    /// out for [`RaftConfig::evict_after`]), then sync the log once for all of them. Only
    /// one pass runs at a time; a pass asked for meanwhile is dropped (the supervisor asks
    /// again).
    ///
    /// [`RaftConfig::evict_after`]: crate::config::RaftConfig::evict_after
    pub(crate) async fn evict(&self, groups: Vec<Arc<Group>>) {
        let Some(after) = self.config.evict_after() else {
            return;
        };
        if self.evicting.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut stopped = Vec::new();
        for g in groups.into_iter().take(EVICT_BATCH) {
            // Whoever starts the instance again waits until the log is synced.
            let held = g.restarting.clone().lock_owned().await;
            let Some(raft) = take_unused(&g, self.now_ms(), after) else {
                continue;
            };
            let _ = raft.shutdown().await;
            stopped.push((g, held));
        }
        if !stopped.is_empty() {
            let log = self.log.clone();
            let synced = matches!(
                tokio::task::spawn_blocking(move || log.sync_blocking()).await,
                Ok(Ok(()))
            );
            if !synced {
                tracing::warn!(
                    node = self.node_id(),
                    "log sync after an eviction failed: evicted leaders will stand for election"
                );
            }
            for (g, _held) in &stopped {
                if let Instance::Evicted { synced: s, .. } = &mut *g.slot() {
                    *s = synced;
                }
            }
            self.evictions
                .fetch_add(stopped.len() as u64, Ordering::Relaxed);
            tracing::debug!(
                node = self.node_id(),
                groups = stopped.len(),
                "evicted idle group instances"
            );
        }
        self.evicting.store(false, Ordering::Release);
    }
}

/// `g`'s running instance, swapped for its metrics (evicted, its log not yet synced), if
/// nobody holds it and it has been unused for `after` as of `now_ms`.
fn take_unused(g: &Group, now_ms: u64, after: Duration) -> Option<Arc<Raft>> {
    let mut slot = g.slot();
    let Instance::Running(raft) = &*slot else {
        return None;
    };
    if Arc::strong_count(raft) != 1 || g.unused(now_ms) < after {
        return None;
    }
    let metrics = Box::new(raft.metrics().borrow_watched().clone());
    match std::mem::replace(
        &mut *slot,
        Instance::Evicted {
            metrics,
            synced: false,
        },
    ) {
        Instance::Running(raft) => Some(raft),
        Instance::Evicted { .. } => None,
    }
}

/// Whether the supervisor should evict `g`, which it finds with metrics `m`, settled or
/// not, asleep and running at `now_ms` on node `me` (a move of its commit index counts as
/// a use first: its leader tells followers of a commit [`COMMIT_NOTIFY_DELAY`] later).
///
/// [`COMMIT_NOTIFY_DELAY`]: crate::config::COMMIT_NOTIFY_DELAY
pub(crate) fn is_candidate(
    multi: &MultiRaft,
    g: &Group,
    m: &Metrics,
    settled: bool,
    now_ms: u64,
) -> bool {
    g.note_commit(m, now_ms);
    let Some(after) = multi.config.evict_after() else {
        return false;
    };
    let view = IdleView {
        asleep: !g.sleep.is_campaigning(),
        settled,
        transferring: g.sleep.is_transferring(),
        unused: g.unused(now_ms),
        ..IdleView::of(m, multi.node_id(), |n| multi.is_alive(n))
    };
    evictable(&view, after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle() -> IdleView {
        IdleView {
            asleep: true,
            settled: true,
            transferring: false,
            applied_all: true,
            members_have_all: true,
            unused: Duration::from_secs(10),
        }
    }

    #[test]
    fn an_idle_settled_group_is_evicted_after_the_wait() {
        let after = Duration::from_secs(10);
        assert!(evictable(&idle(), after));
        let recent = IdleView {
            unused: Duration::from_secs(9),
            ..idle()
        };
        assert!(!evictable(&recent, after));
    }

    #[test]
    fn a_group_with_anything_in_flight_is_kept() {
        let after = Duration::from_secs(10);
        for busy in [
            IdleView {
                asleep: false,
                ..idle()
            },
            IdleView {
                settled: false,
                ..idle()
            },
            IdleView {
                transferring: true,
                ..idle()
            },
            IdleView {
                applied_all: false,
                ..idle()
            },
            IdleView {
                members_have_all: false,
                ..idle()
            },
        ] {
            assert!(!evictable(&busy, after), "{busy:?}");
        }
    }
}
