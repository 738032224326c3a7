//! Reading kernel state (the loaded BPF programs) straight out of guest memory.

use std::path::PathBuf;

use ktstr_domain::verifier_log::prog::ProgStat;
use thiserror::Error;

use crate::BoxError;

use crate::kernel_cache::KernelArtifact;
use crate::memory::GuestMemory;

#[derive(Debug, Error)]
pub enum IntrospectionError {
    /// The kernel's symbols or types could not be read.
    #[error("host-side introspection: kernel {}", .vmlinux.display())]
    Kernel {
        vmlinux: PathBuf,
        #[source]
        source: BoxError,
    },
    /// Guest memory did not hold a readable program registry.
    #[error("host-side introspection: reading the guest's BPF programs")]
    Guest(#[source] BoxError),
}

#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait KernelIntrospection: Send + Sync {
    /// Every BPF program loaded in the guest at the time `memory` was captured.
    fn read_programs(
        &self,
        kernel: &KernelArtifact,
        memory: &dyn GuestMemory,
    ) -> Result<Vec<ProgStat>, IntrospectionError>;
}
