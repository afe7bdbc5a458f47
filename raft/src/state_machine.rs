//! openraft's state machine over a group's in-memory [`RecordStore`].
//!
//! Records live in memory; the Raft log is the write-ahead log. Snapshots are written to a
//! file per group so the log can be purged, and a restarting node installs the latest one
//! and re-applies the committed log after it. A snapshot's data is that file
//! ([`SnapshotData`]): encoded straight into it, sent from it, decoded from it.

use crate::types::{
    decode, encode, GroupId, LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership,
    TypeConfig,
};
use futures::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use std::io;
use std::sync::{Arc, RwLock};
use storage::apply::apply;
use storage::catalog::Catalog;
use storage::command::{Command, Outcome};
use storage::record::ResultCode;
use storage::record_store::RecordStore;
use storage::snapshot_file::SnapshotFiles;

/// A group's records, shared between the state machine (writer) and the read path.
pub type SharedRecords = Arc<RwLock<RecordStore>>;

/// The catalog as applied on this node: every apply publishes a new version, and the node
/// follows it (opening and closing data groups) through a receiver.
pub type SharedCatalog = Arc<tokio::sync::watch::Sender<Arc<Catalog>>>;

/// What a group's log builds: a data group's records, or the metadata group's catalog.
#[derive(Clone)]
pub enum GroupData {
    Records(SharedRecords),
    Catalog(SharedCatalog),
}

/// A captured state, ready to be encoded into a snapshot.
enum Captured {
    Records(RecordStore),
    Catalog(Arc<Catalog>),
}

impl Captured {
    fn encode_into(&self, w: &mut dyn io::Write) -> io::Result<()> {
        match self {
            Captured::Records(r) => r.encode_snapshot_into(w),
            Captured::Catalog(c) => w.write_all(&c.encode()),
        }
    }
}

/// Where a group's state machine stands: what openraft asks of it when it starts.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

/// [`Applied`] kept outside the state machine: openraft owns the state machine and drops it
/// when its instance stops, while the records it applied to stay in memory. An instance
/// evicted while idle (`crate::evict`) restarts from here, not from the snapshot and log.
pub type SharedApplied = Arc<std::sync::Mutex<Applied>>;

pub struct GroupStateMachine {
    group: GroupId,
    data: GroupData,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// Updated after every apply batch and snapshot install.
    kept: SharedApplied,
    snapshots: Arc<SnapshotFiles>,
}

impl GroupStateMachine {
    /// A state machine over `data`, standing where `kept` says (nothing applied, for a group
    /// just opened: openraft then restores it from the snapshot and log).
    pub fn new(
        group: GroupId,
        data: GroupData,
        kept: SharedApplied,
        snapshots: Arc<SnapshotFiles>,
    ) -> GroupStateMachine {
        let Applied {
            last_applied,
            membership,
        } = kept.lock().map(|a| a.clone()).unwrap_or_default();
        GroupStateMachine {
            group,
            data,
            last_applied,
            membership,
            kept,
            snapshots,
        }
    }

    fn keep(&self) -> io::Result<()> {
        let mut kept = self.kept.lock().map_err(|_| poisoned())?;
        kept.last_applied = self.last_applied;
        if kept.membership.log_id() != self.membership.log_id() {
            kept.membership = self.membership.clone();
        }
        Ok(())
    }

    /// Apply one normal entry to whatever this group holds.
    fn apply_command(&self, cmd: &Command) -> io::Result<Outcome> {
        Ok(match (&self.data, cmd) {
            (GroupData::Catalog(cat), Command::Catalog(c)) => {
                let mut next = Catalog::clone(&cat.borrow());
                match next.apply(c) {
                    Ok(()) => {
                        cat.send_replace(Arc::new(next));
                        Outcome::ok(0, 0)
                    }
                    Err(e) => Outcome::error(e.code),
                }
            }
            (GroupData::Catalog(_), _) => Outcome::error(ResultCode::Parameter),
            (GroupData::Records(records), cmd) => {
                let mut records = records.write().map_err(|_| poisoned())?;
                apply(&mut records, cmd)
            }
        })
    }
}

fn poisoned() -> io::Error {
    io::Error::other("record store lock poisoned")
}

