//! Strato server library: the node, its listeners and the protocols it speaks.

pub mod cluster;
