//! A Strato node: wires storage, the Raft groups, the fabric, gossip and the service port,
//! and owns every background task.
//!
//! The metadata group (group 0) is opened on every node; its applied catalog decides which
//! data groups this node hosts ([`crate::catalog::follower`]). A brand-new cluster forms once
//! `--bootstrap-expect` nodes are discovered ([`crate::catalog::formation`]).

use crate::catalog::propose::{ProposeError, ProposeReply};
use crate::cluster::gossip::{Gossip, GossipConfig, Member};
use crate::config::NodeConfig;
use crate::fabric::{self, Fabric};
use crate::stats::Stats;
use anyhow::Context;
use futures::future::BoxFuture;
use raft::{GroupId, MultiRaft, NodeId, SharedCatalog};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use storage::catalog::{Catalog, Namespace, META_GROUP};
use storage::command::Command;
use storage::log_store::{LogStore, SledLogStore, SledLogStoreOptions, NODE_META_GROUP};
use storage::record::ResultCode;
use storage::snapshot_file::SnapshotFiles;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const META_GENERATION: &str = "generation";
/// The per-node roster file of earlier builds: its presence means a data directory this build
/// cannot read (the roster now lives in the replicated catalog).
const META_LEGACY_ROSTER: &str = "roster";

pub type Members = watch::Receiver<BTreeMap<u64, Member>>;

/// Where a key's request goes: its namespace's group for the partition, and the settings the
/// request path needs.
#[derive(Clone, Debug)]
pub struct Route {
    pub group: GroupId,
    pub replicas: Vec<NodeId>,
    pub default_ttl: u32,
    pub allow_relaxed_reads: bool,
}

