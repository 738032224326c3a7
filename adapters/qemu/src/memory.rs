//! Guest RAM as the host sees it after the VM stopped: QEMU's shared backing files,
//! mapped read-only. The files are removed when this is dropped.

use std::fs::{self, File};
use std::path::PathBuf;

use ktstr_ports::{GuestMemory, MemoryError};
use memmap2::Mmap;

/// Deletes the backing files on drop, whether or not they were ever mapped.
#[derive(Debug, Default)]
pub struct RamFiles {
    pub paths: Vec<PathBuf>,
}

impl Drop for RamFiles {
    fn drop(&mut self) {
        for path in &self.paths {
            let _ = fs::remove_file(path);
        }
    }
}

/// The nodes' RAM, concatenated in node order from guest physical address 0.
#[derive(Debug)]
pub struct ShmGuestMemory {
    maps: Vec<Mmap>,
    size: u64,
    // Dropped after the maps: unlinking a mapped file is fine, but keep the order obvious.
    _files: RamFiles,
}

impl ShmGuestMemory {
    pub fn open(files: RamFiles) -> Result<Self, MemoryError> {
        let mut maps = Vec::with_capacity(files.paths.len());
        for path in &files.paths {
            let file = File::open(path)
                .map_err(|e| MemoryError::Io(format!("{}: {e}", path.display())))?;
            #[allow(unsafe_code)]
            // SAFETY: QEMU has exited and the file is private to this run (a unique name
            // under /dev/shm that only we delete), so nothing truncates or writes it while
            // it is mapped.
            let map = unsafe { Mmap::map(&file) }
                .map_err(|e| MemoryError::Io(format!("mapping {}: {e}", path.display())))?;
            maps.push(map);
        }
        let size = maps.iter().map(|m| m.len() as u64).sum();
        Ok(ShmGuestMemory {
            maps,
            size,
            _files: files,
        })
    }
}

impl GuestMemory for ShmGuestMemory {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let out_of_range = || MemoryError::OutOfRange {
            gpa,
            len: buf.len() as u64,
            size: self.size,
        };
        let end = gpa.checked_add(buf.len() as u64).ok_or_else(out_of_range)?;
        if end > self.size {
            return Err(out_of_range());
        }
        // Walk the nodes' maps; a read may straddle two of them.
        let mut base = 0u64;
        let mut done = 0usize;
        for map in &self.maps {
            let len = map.len() as u64;
            let at = gpa + done as u64;
            if done < buf.len() && at < base + len {
                let offset = (at - base) as usize;
                let n = (buf.len() - done).min(map.len() - offset);
                buf[done..done + n].copy_from_slice(&map[offset..offset + n]);
                done += n;
            }
            base += len;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_across_node_files_and_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::write(&a, [1u8, 2, 3, 4]).unwrap();
        fs::write(&b, [5u8, 6]).unwrap();
        let mem = ShmGuestMemory::open(RamFiles {
            paths: vec![a.clone(), b.clone()],
        })
        .unwrap();
        assert_eq!(mem.size(), 6);
        let mut buf = [0u8; 4];
        mem.read(2, &mut buf).unwrap();
        assert_eq!(buf, [3, 4, 5, 6]);
        assert!(matches!(
            mem.read(4, &mut buf),
            Err(MemoryError::OutOfRange {
                gpa: 4,
                len: 4,
                size: 6
            })
        ));
        assert!(mem.read(u64::MAX, &mut buf).is_err());
        drop(mem);
        assert!(!a.exists() && !b.exists());
    }
}
