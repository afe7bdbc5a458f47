//! The cluster catalog: what the metadata Raft group replicates.
//!
//! The catalog holds the roster, every namespace with its settings, its sets, the placement
//! of its data groups and (later) its secondary-index definitions. Every change is a
//! [`CatalogCommand`] applied by [`Catalog::apply`], a pure function, so every node that
//! applies the same log reaches the same catalog. Nodes only *react* to the applied catalog
//! (opening and closing groups); nothing a node decides alone changes it.
//!
//! [`Catalog::check`] is the same decision without the change, so the node proposing a
//! command can answer a precise error before proposing, and apply refuses the same inputs if
//! the catalog moved in between.

use crate::record::{ResultCode, BIN_NAME_MAX, NAMESPACE_MAX, PARTITIONS, SET_NAME_MAX};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A node's id (the same as Raft's).
pub type NodeId = u64;
/// A Raft group id: `namespace id << GROUP_BITS | group index`.
pub type GroupId = u32;

/// The metadata group (namespace id 0 is reserved for it).
pub const META_GROUP: GroupId = 0;
/// Bits of a group id that hold the group's index within its namespace (4096 = 2^12).
pub const GROUP_BITS: u32 = 12;
/// Namespace ids are never reused, so a dropped namespace's groups can never be confused with
/// a new one's; 20 bits leave about a million creations (u32::MAX is the node-meta group).
pub const MAX_NAMESPACE_ID: u32 = (1 << (32 - GROUP_BITS)) - 2;
/// At most this many namespaces live at once (Aerospike Enterprise's limit).
pub const MAX_NAMESPACES: usize = 32;
/// At most this many sets per namespace (Aerospike 7/8).
pub const MAX_SETS: usize = 4095;
/// Voters of the metadata group: the first roster nodes, at most this many.
pub const MAX_META_VOTERS: usize = 5;
/// Most secondary indexes per namespace (Aerospike's `MAX_N_SINDEXES`).
pub const MAX_SINDEXES: usize = 256;
/// An index name must be shorter than this (Aerospike's `INAME_MAX_SZ`).
pub const SINDEX_NAME_MAX: usize = 64;

pub fn group_id(namespace_id: u32, g: u16) -> GroupId {
    (namespace_id << GROUP_BITS) | u32::from(g)
}

/// (namespace id, group index) of a group id.
pub fn split_group_id(id: GroupId) -> (u32, u16) {
    (id >> GROUP_BITS, (id & ((1 << GROUP_BITS) - 1)) as u16)
}

/// Raft groups per namespace unless configured: one per partition, as the design card says
/// (a group costs nothing while idle: `raft::sleep`). Fewer remain a setting for small
/// machines (each group then owns a fixed slice of partition ids).
pub const DEFAULT_GROUPS: u16 = PARTITIONS;

/// A namespace's settings, as configured or created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceSettings {
    /// Replicas per group as asked; the placement caps it at the roster size.
    pub replication_factor: usize,
    /// TTL (seconds) for writes that ask for the namespace default; 0 = never expire.
    pub default_ttl: u32,
    /// Raft groups the 4096 partitions are spread over.
    pub groups: u16,
    /// Whether clients may ask for relaxed (not linearizable) replica reads.
    pub allow_relaxed_reads: bool,
    /// Aerospike's `default-read-touch-ttl-pct`: a read that leaves the client's percentage at
    /// 0 touches a record whose remaining TTL fell below this percentage of the TTL it was
    /// written with. 0 = never; 1..=100.
    pub read_touch_ttl_pct: u32,
    /// Seconds between expiry sweeps (Aerospike's `nsup-period`); 0 = expired records are
    /// hidden but never removed.
    pub nsup_period: u32,
}

impl Default for NamespaceSettings {
    fn default() -> Self {
        NamespaceSettings {
            replication_factor: 3,
            default_ttl: 0,
            groups: DEFAULT_GROUPS,
            allow_relaxed_reads: false,
            read_touch_ttl_pct: 0,
            nsup_period: DEFAULT_NSUP_PERIOD,
        }
    }
}

/// Default seconds between expiry sweeps. (Aerospike's default is 0 with TTL writes then
/// refused; Strato sweeps by default so TTLs work and free memory out of the box.)
pub const DEFAULT_NSUP_PERIOD: u32 = 120;

pub use crate::index::SindexDef;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// Never reused: the high bits of its groups' ids.
    pub id: u32,
    pub name: String,
    pub settings: NamespaceSettings,
    /// The namespace's active roster (sorted) and the one `recluster` would activate.
    pub roster: Vec<NodeId>,
    pub pending_roster: Vec<NodeId>,
    /// Sets created explicitly (writes create sets implicitly, without the catalog).
    pub sets: BTreeSet<String>,
    /// Replicas of each group, preferred leader first.
    pub placement: Vec<Vec<NodeId>>,
    pub sindexes: BTreeMap<String, SindexDef>,
    /// Truncation cut-offs (ms since 2010; records last updated before were deleted): the
    /// whole namespace's, and each set's. Only grow; an undo forgets them.
    pub truncate_lut: u64,
    pub set_truncate_luts: BTreeMap<String, u64>,
}

