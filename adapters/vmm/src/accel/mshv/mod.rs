//! The trait family on the Microsoft Hypervisor (`/dev/mshv` through `mshv-ioctls`), where
//! Linux runs as the root partition (Azure hosts, Hyper-V roots). What differs from KVM
//! stays here: no in-kernel I/O APIC, PIC or PIT (the I/O APIC is `ioapic`, served from the
//! run loop and routed as MSIs); exits arrive as intercept messages the VMM completes itself
//! (`exit_loop`, with `mmio_insn` decoding MMIO); CPUID is imposed per vCPU as registered
//! intercept results; vCPUs are numbered with 8 bits.

pub mod exit_loop;
pub mod ioapic;
pub mod mmio_insn;

use std::sync::{Arc, OnceLock};

use mshv_bindings::{
    HV_TRANSLATE_GVA_VALIDATE_EXECUTE, HVCALL_REGISTER_INTERCEPT_RESULT,
    MSHV_SET_MEM_BIT_EXECUTABLE, MSHV_SET_MEM_BIT_WRITABLE, SegmentRegister, StandardRegisters,
    hv_input_register_intercept_result, hv_intercept_type_HV_INTERCEPT_TYPE_X64_CPUID, hv_message,
    hv_partition_property_code_HV_PARTITION_PROPERTY_PROCESSOR_FEATURES0,
    hv_partition_property_code_HV_PARTITION_PROPERTY_PROCESSOR_FEATURES1,
    hv_partition_property_code_HV_PARTITION_PROPERTY_UNIMPLEMENTED_MSR_ACTION, hv_register_assoc,
    hv_register_intercept_result_parameters, hv_register_name_HV_X64_REGISTER_APIC_BASE,
    hv_register_value, hv_register_x64_cpuid_result_parameters,
    hv_register_x64_cpuid_result_parameters__bindgen_ty_1,
    hv_register_x64_cpuid_result_parameters__bindgen_ty_2,
    hv_translate_gva_result_code_HV_TRANSLATE_GVA_SUCCESS,
    hv_unimplemented_msr_action_HV_UNIMPLEMENTED_MSR_ACTION_IGNORE_WRITE_READ_ZERO,
    mshv_read_write_gpa, mshv_root_hvcall, mshv_user_irq_entry, mshv_user_irq_table,
    mshv_user_mem_region,
};
use mshv_ioctls::{Mshv, VcpuFd, VmFd};
use vmm_sys_util::eventfd::EventFd;

use self::exit_loop::{ExitLoop, IoapicDevice, MsiRouter, VpPort};
use self::ioapic::{MsiRoute, PINS};
use super::{Accelerator, CpuidEntry, HvError, Vcpu, VcpuExit, Vm};
use ktstr_domain::shape::apic::MAX_XAPIC_ID;

use crate::x86::{BootEntry, boot_regs, set_boot_sregs, wire_legacy_lints, x2apic_base};

/// The MSHV device.
pub const DEV_MSHV: &str = "/dev/mshv";
/// The local APIC's ID register in the APIC page (xAPIC: the ID in bits 24-31).
const APIC_ID_REGISTER: usize = 0x20;
/// CPUID leaves whose subleaves differ (`CpuidEntry::flags` bit 0), and the highest
/// subleaf read of each.
const SUBLEAF_FLAG: u32 = 1;
const SUBLEAVES: [(u32, u32); 4] = [(4, 7), (7, 2), (0xd, 19), (0x8000_001d, 7)];
/// The highest basic and extended leaves read from the hypervisor.
const MAX_BASIC_LEAF: u32 = 0x20;
const MAX_EXTENDED_LEAF: u32 = 0x8000_0021;

#[derive(Debug)]
pub struct MshvAccel {
    mshv: Mshv,
    /// What CPUID a vCPU of this host sees, read once from a scratch partition.
    cpuid: OnceLock<Vec<CpuidEntry>>,
}

