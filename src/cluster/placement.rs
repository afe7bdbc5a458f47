//! Where data lives: partitions → groups → replica nodes. Pure functions of the roster.

use raft::{GroupId, NodeId};
use serde::{Deserialize, Serialize};
use storage::record::PARTITIONS;

/// The operator-approved set of data-holding nodes and the layout of the namespace on them.
/// Fixed when the cluster forms; stored in every node's data directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    /// Sorted, unique node ids.
    pub nodes: Vec<NodeId>,
    /// Replicas per group, already capped at the node count.
    pub replication_factor: usize,
    /// Raft groups the namespace's 4096 partitions are spread over.
    pub groups: u16,
}

impl Roster {
    pub fn new(mut nodes: Vec<NodeId>, replication_factor: usize, groups: u16) -> Roster {
        nodes.sort_unstable();
        nodes.dedup();
        let replication_factor = replication_factor.clamp(1, nodes.len().max(1));
        Roster {
            nodes,
            replication_factor,
            groups: groups.clamp(1, PARTITIONS),
        }
    }

    /// The group (index within the namespace) that owns `partition`.
    pub fn group_of(&self, partition: u16) -> u16 {
        partition % self.groups
    }

    /// Replica nodes of group `g`, preferred leader first: consecutive roster nodes starting
    /// at a rotating offset, so leaders and replicas spread evenly.
    pub fn replicas(&self, g: u16) -> Vec<NodeId> {
        let n = self.nodes.len();
        if n == 0 {
            return Vec::new();
        }
        (0..self.replication_factor)
            .map(|i| self.nodes[(usize::from(g) + i) % n])
            .collect()
    }

    /// Groups `node` holds a replica of.
    pub fn groups_of(&self, node: NodeId) -> Vec<u16> {
        (0..self.groups)
            .filter(|g| self.replicas(*g).contains(&node))
            .collect()
    }
}

/// Group ids carry the namespace index in the high 16 bits.
pub fn group_id(namespace: u16, g: u16) -> GroupId {
    (u32::from(namespace) << 16) | u32::from(g)
}

pub fn group_index(id: GroupId) -> u16 {
    (id & 0xffff) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_rotate_and_cap() {
        let r = Roster::new(vec![3, 1, 2], 5, 6);
        assert_eq!(r.replication_factor, 3);
        assert_eq!(r.replicas(0), vec![1, 2, 3]);
        assert_eq!(r.replicas(1), vec![2, 3, 1]);
        assert_eq!(r.replicas(2), vec![3, 1, 2]);
        let leaders: Vec<_> = (0..6).map(|g| r.replicas(g)[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        let r1 = Roster::new(vec![1, 2, 3, 4], 2, 4);
        assert_eq!(r1.groups_of(1), vec![0, 3]);
        assert_eq!(r1.group_of(4095), 3);
    }

    #[test]
    fn every_partition_has_a_group() {
        let r = Roster::new(vec![1], 3, 16);
        assert_eq!(r.replication_factor, 1);
        assert!((0..PARTITIONS).all(|p| r.group_of(p) < 16));
        assert_eq!(group_index(group_id(2, 7)), 7);
    }
}
