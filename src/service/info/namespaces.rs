//! Namespaces: list, describe, configure, create and drop.
//!
//! Both grammars: `create-namespace NS [k=v ...]` (the seed's) and
//! `create-namespace:namespace=NS;k=v;...` (Aerospike's style); `drop-namespace NS` and
//! `drop-namespace:namespace=NS`.

use super::stats::namespace_counts;
use crate::catalog::change::change;
use crate::context::Context as Node;
use crate::protocol::info_command::{parse_ttl, InfoCommand, InfoError, InfoResult, Params};
use futures::future::BoxFuture;
use std::sync::Arc;
use storage::catalog::{
    validate_namespace_name, Catalog, CatalogCommand, LiveSetting, Namespace, NamespaceSettings,
};
use storage::record::ResultCode;

/// Settings `create-namespace` accepts, besides `namespace`.
const CREATE_KEYS: &[&str] = &[
    "namespace",
    "replication-factor",
    "default-ttl",
    "raft-groups",
    "allow-relaxed-reads",
    "default-read-touch-ttl-pct",
    "nsup-period",
    "lease-reads",
];

pub fn list(node: &Node, _: &InfoCommand) -> InfoResult {
    Ok(node
        .catalog()
        .namespaces
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(";"))
}

/// `namespace/NS` (or `namespace:NS`): figures then configuration; `type=unknown` for a
/// namespace that does not exist, as Aerospike answers.
pub fn namespace(node: &Node, cmd: &InfoCommand) -> InfoResult {
    let path = cmd.path();
    let name = match path.first() {
        Some(n) if !n.is_empty() => *n,
        _ => {
            return Err(InfoError::new(
                ResultCode::Namespace,
                "missing namespace name (namespace/<ns>)",
            ))
        }
    };
    let catalog = node.catalog();
    let Some(ns) = catalog.namespace(name) else {
        return Ok("type=unknown".into());
    };
    let counts = namespace_counts(node, ns);
    let cluster_size = ns.roster.iter().filter(|id| node.is_up(**id)).count();
    let moves = super::roster::figures(&catalog, ns, |id| node.is_up(id));
    let figures = [
        ("ns_cluster_size", cluster_size.to_string()),
        ("cluster_size", node.cluster_size().to_string()),
        (
            "migrate_partitions_remaining",
            moves.migrate_partitions_remaining.to_string(),
        ),
        (
            "effective_replication_factor",
            ns.effective_replication_factor().to_string(),
        ),
        ("objects", (counts.master + counts.replica).to_string()),
        ("tombstones", "0".into()),
        ("master_objects", counts.master.to_string()),
        ("master_tombstones", "0".into()),
        ("prole_objects", counts.replica.to_string()),
        ("prole_tombstones", "0".into()),
        ("non_replica_objects", "0".into()),
        ("dead_partitions", "0".into()),
        (
            "unavailable_partitions",
            moves.unavailable_partitions.to_string(),
        ),
        ("stop_writes", "false".into()),
        ("current_time", node.clock.now_since_2010().to_string()),
        ("data_used_bytes", counts.bytes.to_string()),
        ("sets", (ns.sets.len() as u64).to_string()),
        ("truncate_lut", ns.truncate_lut.to_string()),
        ("expired_objects", counts.expired.to_string()),
    ];
    let mut out: Vec<String> = figures.iter().map(|(k, v)| format!("{k}={v}")).collect();
    out.push(config(&catalog, ns));
    Ok(out.join(";"))
}

/// A namespace's configuration as `k=v;...` (alphabetical, as Aerospike prints it).
fn config(catalog: &Catalog, ns: &Namespace) -> String {
    let s = &ns.settings;
    format!(
        "allow-relaxed-reads={};default-read-touch-ttl-pct={};default-ttl={};lease-reads={};nsup-period={};raft-groups={};replication-factor={};storage-engine=memory;strong-consistency=true",
        s.allow_relaxed_reads, s.read_touch_ttl_pct, s.default_ttl, catalog.reads_by_lease(ns), s.nsup_period, s.groups, s.replication_factor
    )
}

/// `get-config:context=namespace;namespace=NS` (or `id=NS`); `context=service` for the node.
pub fn get_config(node: &Node, cmd: &InfoCommand) -> InfoResult {
    let params = cmd.params();
    match params.get(&["context"])?.unwrap_or("service") {
        "namespace" => {
            let name = params.required(&["namespace", "id"])?;
            let catalog = node.catalog();
            let ns = catalog.namespace(name).ok_or_else(|| {
                InfoError::new(ResultCode::Namespace, "namespace not found on node")
            })?;
            Ok(config(&catalog, ns))
        }
        "service" | "network" => Ok(format!(
            "cluster-name={};node-id={};service-address={};service-port={};fabric-port={};heartbeat-port={};proto-fd-idle-ms=600000",
            node.config.cluster_name,
            crate::context::node_name(node.config.node_id),
            node.config.host,
            node.config.port,
            node.config.port + 1,
            node.config.port + 2
        )),
        _ => Err(InfoError::parameter("invalid context")),
    }
}

