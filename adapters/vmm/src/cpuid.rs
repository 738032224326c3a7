//! Per-vCPU CPUID that tells the guest the preset's topology: the hypervisor's supported
//! leaves with the topology leaves written from the domain's APIC ID layout. Leaf 1 (the
//! APIC ID and logical count, and the hypervisor bit), leaf 4 and AMD's 0x8000_001D (which
//! CPUs share each cache: SMT siblings share L1 and L2, an LLC group shares L3), leaves
//! 0xB and 0x1F (the SMT/core/die levels), and AMD's 0x8000_001E (the extended APIC ID and
//! the LLC's node ID).
//!
//! On AMD a Linux guest finds its LLCs only through TOPOEXT (0x8000_001D/0x8000_001E);
//! without it every package is one L3. So on AMD those leaves are always offered, made up
//! where the CPU has none (nested SVM under QEMU's TCG, older parts).

use ktstr_domain::shape::apic::ApicIdLayout;

use crate::accel::CpuidEntry;

/// `flags` of a leaf whose subleaf (`index`) matters (KVM_CPUID_FLAG_SIGNIFCANT_INDEX).
const SUBLEAF_FLAG: u32 = 1;
const LEAF_VENDOR: u32 = 0;
const LEAF_FEATURES: u32 = 1;
const LEAF_CACHES: u32 = 4;
const LEAF_TOPOLOGY: u32 = 0xb;
const LEAF_TOPOLOGY_V2: u32 = 0x1f;
const LEAF_AMD_CACHES: u32 = 0x8000_001d;
const LEAF_AMD_IDS: u32 = 0x8000_001e;
/// Level types of leaves 0xB and 0x1F.
const LEVEL_SMT: u32 = 1;
const LEVEL_CORE: u32 = 2;
const LEVEL_DIE: u32 = 5;
const LEAF_EXT_MAX: u32 = 0x8000_0000;
const LEAF_EXT_FEATURES: u32 = 0x8000_0001;
const LEAF_AMD_L2_L3: u32 = 0x8000_0006;
/// Leaf 1 EDX: more than one logical processor per package.
const EDX_HTT: u32 = 1 << 28;
/// Leaf 1 ECX: running under a hypervisor. KVM's supported CPUID leaves it clear; without
/// it the guest never looks for KVM's leaves, so it has no kvmclock and calibrates its TSC
/// and reads the wall clock from emulated legacy hardware.
const ECX_HYPERVISOR: u32 = 1 << 31;
/// 0x8000_0001 ECX: topology extensions (leaves 0x8000_001D and 0x8000_001E).
const ECX_TOPOEXT: u32 = 1 << 22;
/// "AuthenticAMD" in leaf 0's EBX.
const AMD_EBX: u32 = 0x6874_7541;

/// `base` (the hypervisor's supported CPUID) for the vCPU with `apic_id`.
pub fn vcpu_cpuid(base: &[CpuidEntry], layout: ApicIdLayout, apic_id: u32) -> Vec<CpuidEntry> {
    let per_package = 1u32 << layout.package_shift();
    let mut out: Vec<CpuidEntry> = base
        .iter()
        .filter(|e| !matches!(e.function, LEAF_TOPOLOGY | LEAF_TOPOLOGY_V2))
        .copied()
        .collect();
    let amd = out
        .iter()
        .any(|e| e.function == LEAF_VENDOR && e.ebx == AMD_EBX);
    if amd {
        offer_topoext(&mut out);
    }
    for e in &mut out {
        match e.function {
            // Leaf 0x1F exists now, whatever the host's highest basic leaf was.
            LEAF_VENDOR => e.eax = e.eax.max(LEAF_TOPOLOGY_V2),
            LEAF_FEATURES => {
                e.ebx =
                    (e.ebx & 0x0000_ffff) | (per_package.min(255) << 16) | ((apic_id & 0xff) << 24);
                if per_package > 1 {
                    e.edx |= EDX_HTT;
                }
                e.ecx |= ECX_HYPERVISOR;
            }
            LEAF_CACHES | LEAF_AMD_CACHES if e.eax & 0x1f != 0 => {
                let level = (e.eax >> 5) & 0x7;
                let sharing_bits = if level >= 3 {
                    layout.thread_bits + layout.core_bits
                } else {
                    layout.thread_bits
                };
                e.eax = (e.eax & 0x0000_3fff) | (((1 << sharing_bits) - 1) << 14);
                if e.function == LEAF_CACHES {
                    let cores = 1u32 << (layout.core_bits + layout.die_bits);
                    e.eax = (e.eax & 0x03ff_ffff) | ((cores - 1).min(63) << 26);
                }
            }
            LEAF_AMD_IDS => {
                let threads = 1u32 << layout.thread_bits;
                e.eax = apic_id;
                e.ebx = (e.ebx & !0xffff)
                    | ((threads - 1) << 8)
                    | (apic_id >> layout.thread_bits & 0xff);
                // The node ID is the LLC's: before family 17h Linux takes it as the LLC ID.
                // One node per package all the same: with more, those families number
                // cores per node, and sysfs core IDs repeat inside the package (scx_utils
                // then merges two LLCs' cores, and scx_layered refuses its proximity map).
                e.ecx =
                    (e.ecx & !0x7ff) | (apic_id >> (layout.thread_bits + layout.core_bits) & 0xff);
            }
            _ => {}
        }
    }
    let levels = [
        (LEVEL_SMT, layout.thread_bits),
        (LEVEL_CORE, layout.thread_bits + layout.core_bits),
        (LEVEL_DIE, layout.package_shift()),
    ];
    for function in [LEAF_TOPOLOGY, LEAF_TOPOLOGY_V2] {
        // 0xB knows no dies: its core level spans the whole package.
        let levels: Vec<(u32, u32)> = if function == LEAF_TOPOLOGY {
            vec![levels[0], (LEVEL_CORE, layout.package_shift())]
        } else {
            levels.to_vec()
        };
        for (index, &(kind, shift)) in levels.iter().enumerate() {
            out.push(CpuidEntry {
                function,
                index: index as u32,
                flags: SUBLEAF_FLAG,
                eax: shift,
                ebx: 1 << shift,
                ecx: (kind << 8) | index as u32,
                edx: apic_id,
            });
        }
        // The terminating invalid level still reports the x2APIC ID.
        out.push(CpuidEntry {
            function,
            index: levels.len() as u32,
            flags: SUBLEAF_FLAG,
            eax: 0,
            ebx: 0,
            ecx: levels.len() as u32,
            edx: apic_id,
        });
    }
    out
}

