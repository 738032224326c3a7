//! What one run's frames told the host, gathered in order: the guest's observations,
//! its log, programs and milestones. Nothing here is a conclusion.

use serde::{Deserialize, Serialize};

use crate::protocol::frame::Frame;
use crate::protocol::observation::{AttachExpiry, KernelRecord, ProbeReport, ScxSample};
use crate::protocol::order::{OutOfOrder, check_order};
use crate::shape::observed::ObservedTopology;
use crate::verifier_log::prog::ProgStat;

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
    /// The first frame that broke the protocol's order, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_order: Option<OutOfOrder>,
    pub scheduler_log: String,
    pub progs: Vec<ProgStat>,
    pub topology: Option<ObservedTopology>,
    pub guest_errors: Vec<String>,
    /// Milestones with the guest's uptime in ms, in the order reached.
    pub phases: Vec<(String, u64)>,
    /// What the guest saw when its attach wait ran out, when it did.
    pub attach_expiry: Option<AttachExpiry>,
    /// The kernel's boot records, when the host asked for a profile.
    pub kernel_log: Vec<KernelRecord>,
}

impl GuestReport {
    pub fn from_frames(frames: &[Frame]) -> Self {
        let mut report = GuestReport {
            out_of_order: check_order(frames).err(),
            ..GuestReport::default()
        };
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
                Frame::KernelLog { records } => report.kernel_log.clone_from(records),
                // The start is a milestone; its pid says nothing more.
                Frame::SchedulerStarted { .. } => {}
            }
        }
        report
    }

    /// The last sample after the probe began.
    pub fn end_sample(&self) -> Option<&ScxSample> {
        self.samples[self.samples_before_probe..].last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::observation::KernelRecord;

    fn sample(state: &str, seq: u64) -> Frame {
        Frame::SchedExtSample {
            sample: ScxSample::alive(state, seq),
        }
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
        assert_eq!(r.samples_before_probe, 2);
        assert_eq!(r.samples[1].state, "enabled");
        assert_eq!(r.end_sample().unwrap().state, "disabled");
        assert_eq!(r.scx_log.len(), 1);
    }
}
