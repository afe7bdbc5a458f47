//! Who this node is: identity and build.

use super::cluster::BUILD;
use crate::context::Context as Node;
use crate::protocol::info_command::{InfoCommand, InfoResult};

const FEATURES: &str = "batch-index;blob-bits;cdt-list;cdt-map;float;peers;pipelining;replicas;replicas-all;replicas-master;replicas-max;relaxed-sc";

pub fn node(n: &Node, _: &InfoCommand) -> InfoResult {
    Ok(crate::context::node_name(n.config.node_id))
}

pub fn build(_: &Node, _: &InfoCommand) -> InfoResult {
    Ok(BUILD.into())
}

pub fn edition(_: &Node, _: &InfoCommand) -> InfoResult {
    Ok("Strato".into())
}

pub fn version(_: &Node, _: &InfoCommand) -> InfoResult {
    Ok(format!("Strato build {BUILD}"))
}

pub fn status(_: &Node, _: &InfoCommand) -> InfoResult {
    Ok("ok".into())
}

pub fn ok(_: &Node, _: &InfoCommand) -> InfoResult {
    Ok("ok".into())
}

pub fn features(_: &Node, _: &InfoCommand) -> InfoResult {
    Ok(FEATURES.into())
}

pub fn cluster_name(n: &Node, _: &InfoCommand) -> InfoResult {
    Ok(n.config.cluster_name.clone())
}

pub fn service(n: &Node, _: &InfoCommand) -> InfoResult {
    Ok(n.config.service_addr().to_string())
}
