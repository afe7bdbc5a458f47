//! Storage for Strato: the Aerospike record model, the in-memory record store of a Raft
//! group, the deterministic `apply` of write commands, per-group snapshots, and the durable
//! Raft log store.
//!
//! This crate is synchronous on purpose: no tokio, no openraft. The `raft` crate decides
//! where blocking I/O runs.

pub mod apply;
pub mod bits;
pub mod catalog;
pub mod cdt;
pub mod command;
pub mod conformance;
pub mod error;
pub mod exp;
pub mod geo;
pub mod hll;
pub mod index;
pub mod log_store;
pub mod rebalance;
pub mod record;
pub mod record_store;
pub mod snapshot_file;
