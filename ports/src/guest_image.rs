//! Packing what runs inside the VM (init, scheduler, its libraries) into an initramfs.

use std::path::PathBuf;

use async_trait::async_trait;
use ktstr_domain::plan::guest_memory::ImageFootprint;
use thiserror::Error;

use crate::BoxError;

/// What the guest init will do: run this scheduler with these arguments, then probe. The
/// cell's waits are not part of it: they reach the init on the kernel command line
/// (`ktstr_domain::protocol::init_plan::cell_cmdline`), so one image serves every cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPlan {
    pub scheduler: PathBuf,
    pub sched_args: Vec<String>,
}

/// A built initramfs and what it costs in guest RAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestImage {
    pub path: PathBuf,
    pub footprint: ImageFootprint,
}

#[derive(Debug, Error)]
#[error("cannot build the guest image")]
pub struct GuestImageError(#[source] pub BoxError);

#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait GuestImageBuilder: Send + Sync {
    /// An initramfs carrying the init and the plan's scheduler.
    async fn build(&self, plan: &GuestPlan) -> Result<GuestImage, GuestImageError>;
}
