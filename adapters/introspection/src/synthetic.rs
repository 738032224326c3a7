//! Synthetic guest memory images for tests, fuzzing and benchmarks: page tables (4- or
//! 5-level), a `prog_idr` radix tree and `bpf_prog` / `bpf_prog_aux` structs laid out as a
//! given [`Layout`] says, the way a real x86_64 kernel would leave them. The builder
//! panics on misuse (it is test support); the walker it feeds never may.

use ktstr_domain::shape::ram_map::{GuestPhysAddr, RamMap};
use ktstr_ports::{GuestMemory, MemoryError};

use crate::kernel_layout::{Field, Layout, Offsets, START_KERNEL_MAP, Symbols};

const PAGE: u64 = 4096;
const PRESENT_RW: u64 = 0b11;
const LARGE: u64 = 1 << 7;

/// Guest RAM as a byte vector, from physical address 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecMemory {
    bytes: Vec<u8>,
    ram_map: RamMap,
}

impl VecMemory {
    pub fn new(bytes: Vec<u8>) -> Self {
        let ram_map = RamMap::for_size(bytes.len() as u64);
        VecMemory { bytes, ram_map }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

impl GuestMemory for VecMemory {
    fn ram_map(&self) -> &RamMap {
        &self.ram_map
    }

    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), MemoryError> {
        let len = buf.len() as u64;
        let out = || MemoryError::OutOfRange {
            gpa,
            len,
            end: self.ram_map.end(),
        };
        let offset = self.ram_map.offset_of(gpa, len).ok_or_else(out)?;
        let start = usize::try_from(offset).map_err(|_| out())?;
        buf.copy_from_slice(&self.bytes[start..start + buf.len()]);
        Ok(())
    }
}

/// A program to plant in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthProg {
    pub id: u32,
    pub prog_type: u32,
    /// What `bpf_prog_aux.name` holds (cut to fit, NUL-terminated).
    pub short_name: String,
    /// What `bpf_prog_aux.ksym.name` holds; empty for a program that was not JITed.
    pub ksym_name: String,
    pub verified_insns: u32,
}

impl SynthProg {
    /// A program named like the kernel names it: `name` cut to 15 bytes in `aux->name`,
    /// whole in the kallsyms name.
    pub fn named(id: u32, prog_type: u32, name: &str, verified_insns: u32) -> Self {
        SynthProg {
            id,
            prog_type,
            short_name: name.chars().take(15).collect(),
            ksym_name: format!("bpf_prog_{:016x}_{name}", u64::from(id) * 0x9e37_79b9),
            verified_insns,
        }
    }
}

/// A small layout with made-up but plausible offsets, its image at the start of RAM so
/// images stay small. Not any real kernel's: see the e2e tests for that.
pub fn sample_layout() -> Layout {
    let image = START_KERNEL_MAP + 0x1_0000;
    Layout {
        symbols: Symbols {
            prog_idr: image + 0x100,
            page_offset_base: image + 0x200,
            phys_base: image + 0x208,
            top_pgt: image + 0x1000,
            pgtable_l5_enabled: Some(image + 0x210),
            pgdir_shift: Some(image + 0x214),
            image_start: image,
            image_end: image + 0x2000,
        },
        offsets: Offsets {
            idr_rt: 0,
            xa_head: Field::new(8, 8),
            node_shift: Field::new(0, 1),
            node_slots: Field::new(40, 64 * 8),
            prog_type: Field::new(4, 4),
            prog_aux: Field::new(56, 8),
            aux_id: Field::new(24, 4),
            aux_name: Field::new(200, 16),
            aux_verified_insns: Field::new(36, 4),
            aux_ksym_name: Field::new(296, 512),
        },
    }
}

/// Builds one guest's memory image.
#[derive(Debug)]
pub struct SyntheticGuest {
    layout: Layout,
    mem: Vec<u8>,
    levels: u8,
    page_offset_base: u64,
    /// Next free physical byte.
    next: u64,
    /// Next free vmalloc address.
    vmalloc_next: u64,
    nodes: Vec<u64>,
}

