//! The openraft type configuration shared by every group.

use storage::command::{Command, Outcome};

/// A node's id: stable for the node's lifetime, never reused.
pub type NodeId = u64;
/// A Raft group id: `namespace index << 16 | group index within the namespace`.
pub type GroupId = u32;

openraft::declare_raft_types!(
    /// Types of every Strato Raft group: the log carries record commands, applying one
    /// answers an Aerospike outcome.
    pub TypeConfig:
        D = Command,
        R = Outcome,
        NodeId = NodeId,
        Node = openraft::EmptyNode,
        AsyncRuntime = crate::clock::NodeRuntime,
);

pub type Raft = openraft::Raft<TypeConfig, crate::state_machine::GroupStateMachine>;
pub type Metrics = openraft::RaftMetrics<TypeConfig>;
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// A snapshot's data is its file, read on demand: it is never held in memory whole.
pub type SnapshotData = storage::snapshot_file::SnapshotHandle;
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotData>;

/// bincode configuration for everything this crate persists or sends.
pub(crate) fn codec() -> bincode::config::Configuration {
    bincode::config::standard()
}

pub(crate) fn encode<T: serde::Serialize>(v: &T) -> std::io::Result<Vec<u8>> {
    bincode::serde::encode_to_vec(v, codec()).map_err(std::io::Error::other)
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> std::io::Result<T> {
    bincode::serde::decode_from_slice(b, codec())
        .map(|(v, _)| v)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
