//! Guest RAM in our own process: `vm-memory` mappings laid out by the domain's `RamMap`,
//! handed to the hypervisor slot by slot and read by the host as the guest-memory port.

use ktstr_domain::shape::ram_map::{GuestPhysAddr, RamMap};
use ktstr_ports::{GuestMemory, MemoryError};
use vm_memory::{
    Address, Bytes, GuestAddress, GuestMemory as _, GuestMemoryMmap, GuestMemoryRegion,
};

use crate::accel::{HvError, Vm};

/// The guest's RAM: anonymous private mappings, one per `RamMap` range.
#[derive(Debug)]
pub struct GuestRam {
    mem: GuestMemoryMmap,
    map: RamMap,
}

impl GuestRam {
    pub fn new(map: RamMap) -> Result<Self, HvError> {
        let ranges: Vec<(GuestAddress, usize)> = map
            .ranges()
            .iter()
            .map(|r| (GuestAddress(r.start.raw()), r.len as usize))
            .collect();
        let mem = GuestMemoryMmap::from_ranges(&ranges).map_err(|e| HvError::GuestRam {
            what: format!("mapping {} MiB of guest RAM", map.size() >> 20),
            source: Box::new(e),
        })?;
        Ok(GuestRam { mem, map })
    }

    pub fn mmap(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// KiB of guest RAM the host holds in memory: the pages the guest (or the loader)
    /// touched. This is the VM's memory cost when it runs inside ktstr's own process.
    pub fn resident_kib(&self) -> u64 {
        const PAGE: usize = 4096;
        let mut pages = 0u64;
        for region in self.mem.iter() {
            let len = region.len() as usize;
            let mut present = vec![0u8; len.div_ceil(PAGE)];
            #[allow(unsafe_code)]
            // SAFETY: the range is this region's own page-aligned mapping, and `present`
            // has one byte per page of it, as mincore(2) writes.
            let ok =
                unsafe { libc::mincore(region.as_ptr().cast(), len, present.as_mut_ptr()) == 0 };
            if ok {
                pages += present.iter().filter(|&&p| p & 1 == 1).count() as u64;
            }
        }
        pages * (PAGE as u64 / 1024)
    }

    /// Gives every range to `vm` as a memory slot.
    pub fn register(&self, vm: &dyn Vm) -> Result<(), HvError> {
        for (slot, region) in self.mem.iter().enumerate() {
            let host = region
                .get_host_address(vm_memory::MemoryRegionAddress(0))
                .map_err(|e| HvError::GuestRam {
                    what: "locating guest RAM".into(),
                    source: Box::new(e),
                })?;
            #[allow(unsafe_code)]
            // SAFETY: the mapping belongs to `self.mem`, which the machine keeps until the
            // VM and its vCPUs are gone.
            unsafe {
                vm.map_ram(
                    slot as u32,
                    region.start_addr().raw_value(),
                    region.len(),
                    host as u64,
                )?;
            }
        }
        Ok(())
    }
}

impl GuestMemory for GuestRam {
    fn ram_map(&self) -> &RamMap {
        &self.map
    }

    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), MemoryError> {
        let len = buf.len() as u64;
        let out_of_range = || MemoryError::OutOfRange {
            gpa,
            len,
            end: self.map.end(),
        };
        // The map says whether all of it is RAM of one range; vm-memory reads it.
        self.map.offset_of(gpa, len).ok_or_else(out_of_range)?;
        self.mem
            .read_slice(buf, GuestAddress(gpa.raw()))
            .map_err(|_| out_of_range())
    }
}

#[cfg(test)]
mod tests {
    use ktstr_domain::shape::ram_map::{HIGH_RAM_START, LOW_RAM_TOP};

    use super::*;

    #[test]
    fn ram_past_the_hole_lives_at_4_gib_and_the_hole_is_not_ram() {
        let ram = GuestRam::new(RamMap::for_size(LOW_RAM_TOP + (64 << 20))).unwrap();
        ram.mmap()
            .write_slice(b"high", GuestAddress(HIGH_RAM_START))
            .unwrap();
        let mut buf = [0u8; 4];
        ram.read(GuestPhysAddr(HIGH_RAM_START), &mut buf).unwrap();
        assert_eq!(&buf, b"high");
        assert!(ram.read(GuestPhysAddr(LOW_RAM_TOP), &mut buf).is_err());
        assert!(ram.read(GuestPhysAddr(LOW_RAM_TOP - 2), &mut buf).is_err());
    }

    #[test]
    fn resident_memory_counts_the_pages_written_not_the_size() {
        let ram = GuestRam::new(RamMap::for_size(64 << 20)).unwrap();
        assert_eq!(ram.resident_kib(), 0, "a fresh mapping costs nothing");
        ram.mmap()
            .write_slice(&[1u8; 3 * 4096], GuestAddress(1 << 20))
            .unwrap();
        assert_eq!(ram.resident_kib(), 12);
    }
}
