//! Booting one VM and collecting what it produced.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use ktstr_domain::topology::Topology;
use ktstr_domain::waits::CpuMode;
use thiserror::Error;

use crate::memory::GuestMemory;

/// Everything a backend needs to boot one cell's VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub kernel_image: PathBuf,
    pub initramfs: PathBuf,
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
    /// Backend and accelerator, e.g. `qemu (tcg)`.
    pub backend: String,
    /// The kernel console.
    pub console: String,
    /// Raw bytes of the guest's frame channel, decoded by the caller.
    pub frame_bytes: Vec<u8>,
    pub timed_out: bool,
    /// How the VM process ended when that was neither the guest's own reboot or power-off
    /// nor the watchdog (`killed by signal 9`): the environment failed, not the guest.
    pub vm_died: Option<String>,
    /// Guest RAM as it was when the VM stopped, when the backend can expose it.
    pub memory: Option<Box<dyn GuestMemory>>,
    /// Peak resident memory of the VM process, when the backend measures it.
    pub peak_rss_kib: Option<u64>,
}

impl fmt::Debug for VmRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VmRun")
            .field("backend", &self.backend)
            .field("console_len", &self.console.len())
            .field("frame_bytes", &self.frame_bytes.len())
            .field("timed_out", &self.timed_out)
            .field("vm_died", &self.vm_died)
            .field("memory", &self.memory.as_ref().map(|m| m.size()))
            .field("peak_rss_kib", &self.peak_rss_kib)
            .finish()
    }
}

#[derive(Debug, Error)]
pub enum HypervisorError {
    #[error("cannot start the VM: {0}")]
    Launch(String),
    #[error("VM I/O failed: {0}")]
    Io(String),
    #[error("the sweep was interrupted")]
    Interrupted,
}

#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Hypervisor: Send + Sync {
    /// Short backend name for messages.
    fn name(&self) -> String;
    /// Whether guest CPUs run on hardware or are emulated; sizes the cell's waits.
    fn cpu_mode(&self) -> CpuMode;
    /// Boots the VM, waits until it stops or the watchdog fires, and tears it down.
    async fn run(&self, spec: VmSpec) -> Result<VmRun, HypervisorError>;
}
