//! What the guest's frames say about one run: attach outcome, dispatch, logs and data.

use serde::{Deserialize, Serialize};

use crate::attach_wait::AttachExpiry;
use crate::boot_profile::{BootProfile, KernelRecord};
use crate::dispatch::ProbeReport;
use crate::frame::Frame;
use crate::liveness::ScxSample;
use crate::observed::ObservedTopology;
use crate::prog::ProgStat;
use crate::scx_exit::ScxExit;

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
    /// What the guest's observations say about attach. A death during load wins; the
    /// dispatch probe starts only once sched_ext read `enabled`, so its start is the
    /// confirmation; an `enable_seq` that moved without it is an enable that did not last.
    pub fn from_report(report: &GuestReport) -> Self {
        if report.died_status.is_some() && !report.died_during_probe {
            return AttachOutcome::Died;
        }
        if let Some(expiry) = &report.attach_expiry {
            return AttachOutcome::NotAttached(expiry.reason());
        }
        if report.payload_started {
            return AttachOutcome::Attached;
        }
        let seqs = || report.samples.iter().filter_map(|s| s.enable_seq);
        if let (Some(first), Some(last)) = (seqs().next(), seqs().next_back())
            && last > first
        {
            return AttachOutcome::NotAttached("sched_ext was enabled then disabled again".into());
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

/// Everything one run's frames told the host: what the guest saw, never what it made of
/// it. The gates are decided from this in the judge.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GuestReport {
    pub died_status: Option<String>,
    /// The scheduler died after the dispatch probe began (not during its load).
    pub died_during_probe: bool,
    /// `PayloadStarting` arrived: sched_ext reached `enabled` at some point.
    pub payload_started: bool,
    /// What the dispatch probe's workers did.
    pub probe: Option<ProbeReport>,
    /// The guest's looks at sched_ext's sysfs and the scheduler process, in order.
    pub samples: Vec<ScxSample>,
    /// How many of `samples` were taken before the dispatch probe began.
    pub samples_before_probe: usize,
    /// The kernel's log records that mention sched_ext, at the end of the run.
    pub scx_log: Vec<KernelRecord>,
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
                Frame::SchedulerDied { status } => {
                    report.died_status = Some(status.clone());
                    report.died_during_probe = report.payload_started;
                }
                Frame::PayloadStarting => {
                    report.payload_started = true;
                    report.samples_before_probe = report.samples.len();
                }
                Frame::WorkerProgress { probe } => report.probe = Some(probe.clone()),
                Frame::SchedExtSample { sample } => report.samples.push(sample.clone()),
                Frame::SchedExtLog { records } => report.scx_log.clone_from(records),
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
                // The start is a milestone; its pid says nothing more.
                Frame::SchedulerStarted { .. } => {}
            }
        }
        report
    }

    /// The sample that confirmed attach: the last before the probe began.
    pub fn attach_sample(&self) -> Option<&ScxSample> {
        self.samples[..self.samples_before_probe].last()
    }

    /// The last sample after the probe began.
    pub fn end_sample(&self) -> Option<&ScxSample> {
        self.samples[self.samples_before_probe..].last()
    }

    /// The kernel's last sched_ext exit record.
    pub fn scx_exit(&self) -> Option<ScxExit> {
        ScxExit::last_in(&self.scx_log)
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

    fn sample(state: &str, seq: u64) -> Frame {
        Frame::SchedExtSample {
            sample: ScxSample::alive(state, seq),
        }
    }

    fn outcome(frames: &[Frame]) -> AttachOutcome {
        AttachOutcome::from_report(&GuestReport::from_frames(frames))
    }

    #[test]
    fn the_lattice_orders_a_load_death_over_the_probe_over_a_moved_seq() {
        use AttachOutcome::*;
        let started = Frame::SchedulerStarted { pid: 7 };
        assert_eq!(outcome(&[]), Unconfirmed);
        assert_eq!(outcome(std::slice::from_ref(&started)), Unconfirmed);
        assert_eq!(
            outcome(&[
                started.clone(),
                sample("enabled", 4),
                Frame::PayloadStarting
            ]),
            Attached
        );
        assert_eq!(
            outcome(&[sample("disabled", 3), sample("disabled", 4)]),
            NotAttached("sched_ext was enabled then disabled again".into())
        );
        assert_eq!(outcome(&[sample("disabled", 3), died()]), Died);
        // A death once the probe began is the liveness gate's, not attach's.
        let late = [Frame::PayloadStarting, died()];
        assert_eq!(outcome(&late), Attached);
        assert!(GuestReport::from_frames(&late).died_during_probe);
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
    fn guest_report_gathers_observations() {
        let frames = [
            Frame::SchedulerStarted { pid: 3 },
            sample("disabled", 3),
            Frame::SchedulerLog {
                text: "hello ".into(),
            },
            Frame::SchedulerLog {
                text: "world".into(),
            },
            sample("enabled", 4),
            Frame::PayloadStarting,
            Frame::WorkerProgress {
                probe: ProbeReport::every_worker_ran(1, 0),
            },
            sample("enabled", 4),
            sample("disabled", 4),
            Frame::SchedExtLog {
                records: vec![KernelRecord {
                    usec: 1,
                    text: "sched_ext: BPF scheduler \"k\" disabled (scx_bpf_error)".into(),
                }],
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
        assert_eq!(r.scheduler_log, "hello world");
        assert_eq!(r.progs.len(), 1);
        assert_eq!(r.probe.as_ref().unwrap().workers.len(), 1);
        assert_eq!(r.attach_sample().unwrap().enable_seq, Some(4));
        assert_eq!(r.attach_sample().unwrap().state, "enabled");
        assert_eq!(r.end_sample().unwrap().state, "disabled");
        assert_eq!(r.scx_exit().unwrap().reason, "scx_bpf_error");
    }
}