impl Namespace {
    /// The group index that owns `partition`.
    pub fn group_of(&self, partition: u16) -> u16 {
        partition % self.settings.groups
    }

    /// Aerospike's regime for this namespace's partition map: equal on every node that
    /// applied the same catalog, non-zero (clients then treat the namespace as strongly
    /// consistent), and higher for a namespace re-created under a dropped one's name (ids are
    /// never reused), because clients keep a partition's highest regime by namespace name.
    /// A change of placement raises it too: `moves` counts the group moves committed (see
    /// [`Catalog::regime`]); the id takes the high 20 bits, the moves the low 12 (capped).
    pub fn regime_after(&self, moves: u32) -> u32 {
        (self.id.max(1) << 12) | moves.min(4095)
    }

    /// The regime before any move.
    pub fn regime(&self) -> u32 {
        self.regime_after(0)
    }

    pub fn group_id(&self, g: u16) -> GroupId {
        group_id(self.id, g)
    }

    /// Replicas per group after capping at the roster size.
    pub fn effective_replication_factor(&self) -> usize {
        self.placement.first().map_or(0, Vec::len)
    }
}

/// What the metadata group replicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Set by the first command: the cluster exists.
    pub formed: bool,
    /// The nodes the cluster formed with (sorted): the roster new namespaces start from and
    /// the nodes the metadata group's voters are drawn from.
    pub roster: Vec<NodeId>,
    pub namespaces: BTreeMap<String, Namespace>,
    /// The id the next namespace gets.
    pub next_namespace_id: u32,
    /// Bumped by every applied change.
    pub version: u64,
    /// Groups being moved by a recluster: their target replicas (preferred leader first).
    /// The group's `placement` stays its committed membership until the move is done.
    pub targets: BTreeMap<GroupId, Vec<NodeId>>,
    /// Groups that completed a move: never initialized from their placement again (a new
    /// replica joins through the group's leader, never by starting the group itself).
    pub moved: BTreeSet<GroupId>,
    /// Moves committed per namespace id (raises the namespace's regime).
    pub moves_done: BTreeMap<u32, u32>,
    /// Ids of the namespaces whose reads confirm leadership with a leader lease instead of a
    /// heartbeat round (`lease-reads`, off by default). Kept beside the settings, not in
    /// them, because settings travel inside log entries whose format must not change.
    pub lease_reads: BTreeSet<u32>,
}

/// The catalog as format version 2 stored it (before lease reads).
#[derive(Serialize, Deserialize)]
struct CatalogV2 {
    formed: bool,
    roster: Vec<NodeId>,
    namespaces: BTreeMap<String, Namespace>,
    next_namespace_id: u32,
    version: u64,
    targets: BTreeMap<GroupId, Vec<NodeId>>,
    moved: BTreeSet<GroupId>,
    moves_done: BTreeMap<u32, u32>,
}

/// The catalog as format version 1 stored it (before rosters could change).
#[derive(Deserialize)]
struct CatalogV1 {
    formed: bool,
    roster: Vec<NodeId>,
    namespaces: BTreeMap<String, Namespace>,
    next_namespace_id: u32,
    version: u64,
}

/// A change to the catalog (the payload of a metadata-group log entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogCommand {
    /// Form the cluster: its roster and its start-up namespaces. Ignored once formed.
    Form {
        roster: Vec<NodeId>,
        namespaces: Vec<(String, NamespaceSettings)>,
    },
    CreateNamespace {
        name: String,
        settings: NamespaceSettings,
    },
    DropNamespace {
        name: String,
    },
    CreateSet {
        namespace: String,
        set: String,
    },
    /// Forget an explicitly created set (its records are deleted by the data groups first).
    RemoveSet {
        namespace: String,
        set: String,
    },
    /// Change one of the settings that may change live.
    SetNamespaceConfig {
        namespace: String,
        setting: LiveSetting,
    },
    /// Record a truncation of the namespace or one set (its records were deleted by the data
    /// groups first); `lut` 0 forgets it (`truncate-undo`), a smaller one is ignored.
    Truncate {
        namespace: String,
        set: Option<String>,
        lut: u64,
    },
    /// Define a secondary index; the same definition under another name is renamed
    /// (Aerospike's rule). Every group of the namespace then builds it.
    CreateSindex {
        namespace: String,
        name: String,
        def: SindexDef,
    },
    /// Forget a secondary index (nothing if it does not exist).
    DropSindex {
        namespace: String,
        name: String,
    },
    /// Store a namespace's pending roster (`roster-set`); active only after `Recluster`.
    SetRoster {
        namespace: String,
        nodes: Vec<NodeId>,
    },
    /// Activate every pending roster and target each group's new replicas (`recluster:`).
    Recluster,
    /// A group's membership change to its target committed: the target becomes its placement.
    GroupMoved {
        group: GroupId,
        replicas: Vec<NodeId>,
    },
}

