//! The real kernel's early boot on our own VMM, through the machine the backend builds
//! for each cell. On hosts without hardware KVM (PVM here) an instruction emulator runs it
//! until it meets an instruction it cannot emulate, which is far enough to check, from the
//! kernel's own log, that it accepted our boot protocol, e820 map, command line, ACPI
//! tables and CPUID.

mod common;

use std::time::{Duration, Instant};

use common::{default_kernel_dir, tempfile_dir};
use ktstr_ports::VmSpec;
use ktstr_vmm::accel::kvm::KvmAccel;
use ktstr_vmm::machine::Machine;

/// The most the early boot may take under PVM's emulator (measured: 4 to 8 s to the
/// CPU count with 128 MiB).
const EARLY_BOOT_LIMIT: Duration = Duration::from_secs(90);

/// Which of the cached kernel's images the VMM boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Image {
    /// The ELF `vmlinux`, entered through its PVH note (what cells boot).
    Vmlinux,
    /// The bzImage, through the 64-bit boot protocol and a zero page.
    BzImage,
}

/// The console of an early boot of the cached kernel with `cmdline`, 128 MiB and the
/// machine the own VMM builds for `topology` (its ACPI tables, CPUID and vCPUs); `None`
/// without `/dev/kvm`.
fn early_boot(cmdline: &str, topology: &str) -> Option<String> {
    early_boot_of(Image::Vmlinux, cmdline, topology)
}

fn early_boot_of(image: Image, cmdline: &str, topology: &str) -> Option<String> {
    let hypervisor = match KvmAccel::open() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("skipped: {e} (the early-boot test needs /dev/kvm)");
            return None;
        }
    };
    let kernel_dir = default_kernel_dir();
    let dir = tempfile_dir(&format!("early-boot-{topology}"));
    // Never unpacked this early; the kernel only reserves it.
    let initramfs = dir.join("initrd");
    std::fs::write(&initramfs, [0u8; 4096]).unwrap();
    let spec = VmSpec {
        kernel_image: kernel_dir.join("bzImage"),
        vmlinux: (image == Image::Vmlinux).then(|| kernel_dir.join("vmlinux")),
        initramfs,
        cmdline: cmdline.to_string(),
        topology: topology.parse().unwrap(),
        memory_mib: 128,
        timeout: EARLY_BOOT_LIMIT,
    };
    let started = Instant::now();
    let machine = Machine::boot(&hypervisor, &spec).unwrap();
    // `Allowing N present CPUs plus M hotplug CPUs` (in setup_arch) comes after
    // everything checked; the boot is not worth emulating further.
    let mut log = String::new();
    while !machine.stopped() && started.elapsed() < EARLY_BOOT_LIMIT {
        std::thread::sleep(Duration::from_millis(100));
        log.push_str(&String::from_utf8_lossy(&machine.take_console()));
        if log
            .find("hotplug CPUs")
            .is_some_and(|at| log[at..].contains('\n'))
        {
            break;
        }
    }
    let (failed, _ram, console, _frames) = machine.shut_down();
    log.push_str(&String::from_utf8_lossy(&console));
    eprintln!(
        "{topology}: early boot ran {:?} and ended {failed:?}; its log:\n{log}",
        started.elapsed()
    );
    Some(log)
}

/// The number after `CPU topo: <key>` in the kernel's log.
fn topo_value(log: &str, key: &str) -> Option<u32> {
    log.lines()
        .find_map(|l| l.split_once(&format!("CPU topo: {key}")))
        .and_then(|(_, rest)| rest.trim().parse().ok())
}

const EARLY_CMDLINE: &str = "earlyprintk=serial,ttyS0,115200 console=ttyS0 noxsave nokaslr";

/// The kernel converts a PVH start info's memory map to e820 and adds the legacy ISA hole
/// as reserved itself; a zero page's map goes in as we wrote it. This line tells the two
/// ways in apart in the kernel's own log.
const PVH_ISA_HOLE: &str = "BIOS-e820: [mem 0x00000000000a0000-0x00000000000fffff] reserved";

/// The ELF `vmlinux` is entered through PVH: the kernel took our command line, memory map
/// and RSDP from the start info.
#[test]
fn the_kernel_enters_through_pvh_and_reads_our_start_info() {
    let cmdline = format!("{EARLY_CMDLINE} ktstr.marker=pvh-5c1d");
    let Some(log) = early_boot_of(Image::Vmlinux, &cmdline, "1n1l4c1t") else {
        return;
    };
    assert!(
        log.contains(PVH_ISA_HOLE),
        "not entered through PVH:\n{log}"
    );
    assert_accepted(&log, &cmdline);
}