/// Makes the AMD topology leaves exist: the TOPOEXT bit, an extended range reaching
/// 0x8000_001E, cache descriptors in 0x8000_001D (their sharing is written per vCPU
/// afterwards), an L3 in 0x8000_0006 (Linux looks for LLCs only when one is there) and an
/// 0x8000_001E to fill in.
fn offer_topoext(out: &mut Vec<CpuidEntry>) {
    let entry = |function, index, flags, eax, ebx, ecx, edx| CpuidEntry {
        function,
        index,
        flags,
        eax,
        ebx,
        ecx,
        edx,
    };
    match out.iter_mut().find(|e| e.function == LEAF_EXT_MAX) {
        Some(max) => max.eax = max.eax.max(LEAF_AMD_IDS),
        None => out.push(entry(LEAF_EXT_MAX, 0, 0, LEAF_AMD_IDS, 0, 0, 0)),
    }
    match out.iter_mut().find(|e| e.function == LEAF_EXT_FEATURES) {
        Some(features) => features.ecx |= ECX_TOPOEXT,
        None => out.push(entry(LEAF_EXT_FEATURES, 0, 0, 0, 0, ECX_TOPOEXT, 0)),
    }
    // A 16 MiB, 16-way L3 of 64-byte lines, in 512 KiB units.
    let l3 = (32 << 18) | (0x8 << 12) | 64;
    match out.iter_mut().find(|e| e.function == LEAF_AMD_L2_L3) {
        Some(caches) if caches.edx == 0 => caches.edx = l3,
        Some(_) => {}
        None => out.push(entry(LEAF_AMD_L2_L3, 0, 0, 0, 0, 0, l3)),
    }
    if !out.iter().any(|e| e.function == LEAF_AMD_CACHES) {
        // (type, level, ways, sets) of 64-byte lines: L1d and L1i 32 KiB, L2 512 KiB,
        // L3 16 MiB; then the terminating null descriptor.
        let caches = [
            (1, 1, 8, 64),
            (2, 1, 8, 64),
            (3, 2, 8, 1024),
            (3, 3, 16, 16384),
        ];
        for (index, &(kind, level, ways, sets)) in caches.iter().enumerate() {
            let eax = kind | (level << 5) | (1 << 8);
            let ebx = 63 | ((ways - 1) << 22);
            out.push(entry(
                LEAF_AMD_CACHES,
                index as u32,
                SUBLEAF_FLAG,
                eax,
                ebx,
                sets - 1,
                0,
            ));
        }
        out.push(entry(
            LEAF_AMD_CACHES,
            caches.len() as u32,
            SUBLEAF_FLAG,
            0,
            0,
            0,
            0,
        ));
    }
    if !out.iter().any(|e| e.function == LEAF_AMD_IDS) {
        out.push(entry(LEAF_AMD_IDS, 0, 0, 0, 0, 0, 0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(entries: &[CpuidEntry], function: u32, index: u32) -> CpuidEntry {
        *entries
            .iter()
            .find(|e| e.function == function && e.index == index)
            .unwrap_or_else(|| panic!("no leaf {function:#x}.{index}"))
    }

    /// A host's leaves: vendor (max leaf 0xd), features, L1d and L3 caches, and a host
    /// 0xB that must be replaced.
    fn host() -> Vec<CpuidEntry> {
        let e = |function, index, eax, ebx, edx| CpuidEntry {
            function,
            index,
            flags: 0,
            eax,
            ebx,
            ecx: 0,
            edx,
        };
        vec![
            e(0, 0, 0xd, 0x756e_6547, 0),
            e(1, 0, 0x906ea, 0x0010_0800, 0),
            e(4, 0, (1 << 5) | 1, 0, 0),
            e(4, 1, (3 << 5) | 3, 0, 0),
            e(0xb, 0, 1, 2, 7),
        ]
    }

    #[test]
    fn an_smt_two_llc_vcpu_sees_its_place() {
        let layout = ApicIdLayout::new(&"1n2l2c2t".parse().unwrap());
        // vCPU 5: LLC 1, core 0, thread 1.
        let c = vcpu_cpuid(&host(), layout, 5);
        assert_eq!(leaf(&c, 0, 0).eax, 0x1f);
        let features = leaf(&c, 1, 0);
        assert_eq!(features.ebx >> 24, 5, "initial APIC ID");
        assert_eq!(
            (features.ebx >> 16) & 0xff,
            8,
            "logical processors per package"
        );
        assert_ne!(features.edx & EDX_HTT, 0);
        // L1 is shared by the two SMT siblings, L3 by the four CPUs of the LLC.
        assert_eq!((leaf(&c, 4, 0).eax >> 14) & 0xfff, 1);
        assert_eq!((leaf(&c, 4, 1).eax >> 14) & 0xfff, 3);
        assert_eq!(leaf(&c, 4, 1).eax >> 26, 3, "four core IDs in the package");
        // 0x1F: SMT shift 1, core shift 2, die shift 3; then the invalid level.
        let shifts: Vec<(u32, u32, u32)> = (0..4)
            .map(|i| {
                let l = leaf(&c, 0x1f, i);
                (l.eax, (l.ecx >> 8) & 0xff, l.edx)
            })
            .collect();
        assert_eq!(shifts, [(1, 1, 5), (2, 2, 5), (3, 5, 5), (0, 0, 5)]);
        // 0xB has no die level: its core level spans the package. The host's 0xB is gone.
        assert_eq!(leaf(&c, 0xb, 1).eax, 3);
        assert_eq!(c.iter().filter(|e| e.function == 0xb).count(), 3);
    }

    /// An AMD CPU without TOPOEXT (nested SVM under TCG): the leaves Linux needs to find
    /// LLCs are made up, and each vCPU's node ID is its LLC's.
    #[test]
    fn an_amd_cpu_without_topoext_gets_llcs_all_the_same() {
        let e = |function, eax, ebx, ecx, edx| CpuidEntry {
            function,
            index: 0,
            flags: 0,
            eax,
            ebx,
            ecx,
            edx,
        };
        let amd = vec![
            e(0, 0xd, AMD_EBX, 0x444d_4163, 0x6974_6e65),
            e(1, 0xf61, 0x0000_0800, 0, 0),
            e(LEAF_EXT_MAX, 0x8000_000a, 0, 0, 0),
            e(LEAF_EXT_FEATURES, 0, 0, 0x4, 0),
        ];
        let layout = ApicIdLayout::new(&"1n2l2c2t".parse().unwrap());
        let c = vcpu_cpuid(&amd, layout, 5);
        assert_ne!(leaf(&c, 1, 0).ecx & ECX_HYPERVISOR, 0);
        assert_eq!(leaf(&c, LEAF_EXT_MAX, 0).eax, LEAF_AMD_IDS);
        assert_eq!(leaf(&c, LEAF_EXT_FEATURES, 0).ecx, 0x4 | ECX_TOPOEXT);
        assert_ne!(leaf(&c, LEAF_AMD_L2_L3, 0).edx, 0);
        // The L3 descriptor is shared by the LLC's four CPUs, L1 by the two siblings.
        let l3 = leaf(&c, LEAF_AMD_CACHES, 3);
        assert_eq!((l3.eax >> 5) & 7, 3);
        assert_eq!((l3.eax >> 14) & 0xfff, 3);
        assert_eq!((leaf(&c, LEAF_AMD_CACHES, 0).eax >> 14) & 0xfff, 1);
        assert_eq!(
            leaf(&c, LEAF_AMD_CACHES, 4).eax,
            0,
            "the null descriptor ends them"
        );
        // APIC 5 is thread 1 of core 0 in LLC 1: node (LLC) 1.
        let ids = leaf(&c, LEAF_AMD_IDS, 0);
        assert_eq!(ids.eax, 5);
        assert_eq!(ids.ecx & 0xff, 1);
        assert_eq!(
            (ids.ecx >> 8) & 7,
            0,
            "one node per package: core IDs stay unique"
        );
        assert_eq!((ids.ebx >> 8) & 0xff, 1, "two threads per core");
        // An Intel CPU gets none of it, but the hypervisor bit.
        let intel = vcpu_cpuid(&host(), layout, 5);
        assert!(intel.iter().all(|e| e.function != LEAF_AMD_CACHES));
        assert_ne!(leaf(&intel, 1, 0).ecx & ECX_HYPERVISOR, 0);
    }
}
