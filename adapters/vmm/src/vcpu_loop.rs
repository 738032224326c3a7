//! One vCPU's run loop: hand each exit to the devices until the guest resets, the CPU
//! shuts down, the hypervisor gives up, or the VMM asks it to stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::accel::{Vcpu, VcpuExit};
use crate::devices::PortDevices;

/// Why a vCPU stopped for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VcpuStop {
    /// The guest asked for a CPU reset (i8042 or the FADT's reset register): its way of
    /// saying it is done.
    Reset,
    /// The guest powered off through ACPI (S5): done as well.
    PowerOff,
    /// The CPU shut down: a triple fault, with where it was when the hypervisor can say.
    TripleFault(Option<String>),
    /// `hlt` with nothing that could ever wake it (no interrupt controller).
    Halted,
    /// The VMM asked it to stop (the watchdog, teardown).
    Stopped,
    /// The hypervisor could not go on, in its words.
    Failed(String),
}

/// An error and its causes, so the OS's own words (the errno) reach the verdict.
pub fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Runs `vcpu` until it stops; `stop` is checked after every exit.
pub fn run_vcpu(vcpu: &mut dyn Vcpu, devices: &Mutex<PortDevices>, stop: &AtomicBool) -> VcpuStop {
    let lock = || devices.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if stop.load(Ordering::SeqCst) {
            return VcpuStop::Stopped;
        }
        match vcpu.run() {
            Ok(VcpuExit::IoOut { port, data }) => lock().write(port, data),
            Ok(VcpuExit::IoIn { port, data }) => lock().read(port, data),
            // No MMIO device yet: reads float, writes vanish.
            Ok(VcpuExit::MmioRead { data, .. }) => data.fill(0xff),
            Ok(VcpuExit::MmioWrite { .. }) | Ok(VcpuExit::Interrupted) => {}
            Ok(VcpuExit::Halt) => return VcpuStop::Halted,
            Ok(VcpuExit::TripleFault) => return VcpuStop::TripleFault(vcpu.registers()),
            Ok(VcpuExit::Failed(why)) => return VcpuStop::Failed(why),
            Err(e) => return VcpuStop::Failed(with_sources(&e)),
        }
        let devices = lock();
        if devices.reset_requested() {
            return VcpuStop::Reset;
        }
        if devices.power_off_requested() {
            return VcpuStop::PowerOff;
        }
    }
}
