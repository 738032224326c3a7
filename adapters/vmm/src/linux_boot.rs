//! Loading Linux: the kernel through `linux-loader`, the command line, the initramfs near
//! the top of low RAM, and the memory map from the domain's `RamMap`. An ELF `vmlinux`
//! with a PVH note is entered through the PVH direct boot ABI (a start info, no
//! decompression, no zero page); a `bzImage`, or a `vmlinux` built without `CONFIG_PVH`,
//! through the 64-bit boot protocol and a zero page.

use std::fs::File;
use std::path::{Path, PathBuf};

use ktstr_domain::shape::ram_map::RamMap;
use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::elf::PvhBootCapability;
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::{BzImage, Cmdline, Elf, KernelLoader, load_cmdline};
use thiserror::Error;
use vm_memory::{ByteValued, Bytes, GuestAddress, GuestMemoryMmap};

use crate::acpi::RSDP_ADDR;
use crate::x86::{BootEntry, write_boot_tables, write_pvh_tables};

/// The zero page (`struct boot_params`).
pub const ZERO_PAGE: u64 = 0x7000;
/// The stack the kernel's entry code starts on, below the zero page.
pub const BOOT_STACK: u64 = 0x6ff0;
/// The command line, and the most of it the kernel reads.
pub const CMDLINE_ADDR: u64 = 0x20000;
pub const CMDLINE_MAX: usize = 4096;
/// The PVH start info, its module list (the initramfs) and its memory map, below the
/// zero page (only one of the two protocols is used per boot).
pub const START_INFO: u64 = 0x6000;
const PVH_MODLIST: u64 = 0x6040;
const PVH_MEMMAP: u64 = 0x6080;
// One module entry (32 bytes) fits between the list and the map.
const _: () = assert!(PVH_MODLIST + 32 <= PVH_MEMMAP);
/// `hvm_start_info.magic` (the ABI's "xEn3" with the top bit set).
const PVH_MAGIC: u32 = 0x336e_c578;
/// The start info version with the memory map fields.
const PVH_VERSION: u32 = 1;
/// The kernel is loaded at or above 1 MiB; below that is the real-mode world.
const HIMEM_START: u64 = 0x10_0000;
/// Where the legacy BIOS data and option ROMs start: not RAM for the guest.
const EBDA_START: u64 = 0x9fc00;
const E820_RAM: u32 = 1;
const KERNEL_BOOT_FLAG: u16 = 0xaa55;
/// "HdrS".
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
/// `type_of_loader` for a loader without an assigned id.
const UNDEFINED_LOADER: u8 = 0xff;
const KERNEL_ALIGNMENT: u32 = 0x0100_0000;
/// `loadflags`: the kernel was loaded high, above 1 MiB.
const LOADED_HIGH: u8 = 1;
/// The 64-bit entry of a bzImage's protected-mode kernel, past its 32-bit one.
const BZIMAGE_64BIT_ENTRY: u64 = 0x200;

#[derive(Debug, Error)]
pub enum BootError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is neither an ELF vmlinux nor a bzImage: {reason}")]
    Kernel { path: PathBuf, reason: String },
    #[error("the kernel command line is invalid or longer than {CMDLINE_MAX} bytes: {0}")]
    Cmdline(String),
    #[error("the initramfs ({bytes} bytes) does not fit below the kernel's end in low RAM")]
    InitramfsTooLarge { bytes: u64 },
    #[error("writing boot data into guest memory: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
    #[error("writing the PVH start info: {0}")]
    StartInfo(String),
}

/// What to boot.
#[derive(Debug, Clone)]
pub struct LinuxImages<'a> {
    /// `vmlinux` (preferred: no in-guest decompression) or `bzImage`.
    pub kernel: &'a Path,
    pub initramfs: Option<&'a Path>,
    pub cmdline: &'a str,
}

/// `boot_params` as bytes for guest memory.
#[derive(Clone, Copy, Default)]
#[repr(transparent)]
struct ZeroPage(boot_params);

#[allow(unsafe_code)]
// SAFETY: `boot_params` is plain old data (integers and arrays of them), valid for any
// bit pattern.
unsafe impl ByteValued for ZeroPage {}

/// How the kernel will be entered.
enum Protocol {
    /// The PVH ABI at this 32-bit entry.
    Pvh(u32),
    /// The 64-bit boot protocol at this entry, with the bzImage's setup header if any.
    Zero64 {
        entry: u64,
        header: Option<linux_loader::loader::bootparam::setup_header>,
    },
}

