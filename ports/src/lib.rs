//! The traits ktstr's use cases talk through. Adapters implement them; the domain never
//! sees them. With the `mocks` feature every trait gets a `mockall` mock for tests.

/// A cause of any kind, kept as the `source` of a port error so that the chain reaches the
/// user intact.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub mod guest_image;
pub mod hypervisor;
pub mod introspection;
pub mod kernel_cache;
pub mod memory;
pub mod reporter;
pub mod scheduler_source;

pub use guest_image::{GuestImage, GuestImageBuilder, GuestImageError, GuestPlan};
pub use hypervisor::{Hypervisor, HypervisorError, VmRun, VmSpec};
pub use introspection::{IntrospectionError, KernelIntrospection};
pub use kernel_cache::{KernelArtifact, KernelCache, KernelCacheError};
pub use memory::{GuestMemory, MemoryError};
pub use reporter::{ReportError, Reporter};
pub use scheduler_source::{SchedulerSource, SchedulerSourceError};

#[cfg(feature = "mocks")]
pub use guest_image::MockGuestImageBuilder;
#[cfg(feature = "mocks")]
pub use hypervisor::MockHypervisor;
#[cfg(feature = "mocks")]
pub use introspection::MockKernelIntrospection;
#[cfg(feature = "mocks")]
pub use kernel_cache::MockKernelCache;
#[cfg(feature = "mocks")]
pub use memory::MockGuestMemory;
#[cfg(feature = "mocks")]
pub use reporter::MockReporter;
#[cfg(feature = "mocks")]
pub use scheduler_source::MockSchedulerSource;
