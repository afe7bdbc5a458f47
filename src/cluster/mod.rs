//! Who is in the cluster (gossip discovery) and where data lives (roster and placement).

pub mod gossip;
pub mod placement;
