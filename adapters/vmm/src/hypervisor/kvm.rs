//! The trait family on KVM (`/dev/kvm` through `kvm-ioctls`).

use kvm_bindings::{
    CpuId, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY, Msrs, kvm_cpuid_entry2, kvm_msr_entry,
    kvm_pit_config, kvm_regs, kvm_segment, kvm_sregs, kvm_userspace_memory_region,
};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use vmm_sys_util::eventfd::EventFd;

use super::{CpuidEntry, HvError, Hypervisor, Vcpu, VcpuExit, Vm};
use crate::x86::{BootEntry, LongModeEntry, PvhEntry, TSS_LIMIT};

/// Where KVM keeps the three pages of its real-mode TSS on Intel: just below the
/// BIOS area, out of every guest's RAM.
const TSS_ADDR: usize = 0xfffb_d000;
/// `EINTR`: a signal took the vCPU out of `KVM_RUN`.
const EINTR: i32 = 4;

/// `IA32_APIC_BASE` and its bits: bootstrap processor, x2APIC mode, APIC enabled.
const MSR_IA32_APICBASE: u32 = 0x1b;
const APICBASE_BSP: u64 = 1 << 8;
const APICBASE_EXTD: u64 = 1 << 10;
const APICBASE_ENABLE: u64 = 1 << 11;
const APIC_DEFAULT_BASE: u64 = 0xfee0_0000;

/// Local APIC registers: the LINT0 and LINT1 local vector table entries, and their
/// delivery-mode field (bits 8-10) with its ExtINT and NMI values.
const APIC_LVT_LINT0: usize = 0x350;
const APIC_LVT_LINT1: usize = 0x360;
const APIC_DELIVERY_MASK: u32 = 0x700;
const APIC_MODE_EXTINT: u32 = 0x700;
const APIC_MODE_NMI: u32 = 0x400;

const CR0_PE: u64 = 1;
const CR0_PG: u64 = 1 << 31;
/// Extension type: always set on anything past a 386.
const CR0_ET: u64 = 1 << 4;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

#[derive(Debug)]
pub struct KvmHypervisor {
    kvm: Kvm,
}

impl KvmHypervisor {
    /// Opens `/dev/kvm`.
    pub fn open() -> Result<Self, HvError> {
        let kvm = Kvm::new().map_err(|e| HvError::os("opening /dev/kvm", e))?;
        Ok(KvmHypervisor { kvm })
    }
}

impl Hypervisor for KvmHypervisor {
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

    fn create_vcpu(&self, id: u32) -> Result<Box<dyn Vcpu>, HvError> {
        let fd = self
            .fd
            .create_vcpu(u64::from(id))
            .map_err(|e| HvError::os(format!("creating vCPU {id}"), e))?;
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
        let value = APIC_DEFAULT_BASE
            | APICBASE_ENABLE
            | APICBASE_EXTD
            | if bsp { APICBASE_BSP } else { 0 };
        let msrs = Msrs::from_entries(&[kvm_msr_entry {
            index: MSR_IA32_APICBASE,
            data: value,
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
        for (register, mode) in [
            (APIC_LVT_LINT0, APIC_MODE_EXTINT),
            (APIC_LVT_LINT1, APIC_MODE_NMI),
        ] {
            let bytes: [u8; 4] = std::array::from_fn(|i| lapic.regs[register + i] as u8);
            let value = (u32::from_le_bytes(bytes) & !APIC_DELIVERY_MASK) | mode;
            for (i, b) in value.to_le_bytes().into_iter().enumerate() {
                lapic.regs[register + i] = b as _;
            }
        }
        self.fd
            .set_lapic(&lapic)
            .map_err(|e| HvError::os("setting the local APIC", e))
    }

    fn set_boot_state(&self, entry: &BootEntry) -> Result<(), HvError> {
        let mut sregs = self
            .fd
            .get_sregs()
            .map_err(|e| HvError::os("reading special registers", e))?;
        let mut regs = self
            .fd
            .get_regs()
            .map_err(|e| HvError::os("reading registers", e))?;
        regs.rflags = 2; // bit 1 is reserved and always set
        match entry {
            BootEntry::LongMode(entry) => long_mode_state(entry, &mut sregs, &mut regs),
            BootEntry::Pvh(entry) => pvh_state(entry, &mut sregs, &mut regs),
        }
        self.fd
            .set_sregs(&sregs)
            .map_err(|e| HvError::os("setting special registers", e))?;
        self.fd
            .set_regs(&regs)
            .map_err(|e| HvError::os("setting registers", e))
    }

    fn run(&mut self) -> Result<VcpuExit<'_>, HvError> {
        use kvm_ioctls::VcpuExit as K;
        let exit = match self.fd.run() {
            Ok(exit) => exit,
            Err(e) if e.errno() == EINTR => return Ok(VcpuExit::Interrupted),
            Err(e) => return Err(HvError::os("running a vCPU", e)),
        };
        Ok(match exit {
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
                "KVM internal error (on PVM hosts: an instruction the emulator cannot run)"
                    .to_string(),
            ),
            other => VcpuExit::Failed(format!("unexpected KVM exit {other:?}")),
        })
    }
}

/// A flat segment: base 0, 4 GiB limit, ring 0, present.
fn flat_segment(selector: u16, type_: u8, long: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db: u8::from(!long),
        s: 1,
        l: u8::from(long),
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Execute/read and read/write segment types, accessed.
const CODE_TYPE: u8 = 0xb;
const DATA_TYPE: u8 = 0x3;
/// A busy 32-bit TSS.
const TSS_BUSY_TYPE: u8 = 0xb;

fn set_data_segments(sregs: &mut kvm_sregs, data: kvm_segment) {
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
}

fn long_mode_state(entry: &LongModeEntry, sregs: &mut kvm_sregs, regs: &mut kvm_regs) {
    sregs.cs = flat_segment(entry.code_selector, CODE_TYPE, true);
    set_data_segments(sregs, flat_segment(entry.data_selector, DATA_TYPE, false));
    sregs.gdt.base = entry.gdt_base;
    sregs.gdt.limit = entry.gdt_limit;
    sregs.cr3 = entry.cr3;
    sregs.cr4 |= CR4_PAE;
    sregs.cr0 |= CR0_PE | CR0_PG;
    sregs.efer |= EFER_LME | EFER_LMA;
    regs.rip = entry.rip;
    regs.rsp = entry.rsp;
    regs.rbp = entry.rsp;
    regs.rsi = entry.rsi;
}

/// The PVH ABI's state: protected mode with paging off, flat 32-bit segments, a busy TSS.
fn pvh_state(entry: &PvhEntry, sregs: &mut kvm_sregs, regs: &mut kvm_regs) {
    sregs.cs = flat_segment(entry.code_selector, CODE_TYPE, false);
    set_data_segments(sregs, flat_segment(entry.data_selector, DATA_TYPE, false));
    sregs.tr = kvm_segment {
        limit: TSS_LIMIT,
        s: 0,
        db: 0,
        g: 0,
        ..flat_segment(entry.tss_selector, TSS_BUSY_TYPE, false)
    };
    sregs.gdt.base = entry.gdt_base;
    sregs.gdt.limit = entry.gdt_limit;
    sregs.cr0 = CR0_PE | CR0_ET;
    sregs.cr3 = 0;
    sregs.cr4 = 0;
    sregs.efer = 0;
    regs.rip = u64::from(entry.eip);
    regs.rbx = u64::from(entry.ebx);
}
