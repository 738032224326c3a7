//! Turning kernel specs into bootable kernel artifacts.

use std::path::PathBuf;

use async_trait::async_trait;
use ktstr_domain::kernel::spec::{KernelLabel, KernelSpec};
use thiserror::Error;

use crate::BoxError;

/// A kernel ready to boot, with what introspection needs beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelArtifact {
    pub label: KernelLabel,
    /// What `--kernel` takes to name exactly this kernel again (its cache key, or its
    /// absolute path): the repro line of a failing cell uses it.
    pub rerun_spec: String,
    pub image: PathBuf,
    /// The uncompressed kernel with symbols and `.BTF`.
    pub vmlinux: PathBuf,
    /// Required config options this kernel lacks (see `ktstr_domain::kernel::kconfig`); a kernel
    /// with any is never booted.
    pub missing_options: Vec<String>,
}

#[derive(Debug, Error)]
pub enum KernelCacheError {
    #[error("no kernel matches `{spec}`: {hint}")]
    NotFound { spec: String, hint: String },
    #[error("no kernel given and none cached: {hint}")]
    NoDefault { hint: String },
    #[error("kernel `{spec}` is unusable: {reason}")]
    Unusable { spec: String, reason: String },
    #[error("kernel cache: {what}")]
    Io {
        what: String,
        #[source]
        source: BoxError,
    },
}

#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait KernelCache: Send + Sync {
    /// Resolves the `--kernel` specs (empty: the default kernel) to artifacts.
    async fn resolve(&self, specs: &[KernelSpec]) -> Result<Vec<KernelArtifact>, KernelCacheError>;
}
