//! x86-64 boot state the VMM hands a vCPU, independent of the hypervisor: a flat GDT with
//! Linux's boot selectors, identity-mapped page tables in guest memory, and the registers
//! of the two ways in: straight into 64-bit mode (Linux's 64-bit boot protocol), or 32-bit
//! protected mode without paging (the PVH direct boot ABI).

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Where the boot GDT lives.
pub const GDT_ADDR: u64 = 0x500;
/// The boot page tables: PML4, one PDPT, and one page directory per identity-mapped GiB.
pub const PML4_ADDR: u64 = 0x9000;
pub const PDPT_ADDR: u64 = 0xa000;
pub const PD_ADDR: u64 = 0xb000;
/// GiB identity-mapped with 2 MiB pages: enough for the kernel's entry, which builds its
/// own tables.
pub const IDENTITY_GIB: u64 = 4;

/// Linux's `__BOOT_CS` and `__BOOT_DS`, then the 32-bit code and task-state segments the
/// PVH ABI asks for.
pub const CODE_SELECTOR: u16 = 0x10;
pub const DATA_SELECTOR: u16 = 0x18;
pub const CODE32_SELECTOR: u16 = 0x20;
pub const TSS_SELECTOR: u16 = 0x28;
/// The PVH ABI's task-state segment: base 0, limit 0x67.
pub const TSS_LIMIT: u32 = 0x67;

/// Null, null, 64-bit code (ring 0, present, readable), flat data (ring 0, present,
/// writable), flat 32-bit code, and a busy 32-bit TSS.
const GDT: [u64; 6] = [
    0,
    0,
    0x00af_9b00_0000_ffff,
    0x00cf_9300_0000_ffff,
    0x00cf_9b00_0000_ffff,
    0x0000_8b00_0000_0067,
];

const PRESENT_WRITABLE: u64 = 0b11;
const LARGE_PAGE: u64 = 1 << 7;

/// The state a boot vCPU starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootEntry {
    LongMode(LongModeEntry),
    Pvh(PvhEntry),
}

/// What a vCPU needs to start in 64-bit mode at `rip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongModeEntry {
    pub rip: u64,
    pub rsp: u64,
    /// Linux's boot protocol passes the zero page here.
    pub rsi: u64,
    /// The PML4's guest-physical address.
    pub cr3: u64,
    pub gdt_base: u64,
    pub gdt_limit: u16,
    pub code_selector: u16,
    pub data_selector: u16,
}

/// What a vCPU needs to start as the PVH ABI says: 32-bit protected mode, paging off,
/// flat segments, a busy TSS, `ebx` holding the start info's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PvhEntry {
    pub eip: u32,
    pub ebx: u32,
    pub gdt_base: u64,
    pub gdt_limit: u16,
    pub code_selector: u16,
    pub data_selector: u16,
    pub tss_selector: u16,
}

/// One segment register as both hypervisors describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segment {
    pub base: u64,
    pub limit: u32,
    pub selector: u16,
    pub type_: u8,
    pub present: u8,
    pub dpl: u8,
    /// 32-bit default operand size.
    pub db: u8,
    /// Code or data (not a system segment).
    pub s: u8,
    /// 64-bit code.
    pub l: u8,
    /// 4 KiB granularity.
    pub g: u8,
}

/// The registers a boot vCPU starts with, computed once from a `BootEntry`; each
/// hypervisor implementation copies them into its own register structures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BootRegisters {
    pub cs: Segment,
    /// DS, ES, FS, GS and SS.
    pub data: Segment,
    /// The task register, where the entry asks for one (PVH).
    pub tr: Option<Segment>,
    pub gdt_base: u64,
    pub gdt_limit: u16,
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub rip: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub rsi: u64,
    pub rbx: u64,
    pub rflags: u64,
}

const CR0_PE: u64 = 1;
/// Extension type: always set on anything past a 386.
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// Execute/read and read/write segment types, accessed; a busy 32-bit TSS.
const CODE_TYPE: u8 = 0xb;
const DATA_TYPE: u8 = 0x3;
const TSS_BUSY_TYPE: u8 = 0xb;
/// RFLAGS bit 1 is reserved and always set.
const RFLAGS_RESERVED: u64 = 2;

