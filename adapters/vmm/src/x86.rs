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
}