/// `set-config:context=namespace;namespace=NS;default-ttl=S` (or `allow-relaxed-reads=B`,
/// `default-read-touch-ttl-pct=P`, `nsup-period=S`, `lease-reads=B`): one setting per
/// command, replicated through the catalog.
pub fn set_config(node: Arc<Node>, raw: String) -> BoxFuture<'static, InfoResult> {
    Box::pin(async move {
        let cmd = InfoCommand::parse(&raw);
        let params = cmd.params();
        if params.required(&["context"])? != "namespace" {
            return Err(InfoError::parameter("invalid context"));
        }
        let namespace = params.required(&["namespace", "id"])?.to_string();
        if params.get(&["set"])?.is_some() {
            return Err(InfoError::parameter(
                "set-level configuration is not supported (create a set with create-set)",
            ));
        }
        let changes: Vec<&str> = params
            .keys()
            .filter(|k| !matches!(*k, "context" | "namespace" | "id"))
            .collect();
        let invalid = || InfoError::parameter("invalid set-config parameter");
        let [key] = changes.as_slice() else {
            return Err(invalid());
        };
        let value = params.required(&[key])?;
        let setting = match *key {
            "default-ttl" => LiveSetting::DefaultTtl(parse_ttl(key, value)?),
            "allow-relaxed-reads" => {
                LiveSetting::AllowRelaxedReads(params.boolean(key)?.ok_or_else(invalid)?)
            }
            "default-read-touch-ttl-pct" => {
                LiveSetting::ReadTouchTtlPct(params.number(key)?.ok_or_else(invalid)?)
            }
            "nsup-period" => LiveSetting::NsupPeriod(parse_ttl(key, value)?),
            "lease-reads" => LiveSetting::LeaseReads(params.boolean(key)?.ok_or_else(invalid)?),
            _ => return Err(invalid()),
        };
        change(
            &node,
            CatalogCommand::SetNamespaceConfig { namespace, setting },
        )
        .await?;
        Ok("ok".into())
    })
}

/// The namespace named by a command in either grammar, and the rest of its parameters as
/// `k=v;...` text (the seed's extra words are `k=v` too).
pub(super) fn target(cmd: &InfoCommand) -> Result<(String, String), InfoError> {
    if cmd.is_seed_form() {
        let words = cmd.words();
        let name = words
            .first()
            .ok_or_else(|| InfoError::new(ResultCode::Namespace, "missing 'namespace'"))?;
        return Ok((name.to_string(), words[1..].join(";")));
    }
    let params = cmd.params();
    let name = params.required(&["namespace", "ns"])?;
    Ok((name.to_string(), cmd.rest.to_string()))
}

/// The settings of a new namespace: the template's replication factor and group count (the
/// node's first configured namespace), overridden by the command's parameters.
fn settings(template: NamespaceSettings, params: &Params) -> Result<NamespaceSettings, InfoError> {
    params.only(CREATE_KEYS)?;
    let mut s = NamespaceSettings {
        replication_factor: template.replication_factor,
        groups: template.groups,
        default_ttl: 0,
        allow_relaxed_reads: false,
        read_touch_ttl_pct: 0,
        nsup_period: storage::catalog::DEFAULT_NSUP_PERIOD,
    };
    if let Some(rf) = params.number("replication-factor")? {
        s.replication_factor = rf;
    }
    if let Some(t) = params.get(&["default-ttl"])? {
        s.default_ttl = parse_ttl("default-ttl", t)?;
    }
    if let Some(g) = params.number("raft-groups")? {
        s.groups = g;
    }
    if let Some(r) = params.boolean("allow-relaxed-reads")? {
        s.allow_relaxed_reads = r;
    }
    if let Some(p) = params.number("default-read-touch-ttl-pct")? {
        s.read_touch_ttl_pct = p;
    }
    if let Some(p) = params.get(&["nsup-period"])? {
        s.nsup_period = parse_ttl("nsup-period", p)?;
    }
    storage::catalog::validate_settings(&s)?;
    Ok(s)
}

pub fn create(node: Arc<Node>, raw: String) -> BoxFuture<'static, InfoResult> {
    Box::pin(async move {
        let cmd = InfoCommand::parse(&raw);
        let (name, rest) = target(&cmd)?;
        validate_namespace_name(&name)?;
        let template = node
            .config
            .namespaces
            .first()
            .map(|n| n.settings())
            .unwrap_or_default();
        let params = Params::parse(&rest);
        let settings = settings(template, &params)?;
        let lease_reads = params.boolean("lease-reads")?.unwrap_or(false);
        let asked = settings.replication_factor;
        change(
            &node,
            CatalogCommand::CreateNamespace {
                name: name.clone(),
                settings,
            },
        )
        .await?;
        if lease_reads {
            // A second catalog change: until it commits the namespace reads by ReadIndex,
            // which is always safe.
            let setting = LiveSetting::LeaseReads(true);
            let namespace = name.clone();
            change(
                &node,
                CatalogCommand::SetNamespaceConfig { namespace, setting },
            )
            .await
            .map_err(|e| {
                InfoError::new(
                    e.code,
                    format!("namespace created, but lease-reads not set: {}", e.message),
                )
            })?;
        }
        let effective = node
            .catalog()
            .namespace(&name)
            .map_or(asked, |n| n.effective_replication_factor());
        Ok(if effective < asked {
            format!("ok:replication-factor {asked} capped at {effective} (the roster has {effective} nodes)")
        } else {
            "ok".into()
        })
    })
}