/// A namespace setting that may change while the namespace serves (`set-config`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LiveSetting {
    DefaultTtl(u32),
    AllowRelaxedReads(bool),
    ReadTouchTtlPct(u32),
    NsupPeriod(u32),
    /// Confirm leadership for reads with a leader lease (see [`Catalog::lease_reads`]).
    LeaseReads(bool),
}

impl LiveSetting {
    fn apply_to(&self, s: &mut NamespaceSettings) {
        match *self {
            LiveSetting::DefaultTtl(t) => s.default_ttl = t,
            LiveSetting::AllowRelaxedReads(r) => s.allow_relaxed_reads = r,
            LiveSetting::ReadTouchTtlPct(p) => s.read_touch_ttl_pct = p,
            LiveSetting::NsupPeriod(p) => s.nsup_period = p,
            // Not a field of the settings: applied by the catalog itself.
            LiveSetting::LeaseReads(_) => {}
        }
    }
}

/// A refused catalog command: an Aerospike result code and a message for `ERROR:<code>:<msg>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CatalogError {
    pub code: ResultCode,
    pub message: String,
}

impl CatalogError {
    pub fn new(code: ResultCode, message: impl Into<String>) -> CatalogError {
        CatalogError {
            code,
            message: message.into(),
        }
    }

    fn parameter(message: impl Into<String>) -> CatalogError {
        CatalogError::new(ResultCode::Parameter, message)
    }

    fn no_namespace(name: &str) -> CatalogError {
        CatalogError::new(ResultCode::Namespace, format!("namespace {name} not found"))
    }
}

