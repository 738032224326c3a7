//! Guest physical memory, readable by the host after (or while) a VM runs.

use ktstr_domain::shape::ram_map::{GuestPhysAddr, RamMap};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum MemoryError {
    #[error("guest physical range {gpa}+{len:#x} is not guest RAM (RAM ends at {end})")]
    OutOfRange {
        gpa: GuestPhysAddr,
        len: u64,
        end: GuestPhysAddr,
    },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("guest RAM is {found:#x} bytes but its map describes {expected:#x}")]
    SizeMismatch { found: u64, expected: u64 },
}

/// The contract: reads are by guest-physical address, RAM lies where [`RamMap`] says
/// (below the PCI hole and from 4 GiB up), and nothing outside it is readable.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait GuestMemory: Send + Sync {
    /// Where the guest's RAM lies in its physical address space.
    fn ram_map(&self) -> &RamMap;
    /// Fills `buf` from guest-physical address `gpa`.
    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), MemoryError>;
}
