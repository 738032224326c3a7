//! Guest RAM as the host sees it after the VM stopped: QEMU's shared backing files (one
//! memfd per NUMA node, concatenated they are the guest's RAM in order), mapped read-only
//! and addressed through the [`RamMap`] QEMU was told to use. The memory is freed when
//! this is dropped.

use ktstr_domain::shape::ram_map::{GuestPhysAddr, RamMap};
use ktstr_ports::{GuestMemory, MemoryError};
use memmap2::Mmap;

use crate::mem_file::MemFile;

#[derive(Debug)]
pub struct ShmGuestMemory {
    maps: Vec<Mmap>,
    ram_map: RamMap,
    // Held until the maps are gone: the last descriptor frees the RAM.
    _files: Vec<MemFile>,
}

impl ShmGuestMemory {
    /// Maps `files`, whose sizes together must be what `ram_map` describes.
    pub fn open(files: Vec<MemFile>, ram_map: RamMap) -> Result<Self, MemoryError> {
        let mut maps = Vec::with_capacity(files.len());
        for file in &files {
            #[allow(unsafe_code)]
            // SAFETY: QEMU has exited and the memfd is private to this run (no name on
            // disk, no other descriptor), so nothing truncates or writes it while mapped.
            let map = unsafe { Mmap::map(file.file()) }.map_err(|source| MemoryError::Io {
                what: format!("mapping {}", file.path().display()),
                source,
            })?;
            maps.push(map);
        }
        let found: u64 = maps.iter().map(|m| m.len() as u64).sum();
        if found != ram_map.size() {
            return Err(MemoryError::SizeMismatch {
                found,
                expected: ram_map.size(),
            });
        }
        Ok(ShmGuestMemory {
            maps,
            ram_map,
            _files: files,
        })
    }
}

impl GuestMemory for ShmGuestMemory {
    fn ram_map(&self) -> &RamMap {
        &self.ram_map
    }

    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), MemoryError> {
        let len = buf.len() as u64;
        let offset = self
            .ram_map
            .offset_of(gpa, len)
            .ok_or(MemoryError::OutOfRange {
                gpa,
                len,
                end: self.ram_map.end(),
            })?;
        // Walk the nodes' files; a read may straddle two of them.
        let mut base = 0u64;
        let mut done = 0usize;
        for map in &self.maps {
            let map_len = map.len() as u64;
            let at = offset + done as u64;
            if done < buf.len() && at < base + map_len {
                let start = (at - base) as usize;
                let n = (buf.len() - done).min(map.len() - start);
                buf[done..done + n].copy_from_slice(&map[start..start + n]);
                done += n;
            }
            base += map_len;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use ktstr_domain::shape::ram_map::{HIGH_RAM_START, LOW_RAM_TOP};

    use super::*;

    /// A memfd holding `bytes`.
    fn mem_file(bytes: &[u8]) -> MemFile {
        let file = MemFile::create("ram").unwrap();
        file.file().write_all_at(bytes, 0).unwrap();
        file
    }

    #[test]
    fn reads_across_node_files() {
        let mem = ShmGuestMemory::open(
            vec![mem_file(&[1, 2, 3, 4]), mem_file(&[5, 6])],
            RamMap::for_size(6),
        )
        .unwrap();
        let mut buf = [0u8; 4];
        mem.read(GuestPhysAddr(2), &mut buf).unwrap();
        assert_eq!(buf, [3, 4, 5, 6]);
        let err = mem.read(GuestPhysAddr(4), &mut buf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "guest physical range 0x4+0x4 is not guest RAM (RAM ends at 0x6)"
        );
        assert!(mem.read(GuestPhysAddr(u64::MAX), &mut buf).is_err());
    }

    /// A 4.5 GiB guest on two nodes: 3 GiB below the hole, the rest from 4 GiB, and the
    /// second node's file starting inside the high range.
    #[test]
    fn ram_above_the_pci_hole_is_read_at_its_guest_physical_address() {
        const MIB: u64 = 1 << 20;
        let node = |mib: u64, marks: &[(u64, &[u8])]| {
            let file = MemFile::create("node").unwrap();
            file.file().set_len(mib * MIB).unwrap(); // sparse: costs nothing
            for (at, bytes) in marks {
                file.file().write_all_at(bytes, *at).unwrap();
            }
            file
        };
        let node0 = node(2304, &[(0, b"n0-0")]);
        // Node 1's file offset of a byte `ram_offset` into the guest's RAM.
        let node1_at = |ram_offset: u64| ram_offset - 2304 * MIB;
        let node1 = node(
            2304,
            &[
                (0, b"n1-0"),
                (node1_at(LOW_RAM_TOP - 4), b"low!"),
                (node1_at(LOW_RAM_TOP), b"HIGH"),
            ],
        );
        let mem = ShmGuestMemory::open(vec![node0, node1], RamMap::for_size(4608 * MIB)).unwrap();
        let read = |gpa: u64| {
            let mut buf = [0u8; 4];
            mem.read(GuestPhysAddr(gpa), &mut buf).map(|()| buf)
        };
        assert_eq!(&read(0).unwrap(), b"n0-0");
        assert_eq!(
            &read(2304 * MIB).unwrap(),
            b"n1-0",
            "node 1 starts below the hole"
        );
        assert_eq!(&read(LOW_RAM_TOP - 4).unwrap(), b"low!");
        assert_eq!(
            &read(HIGH_RAM_START).unwrap(),
            b"HIGH",
            "RAM resumes at 4 GiB"
        );
        assert!(read(LOW_RAM_TOP).is_err(), "the hole is not RAM");
        assert!(read(LOW_RAM_TOP - 2).is_err(), "no read spans the hole");
        assert_eq!(read(HIGH_RAM_START + 1536 * MIB - 4).unwrap(), [0; 4]);
        assert!(read(HIGH_RAM_START + 1536 * MIB - 2).is_err());
    }
}
