//! Everything the walker needs to know about one kernel build: where its globals live
//! (from the ELF symbol table) and where the fields it reads sit inside the kernel's
//! structures (from `.BTF`). Built once per vmlinux; the walk itself never touches the file.

use std::collections::HashMap;
use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol};

use crate::btf_layout::{BtfIndex, Expect};
use crate::error::LayoutError;

/// Start of the kernel image mapping on x86_64 (`__START_KERNEL_map`). Fixed by the
/// architecture, not by the build, so it is not in the symbol table.
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;

/// Where a member sits inside its structure, and how many bytes it spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: u64,
    pub size: u64,
}

impl Field {
    pub const fn new(offset: u64, size: u64) -> Self {
        Field { offset, size }
    }
}

/// Kernel virtual addresses of the globals the walk starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbols {
    /// `static DEFINE_IDR(prog_idr)`: every loaded program, by id.
    pub prog_idr: u64,
    /// Base of the direct map; its value is read from guest memory.
    pub page_offset_base: u64,
    /// Physical load offset of the image; its value is read from guest memory.
    pub phys_base: u64,
    /// The kernel's top-level page table (`init_top_pgt`, else `swapper_pg_dir`).
    pub top_pgt: u64,
    /// `__pgtable_l5_enabled`, absent on kernels built without 5-level paging.
    pub pgtable_l5_enabled: Option<u64>,
    /// `pgdir_shift`, when present: cross-checks the paging depth.
    pub pgdir_shift: Option<u64>,
    /// `_text` and `_end`: the image range translated by the fixed image offset.
    pub image_start: u64,
    pub image_end: u64,
}

/// Member offsets and sizes inside the structures the walk reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offsets {
    /// `struct idr.idr_rt` (a `struct xarray`).
    pub idr_rt: u64,
    /// `struct xarray.xa_head`.
    pub xa_head: Field,
    /// `struct xa_node.shift`.
    pub node_shift: Field,
    /// `struct xa_node.slots`; its size / 8 is `XA_CHUNK_SIZE`.
    pub node_slots: Field,
    /// `struct bpf_prog.type` (`enum bpf_prog_type`).
    pub prog_type: Field,
    /// `struct bpf_prog.aux` (`struct bpf_prog_aux *`).
    pub prog_aux: Field,
    /// `struct bpf_prog_aux.id`.
    pub aux_id: Field,
    /// `struct bpf_prog_aux.name`: the 15-character name plus NUL.
    pub aux_name: Field,
    /// `struct bpf_prog_aux.verified_insns`.
    pub aux_verified_insns: Field,
    /// `struct bpf_prog_aux.ksym.name`, relative to the start of `bpf_prog_aux`.
    pub aux_ksym_name: Field,
}

/// One kernel build's symbols and structure layouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub symbols: Symbols,
    pub offsets: Offsets,
}