impl MshvAccel {
    /// Opens `/dev/mshv` and checks that its driver speaks the ioctl API this crate does:
    /// the root hypercall passthrough (`MSHV_ROOT_HVCALL`) that partition creation needs;
    /// drivers older than Linux's upstream `mshv_root` refuse it.
    pub fn open() -> Result<Self, HvError> {
        let mshv = Mshv::new().map_err(|e| HvError::os(format!("opening {DEV_MSHV}"), e))?;
        // Partition creation asks both (and panics inside the crate if either fails).
        [
            hv_partition_property_code_HV_PARTITION_PROPERTY_PROCESSOR_FEATURES0,
            hv_partition_property_code_HV_PARTITION_PROPERTY_PROCESSOR_FEATURES1,
        ]
        .into_iter()
        .try_for_each(|code| mshv.get_host_partition_property(code).map(drop))
        .map_err(|e| {
            HvError::os(
                format!(
                    "asking {DEV_MSHV} for the host's processor features (its driver does not \
                     speak the upstream mshv_root ioctl API)"
                ),
                e,
            )
        })?;
        mshv.get_vmm_caps()
            .map_err(|e| HvError::os(format!("asking {DEV_MSHV} for the VMM capabilities"), e))?;
        Ok(MshvAccel {
            mshv,
            cpuid: OnceLock::new(),
        })
    }

    /// A partition set up as every guest of ours is, before RAM and vCPUs.
    fn partition(&self) -> Result<VmFd, HvError> {
        let fd = self
            .mshv
            .create_vm()
            .map_err(|e| HvError::os("creating an MSHV partition", e))?;
        fd.initialize()
            .map_err(|e| HvError::os("initializing the partition", e))?;
        // Unknown MSRs read as zero and ignore writes, as KVM's do, instead of a #GP.
        fd.set_partition_property(
            hv_partition_property_code_HV_PARTITION_PROPERTY_UNIMPLEMENTED_MSR_ACTION,
            u64::from(
                hv_unimplemented_msr_action_HV_UNIMPLEMENTED_MSR_ACTION_IGNORE_WRITE_READ_ZERO,
            ),
        )
        .map_err(|e| HvError::os("setting the partition's MSR policy", e))?;
        Ok(fd)
    }

    /// CPUID as vCPU 0 of a scratch partition sees it: the hypervisor offers no list.
    fn read_cpuid(&self) -> Result<Vec<CpuidEntry>, HvError> {
        let vm = self.partition()?;
        let vp = vm
            .create_vcpu(0)
            .map_err(|e| HvError::os("creating a scratch vCPU", e))?;
        let read = |function: u32, index: u32| -> Result<CpuidEntry, HvError> {
            let [eax, ebx, ecx, edx] = vp
                .get_cpuid_values(function, index, 0, 0)
                .map_err(|e| HvError::os(format!("reading CPUID leaf {function:#x}"), e))?;
            Ok(CpuidEntry {
                function,
                index,
                flags: 0,
                eax,
                ebx,
                ecx,
                edx,
            })
        };
        let mut out = Vec::new();
        for range_start in [0, 0x8000_0000] {
            let top = read(range_start, 0)?.eax.min(if range_start == 0 {
                MAX_BASIC_LEAF
            } else {
                MAX_EXTENDED_LEAF
            });
            for function in range_start..=top.max(range_start) {
                match SUBLEAVES.iter().find(|(f, _)| *f == function) {
                    Some(&(_, last)) => {
                        for index in 0..=last {
                            out.push(CpuidEntry {
                                flags: SUBLEAF_FLAG,
                                ..read(function, index)?
                            });
                        }
                    }
                    None => out.push(read(function, 0)?),
                }
            }
        }
        Ok(out)
    }
}

impl Accelerator for MshvAccel {
    fn name(&self) -> &'static str {
        "mshv"
    }

    fn create_vm(&self) -> Result<Box<dyn Vm>, HvError> {
        let fd = Arc::new(self.partition()?);
        let router = Box::new(PartitionRouter(Arc::clone(&fd)));
        Ok(Box::new(MshvVm {
            fd,
            ioapic: Arc::new(IoapicDevice::new(router)),
        }))
    }

    fn supported_cpuid(&self) -> Result<Vec<CpuidEntry>, HvError> {
        if let Some(cpuid) = self.cpuid.get() {
            return Ok(cpuid.clone());
        }
        let cpuid = self.read_cpuid()?;
        Ok(self.cpuid.get_or_init(|| cpuid).clone())
    }
}

