//! Leader balancing: each group's preferred leader (the first replica in its placement) takes
//! leadership back once it is up and caught up, so leaders stay spread across nodes after
//! failures and restarts.

use crate::context::Context as Node;
use std::sync::Arc;
use std::time::Duration;
use storage::catalog::split_group_id;

const PERIOD: Duration = Duration::from_secs(3);

pub async fn run(node: Arc<Node>) {
    let me = node.config.node_id;
    loop {
        tokio::time::sleep(PERIOD).await;
        let catalog = node.catalog();
        for g in node.multi.groups() {
            let Some(ns) = catalog.namespace_of_group(g.id) else {
                continue;
            };
            let Some(preferred) = ns
                .placement
                .get(usize::from(split_group_id(g.id).1))
                .and_then(|r| r.first().copied())
            else {
                continue;
            };
            if !node.multi.leads(g.id) {
                continue;
            }
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
