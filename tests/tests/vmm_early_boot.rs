//! The real kernel's early boot on our own VMM. On hosts without hardware KVM (PVM here)
//! an instruction emulator runs it until it meets an instruction it cannot emulate, which
//! is far enough to check, from the kernel's own log, that it accepted our boot protocol,
//! e820 map and command line.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::default_kernel_dir;
use ktstr_domain::ram_map::RamMap;
use ktstr_vmm::devices::{Captured, PortDevices};
use ktstr_vmm::guest_ram::GuestRam;
use ktstr_vmm::hypervisor::Hypervisor;
use ktstr_vmm::hypervisor::kvm::KvmHypervisor;
use ktstr_vmm::linux_boot::{LinuxImages, load_linux};
use ktstr_vmm::vcpu_thread::VcpuThread;

/// The most the early boot may take under PVM's emulator (measured: about 12 s to the
/// command line with 128 MiB).
const EARLY_BOOT_LIMIT: Duration = Duration::from_secs(90);

#[test]
fn the_kernel_accepts_our_boot_protocol_e820_map_and_command_line() {
    let hypervisor = match KvmHypervisor::open() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("skipped: {e} (the early-boot test needs /dev/kvm)");
            return;
        }
    };
    let vmlinux = default_kernel_dir().join("vmlinux");
    let cmdline = "earlyprintk=serial,ttyS0,115200 console=ttyS0 noxsave nokaslr \
                   ktstr.marker=early-boot-7f3a";
    let ram_map = RamMap::for_size(128 << 20);
    let vm = hypervisor.create_vm().unwrap();
    let ram = GuestRam::new(ram_map.clone()).unwrap();
    ram.register(vm.as_ref()).unwrap();
    vm.create_interrupt_controller().unwrap();
    let entry = load_linux(
        ram.mmap(),
        &ram_map,
        &LinuxImages {
            kernel: &vmlinux,
            initramfs: None,
            cmdline,
        },
    )
    .unwrap();
    let vcpu = vm.create_vcpu(0).unwrap();
    vcpu.set_cpuid(&hypervisor.supported_cpuid().unwrap())
        .unwrap();
    vcpu.enter_long_mode(&entry).unwrap();

    let console = Captured::default();
    let devices = Arc::new(Mutex::new(PortDevices::new(
        console.clone(),
        Captured::default(),
    )));
    let started = Instant::now();
    let thread = VcpuThread::spawn(0, vcpu, devices).unwrap();
    // `Kernel command line:` comes after everything checked below; the boot is not
    // worth emulating further.
    let mut log = String::new();
    while !thread.is_finished() && started.elapsed() < EARLY_BOOT_LIMIT {
        std::thread::sleep(Duration::from_millis(100));
        log.push_str(&String::from_utf8_lossy(&console.take()));
        if log.contains("Kernel command line:") {
            break;
        }
    }
    let stop = thread.stop();
    log.push_str(&String::from_utf8_lossy(&console.take()));
    eprintln!(
        "early boot ran {:?} and stopped as {stop:?}; its log:\n{log}",
        started.elapsed()
    );

    assert!(log.contains("Linux version 6.12"), "no banner:\n{log}");
    // Our command line, byte for byte, as the kernel read it from the zero page.
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
    // One vCPU and no ACPI tables yet: the kernel allows exactly one CPU.
    assert!(
        log.contains("Allowing 1 present CPUs plus 0 hotplug CPUs"),
        "{log}"
    );
}
