//! `strato admin`: the roster workflow for people, on top of the info commands an operator
//! (or asadm) would send: `status`, `roster show|add|remove|set`, `recluster`, with `--wait`
//! following the moves until every node answers `cluster-stable` with the same key.
//!
//! Answers are parsed and rendered by pure functions; the I/O is the info requests.

use crate::info_client::request;
use crate::service::info::roster::node_list;
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone, Debug)]
pub struct AdminArgs {
    /// Any node's service address.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub host: String,
    /// Only this namespace (default: every namespace).
    #[arg(long)]
    pub namespace: Option<String>,
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    #[command(subcommand)]
    pub command: AdminCmd,
}

#[derive(clap::Subcommand, Clone, Debug)]
pub enum AdminCmd {
    /// Nodes up and observed, rosters, groups and leaders per node, moves still pending.
    Status,
    /// Show or stage rosters (a staged roster is active after `recluster`).
    Roster {
        #[command(subcommand)]
        op: RosterOp,
    },
    /// Activate the staged rosters and move replicas.
    Recluster {
        /// Follow the moves with a progress bar until the cluster is stable.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 3600)]
        wait_secs: u64,
    },
}

#[derive(clap::Subcommand, Clone, Debug)]
pub enum RosterOp {
    /// Active roster, staged roster and observed nodes per namespace.
    Show,
    /// Stage the roster plus these node ids (hex, as `roster` prints them).
    Add { ids: Vec<String> },
    /// Stage the roster without these node ids.
    Remove { ids: Vec<String> },
    /// Stage exactly these node ids (comma or space separated).
    Set { ids: Vec<String> },
}

/// One namespace's lists from a `roster:` answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rosters {
    pub roster: Vec<u64>,
    pub pending: Vec<u64>,
    pub observed: Vec<u64>,
}

/// Node ids of a list as `roster` prints it (`null`, or hex ids with optional `@rack`).
pub fn parse_node_list(list: &str) -> Vec<u64> {
    if list == "null" {
        return Vec::new();
    }
    list.split(',')
        .filter_map(|id| u64::from_str_radix(id.split('@').next().unwrap_or(id), 16).ok())
        .collect()
}

/// Every namespace of a `roster:` answer (`ns=NS:roster=..:pending_roster=..:observed_nodes=..`
/// joined by `;`).
pub fn parse_rosters(answer: &str) -> BTreeMap<String, Rosters> {
    let mut out = BTreeMap::new();
    for ns in answer.split(';').filter(|s| !s.is_empty()) {
        let fields: BTreeMap<&str, &str> =
            ns.split(':').filter_map(|kv| kv.split_once('=')).collect();
        if let Some(name) = fields.get("ns") {
            let list = |k: &str| parse_node_list(fields.get(k).copied().unwrap_or("null"));
            out.insert(
                name.to_string(),
                Rosters {
                    roster: list("roster"),
                    pending: list("pending_roster"),
                    observed: list("observed_nodes"),
                },
            );
        }
    }
    out
}

