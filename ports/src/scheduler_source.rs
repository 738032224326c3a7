//! Turning a declared scheduler into a binary on the host.

use std::path::PathBuf;

use async_trait::async_trait;
use ktstr_domain::plan::manifest::SchedulerDecl;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SchedulerSourceError {
    #[error(
        "scheduler `{name}`: binary `{path}` not found; build it or fix `binary` in the manifest"
    )]
    Missing { name: String, path: String },
    #[error("scheduler `{name}`: cannot run {cargo}")]
    Cargo {
        name: String,
        cargo: String,
        #[source]
        source: std::io::Error,
    },
    #[error("scheduler `{name}`: building package `{package}` failed: {detail}")]
    Build {
        name: String,
        package: String,
        detail: String,
    },
}

#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SchedulerSource: Send + Sync {
    /// The path of the scheduler's userspace binary, building it first when needed.
    async fn binary(&self, decl: &SchedulerDecl) -> Result<PathBuf, SchedulerSourceError>;
}
