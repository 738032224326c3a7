//! The `AttachOutcome` lattice, drawn from what the guest observed.

use serde::{Deserialize, Serialize};

use crate::protocol::guest_report::GuestReport;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::Frame;
    use crate::protocol::observation::ScxSample;

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
}