/// A flat segment: base 0, 4 GiB limit, ring 0, present.
fn flat_segment(selector: u16, type_: u8, long: bool) -> Segment {
    Segment {
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
    }
}

impl BootEntry {
    /// The registers this entry starts the boot vCPU with: 64-bit mode with paging, or
    /// PVH's 32-bit protected mode without paging and with a busy TSS.
    pub fn registers(&self) -> BootRegisters {
        match *self {
            BootEntry::LongMode(e) => BootRegisters {
                cs: flat_segment(e.code_selector, CODE_TYPE, true),
                data: flat_segment(e.data_selector, DATA_TYPE, false),
                tr: None,
                gdt_base: e.gdt_base,
                gdt_limit: e.gdt_limit,
                cr0: CR0_PE | CR0_ET | CR0_PG,
                cr3: e.cr3,
                cr4: CR4_PAE,
                efer: EFER_LME | EFER_LMA,
                rip: e.rip,
                rsp: e.rsp,
                rbp: e.rsp,
                rsi: e.rsi,
                rbx: 0,
                rflags: RFLAGS_RESERVED,
            },
            BootEntry::Pvh(e) => BootRegisters {
                cs: flat_segment(e.code_selector, CODE_TYPE, false),
                data: flat_segment(e.data_selector, DATA_TYPE, false),
                tr: Some(Segment {
                    limit: TSS_LIMIT,
                    s: 0,
                    db: 0,
                    g: 0,
                    ..flat_segment(e.tss_selector, TSS_BUSY_TYPE, false)
                }),
                gdt_base: e.gdt_base,
                gdt_limit: e.gdt_limit,
                cr0: CR0_PE | CR0_ET,
                cr3: 0,
                cr4: 0,
                efer: 0,
                rip: u64::from(e.eip),
                rsp: 0,
                rbp: 0,
                rsi: 0,
                rbx: u64::from(e.ebx),
                rflags: RFLAGS_RESERVED,
            },
        }
    }
}

/// Writes `boot`'s special registers into a hypervisor's own structure (`$sregs`, read from
/// the vCPU first), whose segment type is `$segment`: KVM's and MSHV's bindings name every
/// field alike, so one body serves both.
macro_rules! set_boot_sregs {
    ($sregs:expr, $boot:expr, $segment:ident) => {{
        let boot: &$crate::x86::BootRegisters = &$boot;
        let segment = |s: $crate::x86::Segment| $segment {
            base: s.base,
            limit: s.limit,
            selector: s.selector,
            type_: s.type_,
            present: s.present,
            dpl: s.dpl,
            db: s.db,
            s: s.s,
            l: s.l,
            g: s.g,
            avl: 0,
            unusable: 0,
            padding: 0,
        };
        let sregs = &mut $sregs;
        sregs.cs = segment(boot.cs);
        for s in [
            &mut sregs.ds,
            &mut sregs.es,
            &mut sregs.fs,
            &mut sregs.gs,
            &mut sregs.ss,
        ] {
            *s = segment(boot.data);
        }
        if let Some(tr) = boot.tr {
            sregs.tr = segment(tr);
        }
        sregs.gdt.base = boot.gdt_base;
        sregs.gdt.limit = boot.gdt_limit;
        sregs.cr0 = boot.cr0;
        sregs.cr3 = boot.cr3;
        sregs.cr4 = boot.cr4;
        sregs.efer = boot.efer;
    }};
}
pub(crate) use set_boot_sregs;

/// `boot`'s general registers as a hypervisor's own structure `$regs` (the rest zero).
macro_rules! boot_regs {
    ($regs:ident, $boot:expr) => {{
        let boot: &$crate::x86::BootRegisters = &$boot;
        $regs {
            rip: boot.rip,
            rsp: boot.rsp,
            rbp: boot.rbp,
            rsi: boot.rsi,
            rbx: boot.rbx,
            rflags: boot.rflags,
            ..Default::default()
        }
    }};
}
pub(crate) use boot_regs;

/// Local APIC registers (as both hypervisors lay out the APIC page): the LINT0 and LINT1
/// local vector table entries, and their delivery-mode field with its ExtINT and NMI values.
const APIC_LVT_LINT0: usize = 0x350;
const APIC_LVT_LINT1: usize = 0x360;
const APIC_DELIVERY_MASK: u32 = 0x700;
const APIC_MODE_EXTINT: u32 = 0x700;
const APIC_MODE_NMI: u32 = 0x400;

