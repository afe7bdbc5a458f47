//! What every part of a running node shares: its configuration, the Raft groups, the
//! fabric, the gossip view, the applied catalog, counters and the clock.
//!
//! The service, the balancer and the catalog follower each work on a `Context`; only
//! [`crate::node`] builds one and owns the tasks that use it, so nothing here depends on
//! the parts that use it.

use crate::catalog::propose::{decode_reply, encode_command, ProposeError, ProposeReply};
use crate::clock::Clock;
use crate::cluster::gossip::Member;
use crate::config::NodeConfig;
use crate::fabric::Fabric;
use crate::fabric::ForwardError;
use crate::stats::Stats;
use raft::{GroupId, MultiRaft, NodeId, ReadConfirm, WriteError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use storage::catalog::{Catalog, Namespace};
use storage::command::{Command, Outcome};
use storage::log_store::LogStore;
use storage::record::ResultCode;
use tokio::sync::watch;

/// Pause before retrying while a group has no known leader (an election is under way).
const RETRY_PAUSE: Duration = Duration::from_millis(30);

pub type Members = watch::Receiver<BTreeMap<u64, Member>>;

/// Where a key's request goes: its namespace's group for the partition, and the settings the
/// request path needs.
#[derive(Clone, Debug)]
pub struct Route {
    pub group: GroupId,
    pub replicas: Vec<NodeId>,
    pub default_ttl: u32,
    pub allow_relaxed_reads: bool,
    /// The namespace's `default-read-touch-ttl-pct` (0 = reads never touch).
    pub read_touch_ttl_pct: u32,
    /// How a linearizable read confirms leadership (`lease-reads`).
    pub read_confirm: ReadConfirm,
}

pub struct Context {
    pub config: NodeConfig,
    pub multi: Arc<MultiRaft>,
    pub fabric: Arc<Fabric>,
    pub members: Members,
    /// The catalog as applied here (published by the metadata group's state machine).
    pub(crate) catalog: watch::Receiver<Arc<Catalog>>,
    pub(crate) ready: AtomicBool,
    pub(crate) log: Arc<dyn LogStore>,
    /// The wall clock (leaders stamp it into commands; apply never reads it).
    pub clock: Arc<dyn Clock>,
    pub stats: Stats,
    pub started: Instant,
    /// (fingerprint of the last `replicas` answer, partition-generation)
    pub partition_generation: Mutex<(u64, i64)>,
    /// (fingerprint of the last peer list, peers-generation)
    pub peers_generation: Mutex<(u64, u64)>,
}

/// A node's name in info answers: its id in uppercase hex.
pub fn node_name(id: NodeId) -> String {
    format!("{id:X}")
}

impl Context {
    /// The write-ahead log's counters (fsyncs and how many requests they covered).
    pub fn log_stats(&self) -> storage::log_store::LogStoreStats {
        self.log.stats()
    }

    /// The catalog as applied on this node.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.borrow().clone()
    }

    /// A receiver that wakes on every applied catalog change.
    pub fn catalog_changes(&self) -> watch::Receiver<Arc<Catalog>> {
        self.catalog.clone()
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether this node holds all its groups (clients are told to wait until then).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The group serving `partition` of `namespace`: NAMESPACE (20) for an unknown namespace,
    /// UNAVAILABLE (11) before the cluster has formed.
    pub fn route(&self, namespace: &str, partition: u16) -> Result<Route, ResultCode> {
        let catalog = self.catalog.borrow();
        let Some(ns) = catalog.namespace(namespace) else {
            return Err(if catalog.formed {
                ResultCode::Namespace
            } else {
                ResultCode::Unavailable
            });
        };
        Ok(route_in(&catalog, ns, partition))
    }

    /// Nodes gossip sees alive, this one included, ascending (Aerospike's observed nodes).
    pub fn live_nodes(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self
            .members
            .borrow()
            .values()
            .filter(|m| m.up)
            .map(|m| m.node_id)
            .chain(std::iter::once(self.config.node_id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Nodes in the cluster as gossip sees them, this one included.
    pub fn cluster_size(&self) -> usize {
        self.live_nodes().len()
    }

    /// Whether gossip currently sees `id` alive (this node always is).
    pub fn is_up(&self, id: NodeId) -> bool {
        id == self.config.node_id || self.members.borrow().get(&id).is_some_and(|m| m.up)
    }

    /// Propose `cmd` on `group` through its leader, wherever it is: locally when this node
    /// leads, else through the fabric to the leader hint or one of `candidates`, retrying
    /// while leadership is unknown, until `deadline`. Answers the outcome and the log index
    /// it was applied at.
    pub async fn propose(
        &self,
        group: GroupId,
        cmd: Command,
        candidates: &[NodeId],
        deadline: Instant,
    ) -> Result<(Outcome, u64), ProposeError> {
        let node = self;
        let me = node.config.node_id;
        let encoded = encode_command(&cmd);
        let mut hint: Option<NodeId> = None;
        let mut attempt = 0usize;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ProposeError::NotApplied(format!(
                    "no leader of group {group} accepted the command in time"
                )));
            }
            let target = match hint.take().filter(|h| *h != me) {
                Some(h) => Some(h),
                None => match node.multi.write_at(group, cmd.clone(), remaining).await {
                    Ok(done) => return Ok(done),
                    Err(WriteError::InDoubt(why)) => return Err(ProposeError::InDoubt(why)),
                    Err(WriteError::NotLeader(Some(h))) if h != me => Some(h),
                    Err(_) => {
                        let live: Vec<NodeId> = candidates
                            .iter()
                            .copied()
                            .filter(|c| *c != me && node.is_up(*c))
                            .collect();
                        (!live.is_empty()).then(|| live[attempt % live.len()])
                    }
                },
            };
            attempt += 1;
            if let Some(target) = target {
                let remaining = deadline.saturating_duration_since(Instant::now());
                match node
                    .fabric
                    .propose(target, group, &encoded, remaining)
                    .await
                    .map(|b| decode_reply(&b))
                {
                    Ok(Ok(ProposeReply::Applied { outcome, index })) => {
                        return Ok((outcome, index))
                    }
                    Ok(Ok(ProposeReply::InDoubt(why))) => return Err(ProposeError::InDoubt(why)),
                    Ok(Ok(ProposeReply::NotLeader(h))) => {
                        hint = h;
                        if hint.is_some() {
                            continue;
                        }
                    }
                    Ok(Ok(ProposeReply::NoGroup)) => {}
                    Ok(Ok(ProposeReply::Refused(why))) => {
                        return Err(ProposeError::NotApplied(why))
                    }
                    Ok(Err(why)) => return Err(ProposeError::InDoubt(why)),
                    Err(ForwardError::NotSent(_)) => {}
                    Err(ForwardError::Unknown(why)) => return Err(ProposeError::InDoubt(why)),
                }
            }
            tokio::time::sleep(RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now())))
                .await;
        }
    }
}

/// The route of `partition` in `ns` of `catalog` (pure).
pub fn route_in(catalog: &Catalog, ns: &Namespace, partition: u16) -> Route {
    let g = ns.group_of(partition);
    Route {
        group: ns.group_id(g),
        replicas: ns
            .placement
            .get(usize::from(g))
            .cloned()
            .unwrap_or_default(),
        default_ttl: ns.settings.default_ttl,
        allow_relaxed_reads: ns.settings.allow_relaxed_reads,
        read_touch_ttl_pct: ns.settings.read_touch_ttl_pct,
        read_confirm: if catalog.reads_by_lease(ns) {
            ReadConfirm::Lease
        } else {
            ReadConfirm::Quorum
        },
    }
}
