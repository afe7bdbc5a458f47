//! Multi-Raft for Strato: many openraft groups per node over one shared log store and one
//! transport.
//!
//! Every openraft type is named only inside this crate, so bumping the pinned alpha touches
//! one place. The crate opens no sockets and no files of its own: it reaches the disk through
//! `storage::log_store::LogStore` and `storage::snapshot_file`, and the network through the
//! [`transport::Transport`] trait the server implements.

pub mod clock;
pub mod config;
pub mod error;
mod evict;
pub mod liveness;
pub mod log_store;
mod log_tail;
pub mod multi_raft;
pub mod network;
pub mod read_index;
pub mod rpc;
pub mod sleep;
pub mod state_machine;
pub mod supervisor;
pub mod transport;
pub mod types;

pub use error::{ReadError, WriteError};
pub use multi_raft::{Group, GroupStatus, MultiRaft, ReadConfirm, SleepFigures};
pub use state_machine::SharedCatalog;
pub use transport::{Transport, TransportError};
pub use types::{GroupId, NodeId, TypeConfig};