/// Hex node ids as typed (`1,2` or `1 2`, any case).
pub fn parse_ids(words: &[String]) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::new();
    for w in words
        .iter()
        .flat_map(|w| w.split(','))
        .filter(|w| !w.is_empty())
    {
        let id = u64::from_str_radix(w, 16)
            .ok()
            .filter(|n| *n != 0)
            .with_context(|| format!("{w:?} is not a node id (hex, as `roster` prints them)"))?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// The roster a staging operation leaves, from the currently staged one.
pub fn staged(pending: &[u64], op: &RosterOp, ids: &[u64]) -> Vec<u64> {
    let mut next: Vec<u64> = match op {
        RosterOp::Add { .. } => pending.iter().chain(ids).copied().collect(),
        RosterOp::Remove { .. } => pending
            .iter()
            .copied()
            .filter(|n| !ids.contains(n))
            .collect(),
        RosterOp::Set { .. } | RosterOp::Show => ids.to_vec(),
    };
    next.sort_unstable_by(|a, b| b.cmp(a));
    next.dedup();
    next
}

/// `[#####.....] done/total` for the progress of the moves.
pub fn progress_bar(remaining: usize, total: usize, width: usize) -> String {
    let total = total.max(remaining).max(1);
    let done = total - remaining;
    let filled = done * width / total;
    format!(
        "[{}{}] {done}/{total} partitions moved",
        "#".repeat(filled),
        ".".repeat(width - filled)
    )
}

/// `k=v;k=v` into a map.
fn fields(answer: &str) -> BTreeMap<String, String> {
    answer
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct Admin {
    host: String,
    timeout: Duration,
}

impl Admin {
    async fn one(&self, host: &str, cmd: &str) -> anyhow::Result<String> {
        let answers = request(host, &[cmd.to_string()], self.timeout).await?;
        answers
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .with_context(|| format!("{host} did not answer `{cmd}`"))
    }

    async fn ok(&self, cmd: &str) -> anyhow::Result<()> {
        let answer = self.one(&self.host, cmd).await?;
        if answer != "ok" {
            bail!("`{cmd}` answered {answer}");
        }
        Ok(())
    }

    /// This node and every node it sees (service addresses).
    async fn nodes(&self) -> anyhow::Result<Vec<String>> {
        let others = self.one(&self.host, "services").await?;
        let mut out = vec![self.host.clone()];
        out.extend(
            others
                .split(';')
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
        Ok(out)
    }

    async fn rosters(&self, only: Option<&str>) -> anyhow::Result<BTreeMap<String, Rosters>> {
        let mut all = parse_rosters(&self.one(&self.host, "roster:").await?);
        if let Some(ns) = only {
            all.retain(|name, _| name == ns);
            if all.is_empty() {
                bail!("namespace {ns} not found");
            }
        }
        Ok(all)
    }

    /// Partitions still moving (summed over namespaces) and whether every node answers
    /// `cluster-stable` with the same key.
    async fn stability(&self) -> anyhow::Result<(usize, bool)> {
        let stats = fields(&self.one(&self.host, "statistics").await?);
        let remaining = stats
            .get("migrate_partitions_remaining")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut keys = Vec::new();
        for n in self.nodes().await? {
            keys.push(
                self.one(&n, "cluster-stable:")
                    .await
                    .unwrap_or_else(|e| format!("ERROR {e}")),
            );
        }
        let stable =
            keys.iter().all(|k| !k.starts_with("ERROR")) && keys.windows(2).all(|w| w[0] == w[1]);
        Ok((remaining, stable))
    }

    async fn wait_stable(&self, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        let mut total = 0;
        loop {
            let (remaining, stable) = self.stability().await?;
            total = total.max(remaining);
            eprint!("\r{}   ", progress_bar(remaining, total, 40));
            let _ = std::io::stderr().flush();
            if stable {
                eprintln!(
                    "\rstable after {:.1} s{}",
                    start.elapsed().as_secs_f64(),
                    " ".repeat(40)
                );
                return Ok(());
            }
            if start.elapsed() > limit {
                eprintln!();
                bail!(
                    "not stable after {} s ({remaining} partitions still moving)",
                    limit.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn status(&self, only: Option<&str>) -> anyhow::Result<String> {
        let mut out = String::new();
        let nodes = self.nodes().await?;
        let rosters = self.rosters(only).await?;
        let stats = fields(&self.one(&self.host, "statistics").await?);
        out += &format!(
            "cluster_size {}, migrate_partitions_remaining {}, unavailable_partitions {}\n",
            stats.get("cluster_size").map_or("?", String::as_str),
            stats
                .get("migrate_partitions_remaining")
                .map_or("?", String::as_str),
            stats
                .get("unavailable_partitions")
                .map_or("?", String::as_str),
        );
        for (ns, r) in &rosters {
            out += &format!(
                "namespace {ns}: roster {}, pending {}, observed {}\n",
                node_list(&r.roster),
                node_list(&r.pending),
                node_list(&r.observed)
            );
        }
        out += "node              address               groups  led  objects\n";
        for n in &nodes {
            let id = self.one(n, "node").await.unwrap_or_else(|_| "?".into());
            let s = fields(&self.one(n, "statistics").await.unwrap_or_default());
            let groups: i64 = s
                .get("raft_groups")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            out += &format!(
                "{id:<17} {n:<21} {:>6} {:>4} {:>8}\n",
                (groups - 1).max(0),
                s.get("raft_groups_led").map_or("?", String::as_str),
                s.get("objects").map_or("?", String::as_str)
            );
        }
        let (_, stable) = self.stability().await?;
        out += if stable {
            "stable\n"
        } else {
            "moving (not stable yet)\n"
        };
        Ok(out)
    }
}

pub async fn run(a: AdminArgs) -> anyhow::Result<()> {
    let admin = Admin {
        host: a.host.clone(),
        timeout: Duration::from_millis(a.timeout_ms),
    };
    let only = a.namespace.as_deref();
    match &a.command {
        AdminCmd::Status => print!("{}", admin.status(only).await?),
        AdminCmd::Roster { op: RosterOp::Show } => {
            for (ns, r) in admin.rosters(only).await? {
                println!(
                    "{ns}: roster={} pending_roster={} observed_nodes={}",
                    node_list(&r.roster),
                    node_list(&r.pending),
                    node_list(&r.observed)
                );
            }
        }
        AdminCmd::Roster { op } => {
            let ids = match op {
                RosterOp::Add { ids } | RosterOp::Remove { ids } | RosterOp::Set { ids } => {
                    parse_ids(ids)?
                }
                RosterOp::Show => Vec::new(),
            };
            if ids.is_empty() {
                bail!("name at least one node id");
            }
            for (ns, r) in admin.rosters(only).await? {
                let next = staged(&r.pending, op, &ids);
                if next.is_empty() {
                    bail!("namespace {ns}: the staged roster would be empty");
                }
                admin
                    .ok(&format!(
                        "roster-set:namespace={ns};nodes={}",
                        node_list(&next)
                    ))
                    .await?;
                println!(
                    "{ns}: staged roster {} (run `strato admin recluster --wait` to apply)",
                    node_list(&next)
                );
            }
        }
        AdminCmd::Recluster { wait, wait_secs } => {
            admin.ok("recluster:").await?;
            println!("recluster: ok");
            if *wait {
                admin.wait_stable(Duration::from_secs(*wait_secs)).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_roster_answers() {
        let r = parse_rosters("ns=test:roster=3,2,1:pending_roster=4,3,2,1:observed_nodes=4,3,2,1;ns=x:roster=null:pending_roster=null:observed_nodes=A@2");
        assert_eq!(r["test"].roster, vec![3, 2, 1]);
        assert_eq!(r["test"].pending, vec![4, 3, 2, 1]);
        assert_eq!(
            r["x"],
            Rosters {
                roster: vec![],
                pending: vec![],
                observed: vec![10]
            }
        );
    }

    #[test]
    fn stages_rosters() {
        let add = RosterOp::Add { ids: vec![] };
        let remove = RosterOp::Remove { ids: vec![] };
        let set = RosterOp::Set { ids: vec![] };
        assert_eq!(staged(&[3, 2, 1], &add, &[5, 4]), vec![5, 4, 3, 2, 1]);
        assert_eq!(staged(&[3, 2, 1], &remove, &[2]), vec![3, 1]);
        assert_eq!(staged(&[3, 2, 1], &set, &[7, 8]), vec![8, 7]);
        assert_eq!(
            parse_ids(&["a,B".into(), "3".into()]).unwrap(),
            vec![10, 11, 3]
        );
        assert!(parse_ids(&["x".into()]).is_err());
        assert!(parse_ids(&["0".into()]).is_err());
    }

    #[test]
    fn draws_progress() {
        assert_eq!(progress_bar(0, 0, 4), "[####] 1/1 partitions moved");
        assert_eq!(
            progress_bar(256, 1024, 4),
            "[###.] 768/1024 partitions moved"
        );
    }
}
