//! Which vCPUs and which slice of guest RAM each NUMA node of a cell gets. Every backend
//! builds its machine from this, and the guest's view is checked against it.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::shape::topology::Topology;

/// One node: a contiguous run of vCPU ids and of RAM, in node order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLayout {
    pub node: u32,
    /// vCPU ids, numbered core by core with SMT siblings adjacent.
    pub cpus: Range<u32>,
    /// Where the node's RAM starts within the guest's RAM, counted from the first byte of
    /// RAM (not a guest-physical address: see [`crate::shape::ram_map`]).
    pub ram_offset_mib: u64,
    pub ram_mib: u32,
}

/// The vCPU ids of each node of `topology`, in node order: contiguous runs, numbered core
/// by core with SMT siblings adjacent. What the guest's
/// `/sys/devices/system/node/nodeN/cpulist` must show.
pub fn node_cpus(topology: &Topology) -> Vec<Range<u32>> {
    let per_node = topology.cpus() / topology.numa_nodes;
    (0..topology.numa_nodes)
        .map(|node| node * per_node..(node + 1) * per_node)
        .collect()
}

/// The nodes of one cell's guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaLayout {
    nodes: Vec<NodeLayout>,
}

impl NumaLayout {
    /// Splits `topology`'s vCPUs evenly by node and `memory_mib` as evenly as whole MiB
    /// allow, the remainder going to node 0.
    pub fn new(topology: &Topology, memory_mib: u32) -> Self {
        let count = topology.numa_nodes;
        let mib_per_node = memory_mib / count;
        let mut offset = 0u64;
        let nodes = (0..count)
            .zip(node_cpus(topology))
            .map(|(node, cpus)| {
                let ram_mib = if node == 0 {
                    mib_per_node + memory_mib % count
                } else {
                    mib_per_node
                };
                let layout = NodeLayout {
                    node,
                    cpus,
                    ram_offset_mib: offset,
                    ram_mib,
                };
                offset += u64::from(ram_mib);
                layout
            })
            .collect();
        NumaLayout { nodes }
    }

    pub fn nodes(&self) -> &[NodeLayout] {
        &self.nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_contiguous_cpus_and_the_ram_remainder_goes_to_node_0() {
        let layout = NumaLayout::new(&"4n8l4c1t".parse().unwrap(), 1001);
        let nodes = layout.nodes();
        assert_eq!(nodes.len(), 4);
        assert_eq!(nodes[0].cpus, 0..8);
        assert_eq!(nodes[3].cpus, 24..32);
        let sizes: Vec<u32> = nodes.iter().map(|n| n.ram_mib).collect();
        assert_eq!(sizes, [251, 250, 250, 250]);
        let offsets: Vec<u64> = nodes.iter().map(|n| n.ram_offset_mib).collect();
        assert_eq!(offsets, [0, 251, 501, 751]);
        assert_eq!(node_cpus(&"4n8l4c1t".parse().unwrap())[1], 8..16);
    }

    #[test]
    fn one_node_holds_everything() {
        let layout = NumaLayout::new(&"1n2l2c2t".parse().unwrap(), 576);
        assert_eq!(
            layout.nodes(),
            [NodeLayout {
                node: 0,
                cpus: 0..8,
                ram_offset_mib: 0,
                ram_mib: 576
            }]
        );
    }
}