/// Loads everything into `mem` and returns the boot vCPU's entry state.
pub fn load_linux(
    mem: &GuestMemoryMmap,
    ram: &RamMap,
    images: &LinuxImages<'_>,
) -> Result<BootEntry, BootError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BootError::Read { path, source }
    };
    let mut kernel = File::open(images.kernel).map_err(read_err(images.kernel))?;
    let high = Some(GuestAddress(HIMEM_START));
    let (protocol, kernel_end) = match Elf::load(mem, None, &mut kernel, high) {
        Ok(loaded) => match loaded.pvh_boot_cap {
            PvhBootCapability::PvhEntryPresent(at) => {
                let eip = u32::try_from(at.0).map_err(|_| BootError::Kernel {
                    path: images.kernel.to_path_buf(),
                    reason: format!("its PVH entry {:#x} is above 4 GiB", at.0),
                })?;
                (Protocol::Pvh(eip), loaded.kernel_end)
            }
            _ => (
                Protocol::Zero64 {
                    entry: loaded.kernel_load.0,
                    header: None,
                },
                loaded.kernel_end,
            ),
        },
        Err(elf) => {
            let loaded =
                BzImage::load(mem, None, &mut kernel, high).map_err(|bz| BootError::Kernel {
                    path: images.kernel.to_path_buf(),
                    reason: format!("as ELF: {elf}; as bzImage: {bz}"),
                })?;
            let protocol = Protocol::Zero64 {
                entry: loaded.kernel_load.0 + BZIMAGE_64BIT_ENTRY,
                header: loaded.setup_header,
            };
            (protocol, loaded.kernel_end)
        }
    };

    let mut cmdline = Cmdline::new(CMDLINE_MAX).map_err(|e| BootError::Cmdline(e.to_string()))?;
    cmdline
        .insert_str(images.cmdline)
        .map_err(|e| BootError::Cmdline(e.to_string()))?;
    load_cmdline(mem, GuestAddress(CMDLINE_ADDR), &cmdline)
        .map_err(|e| BootError::Cmdline(e.to_string()))?;
    let initramfs = match images.initramfs {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(read_err(path))?;
            let at = initramfs_address(ram, kernel_end, bytes.len() as u64)?;
            mem.write_slice(&bytes, GuestAddress(at))?;
            Some((at, bytes.len() as u64))
        }
        None => None,
    };
    match protocol {
        Protocol::Pvh(eip) => {
            write_start_info(mem, ram, images.cmdline, initramfs)?;
            Ok(write_pvh_tables(mem, eip, START_INFO as u32)?)
        }
        Protocol::Zero64 { entry, header } => {
            write_zero_page(mem, ram, images.cmdline, initramfs, header)?;
            Ok(write_boot_tables(mem, entry, BOOT_STACK, ZERO_PAGE)?)
        }
    }
}

/// The zero page of the 64-bit boot protocol.
fn write_zero_page(
    mem: &GuestMemoryMmap,
    ram: &RamMap,
    cmdline: &str,
    initramfs: Option<(u64, u64)>,
    header: Option<linux_loader::loader::bootparam::setup_header>,
) -> Result<(), BootError> {
    let mut params = boot_params::default();
    if let Some(header) = header {
        params.hdr = header;
    }
    params.hdr.type_of_loader = UNDEFINED_LOADER;
    params.hdr.boot_flag = KERNEL_BOOT_FLAG;
    params.hdr.header = KERNEL_HDR_MAGIC;
    params.hdr.kernel_alignment = KERNEL_ALIGNMENT;
    params.hdr.loadflags |= LOADED_HIGH;
    params.hdr.cmd_line_ptr = CMDLINE_ADDR as u32;
    params.hdr.cmdline_size = cmdline.len() as u32 + 1;
    if let Some((at, len)) = initramfs {
        params.hdr.ramdisk_image = at as u32;
        params.hdr.ramdisk_size = len as u32;
    }
    let e820 = e820_map(ram);
    params.e820_entries = e820.len() as u8;
    params.e820_table[..e820.len()].copy_from_slice(&e820);
    mem.write_obj(ZeroPage(params), GuestAddress(ZERO_PAGE))?;
    Ok(())
}

/// The PVH start info: command line, initramfs as the first module, the memory map and
/// the RSDP's address.
fn write_start_info(
    mem: &GuestMemoryMmap,
    ram: &RamMap,
    cmdline: &str,
    initramfs: Option<(u64, u64)>,
) -> Result<(), BootError> {
    let memmap: Vec<hvm_memmap_table_entry> = e820_map(ram)
        .iter()
        .map(|e| hvm_memmap_table_entry {
            addr: e.addr,
            size: e.size,
            type_: e.type_,
            reserved: 0,
        })
        .collect();
    let modules: Vec<hvm_modlist_entry> = initramfs
        .iter()
        .map(|&(paddr, size)| hvm_modlist_entry {
            paddr,
            size,
            ..Default::default()
        })
        .collect();
    let start_info = hvm_start_info {
        magic: PVH_MAGIC,
        version: PVH_VERSION,
        nr_modules: modules.len() as u32,
        modlist_paddr: if modules.is_empty() { 0 } else { PVH_MODLIST },
        cmdline_paddr: if cmdline.is_empty() { 0 } else { CMDLINE_ADDR },
        rsdp_paddr: RSDP_ADDR,
        memmap_paddr: PVH_MEMMAP,
        memmap_entries: memmap.len() as u32,
        ..Default::default()
    };
    let mut params = BootParams::new(&start_info, GuestAddress(START_INFO));
    params.set_sections(&memmap, GuestAddress(PVH_MEMMAP));
    if !modules.is_empty() {
        params.set_modules(&modules, GuestAddress(PVH_MODLIST));
    }
    PvhBootConfigurator::write_bootparams(&params, mem)
        .map_err(|e| BootError::StartInfo(e.to_string()))
}

