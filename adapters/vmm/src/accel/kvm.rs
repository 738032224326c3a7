//! The trait family on KVM (`/dev/kvm` through `kvm-ioctls`).

use kvm_bindings::{
    CpuId, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY, Msrs, kvm_cpuid_entry2, kvm_msr_entry,
    kvm_pit_config, kvm_regs, kvm_segment, kvm_userspace_memory_region,
};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use vmm_sys_util::eventfd::EventFd;

use super::{Accelerator, CpuidEntry, HvError, Vcpu, VcpuExit, Vm};
use crate::x86::{
    BootEntry, MSR_IA32_APICBASE, boot_regs, set_boot_sregs, wire_legacy_lints, x2apic_base,
};

/// Where KVM keeps the three pages of its real-mode TSS on Intel: just below the
/// BIOS area, out of every guest's RAM.
const TSS_ADDR: usize = 0xfffb_d000;
/// `EINTR`: a signal took the vCPU out of `KVM_RUN`.
const EINTR: i32 = 4;
/// `EAGAIN`: an application processor waiting for INIT/SIPI was woken (by them, or by
/// anything else); `KVM_RUN` must simply be called again.
const EAGAIN: i32 = 11;

#[derive(Debug)]
pub struct KvmAccel {
    kvm: Kvm,
}

impl KvmAccel {
    /// Opens `/dev/kvm`.
    pub fn open() -> Result<Self, HvError> {
        let kvm = Kvm::new().map_err(|e| HvError::os("opening /dev/kvm", e))?;
        Ok(KvmAccel { kvm })
    }
}

impl Accelerator for KvmAccel {
    fn name(&self) -> &'static str {
        "kvm"
    }

    fn create_vm(&self) -> Result<Box<dyn Vm>, HvError> {
        let fd = self
            .kvm
            .create_vm()
            .map_err(|e| HvError::os("creating a KVM VM", e))?;
        Ok(Box::new(KvmVm { fd }))
    }

    fn supported_cpuid(&self) -> Result<Vec<CpuidEntry>, HvError> {
        let cpuid = self
            .kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| HvError::os("reading KVM's supported CPUID", e))?;
        Ok(cpuid
            .as_slice()
            .iter()
            .map(|e| CpuidEntry {
                function: e.function,
                index: e.index,
                flags: e.flags,
                eax: e.eax,
                ebx: e.ebx,
                ecx: e.ecx,
                edx: e.edx,
            })
            .collect())
    }
}

#[derive(Debug)]
struct KvmVm {
    fd: VmFd,
}

impl Vm for KvmVm {
    #[allow(unsafe_code)]
    unsafe fn map_ram(&self, slot: u32, gpa: u64, len: u64, host_addr: u64) -> Result<(), HvError> {
        let region = kvm_userspace_memory_region {
            slot,
            guest_phys_addr: gpa,
            memory_size: len,
            userspace_addr: host_addr,
            flags: 0,
        };
        // SAFETY: the caller keeps the host range mapped for the VM's lifetime.
        unsafe { self.fd.set_user_memory_region(region) }
            .map_err(|e| HvError::os(format!("mapping guest RAM at {gpa:#x}"), e))
    }

    fn create_interrupt_controller(&self) -> Result<(), HvError> {
        self.fd
            .set_tss_address(TSS_ADDR)
            .map_err(|e| HvError::os("placing KVM's TSS", e))?;
        self.fd
            .create_irq_chip()
            .map_err(|e| HvError::os("creating the in-kernel interrupt controller", e))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        self.fd
            .create_pit2(pit)
            .map_err(|e| HvError::os("creating the in-kernel PIT", e))
    }

    fn register_irqfd(&self, event: &EventFd, gsi: u32) -> Result<(), HvError> {
        self.fd
            .register_irqfd(event, gsi)
            .map_err(|e| HvError::os(format!("wiring interrupt {gsi}"), e))
    }

    /// KVM's vCPU ID is the local APIC's ID.
    fn create_vcpu(&self, index: u32, apic_id: u32) -> Result<Box<dyn Vcpu>, HvError> {
        let fd = self
            .fd
            .create_vcpu(u64::from(apic_id))
            .map_err(|e| HvError::os(format!("creating vCPU {index} (APIC ID {apic_id})"), e))?;
        Ok(Box::new(KvmVcpu { fd }))
    }
}

#[derive(Debug)]
struct KvmVcpu {
    fd: VcpuFd,
}

impl Vcpu for KvmVcpu {
    fn set_cpuid(&self, entries: &[CpuidEntry]) -> Result<(), HvError> {
        let entries: Vec<kvm_cpuid_entry2> = entries
            .iter()
            .map(|e| kvm_cpuid_entry2 {
                function: e.function,
                index: e.index,
                flags: e.flags,
                eax: e.eax,
                ebx: e.ebx,
                ecx: e.ecx,
                edx: e.edx,
                ..Default::default()
            })
            .collect();
        let cpuid = CpuId::from_entries(&entries)
            .map_err(|e| HvError::Unsupported(format!("{} CPUID entries: {e:?}", entries.len())))?;
        self.fd
            .set_cpuid2(&cpuid)
            .map_err(|e| HvError::os("setting CPUID", e))
    }

