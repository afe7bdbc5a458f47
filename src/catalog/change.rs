//! Changing the catalog on behalf of an info command: propose through the metadata leader,
//! answer only once committed, and wait (briefly) until this node has applied it too, so the
//! operator's next command on the same node sees the change.

use super::propose::ProposeError;
use crate::context::Context as Node;
use crate::protocol::info_command::InfoError;
use futures::future::join_all;
use std::time::{Duration, Instant};
use storage::catalog::{CatalogCommand, META_GROUP};
use storage::command::Command;
use storage::record::ResultCode;

/// Longest wait for this node to apply a change the leader has committed.
const LOCAL_APPLY_WAIT: Duration = Duration::from_secs(2);

/// Propose `cmd` and wait for its commit; a refusal comes back with Aerospike's code and the
/// most precise message this node can give.
pub async fn change(node: &Node, cmd: CatalogCommand) -> Result<(), InfoError> {
    let catalog = node.catalog();
    let mut candidates = catalog.meta_voters();
    candidates.extend(node.multi.members(META_GROUP));
    let deadline = Instant::now() + node.config.request_timeout;
    let (outcome, index) = node
        .propose(
            META_GROUP,
            Command::Catalog(cmd.clone()),
            &candidates,
            deadline,
        )
        .await
        .map_err(propose_error)?;
    if outcome.code != ResultCode::Ok {
        // Refused by apply: explain with the local catalog when it agrees on the reason.
        return Err(match node.catalog().check(&cmd) {
            Err(e) if e.code == outcome.code => e.into(),
            _ => InfoError::new(outcome.code, refusal_message(&cmd, outcome.code)),
        });
    }
    node.multi
        .wait_applied(META_GROUP, index, LOCAL_APPLY_WAIT)
        .await;
    Ok(())
}

/// Delete every record of `set` in every group of `namespace` (each through its leader, all
/// groups at once), then forget the set in the catalog.
pub async fn delete_set(node: &Node, namespace: &str, set: &str) -> Result<(), InfoError> {
    let catalog = node.catalog();
    let ns = catalog.namespace(namespace).ok_or_else(|| {
        InfoError::new(
            ResultCode::Namespace,
            format!("namespace {namespace} not found"),
        )
    })?;
    let deadline = Instant::now() + node.config.request_timeout;
    let deletes = (0..ns.settings.groups).map(|g| {
        let cmd = Command::DeleteSet {
            set: set.to_string(),
        };
        let replicas = ns.placement[usize::from(g)].clone();
        async move {
            node.propose(ns.group_id(g), cmd, &replicas, deadline)
                .await
                .map(|_| ())
        }
    });
    for r in join_all(deletes).await {
        r.map_err(propose_error)?;
    }
    change(
        node,
        CatalogCommand::RemoveSet {
            namespace: namespace.to_string(),
            set: set.to_string(),
        },
    )
    .await
}

fn propose_error(e: ProposeError) -> InfoError {
    match e {
        ProposeError::NotApplied(why) => {
            InfoError::new(ResultCode::Unavailable, format!("not applied: {why}"))
        }
        ProposeError::InDoubt(why) => InfoError::new(
            ResultCode::Timeout,
            format!("timeout (the change may or may not have been applied): {why}"),
        ),
    }
}

fn refusal_message(cmd: &CatalogCommand, code: ResultCode) -> String {
    match (cmd, code) {
        (_, ResultCode::Namespace) => "namespace not found".into(),
        (CatalogCommand::CreateNamespace { name, .. }, ResultCode::Parameter) => {
            format!(
                "namespace {name} cannot be created (it exists, or the namespace limit is reached)"
            )
        }
        (_, ResultCode::Unavailable) => "the cluster has not formed yet".into(),
        _ => "refused by the catalog".into(),
    }
}
