//! Guest physical memory, readable by the host after (or while) a VM runs.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum MemoryError {
    #[error("guest physical range {gpa:#x}+{len:#x} is outside guest memory ({size:#x} bytes)")]
    OutOfRange { gpa: u64, len: u64, size: u64 },
    #[error("reading guest memory: {0}")]
    Io(String),
}

#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait GuestMemory: Send + Sync {
    /// Bytes of guest RAM, starting at guest physical address 0.
    fn size(&self) -> u64;
    /// Fills `buf` from guest physical address `gpa`.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError>;
}