/// Wires LINT0 to the PIC (ExtINT) and LINT1 to NMI in an image of the local APIC's
/// registers, as a PC's firmware leaves them.
pub fn wire_legacy_lints(regs: &mut [std::ffi::c_char]) {
    for (register, mode) in [
        (APIC_LVT_LINT0, APIC_MODE_EXTINT),
        (APIC_LVT_LINT1, APIC_MODE_NMI),
    ] {
        let bytes: [u8; 4] = std::array::from_fn(|i| regs[register + i] as u8);
        let value = (u32::from_le_bytes(bytes) & !APIC_DELIVERY_MASK) | mode;
        for (i, b) in value.to_le_bytes().into_iter().enumerate() {
            regs[register + i] = b as std::ffi::c_char;
        }
    }
}

/// `IA32_APIC_BASE` for a local APIC in x2APIC mode at the default base; `bsp` marks the
/// bootstrap processor.
pub const MSR_IA32_APICBASE: u32 = 0x1b;
pub fn x2apic_base(bsp: bool) -> u64 {
    const BSP: u64 = 1 << 8;
    const EXTD: u64 = 1 << 10;
    const ENABLE: u64 = 1 << 11;
    const DEFAULT_BASE: u64 = 0xfee0_0000;
    DEFAULT_BASE | ENABLE | EXTD | if bsp { BSP } else { 0 }
}

fn write_gdt(mem: &GuestMemoryMmap) -> Result<u16, vm_memory::GuestMemoryError> {
    for (i, entry) in GDT.iter().enumerate() {
        mem.write_obj(*entry, GuestAddress(GDT_ADDR + 8 * i as u64))?;
    }
    Ok((GDT.len() * 8 - 1) as u16)
}

/// Writes the GDT and page tables into `mem` and returns the 64-bit entry state for `rip`.
pub fn write_boot_tables(
    mem: &GuestMemoryMmap,
    rip: u64,
    rsp: u64,
    rsi: u64,
) -> Result<BootEntry, vm_memory::GuestMemoryError> {
    let gdt_limit = write_gdt(mem)?;
    mem.write_obj(PDPT_ADDR | PRESENT_WRITABLE, GuestAddress(PML4_ADDR))?;
    for gib in 0..IDENTITY_GIB {
        let pd = PD_ADDR + gib * 0x1000;
        mem.write_obj(pd | PRESENT_WRITABLE, GuestAddress(PDPT_ADDR + gib * 8))?;
        for i in 0..512u64 {
            let page = (gib << 30) | (i << 21);
            mem.write_obj(
                page | PRESENT_WRITABLE | LARGE_PAGE,
                GuestAddress(pd + i * 8),
            )?;
        }
    }
    Ok(BootEntry::LongMode(LongModeEntry {
        rip,
        rsp,
        rsi,
        cr3: PML4_ADDR,
        gdt_base: GDT_ADDR,
        gdt_limit,
        code_selector: CODE_SELECTOR,
        data_selector: DATA_SELECTOR,
    }))
}