/// The guest's RAM as e820 entries: low RAM minus the BIOS area, then every range the
/// `RamMap` has.
pub fn e820_map(ram: &RamMap) -> Vec<boot_e820_entry> {
    let mut out = vec![boot_e820_entry {
        addr: 0,
        size: EBDA_START,
        type_: E820_RAM,
    }];
    for range in ram.ranges() {
        let start = range.start.raw().max(HIMEM_START);
        if range.end() > start {
            out.push(boot_e820_entry {
                addr: start,
                size: range.end() - start,
                type_: E820_RAM,
            });
        }
    }
    out
}

/// The highest page-aligned address below the end of low RAM (and below 4 GiB, which
/// the 32-bit `ramdisk_image` field demands) where `len` bytes fit above the kernel.
fn initramfs_address(ram: &RamMap, kernel_end: u64, len: u64) -> Result<u64, BootError> {
    let low_end = ram.ranges().first().map_or(0, |r| r.end());
    low_end
        .checked_sub(len)
        .map(|at| at & !0xfff)
        .filter(|&at| at >= kernel_end)
        .ok_or(BootError::InitramfsTooLarge { bytes: len })
}

#[cfg(test)]
mod tests {
    use ktstr_domain::shape::ram_map::{HIGH_RAM_START, LOW_RAM_TOP};

    use super::*;

    #[test]
    fn the_e820_map_skips_the_bios_area_and_follows_the_ram_map() {
        let small: Vec<(u64, u64)> = e820_map(&RamMap::for_size(512 << 20))
            .iter()
            .map(|e| (e.addr, e.size))
            .collect();
        assert_eq!(small, [(0, 0x9fc00), (0x10_0000, (512 << 20) - 0x10_0000)]);
        let big = e820_map(&RamMap::for_size(LOW_RAM_TOP + (1 << 30)));
        assert_eq!(big.len(), 3);
        assert_eq!((big[2].addr, big[2].size), (HIGH_RAM_START, 1 << 30));
        assert!(big.iter().all(|e| e.type_ == E820_RAM));
    }

    #[test]
    fn the_initramfs_goes_page_aligned_to_the_top_of_low_ram() {
        let ram = RamMap::for_size(64 << 20);
        assert_eq!(
            initramfs_address(&ram, 0x200_0000, 0x1800).unwrap(),
            (64 << 20) - 0x2000
        );
        assert!(matches!(
            initramfs_address(&ram, 0x3f0_1000, 1 << 20),
            Err(BootError::InitramfsTooLarge { .. })
        ));
    }

    #[test]
    fn the_pvh_start_info_names_the_command_line_initramfs_memory_map_and_rsdp() {
        let ram = RamMap::for_size(64 << 20);
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        write_start_info(&mem, &ram, "console=ttyS0", Some((0x3f0_0000, 0x2000))).unwrap();
        let info: hvm_start_info = mem.read_obj(GuestAddress(START_INFO)).unwrap();
        assert_eq!((info.magic, info.version), (PVH_MAGIC, 1));
        assert_eq!(info.cmdline_paddr, CMDLINE_ADDR);
        assert_eq!(info.rsdp_paddr, RSDP_ADDR);
        assert_eq!(info.nr_modules, 1);
        let module: hvm_modlist_entry = mem.read_obj(GuestAddress(info.modlist_paddr)).unwrap();
        assert_eq!((module.paddr, module.size), (0x3f0_0000, 0x2000));
        assert_eq!(info.memmap_entries, 2);
        let high: hvm_memmap_table_entry =
            mem.read_obj(GuestAddress(info.memmap_paddr + 24)).unwrap();
        assert_eq!(
            (high.addr, high.size, high.type_),
            (0x10_0000, (64 << 20) - 0x10_0000, 1)
        );
        // The structures stay clear of the zero page and of each other.
        assert!(PVH_MEMMAP + 24 * u64::from(info.memmap_entries) <= ZERO_PAGE);
    }
}