/// The partition's MSI routing table, rewritten whole from the I/O APIC's routes.
#[derive(Debug)]
struct PartitionRouter(Arc<VmFd>);

/// `mshv_user_irq_table` with room for a route per I/O APIC pin, laid out as the kernel
/// reads it: the header, then the entries.
#[repr(C)]
struct IrqTable {
    header: mshv_user_irq_table,
    entries: [mshv_user_irq_entry; PINS],
}

impl MsiRouter for PartitionRouter {
    fn route(&self, routes: &[MsiRoute]) -> Result<(), HvError> {
        let mut table = IrqTable {
            header: mshv_user_irq_table {
                nr: routes.len().min(PINS) as u32,
                ..Default::default()
            },
            entries: [mshv_user_irq_entry::default(); PINS],
        };
        for (entry, route) in table.entries.iter_mut().zip(routes) {
            *entry = mshv_user_irq_entry {
                gsi: route.gsi,
                address_lo: route.address_lo,
                address_hi: 0,
                data: route.data,
            };
        }
        #[allow(unsafe_code)]
        // SAFETY: `IrqTable` is `repr(C)`: the header and then `nr` entries, as the kernel
        // reads a table; it outlives the call.
        let header = unsafe { &*(&table as *const IrqTable).cast::<mshv_user_irq_table>() };
        self.0
            .set_msi_routing(header)
            .map_err(|e| HvError::os("setting the MSI routing", e))
    }
}

#[derive(Debug)]
struct MshvVm {
    fd: Arc<VmFd>,
    ioapic: Arc<IoapicDevice>,
}

impl Vm for MshvVm {
    #[allow(unsafe_code)]
    unsafe fn map_ram(
        &self,
        _slot: u32,
        gpa: u64,
        len: u64,
        host_addr: u64,
    ) -> Result<(), HvError> {
        let region = mshv_user_mem_region {
            size: len,
            guest_pfn: gpa >> 12,
            userspace_addr: host_addr,
            flags: (1 << MSHV_SET_MEM_BIT_WRITABLE) | (1 << MSHV_SET_MEM_BIT_EXECUTABLE),
            ..Default::default()
        };
        self.fd
            .map_user_memory(region)
            .map_err(|e| HvError::os(format!("mapping guest RAM at {gpa:#x}"), e))
    }

    /// The hypervisor has the local APICs; the I/O APIC is ours, every pin masked until
    /// the guest programs it, so the routing table starts empty.
    fn create_interrupt_controller(&self) -> Result<(), HvError> {
        PartitionRouter(Arc::clone(&self.fd)).route(&[])
    }

    fn create_vcpu(&self, index: u32, apic_id: u32) -> Result<Box<dyn Vcpu>, HvError> {
        // The ID is written into the xAPIC ID register, and the partition's MSI routes
        // carry 8-bit destinations: an x2APIC-only ID cannot be given here.
        if apic_id > MAX_XAPIC_ID {
            return Err(HvError::Unsupported(format!(
                "vCPU {index}'s APIC ID {apic_id} needs x2APIC, which this MSHV backend cannot \
                 assign; use a preset whose APIC IDs stay at or below {MAX_XAPIC_ID}"
            )));
        }
        let vp_index = u8::try_from(index).map_err(|_| {
            HvError::Unsupported(format!(
                "MSHV numbers vCPUs with 8 bits: vCPU {index} is past 255"
            ))
        })?;
        let fd = self
            .fd
            .create_vcpu(vp_index)
            .map_err(|e| HvError::os(format!("creating vCPU {index}"), e))?;
        let vcpu = MshvVcpu {
            index,
            exits: ExitLoop::new(MshvVp(fd), Arc::clone(&self.ioapic)),
        };
        vcpu.set_apic_id(apic_id)?;
        Ok(Box::new(vcpu))
    }