impl RaftStateMachine<TypeConfig> for GroupStateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let outcome = match &entry.payload {
                EntryPayload::Normal(cmd) => {
                    let outcome = self.apply_command(cmd)?;
                    if let Command::Catalog(change) = cmd {
                        // Catalog changes are rare and decide what every node holds: each
                        // one is worth a line, with where it sits in the metadata log.
                        tracing::info!(group = self.group, log_id = %entry.log_id, ?change, code = ?outcome.code, "catalog change applied");
                    }
                    outcome
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    storage::command::Outcome::ok(0, 0)
                }
                EntryPayload::Blank => storage::command::Outcome::ok(0, 0),
            };
            self.last_applied = Some(entry.log_id);
            // Per entry, so what is kept never trails what the records hold.
            self.keep()?;
            if let Some(r) = responder {
                r.send(outcome);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        // openraft builds the snapshot on a spawned task while applies continue, so the state
        // must be captured here, at exactly `last_applied`, or a restore would re-apply entries
        // already contained in it. Cloning the store shares its records (cheap); encoding
        // happens later, off the apply path.
        let data = match &self.data {
            GroupData::Records(records) => records
                .read()
                .map(|r| Captured::Records(r.capture()))
                .map_err(|_| poisoned()),
            GroupData::Catalog(cat) => Ok(Captured::Catalog(cat.borrow().clone())),
        };
        SnapshotBuilder {
            group: self.group,
            data,
            meta: SnapshotMeta {
                last_log_id: self.last_applied,
                last_membership: self.membership.clone(),
            },
            snapshots: self.snapshots.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> io::Result<()> {
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
        // Decoding every record is blocking work: keep it off the async workers. It reads
        // the file as it goes, so the encoded snapshot is never in memory.
        let catalog = matches!(self.data, GroupData::Catalog(_));
        let file = snapshot.clone();
        let decoded = tokio::task::spawn_blocking(move || -> io::Result<Captured> {
            if catalog {
                let bytes = file.read_data()?;
                Ok(Captured::Catalog(Arc::new(
                    Catalog::decode(&bytes).map_err(invalid)?,
                )))
            } else {
                RecordStore::decode_snapshot_from(&mut file.data())
                    .map(Captured::Records)
                    .map_err(|e| invalid(e.to_string()))
            }
        })
        .await
        .map_err(io::Error::other)??;
        // Persist before adopting it: after a restart the log before it may already be
        // purged. A snapshot opened from this group's own file (at start-up) stays where it is.
        if !self.snapshots.is_installed(self.group, &snapshot) {
            self.snapshots
                .install(self.group, &snapshot)
                .map_err(io::Error::other)?;
            tracing::info!(group = self.group, last_log_id = ?meta.last_log_id, bytes = snapshot.len(), "installed a snapshot from the leader");
        }
        match (&self.data, decoded) {
            (GroupData::Records(records), Captured::Records(store)) => {
                *records.write().map_err(|_| poisoned())? = store;
            }
            (GroupData::Catalog(cat), Captured::Catalog(c)) => {
                cat.send_replace(c);
            }
            _ => return Err(io::Error::other("snapshot kind does not match the group")),
        }
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.keep()
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        match self.snapshots.open(self.group).map_err(io::Error::other)? {
            Some(file) => Ok(Some(Snapshot {
                meta: decode::<SnapshotMeta>(file.meta())?,
                snapshot: file,
            })),
            None => Ok(None),
        }
    }
}

/// Persists a snapshot captured by [`GroupStateMachine::get_snapshot_builder`].
pub struct SnapshotBuilder {
    group: GroupId,
    data: io::Result<Captured>,
    meta: SnapshotMeta,
    snapshots: Arc<SnapshotFiles>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let store = std::mem::replace(
            &mut self.data,
            Err(io::Error::other("snapshot already built")),
        )?;
        let meta_bytes = encode(&self.meta)?;
        let (files, group) = (self.snapshots.clone(), self.group);
        // Encoding every record, writing and fsyncing a file are blocking work: keep them off
        // the async workers. Records are encoded straight into the file.
        let file = tokio::task::spawn_blocking(move || {
            files.write(group, &meta_bytes, |w| store.encode_into(w))
        })
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::other)?;
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: file,
        })
    }
}
