//! Changing the catalog on behalf of an info command: propose through the metadata leader,
//! answer only once committed, and wait (briefly) until this node has applied it too, so the
//! operator's next command on the same node sees the change.

use super::propose::ProposeError;
use crate::context::Context as Node;
use crate::protocol::info_command::InfoError;
use futures::{stream, StreamExt};
use std::time::{Duration, Instant};
use storage::catalog::{CatalogCommand, META_GROUP};
use storage::command::Command;
use storage::record::ResultCode;

/// Longest wait for this node to apply a change the leader has committed.
const LOCAL_APPLY_WAIT: Duration = Duration::from_secs(2);
/// Proposals a command for every group of a namespace keeps in flight at once.
const GROUP_PROPOSALS_IN_FLIGHT: usize = 128;

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

/// Apply `cmd` on every data group of `namespace` (each through its leader, all groups at
/// once); `ok` only once every group has committed it.
async fn on_every_group(node: &Node, namespace: &str, cmd: Command) -> Result<(), InfoError> {
    let catalog = node.catalog();
    let ns = catalog
        .namespace(namespace)
        .ok_or_else(|| InfoError::no_namespace(namespace))?;
    let deadline = Instant::now() + node.config.request_timeout;
    let proposals = (0..ns.settings.groups).map(|g| {
        let cmd = cmd.clone();
        let replicas = ns.placement[usize::from(g)].clone();
        async move {
            node.propose(ns.group_id(g), cmd, &replicas, deadline)
                .await
                .map(|_| ())
        }
    });
    // A bounded number in flight: 4,096 proposals at once queued every message behind
    // them, heartbeats and liveness pings timed out, and the command took longer than all
    // of them in turn.
    let results: Vec<_> = stream::iter(proposals)
        .buffer_unordered(GROUP_PROPOSALS_IN_FLIGHT)
        .collect()
        .await;
    for r in results {
        r.map_err(propose_error)?;
    }
    Ok(())
}

/// Drop a namespace: first close every group through its own log (a closed group refuses
/// writes, so none commits after the drop is acknowledged, even on replicas that apply the
/// catalog's drop late), then drop it in the catalog. If a group cannot be closed (no
/// leader before the deadline), nothing is dropped and the error says so; the groups
/// already closed refuse writes until a retried drop succeeds.
pub async fn drop_namespace(node: &Node, namespace: &str) -> Result<(), InfoError> {
    on_every_group(node, namespace, Command::Close).await?;
    change(
        node,
        CatalogCommand::DropNamespace {
            name: namespace.to_string(),
        },
    )
    .await
}

/// Delete every record of `set` in every group of `namespace`, then forget the set in the
/// catalog.
///
/// "Namespace not found" is answered only when this node did not know the namespace as the
/// command began, i.e. when nothing was deleted. If the namespace is dropped while its set is
/// being deleted, the set's records are gone (deleted here or with the namespace), so the
/// answer is `ok`: a client told "not found" would rightly believe no record of the set was
/// deleted, while some were.
pub async fn delete_set(node: &Node, namespace: &str, set: &str) -> Result<(), InfoError> {
    let cmd = Command::DeleteSet {
        set: set.to_string(),
    };
    on_every_group(node, namespace, cmd).await?;
    let forget = CatalogCommand::RemoveSet {
        namespace: namespace.to_string(),
        set: set.to_string(),
    };
    done_if_dropped(change(node, forget).await)
}

/// The catalog step of a command that first deleted records in every group of a namespace
/// this node knew ([`on_every_group`] answers "not found" itself when it did not, before
/// deleting anything): "namespace not found" now means the namespace was dropped meanwhile,
/// which deleted whatever the command had left, so the command is done.
fn done_if_dropped(r: Result<(), InfoError>) -> Result<(), InfoError> {
    match r {
        Err(e) if e.code == ResultCode::Namespace => Ok(()),
        other => other,
    }
}

/// Aerospike's truncate: delete the records of `set` (or of the whole namespace) last updated
/// before `lut` (ms since 2010) in every group, then record the cut-off in the catalog (where
/// `sets` and `namespace/NS` report it). Both steps are idempotent, so a timed-out truncate
/// can simply be sent again. A namespace dropped meanwhile answers `ok` (see
/// [`delete_set`]).
pub async fn truncate(
    node: &Node,
    namespace: &str,
    set: Option<&str>,
    lut: u64,
) -> Result<(), InfoError> {
    let set = set.map(str::to_string);
    let cmd = Command::Truncate {
        set: set.clone(),
        before: lut,
    };
    on_every_group(node, namespace, cmd).await?;
    let namespace = namespace.to_string();
    let record = CatalogCommand::Truncate {
        namespace,
        set,
        lut,
    };
    done_if_dropped(change(node, record).await)
}

/// Forget a truncation cut-off (`truncate-undo`): records already deleted stay deleted.
pub async fn truncate_undo(
    node: &Node,
    namespace: &str,
    set: Option<&str>,
) -> Result<(), InfoError> {
    let cmd = CatalogCommand::Truncate {
        namespace: namespace.to_string(),
        set: set.map(str::to_string),
        lut: 0,
    };
    change(node, cmd).await
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

/// Define a secondary index in the catalog, then add it to every group of the namespace.
/// The group step is best effort: the index builder adds it to any group that missed it,
/// since the catalog holds the definition.
pub async fn create_sindex(
    node: &Node,
    namespace: &str,
    name: &str,
    def: storage::catalog::SindexDef,
) -> Result<(), InfoError> {
    change(
        node,
        CatalogCommand::CreateSindex {
            namespace: namespace.to_string(),
            name: name.to_string(),
            def: def.clone(),
        },
    )
    .await?;
    let cmd = Command::CreateIndex {
        name: name.to_string(),
        def,
    };
    if let Err(e) = on_every_group(node, namespace, cmd).await {
        tracing::debug!(namespace, name, error = ?e, "index not added to every group yet");
    }
    Ok(())
}

/// Forget a secondary index in the catalog, then in every group (best effort, as above).
pub async fn drop_sindex(node: &Node, namespace: &str, name: &str) -> Result<(), InfoError> {
    change(
        node,
        CatalogCommand::DropSindex {
            namespace: namespace.to_string(),
            name: name.to_string(),
        },
    )
    .await?;
    let cmd = Command::DropIndex {
        name: name.to_string(),
    };
    if let Err(e) = on_every_group(node, namespace, cmd).await {
        tracing::debug!(namespace, name, error = ?e, "index not dropped from every group yet");
    }
    Ok(())
}
