//! Reading kernel state (the loaded BPF programs) straight out of guest memory.

use ktstr_domain::prog::ProgStat;
use thiserror::Error;

use crate::kernel_cache::KernelArtifact;
use crate::memory::GuestMemory;

#[derive(Debug, Error)]
#[error("host-side introspection failed: {0}")]
pub struct IntrospectionError(pub String);

#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait KernelIntrospection: Send + Sync {
    /// Every BPF program loaded in the guest at the time `memory` was captured.
    fn read_programs(
        &self,
        kernel: &KernelArtifact,
        memory: &dyn GuestMemory,
    ) -> Result<Vec<ProgStat>, IntrospectionError>;
}
