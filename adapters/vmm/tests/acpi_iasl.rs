//! Every ACPI table the VMM writes, disassembled by ACPICA's `iasl -d` (from
//! `acpica-tools`, which `scripts/test.sh` installs): the reference parser must read each
//! one without an error, for small, SMT, NUMA and x2APIC-sized shapes.

use std::process::Command;

use ktstr_domain::shape::apic::apic_ids;
use ktstr_domain::shape::numa::NumaLayout;
use ktstr_domain::shape::ram_map::RamMap;
use ktstr_vmm::acpi::{dsdt, fadt, madt, slit, srat};

fn disassemble(name: &str, table: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{name}.dat"));
    std::fs::write(&file, table).unwrap();
    let out = Command::new("iasl")
        .arg("-d")
        .arg(&file)
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("iasl: {e}; install acpica-tools (scripts/test.sh does)"));
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name}: iasl failed:\n{log}");
    assert!(!log.contains("Error"), "{name}:\n{log}");
    std::fs::read_to_string(dir.path().join(format!("{name}.dsl"))).unwrap()
}

#[test]
fn iasl_reads_every_table_without_errors() {
    for shape in ["1n1l4c1t", "1n2l2c2t", "2n4l4c1t", "4n8l4c1t", "1n14l9c2t"] {
        let topology = shape.parse().unwrap();
        let ids = apic_ids(&topology);
        let madt = disassemble("apic", &madt(&ids));
        assert!(madt.contains("Signature : \"APIC\""), "{madt}");
        let local = madt.matches("[Processor Local APIC]").count()
            + madt.matches("[Processor Local x2APIC]").count();
        assert_eq!(local, topology.cpus() as usize, "{shape}:\n{madt}");

        let numa = NumaLayout::new(&topology, 4096);
        let srat = disassemble("srat", &srat(&ids, &numa, &RamMap::for_size(4096 << 20)));
        assert!(srat.contains("Signature : \"SRAT\""), "{srat}");
        disassemble("slit", &slit(topology.numa_nodes));
    }
    let fadt = disassemble("facp", &fadt(0xe_0200));
    assert!(fadt.contains("Hardware Reduced (V5) : 1"), "{fadt}");
    for needle in [
        "Reset Register Supported (V2) : 1",
        "Address : 0000000000000064",
        "Value to cause reset : FE",
        "Address : 0000000000000600",
        "Address : 0000000000000601",
    ] {
        assert!(fadt.contains(needle), "no {needle}:\n{fadt}");
    }
    let dsdt = disassemble("dsdt", &dsdt());
    for needle in ["PNP0501", "0x03F8", "0x02F8", "_S5"] {
        assert!(dsdt.contains(needle), "no {needle}:\n{dsdt}");
    }
}
