//! The typed frames the guest init sends to the host and their wire tags. Their payloads'
//! encoding is `payload`, their framing `wire`, their legal order `order`.

use serde::{Deserialize, Serialize};

use crate::protocol::observation::AttachExpiry;
use crate::protocol::observation::KernelRecord;
use crate::protocol::observation::ProbeReport;
use crate::protocol::observation::ScxSample;
use crate::shape::observed::ObservedTopology;
use crate::verifier_log::prog::ProgStat;

/// One message from the guest init to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// The scheduler process was spawned.
    SchedulerStarted {
        pid: u32,
    },
    /// The scheduler process ended, e.g. `"exit code 1"`, `"killed by signal 9"`.
    SchedulerDied {
        status: String,
    },
    /// sched_ext read `enabled`: the dispatch probe begins.
    PayloadStarting,
    /// A chunk of the scheduler's log; the host concatenates the chunks in order.
    SchedulerLog {
        text: String,
    },
    /// The guest's own `bpf(2)` view of the loaded programs.
    ProgStats {
        progs: Vec<ProgStat>,
    },
    Topology {
        topology: ObservedTopology,
    },
    /// The init itself failed (mount, exec, ...).
    GuestError {
        message: String,
    },
    /// A milestone of the run and the guest's uptime when it was reached, so the host
    /// can tell where a cell's time went.
    Phase {
        phase: String,
        uptime_ms: u64,
    },
    /// The attach wait ran out with the scheduler alive; what the guest saw then. Sent
    /// before the scheduler's program list and log.
    AttachExpired {
        expiry: AttachExpiry,
    },
    /// The kernel's boot records a profile is made of, sent when the host asked for one.
    KernelLog {
        records: Vec<KernelRecord>,
    },
    /// One look at `/sys/kernel/sched_ext` and the scheduler process: before the start,
    /// when attach settled, whenever it changed during the probe, and after it.
    SchedExtSample {
        sample: ScxSample,
    },
    /// What each dispatch probe worker did.
    WorkerProgress {
        probe: ProbeReport,
    },
    /// The kernel's log records that mention sched_ext, at the end of the run.
    SchedExtLog {
        records: Vec<KernelRecord>,
    },
}

/// The wire tag of a [`Frame`] variant. The values are part of the wire format: never
/// renumber, only append. Retired: 3 (the guest's own attach verdict), 5 and 6 (its
/// dispatch verdict); the host decides those now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum FrameKind {
    SchedulerStarted = 1,
    SchedulerDied = 2,
    PayloadStarting = 4,
    SchedulerLog = 7,
    ProgStats = 8,
    Topology = 9,
    GuestError = 10,
    Phase = 11,
    AttachExpired = 12,
    KernelLog = 13,
    SchedExtSample = 14,
    WorkerProgress = 15,
    SchedExtLog = 16,
}

impl FrameKind {
    /// Every kind, in wire-value order.
    pub const ALL: [FrameKind; 13] = [
        FrameKind::SchedulerStarted,
        FrameKind::SchedulerDied,
        FrameKind::PayloadStarting,
        FrameKind::SchedulerLog,
        FrameKind::ProgStats,
        FrameKind::Topology,
        FrameKind::GuestError,
        FrameKind::Phase,
        FrameKind::AttachExpired,
        FrameKind::KernelLog,
        FrameKind::SchedExtSample,
        FrameKind::WorkerProgress,
        FrameKind::SchedExtLog,
    ];
}

impl From<FrameKind> for u8 {
    fn from(kind: FrameKind) -> u8 {
        kind as u8
    }
}

/// A kind byte that names no [`FrameKind`] (e.g. a frame from a newer guest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown frame kind {0}")]
pub struct UnknownFrameKind(pub u8);

impl TryFrom<u8> for FrameKind {
    type Error = UnknownFrameKind;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        FrameKind::ALL
            .into_iter()
            .find(|k| *k as u8 == value)
            .ok_or(UnknownFrameKind(value))
    }
}