    fn register_irqfd(&self, event: &EventFd, gsi: u32) -> Result<(), HvError> {
        self.fd
            .register_irqfd(event, gsi)
            .map_err(|e| HvError::os(format!("wiring interrupt {gsi}"), e))
    }
}

/// A real vCPU behind the exit loop.
#[derive(Debug)]
struct MshvVp(VcpuFd);

impl VpPort for MshvVp {
    fn run(&self) -> Result<hv_message, i32> {
        self.0.run().map_err(|e| e.errno())
    }

    fn regs(&self) -> Result<StandardRegisters, HvError> {
        self.0
            .get_regs()
            .map_err(|e| HvError::os("reading registers", e))
    }

    fn set_regs(&self, regs: &StandardRegisters) -> Result<(), HvError> {
        self.0
            .set_regs(regs)
            .map_err(|e| HvError::os("setting registers", e))
    }

    fn fetch(&self, rip: u64) -> Result<Vec<u8>, HvError> {
        let (gpa, result) = self
            .0
            .translate_gva(rip, u64::from(HV_TRANSLATE_GVA_VALIDATE_EXECUTE))
            .map_err(|e| HvError::os(format!("translating rip {rip:#x}"), e))?;
        #[allow(unsafe_code)]
        // SAFETY: both views of the result are the same 64 bits; the code is the low half.
        let code = unsafe { result.as_uint64 } as u32;
        if code != hv_translate_gva_result_code_HV_TRANSLATE_GVA_SUCCESS {
            return Err(HvError::Unsupported(format!(
                "rip {rip:#x} does not translate (result {code})"
            )));
        }
        // Up to the end of the page: the next one may map elsewhere.
        let len = 16.min(0x1000 - (gpa & 0xfff)) as u32;
        let mut read = mshv_read_write_gpa {
            base_gpa: gpa,
            byte_count: len,
            ..Default::default()
        };
        let read = self
            .0
            .gpa_read(&mut read)
            .map_err(|e| HvError::os(format!("reading the code at {gpa:#x}"), e))?;
        Ok(read.data[..len as usize].to_vec())
    }
}

#[derive(Debug)]
struct MshvVcpu {
    index: u32,
    exits: ExitLoop<MshvVp>,
}

impl MshvVcpu {
    fn fd(&self) -> &VcpuFd {
        &self.exits.vp().0
    }

    /// The hypervisor numbers APICs by vCPU; the preset's layout may leave gaps, so the
    /// ID the MADT and CPUID give is written into the local APIC.
    fn set_apic_id(&self, apic_id: u32) -> Result<(), HvError> {
        let mut lapic = self
            .fd()
            .get_lapic()
            .map_err(|e| HvError::os("reading the local APIC", e))?;
        for (i, b) in (apic_id << 24).to_le_bytes().into_iter().enumerate() {
            lapic.regs[APIC_ID_REGISTER + i] = b as std::ffi::c_char;
        }
        self.fd()
            .set_lapic(&lapic)
            .map_err(|e| HvError::os("setting the local APIC's ID", e))?;
        let kept = self
            .fd()
            .get_lapic()
            .map_err(|e| HvError::os("reading the local APIC back", e))?;
        let id = u32::from_le_bytes(std::array::from_fn(|i| {
            kept.regs[APIC_ID_REGISTER + i] as u8
        })) >> 24;
        if id != apic_id {
            return Err(HvError::Unsupported(format!(
                "the hypervisor kept APIC ID {id} for vCPU {} where the preset needs {apic_id}",
                self.index
            )));
        }
        Ok(())
    }