impl SyntheticGuest {
    /// Zeroed RAM of `size` bytes with the image's globals filled in and an empty
    /// `prog_idr`. `levels` is 4 or 5.
    pub fn new(layout: &Layout, size: u64, levels: u8) -> Self {
        assert!(levels == 4 || levels == 5, "levels must be 4 or 5");
        let sym = &layout.symbols;
        let image_end = sym.image_end - START_KERNEL_MAP;
        assert!(size > image_end + 16 * PAGE, "RAM too small for the image");
        let (page_offset_base, vmalloc) = if levels == 5 {
            (0xff11_0000_0000_0000, 0xffa0_0000_0000_0000)
        } else {
            (0xffff_8880_0000_0000, 0xffff_c900_0000_0000)
        };
        let mut g = SyntheticGuest {
            layout: layout.clone(),
            mem: vec![0; size as usize],
            levels,
            page_offset_base,
            next: image_end.next_multiple_of(PAGE),
            vmalloc_next: vmalloc,
            nodes: Vec::new(),
        };
        g.write_virt(sym.page_offset_base, &page_offset_base.to_le_bytes());
        g.write_virt(sym.phys_base, &0u64.to_le_bytes());
        if let Some(l5) = sym.pgtable_l5_enabled {
            g.write_virt(l5, &u32::from(levels == 5).to_le_bytes());
        }
        if let Some(shift) = sym.pgdir_shift {
            let value: u32 = if levels == 5 { 48 } else { 39 };
            g.write_virt(shift, &value.to_le_bytes());
        }
        g
    }

    /// Zeroed physical memory of `len` bytes aligned to `align`.
    pub fn alloc(&mut self, len: u64, align: u64) -> u64 {
        let at = self.next.next_multiple_of(align);
        assert!(at + len <= self.mem.len() as u64, "synthetic RAM exhausted");
        self.next = at + len;
        at
    }

    /// The direct-map address of physical `pa`.
    pub fn direct(&self, pa: u64) -> u64 {
        self.page_offset_base + pa
    }

    /// Physical address of an image or direct-map address.
    fn phys(&self, vaddr: u64) -> u64 {
        let sym = &self.layout.symbols;
        if (sym.image_start..sym.image_end).contains(&vaddr) {
            vaddr - START_KERNEL_MAP
        } else if vaddr >= self.page_offset_base && vaddr - self.page_offset_base < self.size() {
            vaddr - self.page_offset_base
        } else {
            panic!("{vaddr:#x} is neither image nor direct map")
        }
    }

    pub fn size(&self) -> u64 {
        self.mem.len() as u64
    }

    pub fn write_phys(&mut self, pa: u64, bytes: &[u8]) {
        self.mem[pa as usize..pa as usize + bytes.len()].copy_from_slice(bytes);
    }

    /// Writes at an image or direct-map address.
    pub fn write_virt(&mut self, vaddr: u64, bytes: &[u8]) {
        let pa = self.phys(vaddr);
        self.write_phys(pa, bytes);
    }

    fn read_phys_u64(&self, pa: u64) -> u64 {
        u64::from_le_bytes(self.mem[pa as usize..pa as usize + 8].try_into().unwrap())
    }

    /// Maps `vaddr` to `pa` with a page of `1 << page_shift` bytes (12, 21 or 30) in the
    /// kernel's top-level table, creating intermediate tables as needed.
    pub fn map(&mut self, vaddr: u64, pa: u64, page_shift: u32) {
        assert!(
            matches!(page_shift, 12 | 21 | 30),
            "page shift {page_shift}"
        );
        let leaf_level = (page_shift - 12) / 9 + 1;
        let mut table = self.layout.symbols.top_pgt - START_KERNEL_MAP;
        for level in (leaf_level..=u32::from(self.levels)).rev() {
            let shift = 12 + 9 * (level - 1);
            let slot = table + ((vaddr >> shift) & 511) * 8;
            if level == leaf_level {
                let large = if level > 1 { LARGE } else { 0 };
                self.write_phys(slot, &(pa | PRESENT_RW | large).to_le_bytes());
                return;
            }
            let entry = self.read_phys_u64(slot);
            table = if entry & 1 == 1 {
                entry & 0x000f_ffff_ffff_f000
            } else {
                let fresh = self.alloc(PAGE, PAGE);
                self.write_phys(slot, &(fresh | PRESENT_RW).to_le_bytes());
                fresh
            };
        }
    }

