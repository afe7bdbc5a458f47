//! A Strato node: wires storage, the Raft groups, the fabric, gossip and the service port,
//! and owns every background task.

use crate::cluster::gossip::{Gossip, GossipConfig, Member};
use crate::cluster::placement::{group_id, Roster};
use crate::config::NodeConfig;
use crate::fabric::{self, Fabric};
use crate::stats::Stats;
use anyhow::Context;
use futures::future::BoxFuture;
use raft::{GroupId, MultiRaft, NodeId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use storage::log_store::{LogStore, SledLogStore, SledLogStoreOptions, NODE_META_GROUP};
use storage::snapshot_file::SnapshotFiles;
use tokio::net::TcpListener;
use tokio::sync::watch;

const META_ROSTER: &str = "roster";
const META_GENERATION: &str = "generation";

pub type Members = watch::Receiver<BTreeMap<u64, Member>>;

pub struct Node {
    pub config: NodeConfig,
    pub multi: Arc<MultiRaft>,
    pub fabric: Arc<Fabric>,
    pub members: Members,
    roster: RwLock<Option<Roster>>,
    ready: std::sync::atomic::AtomicBool,
    log: Arc<dyn LogStore>,
    pub stats: Stats,
    pub started: Instant,
    /// (fingerprint of the last `replicas` answer, partition-generation)
    pub partition_generation: Mutex<(u64, i64)>,
    /// (fingerprint of the last peer list, peers-generation)
    pub peers_generation: Mutex<(u64, u64)>,
    gossip: tokio::sync::Mutex<Option<Gossip>>,
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

        let roster = match log.get_meta(NODE_META_GROUP, META_ROSTER)? {
            Some(b) => Some(
                bincode::serde::decode_from_slice::<Roster, _>(&b, bincode::config::standard())
                    .context("decoding the stored roster")?
                    .0,
            ),
            None => None,
        };
        let node = Arc::new(Node {
            config,
            multi,
            fabric,
            members,
            roster: RwLock::new(None),
            ready: std::sync::atomic::AtomicBool::new(false),
            log,
            stats: Stats::default(),
            started: Instant::now(),
            partition_generation: Mutex::new((0, 0)),
            peers_generation: Mutex::new((0, 0)),
            gossip: tokio::sync::Mutex::new(Some(gossip)),
        });

        tokio::spawn(fabric::serve(
            fabric_listener,
            node.config.cluster_name.clone(),
            Arc::new(FabricHandler(node.clone())),
        ));
        match roster {
            Some(r) => node.adopt_roster(r, false).await?,
            None => {
                let n = node.clone();
                tokio::spawn(async move {
                    if let Err(e) = n.bootstrap().await {
                        tracing::error!(error = %e, "cluster formation failed");
                    }
                });
            }
        }
        tokio::spawn(crate::service::serve(service, node.clone()));
        tokio::spawn(crate::balance::run(node.clone()));
        tracing::info!(node = node.config.node_id, service = %node.config.service_addr(), "node started");
        Ok(node)
    }

    /// The write-ahead log's counters (fsyncs and how many requests they covered).
    pub fn log_stats(&self) -> storage::log_store::LogStoreStats {
        self.log.stats()
    }

    pub fn roster(&self) -> Option<Roster> {
        self.roster.read().ok()?.clone()
    }

    /// Wait until `bootstrap_expect` nodes are discovered, then fix the roster from them.
    async fn bootstrap(self: &Arc<Self>) -> anyhow::Result<()> {
        let expect = self.config.bootstrap_expect;
        let mut members = self.members.clone();
        tracing::info!(
            node = self.config.node_id,
            expect,
            "waiting for nodes to form a cluster"
        );
        let ids: Vec<NodeId> = loop {
            let up: Vec<NodeId> = members
                .borrow_and_update()
                .values()
                .filter(|m| m.up)
                .map(|m| m.node_id)
                .collect();
            if up.len() >= expect {
                // Every node waiting for the same K nodes picks the same K lowest ids.
                let mut up = up;
                up.sort_unstable();
                up.truncate(expect);
                break up;
            }
            members.changed().await.context("gossip stopped")?;
        };
        if !ids.contains(&self.config.node_id) {
            anyhow::bail!("more than {expect} nodes were discovered and this node is not among the lowest ids; not joining");
        }
        let ns = &self.config.namespace;
        let roster = Roster::new(ids, ns.replication_factor, ns.groups);
        let bytes = bincode::serde::encode_to_vec(&roster, bincode::config::standard())?;
        self.log.put_meta(NODE_META_GROUP, META_ROSTER, bytes)?;
        self.log.sync_blocking()?;
        tracing::info!(node = self.config.node_id, nodes = ?roster.nodes, "cluster formed");
        self.adopt_roster(roster, true).await
    }

    /// Open this node's groups; on a brand-new cluster, initialize those it preferably leads,
    /// so leadership starts out spread across nodes.
    async fn adopt_roster(&self, roster: Roster, fresh: bool) -> anyhow::Result<()> {
        // Placement is known first, so requests arriving meanwhile are forwarded to replicas
        // that hold their group instead of being refused; `ready` follows once groups are open.
        *self
            .roster
            .write()
            .map_err(|_| anyhow::anyhow!("roster lock poisoned"))? = Some(roster.clone());
        for g in roster.groups_of(self.config.node_id) {
            self.multi.open_group(group_id(0, g)).await?;
        }
        if fresh {
            for g in roster.groups_of(self.config.node_id) {
                let replicas = roster.replicas(g);
                if replicas[0] == self.config.node_id {
                    self.multi
                        .initialize(
                            group_id(0, g),
                            replicas.into_iter().collect::<BTreeSet<_>>(),
                        )
                        .await?;
                }
            }
        }
        self.ready.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Whether this node holds all its groups (clients are told to wait until then).
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The group owning `partition` of the namespace, if the cluster has formed.
    pub fn group_for(&self, partition: u16) -> Option<(GroupId, Vec<NodeId>)> {
        let r = self.roster()?;
        let g = r.group_of(partition);
        Some((group_id(0, g), r.replicas(g)))
    }

    pub fn node_name(id: NodeId) -> String {
        format!("{id:X}")
    }

    pub async fn shutdown(&self) {
        if let Some(g) = self.gossip.lock().await.take() {
            g.shutdown().await;
        }
        self.multi.shutdown().await;
        let _ = self.log.sync_blocking();
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
}

/// How long to wait for things that should happen promptly in a healthy cluster.
pub const TICK: Duration = Duration::from_millis(100);
