//! `strato bench --kill-pid P`: failover measured under load. At a chosen moment the bench
//! kills one node (`kill -9`) and then polls every other node's `replicas-leaders` until
//! each partition of the namespace has a master again that a live node claims; the time
//! this takes is the figure (the writes' own latencies and failures sit in the table
//! beside it).

use serde::Serialize;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What one kill showed.
#[derive(Clone, Debug, Serialize)]
pub struct FailoverReport {
    pub killed_pid: u32,
    /// Partitions without a live master right after the kill (the killed node's).
    pub masterless_after_kill: usize,
    /// From the kill until every partition had a master a live node claims; `None` if that
    /// did not happen within the bench's window.
    pub restored_ms: Option<f64>,
}

/// Sleep `after`, kill `pid`, then poll `nodes` (the dead one fails to answer and is
/// skipped) every 10 ms for up to `limit`.
pub async fn kill_and_watch(
    pid: u32,
    after: Duration,
    nodes: Vec<SocketAddr>,
    namespace: String,
    limit: Duration,
) -> anyhow::Result<FailoverReport> {
    tokio::time::sleep(after).await;
    let status = tokio::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .await?;
    anyhow::ensure!(status.success(), "kill -9 {pid} failed: {status}");
    let killed = Instant::now();
    eprintln!("failover: killed pid {pid}");
    let mut first = None;
    loop {
        let claimed = claimed_masters(&nodes, &namespace).await;
        let missing = usize::from(storage::record::PARTITIONS) - claimed;
        first.get_or_insert(missing);
        if missing == 0 {
            let ms = killed.elapsed().as_secs_f64() * 1000.0;
            eprintln!("failover: every partition has a master again after {ms:.0} ms");
            return Ok(FailoverReport {
                killed_pid: pid,
                masterless_after_kill: first.unwrap_or(0),
                restored_ms: Some(ms),
            });
        }
        if killed.elapsed() > limit {
            return Ok(FailoverReport {
                killed_pid: pid,
                masterless_after_kill: first.unwrap_or(0),
                restored_ms: None,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How many partitions of `namespace` some reachable node claims to lead right now.
async fn claimed_masters(nodes: &[SocketAddr], namespace: &str) -> usize {
    let mut union = vec![0u8; crate::client::BITMAP_BYTES];
    for node in nodes {
        let Ok(answer) = crate::info_client::request(
            &node.to_string(),
            &["replicas-leaders".to_string()],
            Duration::from_millis(200),
        )
        .await
        else {
            continue;
        };
        let Some((_, text)) = answer.first() else {
            continue;
        };
        let Ok(spaces) = crate::client::parse_replicas(text) else {
            continue;
        };
        if let Some(ns) = spaces.iter().find(|n| n.namespace == namespace) {
            if let Some(masters) = ns.columns.first() {
                for (u, m) in union.iter_mut().zip(masters) {
                    *u |= m;
                }
            }
        }
    }
    union.iter().map(|b| b.count_ones() as usize).sum()
}
