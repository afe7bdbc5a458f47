//! Secondary indexes: Aerospike's `sindex-create`, `sindex-delete`, `sindex-list`,
//! `sindex-exists`, `sindex`, `sindex/NS[/NAME]`, `sindex-stat`, and the seed's
//! `index-integer-create NS SET BIN`, `index-string-create NS SET BIN`, their `-remove`
//! forms and `show-indexes NS [SET]`. The seed's commands name their index
//! `<set>_<bin>_int` or `<set>_<bin>_str`.
//!
//! A definition is committed in the catalog; then every group of the namespace adds the
//! index through Raft and builds it in steps (see `index_build`). `ok` comes once the
//! definition is committed; `load_pct` in `sindex/NS/NAME` says when this node's copies are
//! built, which is what the clients wait for.

use crate::catalog::change::{create_sindex, drop_sindex};
use crate::context::Context as Node;
use crate::protocol::info_command::{InfoCommand, InfoError, InfoResult, Params};
use futures::future::BoxFuture;
use std::sync::Arc;
use storage::catalog::{Namespace, SindexDef};
use storage::index::{Collection, KeyType};
use storage::record::ResultCode;

/// A create request: namespace, index name, definition.
#[derive(Debug, PartialEq, Eq)]
struct Create {
    namespace: String,
    name: String,
    def: SindexDef,
}

/// Parse `sindex-create` in both grammars: `indexdata=BIN,TYPE` (servers ≤ 8.0) and
/// `bin=BIN;type=TYPE` (8.1), `ns=` or `namespace=`.
fn parse_create(params: &Params) -> Result<Create, InfoError> {
    params.only(&[
        "ns",
        "namespace",
        "set",
        "indexname",
        "indextype",
        "indexdata",
        "bin",
        "type",
        "context",
        "exp",
    ])?;
    let namespace = params.required(&["namespace", "ns"])?.to_string();
    let name = params.required(&["indexname"])?.to_string();
    if params.get(&["context"])?.is_some() {
        return Err(InfoError::parameter(
            "'context' (CDT context indexes) is not supported",
        ));
    }
    if params.get(&["exp"])?.is_some() {
        return Err(InfoError::parameter(
            "'exp' (expression indexes) is not supported",
        ));
    }
    let (bin, key_type) = match (params.get(&["indexdata"])?, params.get(&["type"])?) {
        (Some(_), Some(_)) => {
            return Err(InfoError::parameter(
                "both 'indexdata' and 'type' are specified",
            ))
        }
        (Some(data), None) => data
            .split_once(',')
            .ok_or_else(|| InfoError::parameter("bad 'indexdata'"))?,
        (None, Some(t)) => (params.required(&["bin"])?, t),
        (None, None) => return Err(InfoError::parameter("missing 'indexdata'")),
    };
    let key_type = KeyType::parse(key_type)
        .ok_or_else(|| InfoError::parameter(format!("bad 'type' {key_type}")))?;
    let collection = match params.get(&["indextype"])? {
        None => Collection::Default,
        Some(t) => Collection::parse(t)
            .ok_or_else(|| InfoError::parameter(format!("bad 'indextype' {t}")))?,
    };
    let set = params.get(&["set"])?.map(str::to_string);
    Ok(Create {
        namespace,
        name,
        def: SindexDef {
            set,
            bin: bin.to_string(),
            key_type,
            collection,
        },
    })
}

async fn create(node: &Node, c: Create) -> InfoResult {
    if node.catalog().namespace(&c.namespace).is_none() {
        return Err(InfoError::no_namespace(&c.namespace));
    }
    create_sindex(node, &c.namespace, &c.name, c.def).await?;
    Ok("ok".into())
}

pub fn sindex_create(node: Arc<Node>, raw: String) -> BoxFuture<'static, InfoResult> {
    Box::pin(async move {
        let c = parse_create(&InfoCommand::parse(&raw).params())?;
        create(&node, c).await
    })
}

pub fn sindex_delete(node: Arc<Node>, raw: String) -> BoxFuture<'static, InfoResult> {
    Box::pin(async move {
        let cmd = InfoCommand::parse(&raw);
        let params = cmd.params();
        params.only(&["ns", "namespace", "indexname", "set"])?;
        let namespace = params.required(&["namespace", "ns"])?.to_string();
        let name = params.required(&["indexname"])?.to_string();
        if node.catalog().namespace(&namespace).is_none() {
            return Err(InfoError::no_namespace(&namespace));
        }
        drop_sindex(&node, &namespace, &name).await?;
        Ok("ok".into())
    })
}

