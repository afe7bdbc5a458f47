//! Keeping every group's secondary indexes in line with the catalog: on each group this node
//! leads, add the indexes the catalog defines and the group lacks, drop those it no longer
//! defines, and build unbuilt ones in bounded replicated steps (each indexes at most
//! [`STEP`] records after the index's cursor), so writes keep flowing while an index is
//! built over existing data and every replica builds the same entries.
//!
//! `sindex-create` already adds the index to every group it can reach; this task is what
//! makes that reliable (a group without a leader at the time, a node that restarts).

use crate::context::Context as Node;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use storage::catalog::{split_group_id, SindexDef};
use storage::command::Command;

/// How often the groups are checked.
const TICK: Duration = Duration::from_millis(100);
/// Every this many ticks, all groups not known to be in line are looked at.
const SCAN_EVERY: u64 = 10;
/// Records indexed per build command.
const STEP: u32 = 1000;
/// Build commands per group per tick (about 50,000 records per second per group at most,
/// leaving room for the group's writes).
const STEPS_PER_TICK: usize = 5;
/// Longest wait for one command to commit.
const TIMEOUT: Duration = Duration::from_secs(2);

/// What a group must do to match the catalog.
#[derive(Debug, PartialEq, Eq)]
pub enum Fix {
    Create(String, SindexDef),
    Drop(String),
    Build(String),
}

/// The commands that bring a group's indexes (`have`: name → (definition, ready)) in line
/// with the catalog's (`want`). Pure, so the rule is tested on its own.
pub fn fixes(
    want: &BTreeMap<String, SindexDef>,
    have: &BTreeMap<String, (SindexDef, bool)>,
) -> Vec<Fix> {
    let mut out = Vec::new();
    for (name, def) in want {
        match have.get(name) {
            Some((d, ready)) if d == def => {
                if !ready {
                    out.push(Fix::Build(name.clone()));
                }
            }
            _ => out.push(Fix::Create(name.clone(), def.clone())),
        }
    }
    for name in have.keys() {
        if !want.contains_key(name) {
            out.push(Fix::Drop(name.clone()));
        }
    }
    out
}

pub async fn run(node: Arc<Node>) {
    // Groups found in line with `seen_catalog`: nothing changes an index but the commands
    // this task proposes for a new catalog, so they are skipped until the catalog changes
    // (with thousands of groups, looking at each every tick was most of an idle node's CPU).
    let mut seen_catalog: Option<Arc<storage::catalog::Catalog>> = None;
    let mut settled: HashSet<raft::GroupId> = HashSet::new();
    // Groups with commands left to propose are looked at every tick, the others every
    // `SCAN_EVERY` ticks (a leadership change can hand this node a group with work left).
    let mut busy: HashSet<raft::GroupId> = HashSet::new();
    for tick in 0u64.. {
        tokio::time::sleep(TICK).await;
        let scan = tick % SCAN_EVERY == 0;
        let catalog = node.catalog();
        if !seen_catalog
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, &catalog))
        {
            settled.clear();
            seen_catalog = Some(catalog.clone());
        }
        for g in node.multi.groups() {
            if settled.contains(&g.id) || !(scan || busy.contains(&g.id)) {
                continue;
            }
            let (ns_id, _) = split_group_id(g.id);
            let Some(ns) = catalog.namespaces.values().find(|n| n.id == ns_id) else {
                continue;
            };
            if !node.multi.leads(g.id) {
                continue;
            }
            let Ok(have) = node.multi.read_local(g.id, |s| {
                s.indexes()
                    .iter()
                    .map(|(n, ix)| (n.clone(), (ix.state.def.clone(), ix.state.ready)))
                    .collect::<BTreeMap<_, _>>()
            }) else {
                continue;
            };
            let todo = fixes(&ns.sindexes, &have);
            if todo.is_empty() {
                settled.insert(g.id);
                busy.remove(&g.id);
            } else {
                busy.insert(g.id);
            }
            for fix in todo {
                if !apply(&node, g.id, fix).await {
                    break;
                }
            }
        }
    }
}

/// Propose one fix (a build runs up to [`STEPS_PER_TICK`] steps); false when the group
/// stopped accepting commands here.
async fn apply(node: &Node, group: raft::GroupId, fix: Fix) -> bool {
    let (cmd, repeat) = match fix {
        Fix::Create(name, def) => (Command::CreateIndex { name, def }, 1),
        Fix::Drop(name) => (Command::DropIndex { name }, 1),
        Fix::Build(name) => (Command::BuildIndex { name, limit: STEP }, STEPS_PER_TICK),
    };
    for _ in 0..repeat {
        match node.multi.write(group, cmd.clone(), TIMEOUT).await {
            // A build step answers how many records it indexed: fewer than a step means done.
            Ok(o)
                if matches!(cmd, Command::BuildIndex { .. }) && u32::from(o.generation) < STEP =>
            {
                return true
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(node = node.config.node_id, group, error = %e, "index upkeep stopped");
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::index::{Collection, KeyType};

    fn def(bin: &str) -> SindexDef {
        SindexDef {
            set: None,
            bin: bin.into(),
            key_type: KeyType::Numeric,
            collection: Collection::Default,
        }
    }

    #[test]
    fn groups_follow_the_catalog() {
        let want: BTreeMap<String, SindexDef> = [
            ("a".into(), def("a")),
            ("b".into(), def("b")),
            ("c".into(), def("c")),
        ]
        .into();
        let have: BTreeMap<String, (SindexDef, bool)> = [
            ("a".into(), (def("a"), true)),
            ("b".into(), (def("b"), false)),
            ("c".into(), (def("x"), true)),
            ("old".into(), (def("o"), true)),
        ]
        .into();
        assert_eq!(
            fixes(&want, &have),
            vec![
                Fix::Build("b".into()),
                Fix::Create("c".into(), def("c")),
                Fix::Drop("old".into()),
            ]
        );
        assert!(fixes(
            &want,
            &want
                .iter()
                .map(|(n, d)| (n.clone(), (d.clone(), true)))
                .collect()
        )
        .is_empty());
    }
}
