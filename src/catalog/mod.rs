//! The server's side of the replicated catalog: forming a new cluster, proposing changes
//! through the metadata group's leader, and following the applied catalog by opening and
//! closing this node's data groups. The catalog itself (its commands and their pure apply)
//! lives in `storage::catalog`.

pub mod change;
pub mod follower;
pub mod formation;
pub mod mover;
pub mod propose;
