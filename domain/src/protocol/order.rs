//! The legal order of one run's frames, as a small state machine: the guest's sink follows
//! it (a frame out of order is a bug in ktstr's init, reported instead of sent) and the
//! judge checks the stream against it (an out-of-order stream is named, never guessed at).
//!
//! ```text
//! Booting ──Topology*──SchedulerStarted──▶ Started ──SchedExtSample──▶ Attaching
//! Attaching ──SchedExtSample*── PayloadStarting ──▶ Probing ──WorkerProgress──▶ Probed
//! Attaching ──SchedulerDied | AttachExpired──▶ Reporting
//! Probed ──SchedExtSample*── SchedulerDied? ──▶ Reporting
//! Attaching | Probed ──ProgStats | SchedExtLog | SchedulerLog──▶ Reporting
//! Reporting ──ProgStats | SchedExtLog | SchedulerLog──▶ Reporting
//! ```
//!
//! `Phase`, `GuestError` and `KernelLog` (the boot profile, sent last) may come at any
//! stage. A stream may stop at any stage: a VM that died mid-run is the environment's to
//! explain, not an order error.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::protocol::frame::{Frame, FrameKind};

/// Where a run's stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Before the scheduler was started: the init's topology.
    Booting,
    /// The scheduler was started; its first look at sched_ext comes next.
    Started,
    /// Waiting for the scheduler to attach, looking at sched_ext.
    Attaching,
    /// sched_ext read `enabled`; the probe's report comes next.
    Probing,
    /// The probe ended; looks at sched_ext and the scheduler's end.
    Probed,
    /// The programs, the kernel's records and the log.
    Reporting,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Booting => "booting",
            Stage::Started => "started",
            Stage::Attaching => "attaching",
            Stage::Probing => "probing",
            Stage::Probed => "probed",
            Stage::Reporting => "reporting",
        })
    }
}

/// A frame the protocol does not allow where it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("frame {index} ({kind:?}) is out of order: not allowed while {stage}")]
pub struct OutOfOrder {
    /// Its position in the run's decoded frames.
    pub index: usize,
    pub kind: FrameKind,
    pub stage: Stage,
}

/// The state machine one run's frames walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameOrder {
    stage: Stage,
    sent: usize,
}

impl Default for FrameOrder {
    fn default() -> Self {
        FrameOrder {
            stage: Stage::Booting,
            sent: 0,
        }
    }
}

impl FrameOrder {
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Takes the next frame: the stage it leads to, or why it may not come now (the
    /// stage is then unchanged).
    pub fn advance(&mut self, frame: &Frame) -> Result<Stage, OutOfOrder> {
        let kind = frame.kind();
        let next = next_stage(self.stage, kind).ok_or(OutOfOrder {
            index: self.sent,
            kind,
            stage: self.stage,
        })?;
        self.stage = next;
        self.sent += 1;
        Ok(next)
    }
}

/// The stage after `kind` arrives in `stage`, or `None` when it may not.
fn next_stage(stage: Stage, kind: FrameKind) -> Option<Stage> {
    use FrameKind as K;
    use Stage as S;
    match (stage, kind) {
        (_, K::Phase | K::GuestError | K::KernelLog) => Some(stage),
        (S::Booting, K::Topology) => Some(S::Booting),
        (S::Booting, K::SchedulerStarted) => Some(S::Started),
        (S::Started, K::SchedExtSample) => Some(S::Attaching),
        (S::Attaching, K::SchedExtSample) => Some(S::Attaching),
        (S::Attaching, K::PayloadStarting) => Some(S::Probing),
        (S::Attaching, K::SchedulerDied | K::AttachExpired) => Some(S::Reporting),
        (S::Probing, K::WorkerProgress) => Some(S::Probed),
        (S::Probed, K::SchedExtSample) => Some(S::Probed),
        (S::Probed, K::SchedulerDied) => Some(S::Reporting),
        (
            S::Attaching | S::Probed | S::Reporting,
            K::ProgStats | K::SchedExtLog | K::SchedulerLog,
        ) => Some(S::Reporting),
        _ => None,
    }
}

/// The first frame of `frames` out of order, when there is one.
pub fn check_order(frames: &[Frame]) -> Result<(), OutOfOrder> {
    let mut order = FrameOrder::default();
    frames.iter().try_for_each(|f| order.advance(f).map(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::observation::{ProbeReport, ScxSample};

    fn sample() -> Frame {
        Frame::SchedExtSample {
            sample: ScxSample::alive("enabled", 1),
        }
    }

    fn log() -> Frame {
        Frame::SchedulerLog { text: "x".into() }
    }

    fn phase() -> Frame {
        Frame::Phase {
            phase: "init".into(),
            uptime_ms: 1,
        }
    }

    #[test]
    fn a_whole_run_and_each_failure_path_are_in_order() {
        let started = [phase(), Frame::SchedulerStarted { pid: 1 }, sample()];
        let attached = [sample(), Frame::PayloadStarting];
        let probed = [
            Frame::WorkerProgress {
                probe: ProbeReport::every_worker_ran(2, 5),
            },
            sample(),
        ];
        let report = [
            Frame::ProgStats { progs: vec![] },
            Frame::SchedExtLog { records: vec![] },
            log(),
            log(),
            phase(),
            Frame::KernelLog { records: vec![] },
        ];
        let whole: Vec<Frame> = [&started[..], &attached, &probed, &report].concat();
        assert_eq!(check_order(&whole), Ok(()));
        let died_loading = [
            &started[..],
            &[Frame::SchedulerDied {
                status: "exit code 1".into(),
            }],
            &report,
        ]
        .concat();
        assert_eq!(check_order(&died_loading), Ok(()));
        let died_probing = [
            &started[..],
            &attached,
            &probed,
            &[Frame::SchedulerDied {
                status: "exit code 2".into(),
            }],
            &report,
        ]
        .concat();
        assert_eq!(check_order(&died_probing), Ok(()));
        // Never attached: the settling sample, then the report.
        let not_attached = [&started[..], &[sample()], &report].concat();
        assert_eq!(check_order(&not_attached), Ok(()));
        // A stream cut anywhere is a prefix, not an order error.
        for cut in 0..whole.len() {
            assert_eq!(check_order(&whole[..cut]), Ok(()));
        }
    }

    #[test]
    fn an_out_of_order_frame_is_named_with_where_it_came() {
        // The probe's report before sched_ext was seen enabled.
        let early = [
            Frame::SchedulerStarted { pid: 1 },
            sample(),
            Frame::WorkerProgress {
                probe: ProbeReport::every_worker_ran(1, 1),
            },
        ];
        let e = check_order(&early).unwrap_err();
        assert_eq!(
            e,
            OutOfOrder {
                index: 2,
                kind: FrameKind::WorkerProgress,
                stage: Stage::Attaching,
            }
        );
        assert_eq!(
            e.to_string(),
            "frame 2 (WorkerProgress) is out of order: not allowed while attaching"
        );
        // A second start, and a sample after the log.
        assert!(
            check_order(&[
                Frame::SchedulerStarted { pid: 1 },
                Frame::SchedulerStarted { pid: 2 }
            ])
            .is_err()
        );
        let late = [
            Frame::SchedulerStarted { pid: 1 },
            sample(),
            log(),
            sample(),
        ];
        assert_eq!(check_order(&late).unwrap_err().index, 3);
        // A refused frame leaves the machine where it was.
        let mut order = FrameOrder::default();
        assert!(order.advance(&Frame::PayloadStarting).is_err());
        assert_eq!(order.stage(), Stage::Booting);
    }
}
