//! A Strato node: builds the [`Context`] every part shares (storage, the Raft groups, the
//! fabric, gossip), starts every background task with it, and owns those tasks: `shutdown`
//! stops them in reverse order of start, then the groups, then the log.
//!
//! The metadata group (group 0) is opened on every node; its applied catalog decides which
//! data groups this node hosts ([`crate::catalog::follower`]). A brand-new cluster forms once
//! `--bootstrap-expect` nodes are discovered ([`crate::catalog::formation`]).

use crate::catalog::propose::ProposeReply;
use crate::clock::{Clock, SystemClock};
use crate::cluster::gossip::{Gossip, GossipConfig};
use crate::config::NodeConfig;
use crate::context::Context;
use crate::fabric::{self, Fabric};
use crate::stats::Stats;
use anyhow::Context as _;
use futures::future::BoxFuture;
use raft::{MultiRaft, SharedCatalog};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use storage::catalog::{Catalog, META_GROUP};
use storage::log_store::{LogStore, SledLogStore, SledLogStoreOptions, NODE_META_GROUP};
use storage::snapshot_file::SnapshotFiles;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const META_GENERATION: &str = "generation";
/// The per-node roster file of earlier builds: its presence means a data directory this build
/// cannot read (the roster now lives in the replicated catalog).
const META_LEGACY_ROSTER: &str = "roster";

pub struct Node {
    pub ctx: Arc<Context>,
    gossip: tokio::sync::Mutex<Option<Gossip>>,
    /// Every background task, stopped in reverse order of start at shutdown.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Node {
    /// Open the data directory with the sled log store and the system clock, bind every
    /// listener and start all tasks.
    pub async fn start(config: NodeConfig) -> anyhow::Result<Node> {
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
        Node::start_with(config, log, Arc::new(SystemClock)).await
    }

    /// Start a node on the log store and clock it is given (a simulation hands it others).
    pub async fn start_with(
        config: NodeConfig,
        log: Arc<dyn LogStore>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Node> {
        config.validate().map_err(anyhow::Error::msg)?;
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
        let mut multi = MultiRaft::new(
            config.node_id,
            &config.raft,
            log.clone(),
            snapshots,
            Arc::new(fabric::RaftTransport(fabric.clone())),
        )?;
        let stored = multi.stored_groups()?;
        if stored.is_empty() {
            multi.never_voted();
        }
        let multi = Arc::new(multi);
        let fresh = !stored.contains(&META_GROUP);
        let (catalog_tx, catalog) = watch::channel(Arc::new(Catalog::default()));
        let catalog_tx: SharedCatalog = Arc::new(catalog_tx);
        let ctx = Arc::new(Context {
            config,
            multi,
            fabric,
            members,
            catalog,
            ready: AtomicBool::new(false),
            log,
            clock,
            stats: Stats::default(),
            started: Instant::now(),
            partition_generation: Mutex::new((0, 0)),
            peers_generation: Mutex::new((0, 0)),
        });
        let node = Node {
            ctx: ctx.clone(),
            gossip: tokio::sync::Mutex::new(Some(gossip)),
            tasks: Mutex::new(Vec::new()),
        };
        node.spawn(fabric::serve(
            fabric_listener,
            ctx.config.cluster_name.clone(),
            Arc::new(FabricHandler(ctx.clone())),
        ));
        ctx.multi
            .open_meta_group(META_GROUP, catalog_tx)
            .await
            .context("opening the metadata group")?;
        if fresh {
            node.spawn(crate::catalog::formation::run(ctx.clone()));
        }
        node.spawn(crate::catalog::formation::meta_duties(ctx.clone()));
        node.spawn(crate::catalog::follower::run(ctx.clone()));
        node.spawn(crate::catalog::mover::run(ctx.clone()));
        node.spawn(crate::service::serve(service, ctx.clone()));
        node.spawn(crate::balance::run(ctx.clone()));
        node.spawn(crate::expiry::run(ctx.clone()));
        node.spawn(crate::index_build::run(ctx.clone()));
        node.spawn(raft::supervisor::run(ctx.multi.clone()));
        tracing::info!(node = ctx.config.node_id, service = %ctx.config.service_addr(), fresh, "node started");
        Ok(node)
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(handle);
        }
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
        self.ctx.multi.shutdown().await;
        let _ = self.ctx.log.sync_blocking();
    }
}

/// Whether the applied catalog places data group `group` on this node.
fn placed_here(ctx: &Context, group: u32) -> bool {
    let catalog = ctx.catalog();
    let (_, g) = storage::catalog::split_group_id(group);
    catalog.namespace_of_group(group).is_some_and(|ns| {
        ns.placement
            .get(usize::from(g))
            .is_some_and(|r| r.contains(&ctx.config.node_id))
    })
}

struct FabricHandler(Arc<Context>);

impl fabric::Handler for FabricHandler {
    fn raft(&self, group: u32, payload: Vec<u8>) -> BoxFuture<'static, Vec<u8>> {
        let node = self.0.clone();
        Box::pin(async move {
            // A peer may reach a group of a new namespace before the catalog follower opened
            // it here: open it now if the applied catalog places it on this node, so the
            // first election does not fail and wait a whole election timeout.
            if node.multi.group(group).is_none() && placed_here(&node, group) {
                if let Err(e) = node.multi.open_group(group).await {
                    tracing::warn!(node = node.config.node_id, group, error = %e, "opening a group on demand failed");
                }
            }
            node.multi.handle_rpc(group, &payload).await
        })
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
