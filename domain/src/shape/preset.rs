//! The named topology presets every scheduler is swept across.

use crate::shape::topology::Topology;

/// A named topology shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub topology: Topology,
}

const fn shape(numa_nodes: u32, llcs: u32, cores_per_llc: u32, threads_per_core: u32) -> Topology {
    Topology {
        numa_nodes,
        llcs,
        cores_per_llc,
        threads_per_core,
    }
}

const fn preset(name: &'static str, topology: Topology) -> Preset {
    Preset { name, topology }
}

/// The catalogue, smallest shapes first.
pub const PRESETS: &[Preset] = &[
    preset("tiny-1llc", shape(1, 1, 4, 1)),
    preset("tiny-2llc", shape(1, 2, 2, 1)),
    preset("odd-3llc", shape(1, 3, 3, 1)),
    preset("odd-5llc", shape(1, 5, 3, 1)),
    preset("odd-7llc", shape(1, 7, 2, 1)),
    preset("smt-2llc", shape(1, 2, 2, 2)),
    preset("smt-3llc", shape(1, 3, 2, 2)),
    preset("medium-4llc", shape(1, 4, 4, 2)),
    preset("medium-8llc", shape(1, 8, 4, 2)),
    preset("large-4llc", shape(1, 4, 16, 2)),
    preset("large-8llc", shape(1, 8, 8, 2)),
    preset("near-max-llc", shape(1, 15, 8, 2)),
    preset("max-cpu", shape(1, 14, 9, 2)),
    preset("medium-4llc-nosmt", shape(1, 4, 8, 1)),
    preset("medium-8llc-nosmt", shape(1, 8, 8, 1)),
    preset("large-4llc-nosmt", shape(1, 4, 32, 1)),
    preset("large-8llc-nosmt", shape(1, 8, 16, 1)),
    preset("near-max-llc-nosmt", shape(1, 15, 16, 1)),
    preset("max-cpu-nosmt", shape(1, 14, 18, 1)),
    preset("numa2-4llc", shape(2, 4, 4, 1)),
    preset("numa2-8llc", shape(2, 8, 8, 2)),
    preset("numa2-8llc-nosmt", shape(2, 8, 16, 1)),
    preset("numa4-8llc", shape(4, 8, 4, 1)),
    preset("numa4-12llc", shape(4, 12, 8, 2)),
];

/// Looks a preset up by its exact name.
pub fn find_preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn catalogue_matches_the_spec() {
        let expected = "tiny-1llc 1n1l4c1t · tiny-2llc 1n2l2c1t · odd-3llc 1n3l3c1t · odd-5llc 1n5l3c1t · \
            odd-7llc 1n7l2c1t · smt-2llc 1n2l2c2t · smt-3llc 1n3l2c2t · medium-4llc 1n4l4c2t · \
            medium-8llc 1n8l4c2t · large-4llc 1n4l16c2t · large-8llc 1n8l8c2t · near-max-llc 1n15l8c2t · \
            max-cpu 1n14l9c2t · medium-4llc-nosmt 1n4l8c1t · medium-8llc-nosmt 1n8l8c1t · \
            large-4llc-nosmt 1n4l32c1t · large-8llc-nosmt 1n8l16c1t · near-max-llc-nosmt 1n15l16c1t · \
            max-cpu-nosmt 1n14l18c1t · numa2-4llc 2n4l4c1t · numa2-8llc 2n8l8c2t · \
            numa2-8llc-nosmt 2n8l16c1t · numa4-8llc 4n8l4c1t · numa4-12llc 4n12l8c2t";
        let rendered: Vec<String> = PRESETS
            .iter()
            .map(|p| format!("{} {}", p.name, p.topology))
            .collect();
        assert_eq!(rendered.join(" · "), expected);
    }

    #[test]
    fn every_preset_is_a_valid_shape_with_a_unique_name() {
        let mut names = HashSet::new();
        for p in PRESETS {
            assert!(names.insert(p.name), "duplicate {}", p.name);
            let t = p.topology;
            assert_eq!(
                Topology::new(t.numa_nodes, t.llcs, t.cores_per_llc, t.threads_per_core),
                Ok(t)
            );
            assert!(!p.name.contains('/'));
        }
        assert_eq!(find_preset("max-cpu").unwrap().topology.cpus(), 252);
        assert!(find_preset("max").is_none());
    }
}
