//! Booting one VM and collecting what it produced.
//!
//! The contract between a backend and the guest. What the guest sends, and in which
//! order, is `ktstr_domain::protocol`; what a backend promises is here:
//! - The backend names the guest devices that carry the kernel console and the frame
//!   channel ([`GuestChannels`]); the use case puts both on the kernel command line
//!   (`console=`, `ktstr.frames=`), so one initramfs serves every backend.
//! - The guest's reboot or power-off ends the run: `run` returns once the VM stops.
//! - Dropping the future `run` returned tears the VM down on every path: no process,
//!   thread, file descriptor, file or mapping of it is left behind.
//! - Guest RAM is handed back as [`GuestMemory`], read by guest-physical address.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use ktstr_domain::judging::evidence::VmFacts;
use ktstr_domain::plan::waits::CpuMode;
use ktstr_domain::protocol::init_plan::GuestChannels;
use ktstr_domain::shape::topology::Topology;
use thiserror::Error;

use crate::memory::{GuestMemory, MemoryError};

/// Everything a backend needs to boot one cell's VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub kernel_image: PathBuf,
    /// The same kernel as an uncompressed ELF, for a backend that loads the kernel itself
    /// (no in-guest decompression); others boot `kernel_image`.
    pub vmlinux: Option<PathBuf>,
    pub initramfs: PathBuf,
    /// The whole kernel command line, the console and frame channel included.
    pub cmdline: String,
    pub topology: Topology,
    pub memory_mib: u32,
    /// The host watchdog: when the guest says nothing new on its frame channel for this
    /// long (or runs past a few times it in all), the VM is killed and the run marked
    /// timed out.
    pub timeout: Duration,
}

/// What a finished VM left behind.
pub struct VmRun {
    /// What the backend saw of the VM: backend name, watchdog, how it died, flooding, its
    /// peak host memory (the VM process's high-water resident set for a backend that runs
    /// one, the guest RAM it touched for one inside ktstr's own process), and VM start to
    /// the guest's first frame (its init's hello), to the backend's sampling period. The
    /// record keeps these as they come.
    pub facts: VmFacts,
    /// The kernel console.
    pub console: String,
    /// Raw bytes of the guest's frame channel, decoded by the caller.
    pub frame_bytes: Vec<u8>,
    /// Guest RAM as it was when the VM stopped, when the backend can expose it.
    pub memory: Option<Box<dyn GuestMemory>>,
}

impl fmt::Debug for VmRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VmRun")
            .field("facts", &self.facts)
            .field("console_len", &self.console.len())
            .field("frame_bytes", &self.frame_bytes.len())
            .field("memory", &self.memory.as_ref().map(|m| m.ram_map().size()))
            .finish()
    }
}

#[derive(Debug, Error)]
pub enum HypervisorError {
    /// The backend process or thread could not be started.
    #[error("cannot start {what}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The backend started, then refused the VM before the guest ran (bad configuration,
    /// missing firmware), in its own words.
    #[error("the VM did not start: {0}")]
    Refused(String),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("exposing guest memory to the host")]
    Memory(#[source] MemoryError),
    /// The backend's own machinery failed (the own VMM's accelerator), with its typed
    /// error as the source.
    #[error("{what}")]
    Backend {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Hypervisor: Send + Sync {
    /// Short backend name for messages.
    fn name(&self) -> String;
    /// Whether guest CPUs run on hardware or are emulated; sizes the cell's waits.
    fn cpu_mode(&self) -> CpuMode;
    /// The devices that carry the console and the frame channel inside the guest.
    fn guest_channels(&self) -> GuestChannels;
    /// Boots the VM, waits until the guest reboots or powers off or the watchdog fires,
    /// and tears it down. `spec.cmdline` is the whole kernel command line.
    async fn run(&self, spec: VmSpec) -> Result<VmRun, HypervisorError>;
}
