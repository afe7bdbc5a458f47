//! The expiry sweep (Aerospike's nsup): on every group this node leads, every namespace's
//! `nsup-period`, find the records past their void time and remove them through Raft, so
//! memory and snapshots shrink and every replica frees the same records.
//!
//! Expired records are already invisible to clients (reads and writes decide expiry with the
//! leader's clock); the sweep only reclaims them. Work is bounded: at most [`BATCH`] records
//! per command and [`MAX_BATCHES`] commands per group per sweep, with a pause between
//! commands, so a sweep never floods a group's log.

use crate::context::Context as Node;
use crate::stats::Stats;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::catalog::split_group_id;
use storage::command::Command;

/// How often the sweeper looks for a namespace whose period is due.
const TICK: Duration = Duration::from_secs(1);
/// Records removed per Raft command.
const BATCH: usize = 1000;
/// Commands per group per sweep (the rest waits for the next sweep).
const MAX_BATCHES: usize = 10;
/// Pause between two commands on the same group.
const PAUSE: Duration = Duration::from_millis(10);
/// Longest wait for one expiry command to commit.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a namespace whose sweep last ran at `last` is due at `now`.
fn due(last: Option<Instant>, period_secs: u32, now: Instant) -> bool {
    period_secs > 0
        && last.is_none_or(|l| now.duration_since(l) >= Duration::from_secs(period_secs.into()))
}

pub async fn run(node: Arc<Node>) {
    let mut last: HashMap<u32, Instant> = HashMap::new();
    loop {
        tokio::time::sleep(TICK).await;
        let catalog = node.catalog();
        let now = Instant::now();
        let due_ids: Vec<u32> = catalog
            .namespaces
            .values()
            .filter(|ns| due(last.get(&ns.id).copied(), ns.settings.nsup_period, now))
            .map(|ns| ns.id)
            .collect();
        if due_ids.is_empty() {
            continue;
        }
        for id in &due_ids {
            last.insert(*id, now);
        }
        for g in node.multi.groups() {
            if !due_ids.contains(&split_group_id(g.id).0) {
                continue;
            }
            if !node.multi.leads(g.id) {
                continue;
            }
            sweep_group(&node, g.id).await;
        }
    }
}

/// Remove the expired records of one group this node leads, in bounded batches.
async fn sweep_group(node: &Node, group: raft::GroupId) {
    for _ in 0..MAX_BATCHES {
        let now = node.clock.now_since_2010();
        let Ok(digests) = node
            .multi
            .read_local(group, |s| s.expired_digests(now, BATCH))
        else {
            return;
        };
        if digests.is_empty() {
            return;
        }
        let full = digests.len() == BATCH;
        let cmd = Command::Expire { digests, now };
        match node.multi.write(group, cmd, TIMEOUT).await {
            Ok(_) => Stats::bump(&node.stats.expiry_sweeps),
            Err(e) => {
                tracing::debug!(node = node.config.node_id, group, error = %e, "expiry sweep stopped");
                return;
            }
        }
        if !full {
            return;
        }
        tokio::time::sleep(PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_is_due_once_per_period() {
        let t0 = Instant::now();
        assert!(due(None, 1, t0));
        assert!(!due(None, 0, t0), "period 0 never sweeps");
        assert!(!due(Some(t0), 2, t0 + Duration::from_secs(1)));
        assert!(due(Some(t0), 2, t0 + Duration::from_secs(2)));
    }
}
