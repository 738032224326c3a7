//! The `Hypervisor` port on our own VMM: one cell's machine (RAM by the domain's `RamMap`,
//! Linux loaded directly, ACPI and CPUID from the preset, one thread per vCPU) watched
//! until the guest resets, a vCPU fails, or the guest goes silent past the watchdog.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ktstr_domain::judging::evidence::VmFacts;
use ktstr_domain::plan::waits::CpuMode;
use ktstr_domain::plan::watchdog::FrameWatchdog;
use ktstr_domain::protocol::guest_output::{CONSOLE_LIMIT, FRAME_CHANNEL_LIMIT, flood};
use ktstr_domain::protocol::init_plan::GuestChannels;
use ktstr_ports::{GuestMemory, Hypervisor, HypervisorError, VmRun, VmSpec};

use crate::accel::Accelerator;
use crate::machine::Machine;

/// How often the watchdog looks at the guest; also the resolution of the VM-start-to-init
/// time, which on hardware KVM is a figure of about 100 ms.
const POLL: Duration = Duration::from_millis(5);

/// Our VMM behind the hypervisor port, on any implementation of the trait family.
#[derive(Debug)]
pub struct VmmBackend {
    accel: Arc<dyn Accelerator>,
    cpu_mode: CpuMode,
}

impl VmmBackend {
    /// `cpu_mode`: hardware on a VMX/SVM host; emulated where the hypervisor emulates
    /// (PVM), which only tiny guests survive.
    pub fn new(accel: Arc<dyn Accelerator>, cpu_mode: CpuMode) -> Self {
        VmmBackend { accel, cpu_mode }
    }
}

#[async_trait]
impl Hypervisor for VmmBackend {
    fn name(&self) -> String {
        format!("{} (own VMM)", self.accel.name())
    }

    fn cpu_mode(&self) -> CpuMode {
        self.cpu_mode
    }

    fn guest_channels(&self) -> GuestChannels {
        GuestChannels::CONSOLE_FIRST
    }

    async fn run(&self, spec: VmSpec) -> Result<VmRun, HypervisorError> {
        // Dropping this future drops the machine, which stops and joins every vCPU.
        let started = tokio::time::Instant::now();
        let machine = Machine::boot(self.accel.as_ref(), &spec)?;
        let mut watchdog = FrameWatchdog::new(spec.timeout);
        let mut flooded = None;
        let timed_out = loop {
            if machine.stopped() {
                break false;
            }
            let heard = machine.frame_bytes_heard() as u64;
            flooded = flood(machine.console_bytes() as u64, heard);
            if flooded.is_some() {
                break false;
            }
            if watchdog.expired(heard, started.elapsed()) {
                break true;
            }
            tokio::time::sleep(POLL).await;
        };
        let (vm_died, ram, mut console, mut frame_bytes) = machine.shut_down();
        // What the guest wrote before the poll saw it pass a limit is not kept either.
        frame_bytes.truncate(FRAME_CHANNEL_LIMIT as usize);
        let keep_from = console.len().saturating_sub(CONSOLE_LIMIT as usize);
        console.drain(..keep_from);
        let peak_rss_kib = Some(ram.resident_kib());
        let memory: Box<dyn GuestMemory> = Box::new(ram);
        Ok(VmRun {
            facts: VmFacts {
                backend: self.name(),
                timed_out,
                vm_died: if timed_out || flooded.is_some() {
                    None
                } else {
                    vm_died
                },
                flooded,
                peak_rss_kib,
                init_after_ms: watchdog.first_word_ms(),
            },
            console: String::from_utf8_lossy(&console).into_owned(),
            frame_bytes,
            memory: Some(memory),
        })
    }
}