    /// Plants the program's `bpf_prog` (vmalloc'd, one 4 KiB page) and `bpf_prog_aux`
    /// (direct map); returns the `bpf_prog` address.
    pub fn add_program(&mut self, p: &SynthProg) -> u64 {
        let o = self.layout.offsets.clone();
        let aux_len = [o.aux_id, o.aux_name, o.aux_verified_insns, o.aux_ksym_name]
            .iter()
            .map(|f| f.offset + f.size)
            .max()
            .unwrap_or(0);
        let aux_pa = self.alloc(aux_len, 64);
        let aux = self.direct(aux_pa);
        self.write_phys(aux_pa + o.aux_id.offset, &sized(u64::from(p.id), o.aux_id));
        self.write_phys(
            aux_pa + o.aux_verified_insns.offset,
            &sized(u64::from(p.verified_insns), o.aux_verified_insns),
        );
        self.write_phys(aux_pa + o.aux_name.offset, &cstr(&p.short_name, o.aux_name));
        self.write_phys(
            aux_pa + o.aux_ksym_name.offset,
            &cstr(&p.ksym_name, o.aux_ksym_name),
        );

        let prog_pa = self.alloc(PAGE, PAGE);
        let prog = self.vmalloc_next;
        // A guard page between allocations, as vmalloc leaves.
        self.vmalloc_next += 2 * PAGE;
        self.map(prog, prog_pa, 12);
        self.write_phys(
            prog_pa + o.prog_type.offset,
            &sized(u64::from(p.prog_type), o.prog_type),
        );
        self.write_phys(prog_pa + o.prog_aux.offset, &sized(aux, o.prog_aux));
        prog
    }

    /// Fills `prog_idr` with `entries` (index, raw slot value), building radix-tree nodes
    /// in the direct map. A lone entry at index 0 sits in `xa_head` itself.
    pub fn set_registry(&mut self, entries: &[(u64, u64)]) {
        let o = self.layout.offsets.clone();
        let head_at = self.layout.symbols.prog_idr + o.idr_rt + o.xa_head.offset;
        let head = match entries {
            [] => 0,
            [(0, entry)] => *entry,
            _ => {
                let chunk = u64::from(self.layout.slots_per_node().trailing_zeros());
                let max = entries.iter().map(|e| e.0).max().unwrap_or(0);
                let mut shift = 0;
                while shift + chunk < 64 && max >> (shift + chunk) != 0 {
                    shift += chunk;
                }
                self.build_node(entries, shift, chunk) | 2
            }
        };
        self.write_virt(head_at, &head.to_le_bytes());
    }

    fn build_node(&mut self, entries: &[(u64, u64)], shift: u64, chunk: u64) -> u64 {
        let o = self.layout.offsets.clone();
        let len = (o.node_slots.offset + o.node_slots.size).max(o.node_shift.offset + 1);
        let pa = self.alloc(len, 64);
        let node = self.direct(pa);
        self.nodes.push(node);
        self.write_phys(pa + o.node_shift.offset, &sized(shift, o.node_shift));
        let slots = self.layout.slots_per_node();
        for slot in 0..slots {
            let mine: Vec<(u64, u64)> = entries
                .iter()
                .filter(|(i, _)| (i >> shift) & (slots - 1) == slot)
                .copied()
                .collect();
            let value = match (shift, mine.as_slice()) {
                (_, []) => continue,
                (0, [(_, entry)]) => *entry,
                (0, _) => panic!("two entries share index slot {slot}"),
                _ => {
                    // Strip this level's bits so the child sees only its own.
                    self.build_node(&mine, shift - chunk, chunk) | 2
                }
            };
            self.write_phys(pa + o.node_slots.offset + slot * 8, &value.to_le_bytes());
        }
        node
    }

    /// Direct-map addresses of the radix-tree nodes built so far, root first.
    pub fn nodes(&self) -> &[u64] {
        &self.nodes
    }

    /// Plants `progs` at indices equal to their ids.
    pub fn with_programs(layout: &Layout, size: u64, levels: u8, progs: &[SynthProg]) -> Self {
        let mut g = SyntheticGuest::new(layout, size, levels);
        let entries: Vec<(u64, u64)> = progs
            .iter()
            .map(|p| (u64::from(p.id), g.add_program(p)))
            .collect();
        g.set_registry(&entries);
        g
    }

    pub fn memory(&self) -> VecMemory {
        VecMemory::new(self.mem.clone())
    }

    pub fn into_memory(self) -> VecMemory {
        VecMemory::new(self.mem)
    }
}

fn sized(value: u64, field: Field) -> Vec<u8> {
    value.to_le_bytes()[..field.size.min(8) as usize].to_vec()
}

/// `s` cut to leave room for a NUL in `field`.
fn cstr(s: &str, field: Field) -> Vec<u8> {
    let keep = s.len().min(field.size.saturating_sub(1) as usize);
    let mut out = s.as_bytes()[..keep].to_vec();
    out.push(0);
    out
}