impl Frame {
    pub fn kind(&self) -> FrameKind {
        match self {
            Frame::SchedulerStarted { .. } => FrameKind::SchedulerStarted,
            Frame::SchedulerDied { .. } => FrameKind::SchedulerDied,
            Frame::PayloadStarting => FrameKind::PayloadStarting,
            Frame::SchedulerLog { .. } => FrameKind::SchedulerLog,
            Frame::ProgStats { .. } => FrameKind::ProgStats,
            Frame::Topology { .. } => FrameKind::Topology,
            Frame::GuestError { .. } => FrameKind::GuestError,
            Frame::Phase { .. } => FrameKind::Phase,
            Frame::AttachExpired { .. } => FrameKind::AttachExpired,
            Frame::KernelLog { .. } => FrameKind::KernelLog,
            Frame::SchedExtSample { .. } => FrameKind::SchedExtSample,
            Frame::WorkerProgress { .. } => FrameKind::WorkerProgress,
            Frame::SchedExtLog { .. } => FrameKind::SchedExtLog,
        }
    }
}

/// One frame of every variant, in `FrameKind::ALL` order.
#[cfg(test)]
pub(crate) fn test_samples() -> Vec<Frame> {
    use crate::protocol::observation::WorkerReport;
    vec![
        Frame::SchedulerStarted { pid: 4242 },
        Frame::SchedulerDied {
            status: "killed by signal 9".into(),
        },
        Frame::PayloadStarting,
        Frame::SchedulerLog {
            text: "line 1\nline 2\n".into(),
        },
        Frame::ProgStats {
            progs: vec![
                ProgStat {
                    id: 17,
                    prog_type: 27,
                    name: "rusty_enqueue".into(),
                    verified_insns: 12345,
                },
                ProgStat {
                    id: 18,
                    prog_type: 27,
                    name: String::new(),
                    verified_insns: 0,
                },
            ],
        },
        Frame::Topology {
            topology: ObservedTopology {
                online_cpus: vec![0, 1, 2, 3],
                cores: vec![vec![0, 1], vec![2, 3]],
                llcs: vec![vec![0, 1, 2, 3]],
                numa_nodes: vec![vec![0, 1, 2, 3], vec![]],
            },
        },
        Frame::GuestError {
            message: "mount /sys: EPERM".into(),
        },
        Frame::Phase {
            phase: "attached".into(),
            uptime_ms: 2345,
        },
        Frame::AttachExpired {
            expiry: AttachExpiry {
                waited_ms: 61_000,
                state: "enabling".into(),
                programs: None,
                process_state: Some('R'),
                cpu_ms: 12_345,
            },
        },
        Frame::KernelLog {
            records: vec![
                KernelRecord {
                    usec: 2_652_000,
                    text: "Run /init as init process".into(),
                },
                KernelRecord {
                    usec: 0,
                    text: String::new(),
                },
            ],
        },
        Frame::SchedExtSample {
            sample: ScxSample {
                uptime_ms: 3456,
                state: "enabled".into(),
                enable_seq: None,
                scheduler_alive: true,
            },
        },
        Frame::WorkerProgress {
            probe: ProbeReport {
                bound_ms: 2000,
                workers: vec![
                    WorkerReport {
                        switched: true,
                        blocked: true,
                        iterations: u64::MAX - 1,
                        error: String::new(),
                    },
                    WorkerReport {
                        switched: false,
                        blocked: false,
                        iterations: 0,
                        error: "sched_setattr failed — ünïcödé".into(),
                    },
                ],
            },
        },
        Frame::SchedExtLog {
            records: vec![KernelRecord {
                usec: 7,
                text: "sched_ext: BPF scheduler \"ktstr\" enabled".into(),
            }],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_values_are_stable_and_round_trip() {
        let values: Vec<u8> = FrameKind::ALL.into_iter().map(u8::from).collect();
        assert_eq!(values, [1, 2, 4, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
        for kind in FrameKind::ALL {
            assert_eq!(FrameKind::try_from(u8::from(kind)), Ok(kind));
        }
        // Retired kinds and unknown ones are named as unknown.
        for retired in [0, 3, 5, 6, 17] {
            assert_eq!(FrameKind::try_from(retired), Err(UnknownFrameKind(retired)));
        }
    }
}
