//! The topology a guest reports from its own sysfs, and its comparison with the preset.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use std::ops::Range;

use crate::shape::numa::node_cpus;
use crate::shape::topology::Topology;

/// CPU groupings as the guest kernel sees them. Each group is a sorted list of CPU ids.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObservedTopology {
    pub online_cpus: Vec<u32>,
    /// Groups of SMT siblings (`thread_siblings_list`), one per core.
    pub cores: Vec<Vec<u32>>,
    /// Groups of CPUs sharing an L3 (`cache/index3/shared_cpu_list`).
    pub llcs: Vec<Vec<u32>>,
    /// CPUs per NUMA node (`/sys/devices/system/node/nodeN/cpulist`).
    pub numa_nodes: Vec<Vec<u32>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopologyMismatch {
    #[error("guest topology is irregular ({0}); expected {expected}", expected = .1)]
    Irregular(String, Topology),
    #[error("guest sees {seen}, preset is {expected}")]
    Different { seen: Topology, expected: Topology },
    #[error("guest NUMA node {node} holds CPUs {seen:?}; the layout gives it {first}-{last}", first = .expected.start, last = .expected.end - 1)]
    NodeCpus {
        node: usize,
        seen: Vec<u32>,
        expected: Range<u32>,
    },
}

impl ObservedTopology {
    /// The uniform shape these groupings form, or a description of what is irregular.
    pub fn shape(&self) -> Result<Topology, String> {
        let cpus = self.online_cpus.len();
        let uniform = |groups: &[Vec<u32>], what: &str| -> Result<u32, String> {
            let Some(first) = groups.first() else {
                return Err(format!("no {what} groups"));
            };
            if groups.iter().any(|g| g.len() != first.len()) {
                return Err(format!("{what} groups of unequal size"));
            }
            let covered: usize = groups.iter().map(Vec::len).sum();
            if covered != cpus {
                return Err(format!(
                    "{what} groups cover {covered} of {cpus} online CPUs"
                ));
            }
            Ok(groups.len() as u32)
        };
        let cores = uniform(&self.cores, "SMT sibling")?;
        let llcs = uniform(&self.llcs, "L3")?;
        let nodes = uniform(&self.numa_nodes, "NUMA node")?;
        let threads = cpus as u32 / cores;
        if !cores.is_multiple_of(llcs) {
            return Err(format!("{cores} cores do not split evenly into {llcs} L3s"));
        }
        Topology::new(nodes, llcs, cores / llcs, threads).map_err(|e| e.to_string())
    }

    /// `Ok` when the guest sees exactly `expected`, each NUMA node holding the vCPUs the
    /// domain's layout gave it.
    pub fn check(&self, expected: &Topology) -> Result<(), TopologyMismatch> {
        match self.shape() {
            Ok(seen) if seen == *expected => {
                for (node, (seen, want)) in
                    self.numa_nodes.iter().zip(node_cpus(expected)).enumerate()
                {
                    if !seen.iter().copied().eq(want.clone()) {
                        return Err(TopologyMismatch::NodeCpus {
                            node,
                            seen: seen.clone(),
                            expected: want,
                        });
                    }
                }
                Ok(())
            }
            Ok(seen) => Err(TopologyMismatch::Different {
                seen,
                expected: *expected,
            }),
            Err(why) => Err(TopologyMismatch::Irregular(why, *expected)),
        }
    }

    /// What a guest booted with `topo` should observe, CPUs numbered core by core with SMT
    /// siblings adjacent (the order QEMU and our VMM enumerate them). Test support.
    #[cfg(any(test, feature = "test-support"))]
    pub fn ideal(topo: &Topology) -> Self {
        let threads = topo.threads_per_core;
        let per_llc = topo.cores_per_llc * threads;
        let cpus: Vec<u32> = (0..topo.cpus()).collect();
        let chunk = |n: u32| cpus.chunks(n as usize).map(<[u32]>::to_vec).collect();
        ObservedTopology {
            online_cpus: cpus.clone(),
            cores: chunk(threads),
            llcs: chunk(per_llc),
            numa_nodes: node_cpus(topo).into_iter().map(Iterator::collect).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::preset::PRESETS;

    #[test]
    fn ideal_observation_of_every_preset_checks_out() {
        for p in PRESETS {
            let seen = ObservedTopology::ideal(&p.topology);
            assert_eq!(seen.check(&p.topology), Ok(()), "{}", p.name);
        }
    }

    #[test]
    fn a_collapsed_l3_is_reported_with_both_shapes() {
        let expected: Topology = "1n2l2c1t".parse().unwrap();
        let mut seen = ObservedTopology::ideal(&expected);
        seen.llcs = vec![vec![0, 1, 2, 3]];
        let err = seen.check(&expected).unwrap_err();
        assert_eq!(err.to_string(), "guest sees 1n1l4c1t, preset is 1n2l2c1t");
    }

    #[test]
    fn irregular_groupings_are_named() {
        let expected: Topology = "1n2l2c1t".parse().unwrap();
        let mut seen = ObservedTopology::ideal(&expected);
        seen.llcs = vec![vec![0], vec![1, 2, 3]];
        let err = seen.check(&expected).unwrap_err().to_string();
        assert!(err.contains("L3 groups of unequal size"), "{err}");
        assert!(err.contains("1n2l2c1t"), "{err}");
        let empty = ObservedTopology::default();
        assert!(empty.check(&expected).is_err());
    }

    #[test]
    fn a_node_holding_other_cpus_than_the_layout_gives_it_is_named() {
        let expected: Topology = "2n2l2c1t".parse().unwrap();
        let mut seen = ObservedTopology::ideal(&expected);
        seen.numa_nodes = vec![vec![0, 2], vec![1, 3]];
        let err = seen.check(&expected).unwrap_err();
        assert_eq!(
            err.to_string(),
            "guest NUMA node 0 holds CPUs [0, 2]; the layout gives it 0-1"
        );
    }
}
