//! The hypervisor → VM → vCPU trait family the VMM core is written against, once. KVM
//! (`kvm`) and the Microsoft Hypervisor (`mshv`) implement it; neither adds to the core.
//! Exits are coarse: port and MMIO accesses, halt, the machine stopping, and failures.

pub mod kvm;
pub mod mshv;

use thiserror::Error;
use vmm_sys_util::eventfd::EventFd;

use crate::x86::BootEntry;

/// One hypervisor on this host (an open `/dev/kvm` or `/dev/mshv`).
pub trait Accelerator: Send + Sync + std::fmt::Debug {
    /// `kvm`, `mshv`.
    fn name(&self) -> &'static str;
    fn create_vm(&self) -> Result<Box<dyn Vm>, HvError>;
    /// The CPUID leaves this hypervisor can give a guest.
    fn supported_cpuid(&self) -> Result<Vec<CpuidEntry>, HvError>;
}

/// One CPUID leaf (and subleaf) as a vCPU will report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuidEntry {
    pub function: u32,
    pub index: u32,
    /// Whether `index` selects a subleaf (the hypervisor's own flag bits).
    pub flags: u32,
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// One guest: its memory slots, its vCPUs, its in-kernel interrupt controller and timer.
pub trait Vm: Send + Sync + std::fmt::Debug {
    /// Maps `len` bytes of host memory at `host_addr` as guest RAM at `gpa` in `slot`.
    ///
    /// # Safety
    /// The host range must stay mapped, and must not be unmapped or reused, for as long as
    /// the VM exists: the guest reads and writes it behind Rust's back.
    #[allow(unsafe_code)]
    unsafe fn map_ram(&self, slot: u32, gpa: u64, len: u64, host_addr: u64) -> Result<(), HvError>;
    /// The in-kernel local APICs, I/O APIC and PIC, and the PIT.
    fn create_interrupt_controller(&self) -> Result<(), HvError>;
    /// vCPU number `index` (0 is the boot CPU), whose local APIC has `apic_id`: the ID the
    /// MADT and CPUID give it, which may leave gaps between vCPUs.
    fn create_vcpu(&self, index: u32, apic_id: u32) -> Result<Box<dyn Vcpu>, HvError>;
    /// Raises interrupt `gsi` whenever `event` is written (needs the interrupt controller).
    fn register_irqfd(&self, event: &EventFd, gsi: u32) -> Result<(), HvError>;
}

/// One virtual CPU, run by one thread.
pub trait Vcpu: Send + std::fmt::Debug {
    /// What CPUID reports to the guest on this vCPU.
    fn set_cpuid(&self, entries: &[CpuidEntry]) -> Result<(), HvError>;
    /// Turns the local APIC on in x2APIC mode, as firmware does when some APIC ID needs
    /// more than eight bits; the guest kernel then takes the MADT's x2APIC entries.
    fn enable_x2apic(&self, bsp: bool) -> Result<(), HvError>;
    /// Wires the local APIC's legacy inputs as a PC's firmware leaves them: LINT0 takes the
    /// PIC's interrupts (ExtINT), LINT1 is the NMI line.
    fn wire_legacy_interrupts(&self) -> Result<(), HvError>;
    /// Puts the vCPU in the state `entry` describes (64-bit mode, or PVH's 32-bit one).
    fn set_boot_state(&self, entry: &BootEntry) -> Result<(), HvError>;
    /// Runs until the guest needs the VMM.
    fn run(&mut self) -> Result<VcpuExit<'_>, HvError>;
    /// Where the vCPU was, in words (RIP, RSP, control registers), for the report of a
    /// guest that died silently; `None` where the hypervisor cannot say.
    fn registers(&self) -> Option<String> {
        None
    }
}

/// Why a vCPU stopped running guest code.
#[derive(Debug)]
pub enum VcpuExit<'a> {
    IoOut {
        port: u16,
        data: &'a [u8],
    },
    /// Fill `data` before the next `run`.
    IoIn {
        port: u16,
        data: &'a mut [u8],
    },
    MmioWrite {
        addr: u64,
        data: &'a [u8],
    },
    /// Fill `data` before the next `run`.
    MmioRead {
        addr: u64,
        data: &'a mut [u8],
    },
    /// `hlt` with interrupts the VMM must deliver (no in-kernel controller).
    Halt,
    /// The CPU shut down: on x86 a triple fault.
    TripleFault,
    /// The run was interrupted from outside (a signal or an immediate-exit request).
    Interrupted,
    /// The hypervisor could not go on with this guest, in its words.
    Failed(String),
}

#[derive(Debug, Error)]
pub enum HvError {
    #[error("{what}")]
    Os {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
    /// Guest RAM could not be mapped or located, with `vm-memory`'s own error.
    #[error("{what}")]
    GuestRam {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl HvError {
    pub(crate) fn os(what: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        HvError::Os {
            what: what.into(),
            source: source.into(),
        }
    }
}
