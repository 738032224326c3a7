//! Kernel virtual → guest physical addresses on x86_64, the way the guest's MMU would:
//! the image by its fixed offset, the direct map by `page_offset_base`, and everything
//! else (vmalloc: `struct bpf_prog`) through the kernel's own page tables.

use ktstr_domain::shape::ram_map::GuestPhysAddr;
use ktstr_ports::GuestMemory;

use crate::error::WalkError;
use crate::kernel_layout::{Layout, START_KERNEL_MAP};

const PAGE_SIZE: u64 = 4096;
const PRESENT: u64 = 1;
/// Page-size bit of a PUD (1 GiB) or PMD (2 MiB) entry.
const LARGE: u64 = 1 << 7;
/// Physical-address bits 12..=51 of a page-table entry.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// The direct map always lies in the top half, at or above this on both paging depths.
const LOWEST_DIRECT_MAP: u64 = 0xff00_0000_0000_0000;

/// One guest's kernel address space, frozen in its memory image.
pub struct AddressSpace<'a> {
    mem: &'a dyn GuestMemory,
    image_start: u64,
    image_end: u64,
    phys_base: u64,
    page_offset_base: u64,
    top_pgt_phys: u64,
    levels: u8,
}

impl std::fmt::Debug for AddressSpace<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressSpace")
            .field("phys_base", &self.phys_base)
            .field("page_offset_base", &self.page_offset_base)
            .field("top_pgt_phys", &self.top_pgt_phys)
            .field("levels", &self.levels)
            .finish_non_exhaustive()
    }
}

impl<'a> AddressSpace<'a> {
    /// Reads the paging state the guest left: `phys_base`, `page_offset_base` and whether
    /// 5-level paging was on.
    pub fn new(layout: &Layout, mem: &'a dyn GuestMemory) -> Result<Self, WalkError> {
        let sym = &layout.symbols;
        if sym.image_start < START_KERNEL_MAP || sym.image_end <= sym.image_start {
            return Err(WalkError::Paging(format!(
                "image range {:#x}..{:#x} is not in the kernel map",
                sym.image_start, sym.image_end
            )));
        }
        let mut space = AddressSpace {
            mem,
            image_start: sym.image_start,
            image_end: sym.image_end,
            // `phys_base` lives in the image: read it assuming the image sits where linked.
            phys_base: 0,
            page_offset_base: 0,
            top_pgt_phys: 0,
            levels: 4,
        };
        space.phys_base = space.read_u64(sym.phys_base)?;
        if !space.phys_base.is_multiple_of(PAGE_SIZE)
            || !mem.ram_map().contains(GuestPhysAddr(space.phys_base))
        {
            return Err(WalkError::Paging(format!(
                "phys_base {:#x} is not a page inside guest memory",
                space.phys_base
            )));
        }
        space.page_offset_base = space.read_u64(sym.page_offset_base)?;
        if space.page_offset_base < LOWEST_DIRECT_MAP
            || !space.page_offset_base.is_multiple_of(PAGE_SIZE)
        {
            return Err(WalkError::Paging(format!(
                "page_offset_base {:#x} is not a direct-map base",
                space.page_offset_base
            )));
        }
        space.levels = match sym.pgtable_l5_enabled {
            Some(addr) if space.read_u32(addr)? != 0 => 5,
            _ => 4,
        };
        if let Some(addr) = sym.pgdir_shift {
            let shift = space.read_u32(addr)?;
            let expected = if space.levels == 5 { 48 } else { 39 };
            if shift != expected {
                return Err(WalkError::Paging(format!(
                    "pgdir_shift is {shift} but {}-level paging implies {expected}",
                    space.levels
                )));
            }
        }
        space.top_pgt_phys = space.image_phys(sym.top_pgt).ok_or_else(|| {
            WalkError::Paging(format!(
                "top-level page table {:#x} is outside the image",
                sym.top_pgt
            ))
        })?;
        Ok(space)
    }

    /// 4 or 5.
    pub fn levels(&self) -> u8 {
        self.levels
    }

    fn image_phys(&self, vaddr: u64) -> Option<u64> {
        (self.image_start..self.image_end)
            .contains(&vaddr)
            .then(|| vaddr - START_KERNEL_MAP + self.phys_base)
    }