pub struct Node {
    pub config: NodeConfig,
    pub multi: Arc<MultiRaft>,
    pub fabric: Arc<Fabric>,
    pub members: Members,
    /// The catalog as applied here (published by the metadata group's state machine).
    catalog: watch::Receiver<Arc<Catalog>>,
    ready: AtomicBool,
    pub(crate) log: Arc<dyn LogStore>,
    pub stats: Stats,
    pub started: Instant,
    /// (fingerprint of the last `replicas` answer, partition-generation)
    pub partition_generation: Mutex<(u64, i64)>,
    /// (fingerprint of the last peer list, peers-generation)
    pub peers_generation: Mutex<(u64, u64)>,
    gossip: tokio::sync::Mutex<Option<Gossip>>,
    /// Every background task, stopped in reverse order of start at shutdown.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Node {
    /// Open the data directory, bind every listener and start all tasks.
    pub async fn start(config: NodeConfig) -> anyhow::Result<Arc<Node>> {
        config.validate().map_err(anyhow::Error::msg)?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let log: Arc<dyn LogStore> = Arc::new(
            SledLogStore::open(
                config.data_dir.join("log"),
                SledLogStoreOptions {
                    flush_linger: config.wal_linger,
                    ..Default::default()
                },
            )
            .with_context(|| format!("opening the log store in {}", config.data_dir.display()))?,
        );
        if log.get_meta(NODE_META_GROUP, META_LEGACY_ROSTER)?.is_some() {
            anyhow::bail!(
                "{} was written by an earlier build (a per-node roster file, no replicated \
                 catalog); start this build on an empty data directory",
                config.data_dir.display()
            );
        }
        let snapshots = Arc::new(
            SnapshotFiles::new(config.data_dir.join("snapshots"))
                .context("opening the snapshot directory")?,
        );

        // A restart counter, so gossip peers can tell this incarnation from the previous one.
        let generation = match log.get_meta(NODE_META_GROUP, META_GENERATION)? {
            Some(b) if b.len() == 8 => u64::from_be_bytes(b.try_into().unwrap_or_default()) + 1,
            _ => 1,
        };
        log.put_meta(
            NODE_META_GROUP,
            META_GENERATION,
            generation.to_be_bytes().to_vec(),
        )?;
        log.sync_blocking()?;

        let service = TcpListener::bind(config.service_addr())
            .await
            .with_context(|| format!("binding the service port {}", config.service_addr()))?;
        let fabric_listener = TcpListener::bind(config.fabric_addr())
            .await
            .with_context(|| format!("binding the fabric port {}", config.fabric_addr()))?;
        let gossip = Gossip::start(GossipConfig {
            node_id: config.node_id,
            cluster_name: config.cluster_name.clone(),
            bind: config.gossip_addr(),
            service: config.service_addr(),
            fabric: config.fabric_addr(),
            seeds: config.seeds.clone(),
            generation,
        })
        .await
        .with_context(|| format!("binding the gossip port {}", config.gossip_addr()))?;
        let members = gossip.members();

        let resolve_members = members.clone();
        let fabric = Arc::new(Fabric::new(
            config.node_id,
            config.cluster_name.clone(),
            Arc::new(move |id| resolve_members.borrow().get(&id).map(|m| m.fabric)),
        ));
        let multi = Arc::new(MultiRaft::new(
            config.node_id,
            &config.raft,
            log.clone(),
            snapshots,
            Arc::new(fabric::RaftTransport(fabric.clone())),
        )?);

        let fresh = !multi.stored_groups()?.contains(&META_GROUP);
        let (catalog_tx, catalog) = watch::channel(Arc::new(Catalog::default()));
        let catalog_tx: SharedCatalog = Arc::new(catalog_tx);
        let node = Arc::new(Node {
            config,
            multi,
            fabric,
            members,
            catalog,
            ready: AtomicBool::new(false),
            log,
            stats: Stats::default(),
            started: Instant::now(),
            partition_generation: Mutex::new((0, 0)),
            peers_generation: Mutex::new((0, 0)),
            gossip: tokio::sync::Mutex::new(Some(gossip)),
            tasks: Mutex::new(Vec::new()),
        });
        node.spawn(fabric::serve(
            fabric_listener,
            node.config.cluster_name.clone(),
            Arc::new(FabricHandler(node.clone())),
        ));
        node.multi
            .open_meta_group(META_GROUP, catalog_tx)
            .await
            .context("opening the metadata group")?;
        if fresh {
            node.spawn(crate::catalog::formation::run(node.clone()));
        }
        node.spawn(crate::catalog::formation::meta_duties(node.clone()));
        node.spawn(crate::catalog::follower::run(node.clone()));
        node.spawn(crate::service::serve(service, node.clone()));
        node.spawn(crate::balance::run(node.clone()));
        tracing::info!(node = node.config.node_id, service = %node.config.service_addr(), fresh, "node started");
        Ok(node)
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(handle);
        }
    }

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
        Ok(route_in(ns, partition))
    }

    pub fn node_name(id: NodeId) -> String {
        format!("{id:X}")
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
    ) -> Result<(storage::command::Outcome, u64), ProposeError> {
        crate::catalog::propose::propose(self, group, cmd, candidates, deadline).await
    }

    pub async fn shutdown(&self) {
        let tasks: Vec<_> = match self.tasks.lock() {
            Ok(mut t) => t.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for t in tasks.iter().rev() {
            t.abort();
        }
        if let Some(g) = self.gossip.lock().await.take() {
            g.shutdown().await;
        }
        self.multi.shutdown().await;
        let _ = self.log.sync_blocking();
    }
}

/// The route of `partition` in `ns` (pure).
pub fn route_in(ns: &Namespace, partition: u16) -> Route {
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
    }
}

struct FabricHandler(Arc<Node>);

impl fabric::Handler for FabricHandler {
    fn raft(&self, group: u32, payload: Vec<u8>) -> BoxFuture<'static, Vec<u8>> {
        let node = self.0.clone();
        Box::pin(async move { node.multi.handle_rpc(group, &payload).await })
    }

    fn forward(&self, hops: u32, payload: Vec<u8>) -> BoxFuture<'static, Vec<u8>> {
        let node = self.0.clone();
        Box::pin(async move { crate::service::handle_message(&node, &payload, hops).await })
    }

    fn propose(&self, group: u32, payload: Vec<u8>) -> BoxFuture<'static, Vec<u8>> {
        let node = self.0.clone();
        Box::pin(async move {
            let reply = match crate::catalog::propose::decode_command(&payload) {
                Ok(cmd) => ProposeReply::from_local(
                    node.multi
                        .write_at(group, cmd, node.config.request_timeout)
                        .await,
                ),
                Err(e) => ProposeReply::Refused(format!("undecodable command: {e}")),
            };
            crate::catalog::propose::encode_reply(&reply)
        })
    }
}

/// How long to wait for things that should happen promptly in a healthy cluster.
pub const TICK: Duration = Duration::from_millis(100);
