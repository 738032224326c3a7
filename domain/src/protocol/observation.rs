//! What the guest observed, as it sends it: its look at sched_ext and the scheduler
//! process, its probe workers, its attach wait running out, the kernel's log records. Plain
//! values; what they mean is decided in `judging`.

use serde::{Deserialize, Serialize};

/// One kernel log record as `/dev/kmsg` gives it: microseconds since boot and the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelRecord {
    pub usec: u64,
    pub text: String,
}

/// One look at `/sys/kernel/sched_ext` and the scheduler process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScxSample {
    /// The guest's uptime when it looked.
    pub uptime_ms: u64,
    /// `enabled`, `disabled`, ...; empty when unreadable.
    pub state: String,
    /// Bumped by the kernel on every successful enable; `None` when unreadable.
    pub enable_seq: Option<u64>,
    pub scheduler_alive: bool,
}

impl ScxSample {
    /// A look at sched_ext in `state` with `enable_seq`, the scheduler alive. Test support.
    #[cfg(any(test, feature = "test-support"))]
    pub fn alive(state: &str, enable_seq: u64) -> Self {
        ScxSample {
            uptime_ms: 2000,
            state: state.into(),
            enable_seq: Some(enable_seq),
            scheduler_alive: true,
        }
    }
}

/// The guest's view at the moment its attach wait expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachExpiry {
    /// How long the guest waited.
    pub waited_ms: u64,
    /// `/sys/kernel/sched_ext/state` then; empty when unreadable.
    pub state: String,
    /// BPF programs loaded in the guest (only the scheduler loads any); `None` when they
    /// could not be listed.
    pub programs: Option<u32>,
    /// The scheduler process's state letter from `/proc/<pid>/stat` (`R`, `S`, `D`, ...).
    pub process_state: Option<char>,
    /// CPU time the scheduler process had used.
    pub cpu_ms: u64,
}

/// One probe worker: whether it switched itself to `SCHED_EXT`, whether it then really
/// blocked (so its next run was a dispatch by the BPF scheduler), and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkerReport {
    pub switched: bool,
    pub blocked: bool,
    /// Iterations counted after the block.
    pub iterations: u64,
    /// Why it could not switch, block or start, when it could not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// The dispatch probe as the guest ran it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The longest the probe would wait for every worker to have its say.
    pub bound_ms: u64,
    pub workers: Vec<WorkerReport>,
}

impl ProbeReport {
    /// A probe whose `workers` each blocked and then made `iterations`. Test support.
    #[cfg(any(test, feature = "test-support"))]
    pub fn every_worker_ran(workers: u32, iterations: u64) -> Self {
        let worker = WorkerReport {
            switched: true,
            blocked: true,
            iterations,
            error: String::new(),
        };
        ProbeReport {
            bound_ms: 2000,
            workers: vec![worker; workers as usize],
        }
    }
}
