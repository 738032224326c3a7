//! Loading Linux the way its 64-bit boot protocol wants it: the kernel (the uncompressed
//! ELF `vmlinux`, or a `bzImage`) through `linux-loader`, the command line, the initramfs
//! near the top of low RAM, and a zero page whose e820 map is the domain's `RamMap`.

use std::fs::File;
use std::path::{Path, PathBuf};

use ktstr_domain::ram_map::RamMap;
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::{BzImage, Cmdline, Elf, KernelLoader, load_cmdline};
use thiserror::Error;
use vm_memory::{ByteValued, Bytes, GuestAddress, GuestMemoryMmap};

use crate::x86::{LongModeEntry, write_boot_tables};

/// The zero page (`struct boot_params`).
pub const ZERO_PAGE: u64 = 0x7000;
/// The stack the kernel's entry code starts on, below the zero page.
pub const BOOT_STACK: u64 = 0x6ff0;
/// The command line, and the most of it the kernel reads.
pub const CMDLINE_ADDR: u64 = 0x20000;
pub const CMDLINE_MAX: usize = 4096;
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

/// Loads everything into `mem` and returns the vCPU's entry state.
pub fn load_linux(
    mem: &GuestMemoryMmap,
    ram: &RamMap,
    images: &LinuxImages<'_>,
) -> Result<LongModeEntry, BootError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BootError::Read { path, source }
    };
    let mut kernel = File::open(images.kernel).map_err(read_err(images.kernel))?;
    let high = Some(GuestAddress(HIMEM_START));
    let (entry, kernel_end, header) = match Elf::load(mem, None, &mut kernel, high) {
        Ok(loaded) => (loaded.kernel_load.0, loaded.kernel_end, None),
        Err(elf) => {
            let loaded =
                BzImage::load(mem, None, &mut kernel, high).map_err(|bz| BootError::Kernel {
                    path: images.kernel.to_path_buf(),
                    reason: format!("as ELF: {elf}; as bzImage: {bz}"),
                })?;
            let entry = loaded.kernel_load.0 + BZIMAGE_64BIT_ENTRY;
            (entry, loaded.kernel_end, loaded.setup_header)
        }
    };

    let mut cmdline = Cmdline::new(CMDLINE_MAX).map_err(|e| BootError::Cmdline(e.to_string()))?;
    cmdline
        .insert_str(images.cmdline)
        .map_err(|e| BootError::Cmdline(e.to_string()))?;
    load_cmdline(mem, GuestAddress(CMDLINE_ADDR), &cmdline)
        .map_err(|e| BootError::Cmdline(e.to_string()))?;

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
    params.hdr.cmdline_size = images.cmdline.len() as u32 + 1;
    if let Some(path) = images.initramfs {
        let bytes = std::fs::read(path).map_err(read_err(path))?;
        let at = initramfs_address(ram, kernel_end, bytes.len() as u64)?;
        mem.write_slice(&bytes, GuestAddress(at))?;
        params.hdr.ramdisk_image = at as u32;
        params.hdr.ramdisk_size = bytes.len() as u32;
    }
    let e820 = e820_map(ram);
    params.e820_entries = e820.len() as u8;
    params.e820_table[..e820.len()].copy_from_slice(&e820);
    mem.write_obj(ZeroPage(params), GuestAddress(ZERO_PAGE))?;

    Ok(write_boot_tables(mem, entry, BOOT_STACK, ZERO_PAGE)?)
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
    use ktstr_domain::ram_map::{HIGH_RAM_START, LOW_RAM_TOP};

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
}