/// The seed's index name for `(set, bin)`.
fn seed_name(set: &str, bin: &str, t: KeyType) -> String {
    let suffix = if t == KeyType::Numeric { "int" } else { "str" };
    format!("{set}_{bin}_{suffix}")
}

/// `index-<type>-create NS SET BIN` / `index-<type>-remove NS SET BIN`.
fn seed_args(raw: &str) -> Result<(String, String, String), InfoError> {
    match InfoCommand::parse(raw).words()[..] {
        [ns, set, bin] => Ok((ns.into(), set.into(), bin.into())),
        _ => Err(InfoError::parameter("expected: <namespace> <set> <bin>")),
    }
}

fn seed_create(node: Arc<Node>, raw: String, t: KeyType) -> BoxFuture<'static, InfoResult> {
    Box::pin(async move {
        let (namespace, set, bin) = seed_args(&raw)?;
        let c = Create {
            namespace,
            name: seed_name(&set, &bin, t),
            def: SindexDef {
                set: Some(set),
                bin,
                key_type: t,
                collection: Collection::Default,
            },
        };
        create(&node, c).await
    })
}

fn seed_remove(node: Arc<Node>, raw: String, t: KeyType) -> BoxFuture<'static, InfoResult> {
    Box::pin(async move {
        let (namespace, set, bin) = seed_args(&raw)?;
        if node.catalog().namespace(&namespace).is_none() {
            return Err(InfoError::no_namespace(&namespace));
        }
        drop_sindex(&node, &namespace, &seed_name(&set, &bin, t)).await?;
        Ok("ok".into())
    })
}

pub fn index_integer_create(node: Arc<Node>, raw: String) -> BoxFuture<'static, InfoResult> {
    seed_create(node, raw, KeyType::Numeric)
}

pub fn index_string_create(node: Arc<Node>, raw: String) -> BoxFuture<'static, InfoResult> {
    seed_create(node, raw, KeyType::String)
}

pub fn index_integer_remove(node: Arc<Node>, raw: String) -> BoxFuture<'static, InfoResult> {
    seed_remove(node, raw, KeyType::Numeric)
}

pub fn index_string_remove(node: Arc<Node>, raw: String) -> BoxFuture<'static, InfoResult> {
    seed_remove(node, raw, KeyType::String)
}

/// This node's copies of one index: entries, memory, and how far the build is.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct IndexFigures {
    pub entries: u64,
    pub used_bytes: u64,
    /// The least built copy's `load_pct` (100 when this node holds no group).
    pub load_pct: u64,
}

pub fn index_figures(node: &Node, ns: &Namespace, name: &str) -> IndexFigures {
    let mut f = IndexFigures {
        load_pct: 100,
        ..IndexFigures::default()
    };
    for g in 0..ns.settings.groups {
        let Some(group) = node.multi.group(ns.group_id(g)) else {
            continue;
        };
        let Ok(records) = group.records.read() else {
            continue;
        };
        match records.index(name) {
            Some(ix) => {
                f.entries += ix.entries();
                f.used_bytes += ix.used_bytes();
                f.load_pct = f.load_pct.min(ix.state.load_pct());
            }
            // The group has not added it yet.
            None => f.load_pct = 0,
        }
    }
    f
}

fn list_entry(node: &Node, ns: &Namespace, name: &str, d: &SindexDef) -> String {
    let state = if index_figures(node, ns, name).load_pct == 100 {
        "RW"
    } else {
        "WO"
    };
    format!(
        "ns={}:indexname={name}:set={}:bin={}:type={}:indextype={}:context=null:exp=null:state={state}",
        ns.name,
        d.set.as_deref().unwrap_or("null"),
        d.bin,
        d.key_type.name(),
        d.collection.name(),
    )
}

fn list(node: &Node, only: Option<&str>, set: Option<&str>) -> String {
    let catalog = node.catalog();
    let mut out = Vec::new();
    for ns in catalog.namespaces.values() {
        if only.is_some_and(|n| n != ns.name) {
            continue;
        }
        for (name, d) in &ns.sindexes {
            if set.is_some_and(|s| d.set.as_deref() != Some(s)) {
                continue;
            }
            out.push(list_entry(node, ns, name, d));
        }
    }
    out.join(";")
}

/// `sindex-list:[ns=NS]`.
pub fn sindex_list(node: &Node, cmd: &InfoCommand) -> InfoResult {
    let params = cmd.params();
    params.only(&["ns", "namespace", "b64"])?;
    let ns = params.get(&["namespace", "ns"])?;
    if let Some(n) = ns {
        if node.catalog().namespace(n).is_none() {
            return Err(InfoError::no_namespace(n));
        }
    }
    Ok(list(node, ns, None))
}

