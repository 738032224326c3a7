//! Packing what runs inside the VM (init, scheduler, its libraries) into an initramfs.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use thiserror::Error;

/// What the guest init will do: run this scheduler with these arguments, then probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPlan {
    pub scheduler: PathBuf,
    pub sched_args: Vec<String>,
    /// How long the init waits for sched_ext to reach `enabled`.
    pub attach_timeout: Duration,
    /// How long the dispatch probe's workers run.
    pub probe_duration: Duration,
}

#[derive(Debug, Error)]
#[error("cannot build the guest image: {0}")]
pub struct GuestImageError(pub String);

#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait GuestImageBuilder: Send + Sync {
    /// An initramfs carrying the init and the plan's scheduler.
    async fn build(&self, plan: &GuestPlan) -> Result<PathBuf, GuestImageError>;
}
