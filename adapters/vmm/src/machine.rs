//! One cell's machine on our own VMM: guest RAM by the domain's `RamMap`, Linux loaded
//! directly, ACPI and per-vCPU CPUID from the preset, UARTs with interrupt lines, one thread
//! per vCPU. Dropping it stops and joins every vCPU before the VM and its RAM go.

use std::path::Path;
use std::sync::{Arc, Mutex};

use ktstr_domain::shape::apic::{ApicIdLayout, MAX_XAPIC_ID, apic_ids};
use ktstr_domain::shape::numa::NumaLayout;
use ktstr_domain::shape::ram_map::RamMap;
use ktstr_ports::{HypervisorError, VmSpec};
use vmm_sys_util::eventfd::EventFd;

use crate::accel::{Accelerator, HvError, Vm};
use crate::acpi::write_acpi_tables;
use crate::cpuid::vcpu_cpuid;
use crate::devices::{COM1_IRQ, COM2_IRQ, Captured, IrqLine, PortDevices};
use crate::linux_boot::{LinuxImages, load_linux};
use crate::process_ram::GuestRam;
use crate::vcpu_loop::VcpuStop;
use crate::vcpu_thread::VcpuThread;

/// One booted cell.
#[derive(Debug)]
pub struct Machine {
    // Field order is drop order: threads, then the VM, then the RAM they used.
    vcpus: Vec<VcpuThread>,
    _vm: Box<dyn Vm>,
    ram: GuestRam,
    console: Captured,
    frames: Captured,
}

/// The accelerator's error, kept as the typed source of the port's.
fn hv(what: &str) -> impl Fn(HvError) -> HypervisorError + '_ {
    move |e| HypervisorError::Backend {
        what: what.to_string(),
        source: Box::new(e),
    }
}

impl Machine {
    /// Builds the machine `spec` describes and starts its vCPUs.
    pub fn boot(hypervisor: &dyn Accelerator, spec: &VmSpec) -> Result<Self, HypervisorError> {
        let topology = spec.topology;
        let ram_map = RamMap::for_size(u64::from(spec.memory_mib) << 20);
        let vm = hypervisor.create_vm().map_err(hv("creating the VM"))?;
        let ram = GuestRam::new(ram_map.clone()).map_err(hv("allocating guest RAM"))?;
        ram.register(vm.as_ref())
            .map_err(hv("registering guest RAM"))?;
        vm.create_interrupt_controller()
            .map_err(hv("creating the interrupt controller"))?;
        let kernel: &Path = spec.vmlinux.as_deref().unwrap_or(&spec.kernel_image);
        let entry = load_linux(
            ram.mmap(),
            &ram_map,
            &LinuxImages {
                kernel,
                initramfs: Some(&spec.initramfs),
                cmdline: &spec.cmdline,
            },
        )
        .map_err(|e| HypervisorError::Refused(format!("loading {}: {e}", kernel.display())))?;
        let ids = apic_ids(&topology);
        let numa = NumaLayout::new(&topology, spec.memory_mib);
        write_acpi_tables(ram.mmap(), &ids, &numa, &ram_map)
            .map_err(|e| HypervisorError::Refused(format!("writing the ACPI tables: {e}")))?;
        let supported = hypervisor
            .supported_cpuid()
            .map_err(hv("reading the supported CPUID"))?;
        let layout = ApicIdLayout::new(&topology);
        let x2apic = ids.iter().any(|&id| id > MAX_XAPIC_ID);
        let console = Captured::default();
        let frames = Captured::default();
        // The UARTs interrupt like a PC's: COM1 on IRQ 4, COM2 on IRQ 3.
        let irq = |gsi: u32| -> Result<IrqLine, HypervisorError> {
            let event = EventFd::new(libc::EFD_NONBLOCK).map_err(|source| HypervisorError::Io {
                what: "creating a UART interrupt line".into(),
                source,
            })?;
            vm.register_irqfd(&event, gsi)
                .map_err(hv("wiring a UART interrupt"))?;
            Ok(IrqLine::Event(event))
        };
        let devices = Arc::new(Mutex::new(PortDevices::with_irqs(
            console.clone(),
            frames.clone(),
            irq(COM1_IRQ)?,
            irq(COM2_IRQ)?,
        )));
        let mut vcpus = Vec::with_capacity(ids.len());
        for (index, &apic_id) in ids.iter().enumerate() {
            let vcpu = vm
                .create_vcpu(index as u32, apic_id)
                .map_err(hv("creating a vCPU"))?;
            vcpu.set_cpuid(&vcpu_cpuid(&supported, layout, apic_id))
                .map_err(hv("setting CPUID"))?;
            vcpu.wire_legacy_interrupts()
                .map_err(hv("wiring the local APIC"))?;
            if x2apic {
                vcpu.enable_x2apic(index == 0)
                    .map_err(hv("enabling x2APIC"))?;
            }
            // The boot CPU starts in the kernel; the others wait for its INIT/SIPI.
            if index == 0 {
                vcpu.set_boot_state(&entry)
                    .map_err(hv("setting the boot CPU's entry state"))?;
            }
            let thread =
                VcpuThread::spawn(index as u32, vcpu, Arc::clone(&devices)).map_err(|source| {
                    HypervisorError::Spawn {
                        what: format!("vCPU thread {index}"),
                        source,
                    }
                })?;
            vcpus.push(thread);
        }
        Ok(Machine {
            vcpus,
            _vm: vm,
            ram,
            console,
            frames,
        })
    }

    /// Whether a vCPU stopped on its own (the guest reset, or something failed).
    pub fn stopped(&self) -> bool {
        self.vcpus.iter().any(VcpuThread::is_finished)
    }

    /// Bytes the guest has sent on its frame channel so far.
    pub fn frame_bytes_heard(&self) -> usize {
        self.frames.len()
    }

    pub fn console_bytes(&self) -> usize {
        self.console.len()
    }

    /// What the guest has printed on its console since the last call.
    pub fn take_console(&self) -> Vec<u8> {
        self.console.take()
    }

    /// Stops every vCPU and returns how the run ended (`Some` when it failed rather than
    /// reset), the guest's RAM, the console and the frame channel.
    pub fn shut_down(mut self) -> (Option<String>, GuestRam, Vec<u8>, Vec<u8>) {
        let stops: Vec<VcpuStop> = self.vcpus.drain(..).map(VcpuThread::stop).collect();
        let died = stops
            .iter()
            .enumerate()
            .find_map(|(index, stop)| match stop {
                VcpuStop::Reset | VcpuStop::PowerOff | VcpuStop::Stopped | VcpuStop::Halted => None,
                VcpuStop::TripleFault(None) => Some(format!("vCPU {index} triple-faulted")),
                // Guests boot with nokaslr: RIP is a vmlinux address (`nm vmlinux` names it).
                VcpuStop::TripleFault(Some(at)) => {
                    Some(format!("vCPU {index} triple-faulted at {at}"))
                }
                VcpuStop::Failed(why) => Some(format!("the hypervisor stopped the guest: {why}")),
            });
        let Machine {
            ram,
            console,
            frames,
            ..
        } = self;
        (died, ram, console.take(), frames.take())
    }
}