/// Writes the GDT into `mem` and returns the PVH entry state: `eip` in 32-bit mode with
/// `ebx` pointing at the start info.
pub fn write_pvh_tables(
    mem: &GuestMemoryMmap,
    eip: u32,
    ebx: u32,
) -> Result<BootEntry, vm_memory::GuestMemoryError> {
    let gdt_limit = write_gdt(mem)?;
    Ok(BootEntry::Pvh(PvhEntry {
        eip,
        ebx,
        gdt_base: GDT_ADDR,
        gdt_limit,
        code_selector: CODE32_SELECTOR,
        data_selector: DATA_SELECTOR,
        tss_selector: TSS_SELECTOR,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap()
    }

    #[test]
    fn identity_maps_the_low_gibs_with_large_pages() {
        let mem = mem();
        let BootEntry::LongMode(entry) = write_boot_tables(&mem, 0x10000, 0x8000, 0x7000).unwrap()
        else {
            panic!("a 64-bit entry");
        };
        assert_eq!(entry.cr3, PML4_ADDR);
        assert_eq!(entry.gdt_limit, 47);
        let read = |addr: u64| mem.read_obj::<u64>(GuestAddress(addr)).unwrap();
        assert_eq!(read(PML4_ADDR), PDPT_ADDR | 3);
        assert_eq!(read(PDPT_ADDR + 8), (PD_ADDR + 0x1000) | 3);
        // The second 2 MiB page of the third GiB.
        assert_eq!(read(PD_ADDR + 2 * 0x1000 + 8), (2 << 30) | (1 << 21) | 0x83);
        assert_eq!(read(GDT_ADDR + 16), 0x00af_9b00_0000_ffff);
    }

    /// Each selector the entries use names the descriptor its mode needs.
    #[test]
    fn the_pvh_entry_uses_flat_32_bit_code_and_a_busy_tss() {
        let mem = mem();
        let BootEntry::Pvh(entry) = write_pvh_tables(&mem, 0x100_0000, 0x6000).unwrap() else {
            panic!("a PVH entry");
        };
        assert_eq!((entry.eip, entry.ebx), (0x100_0000, 0x6000));
        let descriptor = |selector: u16| {
            mem.read_obj::<u64>(GuestAddress(GDT_ADDR + u64::from(selector)))
                .unwrap()
        };
        let code = descriptor(entry.code_selector);
        // Present, code, D (32-bit) set and L (64-bit) clear, 4 GiB limit.
        assert_eq!((code >> 40) & 0xff, 0x9b);
        assert_eq!((code >> 53) & 1, 0);
        assert_eq!((code >> 54) & 1, 1);
        assert_eq!((code >> 48) & 0xf, 0xf);
        let tss = descriptor(entry.tss_selector);
        assert_eq!((tss >> 40) & 0xff, 0x8b, "present, busy 32-bit TSS");
        assert_eq!(tss & 0xffff, u64::from(TSS_LIMIT));
        assert_eq!(descriptor(entry.data_selector), 0x00cf_9300_0000_ffff);
    }

    /// The registers match the descriptors: a 64-bit entry runs long-mode code with paging
    /// on; a PVH entry runs 32-bit code with paging off and the start info in EBX.
    #[test]
    fn boot_registers_follow_each_entry() {
        let mem = mem();
        let long = write_boot_tables(&mem, 0x10_0000, 0x8000, 0x7000)
            .unwrap()
            .registers();
        assert_eq!(
            (long.cs.l, long.cs.db, long.cs.selector),
            (1, 0, CODE_SELECTOR)
        );
        assert_eq!(long.cr0 & (CR0_PE | CR0_PG), CR0_PE | CR0_PG);
        assert_eq!(long.efer, EFER_LME | EFER_LMA);
        assert_eq!(
            (long.rip, long.rsp, long.rsi, long.cr3),
            (0x10_0000, 0x8000, 0x7000, PML4_ADDR)
        );
        assert_eq!(long.tr, None);
        let pvh = write_pvh_tables(&mem, 0x100_0000, 0x6000)
            .unwrap()
            .registers();
        assert_eq!((pvh.cs.l, pvh.cs.db), (0, 1));
        assert_eq!(pvh.cr0 & CR0_PG, 0);
        assert_eq!((pvh.rip, pvh.rbx, pvh.efer), (0x100_0000, 0x6000, 0));
        let tr = pvh.tr.expect("a task register");
        assert_eq!((tr.type_, tr.limit, tr.s), (TSS_BUSY_TYPE, TSS_LIMIT, 0));
        assert_eq!(long.rflags & 2, 2);
    }

    #[test]
    fn the_legacy_lints_become_extint_and_nmi_and_keep_their_other_bits() {
        let mut regs = [0 as std::ffi::c_char; 1024];
        // LINT0 masked (bit 16) with a fixed delivery mode; LINT1 all clear.
        regs[0x352] = 1;
        wire_legacy_lints(&mut regs);
        let read = |at: usize| u32::from_le_bytes(std::array::from_fn(|i| regs[at + i] as u8));
        assert_eq!(read(0x350), 0x0001_0700);
        assert_eq!(read(0x360), 0x0000_0400);
        assert_eq!(x2apic_base(true), 0xfee0_0d00);
        assert_eq!(x2apic_base(false), 0xfee0_0c00);
    }
}