/// The namespace a `drop-namespace` names. Nothing is dropped on a command not fully
/// understood: any parameter besides the name is refused.
fn drop_target(cmd: &InfoCommand) -> Result<String, InfoError> {
    let (name, rest) = target(cmd)?;
    if cmd.is_seed_form() {
        if !rest.is_empty() {
            return Err(InfoError::parameter("drop-namespace takes only a name"));
        }
    } else {
        Params::parse(&rest).only(&["namespace", "ns"])?;
    }
    validate_namespace_name(&name)?;
    Ok(name)
}

pub fn drop(node: Arc<Node>, raw: String) -> BoxFuture<'static, InfoResult> {
    Box::pin(async move {
        let name = drop_target(&InfoCommand::parse(&raw))?;
        crate::catalog::change::drop_namespace(&node, &name).await?;
        Ok("ok".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<(String, NamespaceSettings), InfoError> {
        let cmd = InfoCommand::parse(raw);
        let (name, rest) = target(&cmd)?;
        validate_namespace_name(&name)?;
        Ok((
            name,
            settings(NamespaceSettings::default(), &Params::parse(&rest))?,
        ))
    }

    #[test]
    fn drop_refuses_what_it_does_not_understand() {
        let drop = |raw: &str| drop_target(&InfoCommand::parse(raw)).map_err(|e| e.render());
        assert_eq!(drop("drop-namespace ns2"), Ok("ns2".into()));
        assert_eq!(drop("drop-namespace:namespace=ns2"), Ok("ns2".into()));
        assert_eq!(drop("drop-namespace:ns=ns2"), Ok("ns2".into()));
        assert_eq!(
            drop("drop-namespace:namespace=ns2;bogus=1"),
            Err("ERROR:4:unknown parameter 'bogus'".into())
        );
        assert!(drop("drop-namespace ns2 extra").is_err());
    }

    #[test]
    fn create_in_both_grammars() {
        let (name, s) = parse("create-namespace ns2").unwrap();
        assert_eq!(
            (name.as_str(), s.replication_factor, s.groups),
            ("ns2", 3, storage::catalog::DEFAULT_GROUPS)
        );
        let (name, s) = parse(
            "create-namespace:namespace=ns3;replication-factor=2;default-ttl=1h;raft-groups=8;allow-relaxed-reads=true",
        )
        .unwrap();
        assert_eq!(name, "ns3");
        assert_eq!(
            s,
            NamespaceSettings {
                replication_factor: 2,
                default_ttl: 3600,
                groups: 8,
                allow_relaxed_reads: true,
                read_touch_ttl_pct: 0,
                nsup_period: storage::catalog::DEFAULT_NSUP_PERIOD,
            }
        );
        let (_, s) = parse("create-namespace ns4 default-ttl=60").unwrap();
        assert_eq!(s.default_ttl, 60);
    }

    #[test]
    fn create_errors_carry_aerospike_codes() {
        let err = |raw: &str| parse(raw).unwrap_err().render();
        assert_eq!(err("create-namespace"), "ERROR:20:missing 'namespace'");
        assert_eq!(
            err("create-namespace:namespace="),
            "ERROR:20:missing 'namespace' value"
        );
        assert_eq!(
            err("create-namespace:replication-factor=2"),
            "ERROR:20:missing 'namespace'"
        );
        assert!(err(&format!("create-namespace {}", "n".repeat(32)))
            .starts_with("ERROR:20:'namespace' value too long"));
        assert!(err("create-namespace:namespace=a.b").starts_with("ERROR:4:"));
        assert_eq!(
            err("create-namespace:namespace=a;colour=red"),
            "ERROR:4:unknown parameter 'colour'"
        );
        assert_eq!(
            err("create-namespace:namespace=a;replication-factor="),
            "ERROR:4:missing 'replication-factor' value"
        );
        assert!(err("create-namespace:namespace=a;replication-factor=0")
            .starts_with("ERROR:4:replication-factor"));
        assert!(
            err("create-namespace:namespace=a;raft-groups=5000").starts_with("ERROR:4:raft-groups")
        );
        assert!(err("create-namespace:namespace=a;default-ttl=soon").starts_with("ERROR:4:"));
        assert!(err("create-namespace:namespace=a;allow-relaxed-reads=yes").starts_with("ERROR:4:"));
    }
}
