//! Who is in the cluster (gossip discovery) (the catalog decides where data lives).

pub mod gossip;