impl Layout {
    /// Parses `vmlinux`: its symbol table and its `.BTF`. Expensive (a few hundred ms);
    /// [`crate::GuestIntrospector`] does it once per path.
    pub fn from_vmlinux(path: &Path) -> Result<Layout, LayoutError> {
        let data = std::fs::read(path).map_err(|source| LayoutError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Layout::from_elf(&data, path)
    }

    /// Parses a `vmlinux` already in memory; `path` names it in errors.
    pub fn from_elf(data: &[u8], path: &Path) -> Result<Layout, LayoutError> {
        let elf = object::File::parse(data).map_err(|e| LayoutError::Elf {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let symbols = symbols_of(&elf)?;
        let section = elf
            .section_by_name(".BTF")
            .ok_or_else(|| LayoutError::NoBtf {
                path: path.to_path_buf(),
            })?;
        let btf_bytes = section.data().map_err(|e| LayoutError::Elf {
            path: path.to_path_buf(),
            reason: format!("reading .BTF: {e}"),
        })?;
        let btf = BtfIndex::parse(btf_bytes).map_err(|reason| LayoutError::Btf {
            path: path.to_path_buf(),
            reason,
        })?;
        let offsets = offsets_from_btf(&btf)?;
        Ok(Layout { symbols, offsets })
    }

    /// `XA_CHUNK_SIZE`: slots per radix-tree node.
    pub fn slots_per_node(&self) -> u64 {
        self.offsets.node_slots.size / 8
    }
}

/// The member offsets, each checked for the shape the walker reads it as.
pub fn offsets_from_btf(btf: &BtfIndex) -> Result<Offsets, LayoutError> {
    use Expect::{ByteArray, Pointer as Ptr, PtrArray, Scalar, Struct};
    let idr_rt = btf.member("idr", "idr_rt", Struct)?.offset;
    let ksym = btf.member("bpf_prog_aux", "ksym", Struct)?;
    let ksym_name = btf.member("bpf_ksym", "name", ByteArray)?;
    let offsets = Offsets {
        idr_rt,
        xa_head: btf.member("xarray", "xa_head", Ptr)?,
        node_shift: btf.member("xa_node", "shift", Scalar)?,
        node_slots: btf.member("xa_node", "slots", PtrArray)?,
        prog_type: btf.member("bpf_prog", "type", Scalar)?,
        prog_aux: btf.member("bpf_prog", "aux", Ptr)?,
        aux_id: btf.member("bpf_prog_aux", "id", Scalar)?,
        aux_name: btf.member("bpf_prog_aux", "name", ByteArray)?,
        aux_verified_insns: btf.member("bpf_prog_aux", "verified_insns", Scalar)?,
        aux_ksym_name: Field::new(ksym.offset + ksym_name.offset, ksym_name.size),
    };
    let slots = offsets.node_slots.size / 8;
    if !(2..=256).contains(&slots) || !slots.is_power_of_two() {
        return Err(LayoutError::BadMember {
            strukt: "xa_node".into(),
            member: "slots".into(),
            reason: format!("{slots} slots is not a power of two in 2..=256"),
        });
    }
    Ok(offsets)
}

/// The globals, from `.symtab`. Locals count too: `prog_idr` is `static`.
fn symbols_of(elf: &object::File<'_>) -> Result<Symbols, LayoutError> {
    const WANTED: [&str; 10] = [
        "prog_idr",
        "page_offset_base",
        "phys_base",
        "init_top_pgt",
        "swapper_pg_dir",
        "__pgtable_l5_enabled",
        "pgdir_shift",
        "_text",
        "_end",
        "_stext",
    ];
    let mut found: HashMap<&'static str, Vec<u64>> = HashMap::new();
    for sym in elf.symbols() {
        let Ok(name) = sym.name() else { continue };
        if let Some(w) = WANTED.iter().find(|w| **w == name) {
            let addrs = found.entry(w).or_default();
            if !addrs.contains(&sym.address()) {
                addrs.push(sym.address());
            }
        }
    }
    let get = |name: &'static str| -> Result<Option<u64>, LayoutError> {
        match found.get(name).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([addr]) => Ok(Some(*addr)),
            Some(many) => Err(LayoutError::AmbiguousSymbol {
                name,
                count: many.len(),
            }),
        }
    };
    let need = |name: &'static str| get(name)?.ok_or(LayoutError::MissingSymbol(name));
    let top_pgt = match get("init_top_pgt")? {
        Some(addr) => addr,
        None => need("swapper_pg_dir")?,
    };
    let image_start = match get("_text")? {
        Some(addr) => addr,
        None => need("_stext")?,
    };
    Ok(Symbols {
        prog_idr: need("prog_idr")?,
        page_offset_base: need("page_offset_base")?,
        phys_base: need("phys_base")?,
        top_pgt,
        pgtable_l5_enabled: get("__pgtable_l5_enabled")?,
        pgdir_shift: get("pgdir_shift")?,
        image_start,
        image_end: need("_end")?,
    })
}