fn stats(node: &Node, ns: &str, name: &str) -> InfoResult {
    let catalog = node.catalog();
    let ns = catalog
        .namespace(ns)
        .ok_or_else(|| InfoError::new(ResultCode::Namespace, "namespace not found on node"))?;
    if !ns.sindexes.contains_key(name) {
        return Err(InfoError::new(ResultCode::IndexNotFound, "no index"));
    }
    let f = index_figures(node, ns, name);
    let per_entry = f.used_bytes.checked_div(f.entries).unwrap_or(0);
    Ok(format!(
        "entries={};used_bytes={};entries_per_bval=1;entries_per_rec=1;bytes_per_entry={per_entry};load_pct={};load_time=0;stat_gc_recs=0",
        f.entries, f.used_bytes, f.load_pct
    ))
}

/// `sindex` (every index), `sindex/NS` (one namespace's), `sindex/NS/NAME` (its figures).
pub fn sindex(node: &Node, cmd: &InfoCommand) -> InfoResult {
    match cmd.path()[..] {
        [] => Ok(list(node, None, None)),
        [ns] => match node.catalog().namespace(ns) {
            Some(_) => Ok(list(node, Some(ns), None)),
            None => Ok("ns_type=unknown".into()),
        },
        [ns, name] => stats(node, ns, name),
        _ => Err(InfoError::parameter("expected sindex/<namespace>/<index>")),
    }
}

/// `sindex-stat:namespace=NS;indexname=NAME`.
pub fn sindex_stat(node: &Node, cmd: &InfoCommand) -> InfoResult {
    let params = cmd.params();
    let ns = params.required(&["namespace", "ns"])?;
    let name = params.required(&["indexname"])?;
    stats(node, ns, name)
}

/// `sindex-exists:ns=NS;indexname=NAME`: `true` or `false`.
pub fn sindex_exists(node: &Node, cmd: &InfoCommand) -> InfoResult {
    let params = cmd.params();
    let ns = params.required(&["namespace", "ns"])?;
    let name = params.required(&["indexname"])?;
    let catalog = node.catalog();
    let ns = catalog
        .namespace(ns)
        .ok_or_else(|| InfoError::no_namespace(ns))?;
    Ok(ns.sindexes.contains_key(name).to_string())
}

/// The seed's `show-indexes NS [SET]`.
pub fn show_indexes(node: &Node, cmd: &InfoCommand) -> InfoResult {
    match cmd.words()[..] {
        [ns] | [ns, _] if node.catalog().namespace(ns).is_none() => {
            Err(InfoError::no_namespace(ns))
        }
        [ns] => Ok(list(node, Some(ns), None)),
        [ns, set] => Ok(list(node, Some(ns), Some(set))),
        _ => Err(InfoError::parameter("expected: <namespace> [<set>]")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Create, String> {
        parse_create(&InfoCommand::parse(raw).params()).map_err(|e| e.render())
    }

    #[test]
    fn both_create_grammars() {
        let old = parse("sindex-create:ns=test;set=demo;indexname=age_index;indexdata=age,NUMERIC")
            .unwrap();
        let new =
            parse("sindex-create:namespace=test;set=demo;indexname=age_index;bin=age;type=numeric")
                .unwrap();
        assert_eq!(old, new);
        assert_eq!(old.def.key_type, KeyType::Numeric);
        assert_eq!(old.def.set.as_deref(), Some("demo"));
        let list = parse("sindex-create:ns=test;indexname=l;indextype=LIST;indexdata=tags,STRING")
            .unwrap();
        assert_eq!(list.def.collection, Collection::List);
        assert_eq!(list.def.set, None);
    }

    #[test]
    fn create_errors() {
        assert_eq!(
            parse("sindex-create:ns=test;indexname=x"),
            Err("ERROR:4:missing 'indexdata'".into())
        );
        assert_eq!(
            parse("sindex-create:ns=test;indexname=x;indexdata=a,NUMERIC;type=numeric"),
            Err("ERROR:4:both 'indexdata' and 'type' are specified".into())
        );
        assert!(parse("sindex-create:ns=test;indexname=x;indexdata=a,GEO2DSPHERE").is_err());
        assert!(
            parse("sindex-create:ns=test;indexname=x;indexdata=a,NUMERIC;indextype=foo").is_err()
        );
        assert!(parse("sindex-create:indexname=x;indexdata=a,NUMERIC").is_err());
    }

    #[test]
    fn seed_names() {
        assert_eq!(seed_name("demo", "age", KeyType::Numeric), "demo_age_int");
        assert_eq!(seed_name("demo", "name", KeyType::String), "demo_name_str");
        assert!(seed_args("index-integer-create test demo").is_err());
    }
}