/// A bzImage goes through the 64-bit boot protocol: the kernel took our zero page.
#[test]
fn a_bzimage_enters_through_the_64_bit_boot_protocol() {
    let cmdline = format!("{EARLY_CMDLINE} ktstr.marker=early-boot-7f3a");
    let Some(log) = early_boot_of(Image::BzImage, &cmdline, "1n1l4c1t") else {
        return;
    };
    assert!(!log.contains(PVH_ISA_HOLE), "entered through PVH:\n{log}");
    assert_accepted(&log, &cmdline);
}

/// What both ways in must leave the kernel with: our command line, e820 map, ACPI tables
/// and tiny-1llc's four CPUs.
fn assert_accepted(log: &str, cmdline: &str) {
    assert!(log.contains("Linux version 6.12"), "no banner:\n{log}");
    // Our command line, byte for byte, as the kernel read it from the start info or zero
    // page.
    assert!(
        log.contains(&format!("Command line: {cmdline}")),
        "command line not accepted:\n{log}"
    );
    // Our e820 map: RAM below the BIOS area, then from 1 MiB to 128 MiB.
    for range in [
        "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable",
        "BIOS-e820: [mem 0x0000000000100000-0x0000000007ffffff] usable",
    ] {
        assert!(log.contains(range), "no `{range}`:\n{log}");
    }
    // Our ACPI tables, where the start info points or Linux scans, and the MADT's CPUs.
    for table in [
        "ACPI: RSDP 0x00000000000E0000",
        "ACPI: XSDT 0x00000000000E0100",
        "ACPI: FACP 0x00000000000E0",
        "ACPI: DSDT 0x00000000000E0200",
        "ACPI: APIC 0x00000000000E0",
    ] {
        assert!(log.contains(table), "no `{table}`:\n{log}");
    }
    assert!(
        log.contains("Allowing 4 present CPUs plus 0 hotplug CPUs"),
        "{log}"
    );
}

/// The kernel allows exactly the preset's CPUs, from the MADT (xAPIC entries for small
/// shapes, x2APIC entries once IDs pass 254: max-cpu's reach 433), and reads the preset's
/// threads per core and dies (LLCs) per package from our CPUID leaves.
#[test]
fn the_kernel_allows_exactly_each_presets_cpus() {
    for (preset, shape, cpus, threads, dies) in [
        ("smt-2llc", "1n2l2c2t", 8, 2, 2),
        ("odd-3llc", "1n3l3c1t", 9, 1, 3),
        ("max-cpu", "1n14l9c2t", 252, 2, 14),
    ] {
        let Some(log) = early_boot(EARLY_CMDLINE, shape) else {
            return;
        };
        let allowing = format!("Allowing {cpus} present CPUs plus 0 hotplug CPUs");
        assert!(log.contains(&allowing), "{preset}: no `{allowing}`:\n{log}");
        for (key, want) in [
            ("Max. threads per core:", threads),
            ("Max. logical dies:", dies),
            ("Num. threads per package:", cpus),
        ] {
            assert_eq!(topo_value(&log, key), Some(want), "{preset}: {key}\n{log}");
        }
        if cpus > 200 {
            assert!(log.contains("x2apic: enabled by BIOS"), "{preset}:\n{log}");
        }
    }
}

/// A NUMA preset: the kernel takes its nodes, their RAM and their CPUs from our SRAT.
#[test]
fn the_kernel_finds_each_numa_node_in_the_srat() {
    let Some(log) = early_boot(EARLY_CMDLINE, "2n4l4c1t") else {
        return;
    };
    for line in [
        "ACPI: SRAT: Node 0 PXM 0 [mem 0x00000000-0x03ffffff]",
        "ACPI: SRAT: Node 1 PXM 1 [mem 0x04000000-0x07ffffff]",
        "Initmem setup node 1 [mem 0x0000000004000000-0x0000000007ffffff]",
        "Allowing 16 present CPUs plus 0 hotplug CPUs",
    ] {
        assert!(log.contains(line), "no `{line}`:\n{log}");
    }
    // A node is a package: its APIC ID field and CPUID's die level say so.
    assert_eq!(topo_value(&log, "Max. logical packages:"), Some(2), "{log}");
}