    fn enable_x2apic(&self, bsp: bool) -> Result<(), HvError> {
        let msrs = Msrs::from_entries(&[kvm_msr_entry {
            index: MSR_IA32_APICBASE,
            data: x2apic_base(bsp),
            ..Default::default()
        }])
        .map_err(|e| HvError::Unsupported(format!("building the MSR list: {e:?}")))?;
        match self.fd.set_msrs(&msrs) {
            Ok(1) => Ok(()),
            Ok(_) => Err(HvError::Unsupported(
                "KVM refused x2APIC mode (IA32_APIC_BASE)".into(),
            )),
            Err(e) => Err(HvError::os("setting IA32_APIC_BASE", e)),
        }
    }

    fn wire_legacy_interrupts(&self) -> Result<(), HvError> {
        let mut lapic = self
            .fd
            .get_lapic()
            .map_err(|e| HvError::os("reading the local APIC", e))?;
        wire_legacy_lints(&mut lapic.regs);
        self.fd
            .set_lapic(&lapic)
            .map_err(|e| HvError::os("setting the local APIC", e))
    }

    fn set_boot_state(&self, entry: &BootEntry) -> Result<(), HvError> {
        let boot = entry.registers();
        let mut sregs = self
            .fd
            .get_sregs()
            .map_err(|e| HvError::os("reading special registers", e))?;
        set_boot_sregs!(sregs, boot, kvm_segment);
        let regs = boot_regs!(kvm_regs, boot);
        self.fd
            .set_sregs(&sregs)
            .map_err(|e| HvError::os("setting special registers", e))?;
        self.fd
            .set_regs(&regs)
            .map_err(|e| HvError::os("setting registers", e))
    }

    fn registers(&self) -> Option<String> {
        let regs = self.fd.get_regs().ok()?;
        let sregs = self.fd.get_sregs().ok()?;
        // On AMD, KVM resets a vCPU on its shutdown intercept: the state is the reset
        // vector's, not the fault's, and would only mislead.
        if is_reset_state(regs.rip, sregs.cr0) {
            return None;
        }
        Some(format!(
            "RIP {:#x} RSP {:#x} CR0 {:#x} CR2 {:#x} CR3 {:#x} CR4 {:#x} EFER {:#x}",
            regs.rip, regs.rsp, sregs.cr0, sregs.cr2, sregs.cr3, sregs.cr4, sregs.efer
        ))
    }

    fn run(&mut self) -> Result<VcpuExit<'_>, HvError> {
        match self.fd.run() {
            Ok(exit) => Ok(core_exit(exit)),
            Err(e) if e.errno() == EINTR || e.errno() == EAGAIN => Ok(VcpuExit::Interrupted),
            Err(e) => Err(HvError::os("running a vCPU", e)),
        }
    }
}

/// A vCPU just out of reset: RIP at the reset vector's offset, only CR0.ET set.
fn is_reset_state(rip: u64, cr0: u64) -> bool {
    rip == 0xfff0 && cr0 == 0x10
}

/// What one of KVM's exits means to the core.
pub fn core_exit(exit: kvm_ioctls::VcpuExit<'_>) -> VcpuExit<'_> {
    use kvm_ioctls::VcpuExit as K;
    match exit {
        K::IoOut(port, data) => VcpuExit::IoOut { port, data },
        K::IoIn(port, data) => VcpuExit::IoIn { port, data },
        K::MmioWrite(addr, data) => VcpuExit::MmioWrite { addr, data },
        K::MmioRead(addr, data) => VcpuExit::MmioRead { addr, data },
        K::Hlt => VcpuExit::Halt,
        K::Shutdown => VcpuExit::TripleFault,
        K::Intr => VcpuExit::Interrupted,
        K::FailEntry(reason, cpu) => VcpuExit::Failed(format!(
            "KVM could not enter vCPU {cpu} (reason {reason:#x})"
        )),
        K::InternalError => VcpuExit::Failed(
            "KVM internal error (on PVM hosts: an instruction the emulator cannot run)".to_string(),
        ),
        other => VcpuExit::Failed(format!("unexpected KVM exit {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::is_reset_state;

    #[test]
    fn only_the_reset_vector_state_reads_as_reset() {
        assert!(is_reset_state(0xfff0, 0x10));
        // A long-mode kernel that faulted keeps its own RIP and CR0 (PG, PE, ...).
        assert!(!is_reset_state(0xffff_ffff_8100_53e5, 0x8005_0033));
        assert!(!is_reset_state(0xfff0, 0x8005_0033));
    }
}
