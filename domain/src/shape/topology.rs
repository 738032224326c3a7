//! CPU topology shapes: `{numa}n{llcs}l{cores_per_llc}c{threads}t`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A VM's CPU topology. `llcs` counts last-level caches across the whole machine; they are
/// spread evenly over the NUMA nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Topology {
    pub numa_nodes: u32,
    pub llcs: u32,
    pub cores_per_llc: u32,
    pub threads_per_core: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopologyError {
    #[error(
        "topology `{0}` is not of the form {{numa}}n{{llcs}}l{{cores}}c{{threads}}t, e.g. 1n2l4c2t"
    )]
    Syntax(String),
    #[error("topology `{0}`: every count must be at least 1")]
    Zero(String),
    #[error("topology `{shape}`: {llcs} LLCs cannot be spread evenly over {numa} NUMA nodes")]
    UnevenNuma { shape: String, llcs: u32, numa: u32 },
    #[error("topology `{0}`: more than 4096 CPUs")]
    TooLarge(String),
}

impl Topology {
    pub fn new(
        numa_nodes: u32,
        llcs: u32,
        cores_per_llc: u32,
        threads_per_core: u32,
    ) -> Result<Self, TopologyError> {
        let topo = Topology {
            numa_nodes,
            llcs,
            cores_per_llc,
            threads_per_core,
        };
        let shape = topo.to_string();
        if [numa_nodes, llcs, cores_per_llc, threads_per_core].contains(&0) {
            return Err(TopologyError::Zero(shape));
        }
        if !llcs.is_multiple_of(numa_nodes) {
            return Err(TopologyError::UnevenNuma {
                shape,
                llcs,
                numa: numa_nodes,
            });
        }
        // Saturating: three u32 factors can pass u64 (found by the `topology` fuzz target).
        let cpus = u64::from(llcs)
            .saturating_mul(u64::from(cores_per_llc))
            .saturating_mul(u64::from(threads_per_core));
        if cpus > 4096 {
            return Err(TopologyError::TooLarge(shape));
        }
        Ok(topo)
    }

    /// Logical CPUs the guest sees.
    pub fn cpus(&self) -> u32 {
        self.llcs * self.cores_per_llc * self.threads_per_core
    }

    pub fn has_smt(&self) -> bool {
        self.threads_per_core > 1
    }

    pub fn llcs_per_node(&self) -> u32 {
        self.llcs / self.numa_nodes
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}n{}l{}c{}t",
            self.numa_nodes, self.llcs, self.cores_per_llc, self.threads_per_core
        )
    }
}

impl FromStr for Topology {
    type Err = TopologyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || TopologyError::Syntax(s.to_string());
        let mut rest = s;
        let mut fields = [0u32; 4];
        for (slot, suffix) in fields.iter_mut().zip(['n', 'l', 'c', 't']) {
            let end = rest.find(suffix).ok_or_else(syntax)?;
            let digits = &rest[..end];
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            *slot = digits.parse().map_err(|_| syntax())?;
            rest = &rest[end + 1..];
        }
        if !rest.is_empty() {
            return Err(syntax());
        }
        let [numa, llcs, cores, threads] = fields;
        Topology::new(numa, llcs, cores, threads)
    }
}

impl TryFrom<String> for Topology {
    type Error = TopologyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Topology> for String {
    fn from(t: Topology) -> Self {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_too_large_for_any_integer_is_too_large_not_a_panic() {
        let shape = "46n445445554l44455548c26118600t";
        assert_eq!(
            shape.parse::<Topology>(),
            Err(TopologyError::TooLarge(shape.into()))
        );
    }

    #[test]
    fn parses_and_formats_round_trip() {
        let t: Topology = "1n2l4c2t".parse().unwrap();
        assert_eq!(t, Topology::new(1, 2, 4, 2).unwrap());
        assert_eq!(t.to_string(), "1n2l4c2t");
        assert_eq!(t.cpus(), 16);
        assert!(t.has_smt());
        let big: Topology = "4n12l8c2t".parse().unwrap();
        assert_eq!(big.cpus(), 192);
        assert_eq!(big.llcs_per_node(), 3);
    }

    #[test]
    fn rejects_malformed_shapes() {
        for bad in [
            "",
            "1n2l4c",
            "1n2l4c2",
            "n2l4c2t",
            "1n2l4c2tx",
            "1x2l4c2t",
            "1n-2l4c2t",
            "1n2l4c2t ",
            "1n 2l4c2t",
        ] {
            assert!(
                matches!(bad.parse::<Topology>(), Err(TopologyError::Syntax(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            "1n0l4c2t".parse::<Topology>(),
            Err(TopologyError::Zero("1n0l4c2t".into()))
        );
        assert!(matches!(
            "2n3l4c1t".parse::<Topology>(),
            Err(TopologyError::UnevenNuma { .. })
        ));
        assert!(matches!(
            "1n64l64c2t".parse::<Topology>(),
            Err(TopologyError::TooLarge(_))
        ));
    }

    #[test]
    fn error_names_the_expected_form() {
        let err = "bogus".parse::<Topology>().unwrap_err().to_string();
        assert!(err.contains("1n2l4c2t"), "{err}");
    }
}
