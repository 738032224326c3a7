//! What the guest's frames say about one run: attach outcome, dispatch, logs and data.

use serde::{Deserialize, Serialize};

use crate::attach_wait::AttachExpiry;
use crate::boot_profile::BootProfile;
use crate::frame::Frame;
use crate::observed::ObservedTopology;
use crate::prog::ProgStat;

/// Whether the scheduler positively confirmed it turned on. Absence of failure is
/// never a pass: a guest that vanished without a word is `Unconfirmed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttachOutcome {
    /// `PayloadStarting` arrived and no failure frame: sched_ext reached `enabled`.
    Attached,
    /// The scheduler process exited during load or startup.
    Died,
    /// The scheduler stayed alive but sched_ext never reached `enabled`.
    NotAttached(String),
    /// Neither a failure frame nor `PayloadStarting`.
    Unconfirmed,
}

impl AttachOutcome {
    /// Failure frames win over confirmation; any `SchedulerDied` wins over `NotAttached`.
    pub fn from_frames(frames: &[Frame]) -> Self {
        if frames
            .iter()
            .any(|f| matches!(f, Frame::SchedulerDied { .. }))
        {
            return AttachOutcome::Died;
        }
        if let Some(reason) = frames.iter().find_map(|f| match f {
            Frame::SchedulerNotAttached { reason } => Some(reason.clone()),
            _ => None,
        }) {
            return AttachOutcome::NotAttached(reason);
        }
        if frames.iter().any(|f| matches!(f, Frame::PayloadStarting)) {
            return AttachOutcome::Attached;
        }
        AttachOutcome::Unconfirmed
    }

    /// Human-readable failure reason, `None` when attached.
    pub fn failure_reason(&self) -> Option<String> {
        match self {
            AttachOutcome::Attached => None,
            AttachOutcome::Died => {
                Some("scheduler process exited during BPF load/startup".to_string())
            }
            AttachOutcome::NotAttached(reason) if reason.is_empty() => {
                Some("sched_ext never reached enabled".to_string())
            }
            AttachOutcome::NotAttached(reason) => {
                Some(format!("sched_ext never reached enabled: {reason}"))
            }
            AttachOutcome::Unconfirmed => Some(
                "attach never confirmed: the guest stopped before its dispatch phase".to_string(),
            ),
        }
    }
}

/// Everything one run's frames told the host.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GuestReport {
    pub died_status: Option<String>,
    /// `PayloadStarting` arrived: sched_ext reached `enabled` at some point.
    pub payload_started: bool,
    pub dispatched: bool,
    /// Why dispatch was not confirmed, or how much work was seen when it was.
    pub dispatch_note: Option<String>,
    pub scheduler_log: String,
    pub progs: Vec<ProgStat>,
    pub topology: Option<ObservedTopology>,
    pub guest_errors: Vec<String>,
    /// Milestones with the guest's uptime in ms, in the order reached.
    pub phases: Vec<(String, u64)>,
    /// What the guest saw when its attach wait ran out, when it did.
    pub attach_expiry: Option<AttachExpiry>,
    /// Where the kernel's boot went, when the host asked for a profile.
    pub boot_profile: Option<BootProfile>,
}

impl GuestReport {
    pub fn from_frames(frames: &[Frame]) -> Self {
        let mut report = GuestReport::default();
        for frame in frames {
            match frame {
                Frame::SchedulerDied { status } => report.died_status = Some(status.clone()),
                Frame::PayloadStarting => report.payload_started = true,
                Frame::WorkloadDispatched {
                    workers,
                    iterations,
                } => {
                    report.dispatched = true;
                    report.dispatch_note = Some(format!(
                        "{workers} SCHED_EXT workers made {iterations} iterations"
                    ));
                }
                Frame::WorkloadNotDispatched { reason } => {
                    report.dispatch_note = Some(reason.clone());
                }
                Frame::SchedulerLog { text } => report.scheduler_log.push_str(text),
                Frame::ProgStats { progs } => report.progs.clone_from(progs),
                Frame::Topology { topology } => report.topology = Some(topology.clone()),
                Frame::GuestError { message } => report.guest_errors.push(message.clone()),
                Frame::Phase { phase, uptime_ms } => {
                    report.phases.push((phase.clone(), *uptime_ms));
                }
                Frame::AttachExpired { expiry } => report.attach_expiry = Some(expiry.clone()),
                Frame::KernelLog { records } => {
                    report.boot_profile = Some(BootProfile::from_records(records));
                }
                // The attach lattice reads these; the start is also a milestone.
                Frame::SchedulerNotAttached { .. } | Frame::SchedulerStarted { .. } => {}
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn died() -> Frame {
        Frame::SchedulerDied {
            status: "exit code 1".into(),
        }
    }

    fn not_attached() -> Frame {
        Frame::SchedulerNotAttached {
            reason: "state stayed disabled".into(),
        }
    }

    #[test]
    fn the_lattice_orders_died_over_not_attached_over_attached() {
        use AttachOutcome::*;
        let started = Frame::SchedulerStarted { pid: 7 };
        assert_eq!(AttachOutcome::from_frames(&[]), Unconfirmed);
        assert_eq!(
            AttachOutcome::from_frames(std::slice::from_ref(&started)),
            Unconfirmed
        );
        assert_eq!(
            AttachOutcome::from_frames(&[started.clone(), Frame::PayloadStarting]),
            Attached
        );
        assert_eq!(
            AttachOutcome::from_frames(&[Frame::PayloadStarting, not_attached()]),
            NotAttached("state stayed disabled".into())
        );
        assert_eq!(
            AttachOutcome::from_frames(&[not_attached(), Frame::PayloadStarting, died()]),
            Died
        );
    }

    #[test]
    fn failure_reasons_name_the_failure() {
        assert_eq!(AttachOutcome::Attached.failure_reason(), None);
        assert_eq!(
            AttachOutcome::Died.failure_reason().unwrap(),
            "scheduler process exited during BPF load/startup"
        );
        assert!(
            AttachOutcome::NotAttached("x".into())
                .failure_reason()
                .unwrap()
                .ends_with(": x")
        );
        assert!(
            AttachOutcome::Unconfirmed
                .failure_reason()
                .unwrap()
                .contains("never confirmed")
        );
    }

    #[test]
    fn guest_report_gathers_data_frames() {
        let frames = [
            Frame::SchedulerStarted { pid: 3 },
            Frame::SchedulerLog {
                text: "hello ".into(),
            },
            Frame::SchedulerLog {
                text: "world".into(),
            },
            Frame::PayloadStarting,
            Frame::WorkloadDispatched {
                workers: 4,
                iterations: 1000,
            },
            Frame::ProgStats {
                progs: vec![ProgStat {
                    id: 1,
                    prog_type: 27,
                    name: "ktstr_dispatch".into(),
                    verified_insns: 102,
                }],
            },
        ];
        let r = GuestReport::from_frames(&frames);
        assert!(r.dispatched);
        assert_eq!(r.scheduler_log, "hello world");
        assert_eq!(r.progs.len(), 1);
        assert_eq!(
            r.dispatch_note.as_deref(),
            Some("4 SCHED_EXT workers made 1000 iterations")
        );
    }
}
