//! What the judge is shown: the backend's facts of one VM, the host's reading of the
//! guest's programs, and everything known about a cell when it is judged.

use serde::{Deserialize, Serialize};

use crate::plan::guest_memory::GuestMemorySize;
use crate::plan::waits::CellWaits;
use crate::verifier_log::prog::ProgStat;

/// What the backend saw of one VM's life, apart from the guest's own words. The
/// `Hypervisor` port returns it; the record keeps it as it came.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VmFacts {
    /// Backend and accelerator, e.g. `qemu (tcg)`.
    pub backend: String,
    /// The host watchdog stopped the VM.
    pub timed_out: bool,
    /// How the VM process ended when that was neither the guest's own reboot or power-off
    /// nor the watchdog (`killed by signal 9`): the environment failed, not the guest.
    pub vm_died: Option<String>,
    /// Why the host stopped a guest that wrote past a serial line's limit, when it did.
    #[serde(default)]
    pub flooded: Option<String>,
    /// Host memory the VM held at its peak, when the backend measures it.
    pub peak_rss_kib: Option<u64>,
    /// VM start to the guest init's first frame, as the host measured it.
    #[serde(default)]
    pub init_after_ms: Option<u64>,
}

/// The host's own reading of the guest's programs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostReading {
    /// No introspection for this backend or run: the guest's report stands alone.
    NotRead,
    Programs(Vec<ProgStat>),
    /// The read failed, with why.
    Failed(String),
}

/// What a VM left behind, raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEvidence {
    pub vm: VmFacts,
    pub memory: GuestMemorySize,
    pub waits: CellWaits,
    /// The whole kernel console.
    pub console: String,
    /// The frame channel's bytes.
    pub frame_bytes: Vec<u8>,
    pub host: HostReading,
}

/// Everything known about one cell when it is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellEvidence {
    /// The kernel lacks options ktstr needs: never booted.
    KernelLacks {
        kernel: String,
        missing: Vec<String>,
    },
    /// The scheduler binary or its guest image could not be prepared.
    ImageFailed {
        scheduler: String,
        reason: String,
    },
    /// The backend could not start the VM.
    VmStartFailed {
        reason: String,
    },
    Ran(Box<RunEvidence>),
}