/// Namespace names: 1..=31 bytes of letters, digits, `_` and `-` (they appear unquoted in
/// info answers, so separators are refused).
pub fn validate_namespace_name(name: &str) -> Result<(), CatalogError> {
    if name.is_empty() {
        return Err(CatalogError::new(
            ResultCode::Namespace,
            "missing 'namespace' value",
        ));
    }
    if name.len() > NAMESPACE_MAX {
        return Err(CatalogError::new(
            ResultCode::Namespace,
            format!("'namespace' value too long (at most {NAMESPACE_MAX} bytes)"),
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(CatalogError::parameter(format!(
            "namespace name {name:?} may hold only letters, digits, '_' and '-'"
        )));
    }
    Ok(())
}

/// Aerospike's limits on an index definition: a name under 64 bytes, a bin name of at most
/// 15, a valid set name.
fn validate_sindex(name: &str, def: &SindexDef) -> Result<(), CatalogError> {
    if name.is_empty() {
        return Err(CatalogError::parameter("missing 'indexname' value"));
    }
    if name.len() >= SINDEX_NAME_MAX {
        return Err(CatalogError::parameter("'indexname' value too long"));
    }
    if def.bin.is_empty() || def.bin.len() > BIN_NAME_MAX {
        return Err(CatalogError::parameter("invalid bin name"));
    }
    def.set.as_deref().map_or(Ok(()), validate_set_name)
}

/// Set names: 1..=63 bytes without the info protocol's separators or control characters.
pub fn validate_set_name(name: &str) -> Result<(), CatalogError> {
    if name.is_empty() {
        return Err(CatalogError::parameter("missing 'set' value"));
    }
    if name.len() > SET_NAME_MAX {
        return Err(CatalogError::parameter(format!(
            "'set' value too long (at most {SET_NAME_MAX} bytes)"
        )));
    }
    if name
        .chars()
        .any(|c| c.is_control() || matches!(c, ':' | ';' | '=' | '/'))
    {
        return Err(CatalogError::parameter(format!(
            "set name {name:?} may not hold ':', ';', '=', '/' or control characters"
        )));
    }
    Ok(())
}

pub fn validate_settings(s: &NamespaceSettings) -> Result<(), CatalogError> {
    if s.replication_factor == 0 {
        return Err(CatalogError::parameter(
            "replication-factor must be at least 1",
        ));
    }
    if s.groups == 0 || s.groups > PARTITIONS {
        return Err(CatalogError::parameter(format!(
            "raft-groups must be 1..={PARTITIONS}"
        )));
    }
    if s.read_touch_ttl_pct > 100 {
        return Err(CatalogError::parameter(
            "default-read-touch-ttl-pct must be 0..=100",
        ));
    }
    Ok(())
}

/// Replicas of every group: `replication_factor` (capped at the roster size) consecutive
/// roster nodes starting at a rotating offset, so leaders and replicas spread evenly; `salt`
/// (the namespace id) shifts the rotation so namespaces do not all lead from the same node.
pub fn place(
    roster: &[NodeId],
    replication_factor: usize,
    groups: u16,
    salt: u32,
) -> Vec<Vec<NodeId>> {
    let n = roster.len();
    if n == 0 {
        return vec![Vec::new(); usize::from(groups)];
    }
    let rf = replication_factor.clamp(1, n);
    (0..usize::from(groups))
        .map(|g| {
            (0..rf)
                .map(|i| roster[(g + salt as usize + i) % n])
                .collect()
        })
        .collect()
}

impl Catalog {
    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespaces.get(name)
    }

    /// Whether `ns`'s reads confirm leadership with a leader lease (`lease-reads`).
    pub fn reads_by_lease(&self, ns: &Namespace) -> bool {
        self.lease_reads.contains(&ns.id)
    }

    /// The namespace holding data group `group`.
    pub fn namespace_of_group(&self, group: GroupId) -> Option<&Namespace> {
        let (id, _) = split_group_id(group);
        self.namespaces.values().find(|n| n.id == id)
    }

    /// Whether group `group` belonged to a namespace that has since been dropped (its id was
    /// handed out and is no longer live). Safe to act on even while the catalog is still
    /// being replayed: a namespace id below `next_namespace_id` that is absent was dropped.
    pub fn is_dropped_group(&self, group: GroupId) -> bool {
        let (id, _) = split_group_id(group);
        id != 0 && id < self.next_namespace_id && self.namespace_of_group(group).is_none()
    }

    /// Voters of the metadata group: the first roster nodes.
    pub fn meta_voters(&self) -> Vec<NodeId> {
        self.roster.iter().copied().take(MAX_META_VOTERS).collect()
    }

    /// Whether `cmd` would be applied, and if not, why.
    pub fn check(&self, cmd: &CatalogCommand) -> Result<(), CatalogError> {
        if !self.formed && !matches!(cmd, CatalogCommand::Form { .. }) {
            return Err(CatalogError::new(
                ResultCode::Unavailable,
                "the cluster has not formed yet",
            ));
        }
        match cmd {
            CatalogCommand::Form { roster, namespaces } => {
                if self.formed {
                    return Err(CatalogError::parameter("the cluster is already formed"));
                }
                if roster.is_empty() {
                    return Err(CatalogError::parameter("a cluster needs at least one node"));
                }
                for (name, s) in namespaces {
                    validate_namespace_name(name)?;
                    validate_settings(s)?;
                }
                Ok(())
            }
            CatalogCommand::CreateNamespace { name, settings } => {
                validate_namespace_name(name)?;
                validate_settings(settings)?;
                if self.namespaces.contains_key(name) {
                    return Err(CatalogError::parameter(format!(
                        "namespace {name} already exists"
                    )));
                }
                if self.namespaces.len() >= MAX_NAMESPACES {
                    return Err(CatalogError::parameter(format!(
                        "at most {MAX_NAMESPACES} namespaces"
                    )));
                }
                if self.next_namespace_id > MAX_NAMESPACE_ID {
                    return Err(CatalogError::new(
                        ResultCode::ServerError,
                        "namespace ids exhausted",
                    ));
                }
                Ok(())
            }
            CatalogCommand::DropNamespace { name } => self.existing(name).map(|_| ()),
            CatalogCommand::CreateSet { namespace, set } => {
                let ns = self.existing(namespace)?;
                validate_set_name(set)?;
                if !ns.sets.contains(set) && ns.sets.len() >= MAX_SETS {
                    return Err(CatalogError::parameter(format!(
                        "at most {MAX_SETS} sets per namespace"
                    )));
                }
                Ok(())
            }
            CatalogCommand::RemoveSet { namespace, set } => {
                self.existing(namespace)?;
                validate_set_name(set)
            }
            CatalogCommand::SetNamespaceConfig { namespace, setting } => {
                let mut s = self.existing(namespace)?.settings.clone();
                setting.apply_to(&mut s);
                validate_settings(&s)
            }
            CatalogCommand::Truncate { namespace, set, .. } => {
                self.existing(namespace)?;
                set.as_deref().map_or(Ok(()), validate_set_name)
            }
            CatalogCommand::CreateSindex {
                namespace,
                name,
                def,
            } => {
                let ns = self.existing(namespace)?;
                validate_sindex(name, def)?;
                match ns.sindexes.get(name) {
                    Some(existing) if existing == def => return Ok(()),
                    Some(_) => {
                        return Err(CatalogError::new(
                            ResultCode::IndexFound,
                            "'indexname' already exists with different definition",
                        ))
                    }
                    None => {}
                }
                let renamed = ns.sindexes.values().any(|d| d == def);
                if !renamed && ns.sindexes.len() >= MAX_SINDEXES {
                    return Err(CatalogError::new(
                        ResultCode::IndexMaxCount,
                        "already at sindex definition limit",
                    ));
                }
                Ok(())
            }
            CatalogCommand::DropSindex { namespace, .. } => self.existing(namespace).map(|_| ()),
            CatalogCommand::SetRoster { namespace, nodes } => {
                let ns = self.existing(namespace)?;
                if nodes.is_empty() {
                    return Err(CatalogError::parameter("a roster needs at least one node"));
                }
                if nodes.contains(&0) {
                    return Err(CatalogError::parameter("node id 0 is not valid"));
                }
                let mut distinct = nodes.clone();
                distinct.sort_unstable();
                distinct.dedup();
                if distinct.len() != nodes.len() {
                    return Err(CatalogError::parameter("a node is named twice"));
                }
                if distinct.len() < ns.settings.replication_factor.min(ns.roster.len()) {
                    return Err(CatalogError::parameter(format!(
                        "a roster of {} nodes is smaller than the replication factor {} of namespace {namespace}",
                        distinct.len(),
                        ns.settings.replication_factor
                    )));
                }
                Ok(())
            }
            CatalogCommand::Recluster => Ok(()),
            CatalogCommand::GroupMoved { group, replicas } => match self.targets.get(group) {
                Some(t) if t == replicas => Ok(()),
                _ => Err(CatalogError::new(
                    ResultCode::OpNotApplicable,
                    format!("group {group} is not moving to {replicas:?}"),
                )),
            },
        }
    }

    /// The namespace's regime: raised by every committed move of one of its groups.
    pub fn regime(&self, ns: &Namespace) -> u32 {
        ns.regime_after(self.moves_done.get(&ns.id).copied().unwrap_or(0))
    }

    /// Groups of `namespace` (all namespaces: None) still moving.
    pub fn moving(&self, namespace: Option<&Namespace>) -> usize {
        self.targets
            .keys()
            .filter(|g| namespace.is_none_or(|ns| split_group_id(**g).0 == ns.id))
            .count()
    }

    fn existing(&self, name: &str) -> Result<&Namespace, CatalogError> {
        self.namespaces
            .get(name)
            .ok_or_else(|| CatalogError::no_namespace(name))
    }

    /// Apply one command; on error the catalog is unchanged.
    pub fn apply(&mut self, cmd: &CatalogCommand) -> Result<(), CatalogError> {
        self.check(cmd)?;
        match cmd {
            CatalogCommand::Form { roster, namespaces } => {
                let mut roster = roster.clone();
                roster.sort_unstable();
                roster.dedup();
                self.roster = roster;
                self.formed = true;
                self.next_namespace_id = self.next_namespace_id.max(1);
                for (name, settings) in namespaces {
                    if !self.namespaces.contains_key(name) {
                        self.add_namespace(name, settings);
                    }
                }
            }
            CatalogCommand::CreateNamespace { name, settings } => {
                self.add_namespace(name, settings);
            }
            CatalogCommand::DropNamespace { name } => {
                if let Some(ns) = self.namespaces.remove(name) {
                    self.targets.retain(|g, _| split_group_id(*g).0 != ns.id);
                    self.lease_reads.remove(&ns.id);
                }
            }
            CatalogCommand::CreateSet { namespace, set } => {
                if let Some(ns) = self.namespaces.get_mut(namespace) {
                    ns.sets.insert(set.clone());
                }
            }
            CatalogCommand::RemoveSet { namespace, set } => {
                if let Some(ns) = self.namespaces.get_mut(namespace) {
                    ns.sets.remove(set);
                }
            }
            CatalogCommand::SetNamespaceConfig { namespace, setting } => {
                if let Some(ns) = self.namespaces.get_mut(namespace) {
                    match *setting {
                        LiveSetting::LeaseReads(true) => {
                            self.lease_reads.insert(ns.id);
                        }
                        LiveSetting::LeaseReads(false) => {
                            self.lease_reads.remove(&ns.id);
                        }
                        _ => setting.apply_to(&mut ns.settings),
                    }
                }
            }
            CatalogCommand::Truncate {
                namespace,
                set,
                lut,
            } => {
                if let Some(ns) = self.namespaces.get_mut(namespace) {
                    let slot = match set {
                        Some(s) => ns.set_truncate_luts.entry(s.clone()).or_default(),
                        None => &mut ns.truncate_lut,
                    };
                    *slot = if *lut == 0 { 0 } else { (*slot).max(*lut) };
                    ns.set_truncate_luts.retain(|_, l| *l != 0);
                }
            }
            CatalogCommand::CreateSindex {
                namespace,
                name,
                def,
            } => {
                if let Some(ns) = self.namespaces.get_mut(namespace) {
                    ns.sindexes.retain(|_, d| d != def);
                    ns.sindexes.insert(name.clone(), def.clone());
                }
            }
            CatalogCommand::DropSindex { namespace, name } => {
                if let Some(ns) = self.namespaces.get_mut(namespace) {
                    ns.sindexes.remove(name);
                }
            }
            CatalogCommand::SetRoster { namespace, nodes } => {
                if let Some(ns) = self.namespaces.get_mut(namespace) {
                    let mut nodes = nodes.clone();
                    nodes.sort_unstable();
                    ns.pending_roster = nodes;
                }
            }
            CatalogCommand::Recluster => self.recluster(),
            CatalogCommand::GroupMoved { group, replicas } => {
                let (id, g) = split_group_id(*group);
                if let Some(ns) = self.namespaces.values_mut().find(|n| n.id == id) {
                    if let Some(slot) = ns.placement.get_mut(usize::from(g)) {
                        *slot = replicas.clone();
                    }
                }
                self.targets.remove(group);
                self.moved.insert(*group);
                *self.moves_done.entry(id).or_default() += 1;
            }
        }
        self.version += 1;
        Ok(())
    }

    /// Activate every pending roster: each namespace's groups get targets from
    /// [`crate::rebalance::rebalance`] of where they are headed (a move in progress is
    /// re-planned from its target); a group whose target equals its placement stops moving.
    fn recluster(&mut self) {
        let mut cluster: BTreeSet<NodeId> = BTreeSet::new();
        for ns in self.namespaces.values_mut() {
            ns.roster = ns.pending_roster.clone();
            cluster.extend(ns.roster.iter().copied());
        }
        let mut targets = BTreeMap::new();
        for ns in self.namespaces.values() {
            let heading: Vec<Vec<NodeId>> = (0..ns.settings.groups)
                .map(|g| {
                    self.targets
                        .get(&ns.group_id(g))
                        .cloned()
                        .unwrap_or_else(|| ns.placement[usize::from(g)].clone())
                })
                .collect();
            let next =
                crate::rebalance::rebalance(&heading, &ns.roster, ns.settings.replication_factor);
            for (g, replicas) in next.into_iter().enumerate() {
                if replicas != ns.placement[g] {
                    targets.insert(ns.group_id(g as u16), replicas);
                }
            }
        }
        self.targets = targets;
        if !cluster.is_empty() {
            self.roster = cluster.into_iter().collect();
        }
    }

    fn add_namespace(&mut self, name: &str, settings: &NamespaceSettings) {
        let id = self.next_namespace_id.max(1);
        self.next_namespace_id = id + 1;
        let placement = place(
            &self.roster,
            settings.replication_factor,
            settings.groups,
            id,
        );
        self.namespaces.insert(
            name.to_string(),
            Namespace {
                id,
                name: name.to_string(),
                settings: settings.clone(),
                roster: self.roster.clone(),
                pending_roster: self.roster.clone(),
                sets: BTreeSet::new(),
                placement,
                sindexes: BTreeMap::new(),
                truncate_lut: 0,
                set_truncate_luts: BTreeMap::new(),
            },
        );
    }

    /// Snapshot encoding (versioned).
    pub fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec((CATALOG_VERSION, self), bincode::config::standard())
            .unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Catalog, String> {
        let cfg = bincode::config::standard();
        let bad = |e: bincode::error::DecodeError| format!("catalog cannot be decoded: {e}");
        let (version, _): (u32, usize) =
            bincode::serde::decode_from_slice(bytes, cfg).map_err(bad)?;
        match version {
            CATALOG_VERSION => {
                let ((_, catalog), _): ((u32, Catalog), usize) =
                    bincode::serde::decode_from_slice(bytes, cfg).map_err(bad)?;
                Ok(catalog)
            }
            2 => {
                let ((_, v2), _): ((u32, CatalogV2), usize) =
                    bincode::serde::decode_from_slice(bytes, cfg).map_err(bad)?;
                Ok(Catalog {
                    formed: v2.formed,
                    roster: v2.roster,
                    namespaces: v2.namespaces,
                    next_namespace_id: v2.next_namespace_id,
                    version: v2.version,
                    targets: v2.targets,
                    moved: v2.moved,
                    moves_done: v2.moves_done,
                    lease_reads: BTreeSet::new(),
                })
            }
            1 => {
                let ((_, v1), _): ((u32, CatalogV1), usize) =
                    bincode::serde::decode_from_slice(bytes, cfg).map_err(bad)?;
                Ok(Catalog {
                    formed: v1.formed,
                    roster: v1.roster,
                    namespaces: v1.namespaces,
                    next_namespace_id: v1.next_namespace_id,
                    version: v1.version,
                    ..Catalog::default()
                })
            }
            v => Err(format!("catalog format version {v} is not supported")),
        }
    }
}

/// 2: rosters can change (targets, moved groups, moves per namespace); 3: lease reads.
const CATALOG_VERSION: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    fn formed(nodes: Vec<NodeId>) -> Catalog {
        let mut c = Catalog::default();
        c.apply(&CatalogCommand::Form {
            roster: nodes,
            namespaces: vec![("test".into(), NamespaceSettings::default())],
        })
        .unwrap();
        c
    }

    #[test]
    fn form_once_then_namespaces() {
        let mut c = formed(vec![3, 1, 2]);
        assert_eq!(c.roster, vec![1, 2, 3]);
        let test = c.namespace("test").unwrap();
        assert_eq!(test.id, 1);
        assert_eq!(test.placement.len(), usize::from(DEFAULT_GROUPS));
        assert_eq!(test.effective_replication_factor(), 3);
        let again = CatalogCommand::Form {
            roster: vec![9],
            namespaces: vec![],
        };
        assert_eq!(c.apply(&again).unwrap_err().code, ResultCode::Parameter);
        let create = CatalogCommand::CreateNamespace {
            name: "ns2".into(),
            settings: NamespaceSettings {
                replication_factor: 2,
                ..Default::default()
            },
        };
        c.apply(&create).unwrap();
        assert_eq!(c.apply(&create).unwrap_err().code, ResultCode::Parameter);
        let ns2 = c.namespace("ns2").unwrap().clone();
        assert_eq!(ns2.id, 2);
        assert!(ns2.placement.iter().all(|r| r.len() == 2));
        c.apply(&CatalogCommand::DropNamespace { name: "ns2".into() })
            .unwrap();
        assert!(c.is_dropped_group(ns2.group_id(3)));
        assert!(!c.is_dropped_group(group_id(1, 3)));
        assert!(!c.is_dropped_group(group_id(7, 0)), "never handed out");
        let err = c
            .apply(&CatalogCommand::DropNamespace { name: "ns2".into() })
            .unwrap_err();
        assert_eq!(err.code, ResultCode::Namespace);
        // The name can be reused, under a new id.
        c.apply(&create).unwrap();
        assert_eq!(c.namespace("ns2").unwrap().id, 3);
        // Clients keep a partition's highest regime by name: the new ns2 must outrank the old.
        assert!(c.namespace("ns2").unwrap().regime() > ns2.regime());
        assert!(c.namespace("test").unwrap().regime() > 0);
    }

    #[test]
    fn refusals_leave_the_catalog_unchanged() {
        let mut c = formed(vec![1]);
        let before = c.clone();
        let bad = [
            CatalogCommand::CreateNamespace {
                name: "x".repeat(32),
                settings: Default::default(),
            },
            CatalogCommand::CreateNamespace {
                name: "a;b".into(),
                settings: Default::default(),
            },
            CatalogCommand::CreateNamespace {
                name: "ok".into(),
                settings: NamespaceSettings {
                    groups: 0,
                    ..Default::default()
                },
            },
            CatalogCommand::CreateSet {
                namespace: "test".into(),
                set: "s".repeat(64),
            },
            CatalogCommand::CreateSet {
                namespace: "nope".into(),
                set: "s".into(),
            },
        ];
        for b in &bad {
            assert!(c.apply(b).is_err(), "{b:?}");
        }
        assert_eq!(c, before);
    }

    #[test]
    fn namespace_limit_and_replication_cap() {
        let mut c = formed(vec![1, 2]);
        assert_eq!(
            c.namespace("test").unwrap().effective_replication_factor(),
            2
        );
        for i in 1..MAX_NAMESPACES {
            c.apply(&CatalogCommand::CreateNamespace {
                name: format!("n{i}"),
                settings: Default::default(),
            })
            .unwrap();
        }
        let err = c
            .apply(&CatalogCommand::CreateNamespace {
                name: "over".into(),
                settings: Default::default(),
            })
            .unwrap_err();
        assert_eq!(err.code, ResultCode::Parameter);
    }

    #[test]
    fn not_formed_refuses_changes() {
        let mut c = Catalog::default();
        let err = c
            .apply(&CatalogCommand::DropNamespace {
                name: "test".into(),
            })
            .unwrap_err();
        assert_eq!(err.code, ResultCode::Unavailable);
    }

    #[test]
    fn encode_roundtrip_and_group_ids() {
        let c = formed(vec![1, 2, 3]);
        assert_eq!(Catalog::decode(&c.encode()).unwrap(), c);
        assert_eq!(split_group_id(group_id(5, 4095)), (5, 4095));
        assert!(group_id(MAX_NAMESPACE_ID, 4095) < u32::MAX);
    }

    #[test]
    fn truncate_luts_only_grow_and_undo_forgets_them() {
        let mut c = formed(vec![1, 2, 3]);
        let t = |set: Option<&str>, lut| CatalogCommand::Truncate {
            namespace: "test".into(),
            set: set.map(String::from),
            lut,
        };
        c.apply(&t(Some("a"), 50)).unwrap();
        c.apply(&t(Some("a"), 40)).unwrap();
        c.apply(&t(None, 70)).unwrap();
        let ns = c.namespace("test").unwrap();
        assert_eq!((ns.set_truncate_luts["a"], ns.truncate_lut), (50, 70));
        c.apply(&t(Some("a"), 0)).unwrap();
        assert!(c.namespace("test").unwrap().set_truncate_luts.is_empty());
        let missing = CatalogCommand::Truncate {
            namespace: "nope".into(),
            set: None,
            lut: 1,
        };
        assert_eq!(c.apply(&missing).unwrap_err().code, ResultCode::Namespace);
    }

    #[test]
    fn placement_rotates() {
        let p = place(&[1, 2, 3], 2, 4, 0);
        assert_eq!(p, vec![vec![1, 2], vec![2, 3], vec![3, 1], vec![1, 2]]);
        let shifted = place(&[1, 2, 3], 1, 3, 1);
        assert_eq!(shifted, vec![vec![2], vec![3], vec![1]]);
    }

    #[test]
    fn rosters_recluster_and_moves() {
        let mut c = formed(vec![1, 2, 3]);
        let set = |nodes: Vec<NodeId>| CatalogCommand::SetRoster {
            namespace: "test".into(),
            nodes,
        };
        for bad in [vec![], vec![1, 1, 2, 4], vec![0, 1, 2], vec![1, 2]] {
            assert_eq!(c.apply(&set(bad)).unwrap_err().code, ResultCode::Parameter);
        }
        c.apply(&set(vec![5, 4, 3, 2, 1])).unwrap();
        let ns = c.namespace("test").unwrap();
        assert_eq!(
            (ns.roster.clone(), ns.pending_roster.clone()),
            (vec![1, 2, 3], vec![1, 2, 3, 4, 5])
        );
        assert!(c.targets.is_empty());
        c.apply(&CatalogCommand::Recluster).unwrap();
        let ns = c.namespace("test").unwrap().clone();
        assert_eq!(ns.roster, vec![1, 2, 3, 4, 5]);
        assert_eq!(c.roster, vec![1, 2, 3, 4, 5]);
        assert!(!c.targets.is_empty());
        assert_eq!(c.moving(Some(&ns)), c.targets.len());
        // a stale or foreign move is refused; the target one commits and raises the regime
        let (&g, target) = c
            .targets
            .iter()
            .next()
            .map(|(g, t)| (g, t.clone()))
            .unwrap();
        let stale = CatalogCommand::GroupMoved {
            group: g,
            replicas: vec![1, 2, 3],
        };
        assert_eq!(
            c.apply(&stale).unwrap_err().code,
            ResultCode::OpNotApplicable
        );
        let before = c.regime(&ns);
        c.apply(&CatalogCommand::GroupMoved {
            group: g,
            replicas: target.clone(),
        })
        .unwrap();
        let ns = c.namespace("test").unwrap().clone();
        assert!(c.regime(&ns) > before);
        assert_eq!(ns.placement[usize::from(split_group_id(g).1)], target);
        assert!(c.moved.contains(&g) && !c.targets.contains_key(&g));
        // reclustering again with the same roster keeps the remaining targets
        let left = c.targets.clone();
        c.apply(&CatalogCommand::Recluster).unwrap();
        assert_eq!(c.targets, left);
        // back to three nodes: groups already on 1, 2, 3 stop moving
        c.apply(&set(vec![1, 2, 3])).unwrap();
        c.apply(&CatalogCommand::Recluster).unwrap();
        let ns = c.namespace("test").unwrap();
        for (g, t) in &c.targets {
            assert_ne!(&ns.placement[usize::from(split_group_id(*g).1)], t);
            assert!(t.iter().all(|n| *n <= 3));
        }
        // dropping the namespace forgets its moves
        c.apply(&CatalogCommand::DropNamespace {
            name: "test".into(),
        })
        .unwrap();
        assert!(c.targets.is_empty());
    }

    #[test]
    fn a_version_1_catalog_still_decodes() {
        #[derive(Serialize)]
        struct V1<'a> {
            formed: bool,
            roster: &'a Vec<NodeId>,
            namespaces: &'a BTreeMap<String, Namespace>,
            next_namespace_id: u32,
            version: u64,
        }
        let c = formed(vec![1, 2, 3]);
        let v1 = V1 {
            formed: c.formed,
            roster: &c.roster,
            namespaces: &c.namespaces,
            next_namespace_id: c.next_namespace_id,
            version: c.version,
        };
        let bytes = bincode::serde::encode_to_vec((1u32, v1), bincode::config::standard()).unwrap();
        assert_eq!(Catalog::decode(&bytes).unwrap(), c);
        let v9 = bincode::serde::encode_to_vec((9u32, 0u8), bincode::config::standard()).unwrap();
        assert!(Catalog::decode(&v9).is_err());
    }

    #[test]
    fn a_version_2_catalog_still_decodes_without_lease_reads() {
        let mut c = formed(vec![1, 2, 3]);
        c.apply(&CatalogCommand::SetRoster {
            namespace: "test".into(),
            nodes: vec![5, 4, 3, 2, 1],
        })
        .unwrap();
        c.apply(&CatalogCommand::Recluster).unwrap();
        assert!(!c.targets.is_empty());
        let v2 = CatalogV2 {
            formed: c.formed,
            roster: c.roster.clone(),
            namespaces: c.namespaces.clone(),
            next_namespace_id: c.next_namespace_id,
            version: c.version,
            targets: c.targets.clone(),
            moved: c.moved.clone(),
            moves_done: c.moves_done.clone(),
        };
        let bytes = bincode::serde::encode_to_vec((2u32, v2), bincode::config::standard()).unwrap();
        assert_eq!(Catalog::decode(&bytes).unwrap(), c);
    }

    #[test]
    fn lease_reads_are_a_live_setting_forgotten_with_the_namespace() {
        let mut c = formed(vec![1, 2, 3]);
        let on = |on| CatalogCommand::SetNamespaceConfig {
            namespace: "test".into(),
            setting: LiveSetting::LeaseReads(on),
        };
        assert!(!c.reads_by_lease(c.namespace("test").unwrap()));
        c.apply(&on(true)).unwrap();
        assert!(c.reads_by_lease(c.namespace("test").unwrap()));
        let round_trip = Catalog::decode(&c.encode()).unwrap();
        assert_eq!(round_trip, c);
        c.apply(&on(false)).unwrap();
        assert!(!c.reads_by_lease(c.namespace("test").unwrap()));
        c.apply(&on(true)).unwrap();
        c.apply(&CatalogCommand::DropNamespace {
            name: "test".into(),
        })
        .unwrap();
        assert!(c.lease_reads.is_empty());
        assert!(c
            .apply(&CatalogCommand::SetNamespaceConfig {
                namespace: "test".into(),
                setting: LiveSetting::LeaseReads(true),
            })
            .is_err());
    }
}
