//! Which topologies a scheduler accepts, and which a host can run.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::shape::topology::Topology;

/// Topology limits a scheduler declares. `max_numa_nodes` defaults to 1: NUMA presets are
/// opt-in because most schedulers are not NUMA-aware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopologyConstraints {
    pub min_llcs: u32,
    pub max_llcs: Option<u32>,
    pub min_numa_nodes: u32,
    pub max_numa_nodes: u32,
    pub requires_smt: bool,
    pub max_cpus: Option<u32>,
}

impl Default for TopologyConstraints {
    fn default() -> Self {
        TopologyConstraints {
            min_llcs: 1,
            max_llcs: None,
            min_numa_nodes: 1,
            max_numa_nodes: 1,
            requires_smt: false,
            max_cpus: None,
        }
    }
}

/// What the host can give one VM: the largest vCPU count it will boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostBudget {
    pub max_vcpus: u32,
}

/// Why a topology was left out of a scheduler's sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    TooFewLlcs { have: u32, min: u32 },
    TooManyLlcs { have: u32, max: u32 },
    TooFewNumaNodes { have: u32, min: u32 },
    TooManyNumaNodes { have: u32, max: u32 },
    NoSmt,
    TooManyCpus { have: u32, max: u32 },
    OverHostBudget { have: u32, max: u32 },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Rejection::TooFewLlcs { have, min } => write!(f, "{have} LLCs < min_llcs {min}"),
            Rejection::TooManyLlcs { have, max } => write!(f, "{have} LLCs > max_llcs {max}"),
            Rejection::TooFewNumaNodes { have, min } => {
                write!(f, "{have} NUMA nodes < min_numa_nodes {min}")
            }
            Rejection::TooManyNumaNodes { have, max } => {
                write!(f, "{have} NUMA nodes > max_numa_nodes {max}")
            }
            Rejection::NoSmt => write!(f, "no SMT but requires_smt"),
            Rejection::TooManyCpus { have, max } => write!(f, "{have} CPUs > max_cpus {max}"),
            Rejection::OverHostBudget { have, max } => {
                write!(f, "{have} vCPUs > host budget {max}")
            }
        }
    }
}

impl TopologyConstraints {
    /// `Ok` when the scheduler accepts `topo` and the host can boot it; otherwise the first
    /// reason it does not.
    pub fn accepts(&self, topo: &Topology, host: HostBudget) -> Result<(), Rejection> {
        let cpus = topo.cpus();
        if topo.llcs < self.min_llcs {
            return Err(Rejection::TooFewLlcs {
                have: topo.llcs,
                min: self.min_llcs,
            });
        }
        if let Some(max) = self.max_llcs.filter(|&m| topo.llcs > m) {
            return Err(Rejection::TooManyLlcs {
                have: topo.llcs,
                max,
            });
        }
        if topo.numa_nodes < self.min_numa_nodes {
            return Err(Rejection::TooFewNumaNodes {
                have: topo.numa_nodes,
                min: self.min_numa_nodes,
            });
        }
        if topo.numa_nodes > self.max_numa_nodes {
            return Err(Rejection::TooManyNumaNodes {
                have: topo.numa_nodes,
                max: self.max_numa_nodes,
            });
        }
        if self.requires_smt && !topo.has_smt() {
            return Err(Rejection::NoSmt);
        }
        if let Some(max) = self.max_cpus.filter(|&m| cpus > m) {
            return Err(Rejection::TooManyCpus { have: cpus, max });
        }
        if cpus > host.max_vcpus {
            return Err(Rejection::OverHostBudget {
                have: cpus,
                max: host.max_vcpus,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::preset::{PRESETS, find_preset};

    const BIG_HOST: HostBudget = HostBudget { max_vcpus: 4096 };

    fn topo(name: &str) -> Topology {
        find_preset(name).unwrap().topology
    }

    #[test]
    fn defaults_accept_every_single_node_preset_and_no_numa_one() {
        let c = TopologyConstraints::default();
        for p in PRESETS {
            let accepted = c.accepts(&p.topology, BIG_HOST).is_ok();
            assert_eq!(accepted, p.topology.numa_nodes == 1, "{}", p.name);
        }
    }

    #[test]
    fn each_constraint_rejects_with_its_reason() {
        let c = TopologyConstraints {
            min_llcs: 2,
            ..Default::default()
        };
        assert_eq!(
            c.accepts(&topo("tiny-1llc"), BIG_HOST),
            Err(Rejection::TooFewLlcs { have: 1, min: 2 })
        );
        let c = TopologyConstraints {
            max_llcs: Some(4),
            ..Default::default()
        };
        assert_eq!(
            c.accepts(&topo("odd-5llc"), BIG_HOST),
            Err(Rejection::TooManyLlcs { have: 5, max: 4 })
        );
        assert!(c.accepts(&topo("medium-4llc"), BIG_HOST).is_ok());
        let c = TopologyConstraints {
            min_numa_nodes: 2,
            max_numa_nodes: 4,
            ..Default::default()
        };
        assert_eq!(
            c.accepts(&topo("tiny-2llc"), BIG_HOST),
            Err(Rejection::TooFewNumaNodes { have: 1, min: 2 })
        );
        assert!(c.accepts(&topo("numa4-8llc"), BIG_HOST).is_ok());
        assert_eq!(
            TopologyConstraints::default().accepts(&topo("numa2-4llc"), BIG_HOST),
            Err(Rejection::TooManyNumaNodes { have: 2, max: 1 })
        );
        let c = TopologyConstraints {
            requires_smt: true,
            ..Default::default()
        };
        assert_eq!(
            c.accepts(&topo("tiny-2llc"), BIG_HOST),
            Err(Rejection::NoSmt)
        );
        assert!(c.accepts(&topo("smt-2llc"), BIG_HOST).is_ok());
        let c = TopologyConstraints {
            max_cpus: Some(16),
            ..Default::default()
        };
        assert_eq!(
            c.accepts(&topo("medium-8llc"), BIG_HOST),
            Err(Rejection::TooManyCpus { have: 64, max: 16 })
        );
    }

    #[test]
    fn host_budget_limits_vcpus() {
        let small = HostBudget { max_vcpus: 8 };
        let c = TopologyConstraints::default();
        assert!(c.accepts(&topo("smt-2llc"), small).is_ok());
        let err = c.accepts(&topo("odd-3llc"), small).unwrap_err();
        assert_eq!(err, Rejection::OverHostBudget { have: 9, max: 8 });
        assert_eq!(err.to_string(), "9 vCPUs > host budget 8");
    }
}
