//! The fabric: node-to-node RPCs (Raft messages of every group, and client requests forwarded
//! to a group's leader) over one outgoing TCP connection per peer.
//!
//! Wire format of every frame: `u32 BE length` of what follows, then `u8 kind`, `u64 BE request
//! id`, `u32 BE tag` (the group for Raft requests, the hop count for forwards, the status for
//! replies) and the payload. A connection starts with a hello carrying a magic, a version and
//! the sender's cluster name, so a stray or foreign client is refused before anything else.

mod codec;
mod peer;
mod server;

pub use codec::{FrameKind, MAX_FRAME};
pub use peer::{Fabric, ForwardError, RaftTransport};
pub use server::{serve, Handler};