    /// The guest physical address of `vaddr`.
    pub fn translate(&self, vaddr: u64) -> Result<GuestPhysAddr, WalkError> {
        if let Some(pa) = self.image_phys(vaddr) {
            return Ok(GuestPhysAddr(pa));
        }
        // The direct map covers every physical address up to the end of RAM, holes too.
        if let Some(pa) = vaddr.checked_sub(self.page_offset_base)
            && pa < self.mem.ram_map().end().raw()
        {
            return Ok(GuestPhysAddr(pa));
        }
        self.walk_tables(vaddr).map(GuestPhysAddr)
    }

    fn walk_tables(&self, vaddr: u64) -> Result<u64, WalkError> {
        let unmapped = |reason: String| WalkError::Unmapped { vaddr, reason };
        // Canonical: the bits above the top index all copy the top index's highest bit.
        let va_bits = if self.levels == 5 { 57 } else { 48 };
        let high = (vaddr as i64) >> (va_bits - 1);
        if high != 0 && high != -1 {
            return Err(unmapped("not canonical".into()));
        }
        let mut table = self.top_pgt_phys;
        for level in (1..=self.levels).rev() {
            // Level 1 is the PTE table; level 4/5 the top.
            let shift = 12 + 9 * (u32::from(level) - 1);
            let index = (vaddr >> shift) & 511;
            let entry = self.read_phys_u64(table + index * 8)?;
            if entry & PRESENT == 0 {
                return Err(unmapped(format!("level-{level} entry not present")));
            }
            let large = entry & LARGE != 0;
            match level {
                3 | 2 if large => {
                    let size = 1u64 << shift;
                    let base = entry & ADDR_MASK & !(size - 1);
                    return Ok(base | (vaddr & (size - 1)));
                }
                4 | 5 if large => {
                    return Err(WalkError::Paging(format!(
                        "level-{level} entry {entry:#x} has the page-size bit set"
                    )));
                }
                1 => return Ok((entry & ADDR_MASK) | (vaddr & (PAGE_SIZE - 1))),
                _ => table = entry & ADDR_MASK,
            }
        }
        Err(unmapped("no leaf entry".into()))
    }

    /// Fills `buf` from kernel virtual `vaddr`, page by page.
    pub fn read(&self, vaddr: u64, buf: &mut [u8]) -> Result<(), WalkError> {
        let mut done = 0usize;
        while done < buf.len() {
            let va = vaddr
                .checked_add(done as u64)
                .ok_or_else(|| WalkError::Unmapped {
                    vaddr,
                    reason: "range wraps past the top of the address space".into(),
                })?;
            let in_page = (PAGE_SIZE - va % PAGE_SIZE) as usize;
            let chunk = in_page.min(buf.len() - done);
            let pa = self.translate(va)?;
            self.read_phys(pa, &mut buf[done..done + chunk])?;
            done += chunk;
        }
        Ok(())
    }

    pub fn read_u64(&self, vaddr: u64) -> Result<u64, WalkError> {
        let mut b = [0u8; 8];
        self.read(vaddr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn read_u32(&self, vaddr: u64) -> Result<u32, WalkError> {
        let mut b = [0u8; 4];
        self.read(vaddr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// An unsigned little-endian integer of `size` (1, 2, 4 or 8) bytes.
    pub fn read_uint(&self, vaddr: u64, size: u64) -> Result<u64, WalkError> {
        if !matches!(size, 1 | 2 | 4 | 8) {
            return Err(WalkError::Registry(format!(
                "cannot read a {size}-byte integer"
            )));
        }
        let mut b = [0u8; 8];
        self.read(vaddr, &mut b[..size as usize])?;
        Ok(u64::from_le_bytes(b))
    }

    fn read_phys(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), WalkError> {
        self.mem.read(gpa, buf).map_err(|e| WalkError::Memory {
            gpa: gpa.raw(),
            len: buf.len() as u64,
            reason: e.to_string(),
        })
    }

    fn read_phys_u64(&self, gpa: u64) -> Result<u64, WalkError> {
        let mut b = [0u8; 8];
        self.read_phys(GuestPhysAddr(gpa), &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}