    /// Makes this vCPU's CPUID leaf `entry` report `entry`'s bits where they differ from
    /// `seen` (what the hypervisor reports now); the other bits stay the hypervisor's, so
    /// those that follow the CPU's state (OSXSAVE, the APIC enable) keep doing so.
    fn override_cpuid(&self, entry: &CpuidEntry, seen: [u32; 4]) -> Result<(), HvError> {
        let mask = |i: usize, value: u32| seen[i] ^ value;
        let input = hv_input_register_intercept_result {
            vp_index: self.index,
            intercept_type: hv_intercept_type_HV_INTERCEPT_TYPE_X64_CPUID,
            parameters: hv_register_intercept_result_parameters {
                cpuid: hv_register_x64_cpuid_result_parameters {
                    input: hv_register_x64_cpuid_result_parameters__bindgen_ty_1 {
                        eax: entry.function,
                        ecx: entry.index,
                        subleaf_specific: (entry.flags & SUBLEAF_FLAG) as u8,
                        always_override: 1,
                        padding: 0,
                    },
                    // Masks name the bits replaced (the crate's helper can only set bits).
                    result: hv_register_x64_cpuid_result_parameters__bindgen_ty_2 {
                        eax: entry.eax,
                        eax_mask: mask(0, entry.eax),
                        ebx: entry.ebx,
                        ebx_mask: mask(1, entry.ebx),
                        ecx: entry.ecx,
                        ecx_mask: mask(2, entry.ecx),
                        edx: entry.edx,
                        edx_mask: mask(3, entry.edx),
                    },
                },
            },
            ..Default::default()
        };
        let mut call = mshv_root_hvcall {
            code: HVCALL_REGISTER_INTERCEPT_RESULT as u16,
            in_sz: size_of_val(&input) as u16,
            in_ptr: std::ptr::addr_of!(input) as u64,
            ..Default::default()
        };
        self.fd().hvcall(&mut call).map_err(|e| {
            HvError::os(
                format!("setting CPUID leaf {:#x}.{}", entry.function, entry.index),
                e,
            )
        })
    }
}

impl Vcpu for MshvVcpu {
    /// Registers only the bits that differ from what the hypervisor already reports, so
    /// what follows the guest's own state (XSAVE sizes in 0xD, OSXSAVE) stays the
    /// hypervisor's.
    fn set_cpuid(&self, entries: &[CpuidEntry]) -> Result<(), HvError> {
        for entry in entries {
            let seen = self
                .fd()
                .get_cpuid_values(entry.function, entry.index, 0, 0)
                .map_err(|e| HvError::os(format!("reading CPUID leaf {:#x}", entry.function), e))?;
            if seen != [entry.eax, entry.ebx, entry.ecx, entry.edx] {
                self.override_cpuid(entry, seen)?;
            }
        }
        Ok(())
    }

    fn enable_x2apic(&self, bsp: bool) -> Result<(), HvError> {
        let base = hv_register_assoc {
            name: hv_register_name_HV_X64_REGISTER_APIC_BASE,
            value: hv_register_value {
                reg64: x2apic_base(bsp),
            },
            ..Default::default()
        };
        self.fd()
            .set_reg(&[base])
            .map_err(|e| HvError::os("setting IA32_APIC_BASE", e))
    }

    fn wire_legacy_interrupts(&self) -> Result<(), HvError> {
        let mut lapic = self
            .fd()
            .get_lapic()
            .map_err(|e| HvError::os("reading the local APIC", e))?;
        wire_legacy_lints(&mut lapic.regs);
        self.fd()
            .set_lapic(&lapic)
            .map_err(|e| HvError::os("setting the local APIC", e))
    }

    fn set_boot_state(&self, entry: &BootEntry) -> Result<(), HvError> {
        let boot = entry.registers();
        // Read first: setting the special registers writes the APIC base too.
        let mut sregs = self
            .fd()
            .get_sregs()
            .map_err(|e| HvError::os("reading special registers", e))?;
        set_boot_sregs!(sregs, boot, SegmentRegister);
        self.fd()
            .set_sregs(&sregs)
            .map_err(|e| HvError::os("setting special registers", e))?;
        self.fd()
            .set_regs(&boot_regs!(StandardRegisters, boot))
            .map_err(|e| HvError::os("setting registers", e))
    }

    fn run(&mut self) -> Result<VcpuExit<'_>, HvError> {
        self.exits.run()
    }
}
