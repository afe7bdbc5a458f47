//! A Jepsen-style harness for Strato: real clusters under real faults, histories checked for
//! linearizability and lost data.
//!
//! - [`cluster`], [`net`]: real `strato` processes, each in its own network namespace.
//! - [`nemesis`]: partitions, kill -9, pause, on a seeded schedule.
//! - [`workload`], [`runner`]: clients that record a Jepsen history.
//! - [`checker`], [`report`]: linearizability and data-loss checkers, results and plots.

pub mod check;
pub mod checker;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod report;
pub mod runner;
pub mod workload;
