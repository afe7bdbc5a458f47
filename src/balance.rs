//! Leader balancing: each group's preferred leader (the first replica in its placement) takes
//! leadership back once it is up and caught up, so leaders stay spread across nodes after
//! failures and restarts.

use crate::cluster::placement::group_index;
use crate::node::Node;
use std::sync::Arc;
use std::time::Duration;

const PERIOD: Duration = Duration::from_secs(3);

pub async fn run(node: Arc<Node>) {
    let me = node.config.node_id;
    loop {
        tokio::time::sleep(PERIOD).await;
        let Some(roster) = node.roster() else {
            continue;
        };
        for g in node.multi.groups() {
            let Some(status) = node.multi.status(g.id) else {
                continue;
            };
            if status.leader != Some(me) {
                continue;
            }
            let preferred = roster.replicas(group_index(g.id))[0];
            let up = node.members.borrow().get(&preferred).is_some_and(|m| m.up);
            if preferred != me && up && node.multi.caught_up(g.id, preferred) {
                tracing::info!(
                    node = me,
                    group = g.id,
                    to = preferred,
                    "handing leadership to the preferred leader"
                );
                if let Err(e) = node.multi.transfer_leader(g.id, preferred).await {
                    tracing::warn!(node = me, group = g.id, error = %e, "leader transfer failed");
                }
            }
        }
    }
}
