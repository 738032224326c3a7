//! What can go wrong parsing a vmlinux or walking guest memory. Every failure is a value:
//! a hostile guest ends here, never in a panic.

use std::path::PathBuf;

use thiserror::Error;

/// Why a vmlinux could not be turned into a [`crate::Layout`].
#[derive(Debug, Error)]
pub enum LayoutError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable ELF file: {reason}")]
    Elf { path: PathBuf, reason: String },
    #[error("{path} has no .BTF section (build the kernel with CONFIG_DEBUG_INFO_BTF=y)")]
    NoBtf { path: PathBuf },
    #[error("parsing the .BTF of {path}: {reason}")]
    Btf { path: PathBuf, reason: String },
    #[error("symbol `{0}` is missing from vmlinux's symbol table")]
    MissingSymbol(&'static str),
    #[error("symbol `{name}` is defined {count} times with different addresses")]
    AmbiguousSymbol { name: &'static str, count: usize },
    #[error("BTF has no struct `{0}`")]
    MissingStruct(String),
    #[error("BTF struct `{strukt}` has no member `{member}`")]
    MissingMember { strukt: String, member: String },
    #[error("BTF member `{strukt}.{member}` is unusable: {reason}")]
    BadMember {
        strukt: String,
        member: String,
        reason: String,
    },
}

/// Why the program registry could not be read out of one guest's memory.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WalkError {
    #[error("guest memory read of {len:#x} bytes at physical {gpa:#x} failed: {reason}")]
    Memory { gpa: u64, len: u64, reason: String },
    #[error("virtual address {vaddr:#x} is not mapped ({reason})")]
    Unmapped { vaddr: u64, reason: String },
    #[error("inconsistent paging state: {0}")]
    Paging(String),
    #[error("corrupt program registry: {0}")]
    Registry(String),
    #[error("more than {limit} {what}; refusing to go on (corrupt or hostile guest?)")]
    TooMany { what: &'static str, limit: usize },
}
