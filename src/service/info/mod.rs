//! Info commands: the text protocol clients use to discover and tend the cluster, and
//! operators use through `strato info`.
//!
//! Every command is one entry of [`TABLE`], implemented in the file of its family; a new
//! command is a new entry (and a new file for a new family). Both grammars arrive parsed as
//! an [`InfoCommand`]; every error is an [`InfoError`], rendered `ERROR:<code>:<message>`.

mod cluster;
mod fault;
mod logs;
mod namespaces;
mod node;
pub mod roster;
mod sets;
pub mod sindex;
mod stats;
mod truncate;

pub use cluster::BUILD;

use crate::context::Context as Node;
use crate::protocol::info::{encode_info_response, parse_info_request};
use crate::protocol::info_command::{InfoCommand, InfoError, InfoResult};
use futures::future::BoxFuture;
use std::sync::Arc;

/// How a command is answered: from the node's state at once, or by a change that has to be
/// committed first.
#[derive(Clone, Copy)]
pub enum Handler {
    Now(fn(&Node, &InfoCommand) -> InfoResult),
    Change(fn(Arc<Node>, String) -> BoxFuture<'static, InfoResult>),
}

/// Every info command, by name.
pub const TABLE: &[(&str, Handler)] = &[
    // node identity (node.rs)
    ("node", Handler::Now(node::node)),
    ("build", Handler::Now(node::build)),
    ("edition", Handler::Now(node::edition)),
    ("version", Handler::Now(node::version)),
    ("status", Handler::Now(node::status)),
    ("features", Handler::Now(node::features)),
    ("cluster-name", Handler::Now(node::cluster_name)),
    ("user-agent-set", Handler::Now(node::ok)),
    ("service", Handler::Now(node::service)),
    ("service-clear-std", Handler::Now(node::service)),
    ("service-clear-alt", Handler::Now(node::service)),
    // log sinks (logs.rs)
    ("logs", Handler::Now(logs::logs)),
    ("log", Handler::Now(logs::log)),
    // cluster and partition map (cluster.rs)
    ("partitions", Handler::Now(cluster::partitions)),
    (
        "partition-generation",
        Handler::Now(cluster::partition_generation),
    ),
    (
        "rebalance-generation",
        Handler::Now(cluster::rebalance_generation),
    ),
    ("replicas", Handler::Now(cluster::replicas)),
    ("replicas-all", Handler::Now(cluster::replicas_all)),
    ("replicas-master", Handler::Now(cluster::replicas_master)),
    ("replicas-leaders", Handler::Now(cluster::replicas_leaders)),
    ("peers-generation", Handler::Now(cluster::peers_generation)),
    ("peers-clear-std", Handler::Now(cluster::peers)),
    ("peers-clear-alt", Handler::Now(cluster::peers)),
    ("services", Handler::Now(cluster::services)),
    ("services-alumni", Handler::Now(cluster::services)),
    // strong-consistency rosters (roster.rs)
    ("roster", Handler::Now(roster::roster)),
    ("roster-set", Handler::Change(roster::roster_set)),
    ("recluster", Handler::Change(roster::recluster)),
    ("cluster-stable", Handler::Now(roster::cluster_stable)),
    // statistics (stats.rs)
    ("statistics", Handler::Now(stats::statistics)),
    // namespaces (namespaces.rs)
    ("namespaces", Handler::Now(namespaces::list)),
    ("show-namespaces", Handler::Now(namespaces::list)),
    ("namespace", Handler::Now(namespaces::namespace)),
    ("get-config", Handler::Now(namespaces::get_config)),
    ("set-config", Handler::Change(namespaces::set_config)),
    ("create-namespace", Handler::Change(namespaces::create)),
    ("drop-namespace", Handler::Change(namespaces::drop)),
    // sets (sets.rs)
    ("sets", Handler::Now(sets::sets)),
    ("show-sets", Handler::Now(sets::show_sets)),
    ("create-set", Handler::Change(sets::create)),
    ("delete-set", Handler::Change(sets::delete)),
    // truncate (truncate.rs)
    ("truncate", Handler::Change(truncate::truncate)),
    (
        "truncate-namespace",
        Handler::Change(truncate::truncate_namespace),
    ),
    ("truncate-undo", Handler::Change(truncate::undo)),
    // secondary indexes (sindex.rs)
    ("sindex-create", Handler::Change(sindex::sindex_create)),
    ("sindex-delete", Handler::Change(sindex::sindex_delete)),
    ("sindex-list", Handler::Now(sindex::sindex_list)),
    ("sindex", Handler::Now(sindex::sindex)),
    ("sindex-stat", Handler::Now(sindex::sindex_stat)),
    ("sindex-exists", Handler::Now(sindex::sindex_exists)),
    (
        "index-integer-create",
        Handler::Change(sindex::index_integer_create),
    ),
    (
        "index-string-create",
        Handler::Change(sindex::index_string_create),
    ),
    (
        "index-integer-remove",
        Handler::Change(sindex::index_integer_remove),
    ),
    (
        "index-string-remove",
        Handler::Change(sindex::index_string_remove),
    ),
    ("show-indexes", Handler::Now(sindex::show_indexes)),
    // fault injection for tests (fault.rs)
    ("clock-rate", Handler::Now(fault::clock_rate)),
    (
        "truncate-namespace-undo",
        Handler::Change(truncate::namespace_undo),
    ),
];

fn find(name: &str) -> Option<Handler> {
    TABLE.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
}

/// Answer a whole info request (one frame, commands in order).
pub async fn answer(node: &Arc<Node>, body: &[u8]) -> Vec<u8> {
    let mut cmds = parse_info_request(body);
    if cmds.is_empty() {
        cmds = vec![
            "node".into(),
            "build".into(),
            "cluster-name".into(),
            "edition".into(),
        ];
    }
    let mut pairs = Vec::with_capacity(cmds.len());
    for c in cmds {
        let v = command(node, &c).await;
        pairs.push((c, v));
    }
    encode_info_response(&pairs)
}

/// The answer to one command, error or not.
pub async fn command(node: &Arc<Node>, raw: &str) -> String {
    let cmd = InfoCommand::parse(raw);
    let result = match find(cmd.name) {
        Some(Handler::Now(f)) => f(node, &cmd),
        Some(Handler::Change(f)) => f(node.clone(), raw.to_string()).await,
        None => Err(InfoError::unrecognized()),
    };
    result.unwrap_or_else(|e| e.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_unique() {
        let mut names: Vec<&str> = TABLE.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }
}
