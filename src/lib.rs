//! Strato server library: the node, its listeners and the protocols it speaks.
//!
//! - [`node`] wires everything together and owns the background tasks.
//! - [`service`] serves Aerospike clients on the service port (data and info requests).
//! - [`protocol`] is the Aerospike wire codec (pure, no I/O besides the frame reader).
//! - [`fabric`] carries Raft RPCs and forwarded requests between nodes.
//! - [`cluster`] holds gossip discovery and the roster/placement of groups.
//! - [`catalog`] follows the replicated catalog: formation, hosting groups, moving them.
//! - [`admin`] is `strato admin`, the roster workflow for operators.

pub mod admin;
pub mod balance;
pub mod bench;
pub mod catalog;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod config_file;
pub mod context;
pub mod expiry;
pub mod fabric;
pub mod index_build;
pub mod info_client;
pub mod node;
pub mod protocol;
pub mod service;
pub mod stats;
