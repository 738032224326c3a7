//! x86-64 boot state the VMM hands a vCPU, independent of the hypervisor: a flat GDT with
//! Linux's boot selectors and identity-mapped page tables in guest memory, and the
//! registers that enter 64-bit mode with them.

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

/// Linux's `__BOOT_CS` and `__BOOT_DS`.
pub const CODE_SELECTOR: u16 = 0x10;
pub const DATA_SELECTOR: u16 = 0x18;

/// Null, null, 64-bit code (ring 0, present, readable), data (ring 0, present, writable).
const GDT: [u64; 4] = [0, 0, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff];

const PRESENT_WRITABLE: u64 = 0b11;
const LARGE_PAGE: u64 = 1 << 7;

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

/// Writes the GDT and page tables into `mem` and returns the entry state for `rip`.
pub fn write_boot_tables(
    mem: &GuestMemoryMmap,
    rip: u64,
    rsp: u64,
    rsi: u64,
) -> Result<LongModeEntry, vm_memory::GuestMemoryError> {
    for (i, entry) in GDT.iter().enumerate() {
        mem.write_obj(*entry, GuestAddress(GDT_ADDR + 8 * i as u64))?;
    }
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
    Ok(LongModeEntry {
        rip,
        rsp,
        rsi,
        cr3: PML4_ADDR,
        gdt_base: GDT_ADDR,
        gdt_limit: (GDT.len() * 8 - 1) as u16,
        code_selector: CODE_SELECTOR,
        data_selector: DATA_SELECTOR,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_maps_the_low_gibs_with_large_pages() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let entry = write_boot_tables(&mem, 0x10000, 0x8000, 0x7000).unwrap();
        assert_eq!(entry.cr3, PML4_ADDR);
        assert_eq!(entry.gdt_limit, 31);
        let read = |addr: u64| mem.read_obj::<u64>(GuestAddress(addr)).unwrap();
        assert_eq!(read(PML4_ADDR), PDPT_ADDR | 3);
        assert_eq!(read(PDPT_ADDR + 8), (PD_ADDR + 0x1000) | 3);
        // The second 2 MiB page of the third GiB.
        assert_eq!(read(PD_ADDR + 2 * 0x1000 + 8), (2 << 30) | (1 << 21) | 0x83);
        assert_eq!(read(GDT_ADDR + 16), 0x00af_9b00_0000_ffff);
    }
}
