//! APIC IDs as x86 packs them: thread, core, die (here an LLC) and package (here a NUMA
//! node) each get the fewest bits that hold their count, so a guest decodes the preset's
//! topology from the IDs, CPUID leaves 0xB/0x1F and the ACPI tables alike.

use crate::shape::topology::Topology;

/// The widths of the APIC ID's fields, low to high.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApicIdLayout {
    pub thread_bits: u32,
    pub core_bits: u32,
    /// LLCs within a node.
    pub die_bits: u32,
}

/// The fewest bits that tell `count` things apart.
fn bits_for(count: u32) -> u32 {
    count.max(1).next_power_of_two().trailing_zeros()
}

impl ApicIdLayout {
    pub fn new(topology: &Topology) -> Self {
        ApicIdLayout {
            thread_bits: bits_for(topology.threads_per_core),
            core_bits: bits_for(topology.cores_per_llc),
            die_bits: bits_for(topology.llcs_per_node()),
        }
    }

    /// Where the package (NUMA node) field starts.
    pub fn package_shift(&self) -> u32 {
        self.thread_bits + self.core_bits + self.die_bits
    }
}

/// The APIC ID of every vCPU, in vCPU order (core by core, SMT siblings adjacent).
pub fn apic_ids(topology: &Topology) -> Vec<u32> {
    let layout = ApicIdLayout::new(topology);
    let mut ids = Vec::with_capacity(topology.cpus() as usize);
    for node in 0..topology.numa_nodes {
        for die in 0..topology.llcs_per_node() {
            for core in 0..topology.cores_per_llc {
                for thread in 0..topology.threads_per_core {
                    ids.push(
                        (node << layout.package_shift())
                            | (die << (layout.thread_bits + layout.core_bits))
                            | (core << layout.thread_bits)
                            | thread,
                    );
                }
            }
        }
    }
    ids
}

/// xAPIC IDs stop at 254 (255 is the broadcast); past it a CPU needs an x2APIC entry.
pub const MAX_XAPIC_ID: u32 = 254;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::preset::PRESETS;

    fn ids(shape: &str) -> Vec<u32> {
        apic_ids(&shape.parse().unwrap())
    }

    #[test]
    fn fields_are_packed_thread_core_die_package() {
        assert_eq!(ids("1n1l4c1t"), [0, 1, 2, 3]);
        // SMT siblings differ in bit 0; the second LLC starts at bit 2.
        assert_eq!(ids("1n2l2c2t"), [0, 1, 2, 3, 4, 5, 6, 7]);
        // Three cores take two bits: the next LLC starts at 4, leaving a gap.
        assert_eq!(ids("1n3l3c1t"), [0, 1, 2, 4, 5, 6, 8, 9, 10]);
        // Two nodes of two LLCs of two cores: the node is bit 2.
        assert_eq!(ids("2n4l2c1t"), [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(ids("2n2l3c1t"), [0, 1, 2, 4, 5, 6]);
    }

    #[test]
    fn every_preset_gets_distinct_ids_and_the_largest_need_x2apic() {
        for p in PRESETS {
            let ids = apic_ids(&p.topology);
            let mut sorted = ids.clone();
            sorted.dedup();
            assert_eq!(sorted.len(), p.topology.cpus() as usize, "{}", p.name);
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "{}", p.name);
        }
        let max = apic_ids(&"1n14l9c2t".parse().unwrap());
        assert_eq!(max.len(), 252);
        assert_eq!(*max.last().unwrap(), (13 << 5) | (8 << 1) | 1);
        assert!(*max.last().unwrap() > MAX_XAPIC_ID);
    }
}
