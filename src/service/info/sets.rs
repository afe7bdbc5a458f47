//! Sets: list (Aerospike's `sets`, the seed's `show-sets`), create and delete.
//!
//! A set exists once a write names it (as in Aerospike) or once `create-set` put it in the
//! catalog; `objects` counts the copies this node holds.

use super::namespaces::target;
use super::stats::namespace_counts;
use crate::catalog::change::{change, delete_set};
use crate::context::Context as Node;
use crate::protocol::info_command::{InfoCommand, InfoError, InfoResult, Params};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;
use storage::catalog::{validate_set_name, CatalogCommand, Namespace};

/// `(objects, bytes)` per set of `ns` on this node, explicit and truncated sets included (with
/// zeroes: Aerospike keeps listing a set it emptied).
fn set_figures(node: &Node, ns: &Namespace) -> BTreeMap<String, (u64, u64)> {
    let mut sets: BTreeMap<String, (u64, u64)> = namespace_counts(node, ns)
        .per_set
        .into_iter()
        .filter(|(s, _)| !s.is_empty())
        .collect();
    for s in ns.sets.iter().chain(ns.set_truncate_luts.keys()) {
        sets.entry(s.clone()).or_default();
    }
    sets
}

/// Aerospike 8's per-set properties.
fn props(ns: &Namespace, set: &str, objects: u64, bytes: u64) -> String {
    let sindexes = ns
        .sindexes
        .values()
        .filter(|d| d.set.as_deref() == Some(set))
        .count();
    let truncate_lut = ns.set_truncate_luts.get(set).copied().unwrap_or(0);
    format!(
        "objects={objects}:tombstones=0:data_used_bytes={bytes}:truncate_lut={truncate_lut}:sindexes={sindexes}:index_populating=false:truncating=false:default-read-touch-ttl-pct=0:default-ttl=0:disable-eviction=false:enable-index=false:stop-writes-count=0:stop-writes-size=0"
    )
}

fn namespace_sets(node: &Node, ns: &Namespace) -> String {
    set_figures(node, ns)
        .iter()
        .map(|(set, (objects, bytes))| {
            format!(
                "ns={}:set={set}:{};",
                ns.name,
                props(ns, set, *objects, *bytes)
            )
        })
        .collect()
}

/// `sets`, `sets/NS`, `sets/NS/SET`.
pub fn sets(node: &Node, cmd: &InfoCommand) -> InfoResult {
    let catalog = node.catalog();
    let path = cmd.path();
    match path.as_slice() {
        [] => Ok(catalog
            .namespaces
            .values()
            .map(|ns| namespace_sets(node, ns))
            .collect()),
        [ns] => Ok(match catalog.namespace(ns) {
            Some(ns) => namespace_sets(node, ns),
            None => "ns_type=unknown".into(),
        }),
        [ns, set] => Ok(match catalog.namespace(ns) {
            Some(ns) => match set_figures(node, ns).get(*set) {
                Some((objects, bytes)) => format!("{};", props(ns, set, *objects, *bytes)),
                None => String::new(),
            },
            None => "ns_type=unknown".into(),
        }),
        _ => Err(InfoError::parameter("expected sets/<ns>/<set>")),
    }
}

/// The seed's `show-sets NS` (= `sets/NS`); without a namespace, every set.
pub fn show_sets(node: &Node, cmd: &InfoCommand) -> InfoResult {
    let catalog = node.catalog();
    match cmd.words().first() {
        None => sets(node, &InfoCommand::parse("sets")),
        Some(name) => match catalog.namespace(name) {
            Some(ns) => Ok(namespace_sets(node, ns)),
            None => Err(InfoError::no_namespace(name)),
        },
    }
}

/// The namespace and set a command names: `create-set NS SET [set]` (the seed's example
/// `create-set ns test set` ends with the word `set`) or `create-set:namespace=NS;set=SET`.
fn namespace_and_set(cmd: &InfoCommand) -> Result<(String, String), InfoError> {
    let (ns, rest) = target(cmd)?;
    let set = if cmd.is_seed_form() {
        let words = cmd.words();
        match &words[1..] {
            [set] | [set, "set"] => set.to_string(),
            [] => return Err(InfoError::parameter("missing 'set'")),
            _ => return Err(InfoError::parameter("expected: <namespace> <set>")),
        }
    } else {
        let params = Params::parse(&rest);
        params.only(&["namespace", "ns", "set"])?;
        params.required(&["set"])?.to_string()
    };
    validate_set_name(&set)?;
    Ok((ns, set))
}

pub fn create(node: Arc<Node>, raw: String) -> BoxFuture<'static, InfoResult> {
    Box::pin(async move {
        let (namespace, set) = namespace_and_set(&InfoCommand::parse(&raw))?;
        change(&node, CatalogCommand::CreateSet { namespace, set }).await?;
        Ok("ok".into())
    })
}

/// Deletes every record of the set on every replica (through Raft, group by group), then
/// forgets the set.
pub fn delete(node: Arc<Node>, raw: String) -> BoxFuture<'static, InfoResult> {
    Box::pin(async move {
        let (namespace, set) = namespace_and_set(&InfoCommand::parse(&raw))?;
        delete_set(&node, &namespace, &set).await?;
        Ok("ok".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::record::ResultCode;

    #[test]
    fn both_grammars_name_the_set() {
        let ok = |raw: &str| namespace_and_set(&InfoCommand::parse(raw));
        assert_eq!(
            ok("create-set ns test set"),
            Ok(("ns".into(), "test".into()))
        );
        assert_eq!(
            ok("create-set ns2 users"),
            Ok(("ns2".into(), "users".into()))
        );
        assert_eq!(
            ok("create-set:namespace=ns2;set=users"),
            Ok(("ns2".into(), "users".into()))
        );
        assert_eq!(ok("create-set ns").unwrap_err().code, ResultCode::Parameter);
        assert_eq!(ok("create-set").unwrap_err().code, ResultCode::Namespace);
        assert_eq!(
            ok("create-set:namespace=;set=a").unwrap_err().render(),
            "ERROR:20:missing 'namespace' value"
        );
        assert_eq!(
            ok("create-set:namespace=a;set=").unwrap_err().render(),
            "ERROR:4:missing 'set' value"
        );
        assert_eq!(
            ok(&format!("create-set ns {}", "s".repeat(64)))
                .unwrap_err()
                .code,
            ResultCode::Parameter
        );
        assert_eq!(
            ok("delete-set:namespace=a;set=b;bogus=1")
                .unwrap_err()
                .render(),
            "ERROR:4:unknown parameter 'bogus'"
        );
        assert_eq!(
            ok("create-set ns a b c").unwrap_err().code,
            ResultCode::Parameter
        );
    }
}
