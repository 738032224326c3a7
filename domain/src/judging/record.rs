//! The record a cell leaves: its verdict, and for a booted cell the host's facts, the
//! guest's report and the judgment, kept as the values they are and composed.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::judging::attach::AttachOutcome;
use crate::judging::crosscheck::CrossCheck;
use crate::judging::environment::ConsoleFacts;
use crate::judging::evidence::{HostReading, VmFacts};
use crate::judging::scx_exit::ScxExit;
use crate::judging::verdict::Verdict;
use crate::plan::cell::CellId;
use crate::plan::guest_memory::GuestMemorySize;
use crate::protocol::guest_report::GuestReport;
use crate::protocol::wire::DecodeStats;
use crate::shape::topology::Topology;
use crate::verifier_log::prog::ProgStat;
use crate::verifier_log::rejection::VerifierRejection;
use crate::verifier_log::vstats::VerifierStats;

/// One cell's outcome. `run` is `None` when the cell failed before a VM booted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellRecord {
    pub cell: CellId,
    pub topology: Topology,
    pub verdict: Verdict,
    pub run: Option<RunRecord>,
    pub wall_ms: u64,
    /// Which boot of the cell this was, when the sweep booted each cell more than once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<Boot>,
    /// The command that reruns just this cell, for cells that did not pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repro: Option<String>,
}

/// Which boot of its cell a record is, when each cell was booted more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Boot {
    /// 1-based.
    pub index: u32,
    pub of: u32,
}

impl fmt::Display for Boot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "boot {}/{}", self.index, self.of)
    }
}

/// One booted run: what the host side knew, what the guest reported, what the judge made
/// of them. `judge_run` turns the first two into the third; a stored record can be judged
/// again from them (`ktstr report --rejudge`). Read from either stored format
/// (`record_formats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    pub host: HostFacts,
    pub guest: GuestReport,
    pub judgment: RunJudgment,
    /// Read from a record of the first format, which kept conclusions, not the guest's
    /// observations: its guest report holds only the log, topology, errors and milestones,
    /// and its verdict stands as written.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub legacy: bool,
}

impl RunRecord {
    /// A run on the `test` backend that attached, reported `progs` from the guest and
    /// dispatched or not. Test support.
    #[cfg(any(test, feature = "test-support"))]
    pub fn for_tests(progs: Vec<ProgStat>, dispatched: bool) -> Self {
        RunRecord {
            host: HostFacts {
                vm: VmFacts {
                    backend: "test".into(),
                    ..VmFacts::default()
                },
                memory: GuestMemorySize {
                    mib: 960,
                    source: crate::plan::guest_memory::MemorySource::Sized,
                },
                watchdog_ms: 60_000,
                console: ConsoleFacts::default(),
                frame_stats: DecodeStats::default(),
                reading: HostReading::NotRead,
            },
            guest: GuestReport {
                payload_started: true,
                progs: progs.clone(),
                ..GuestReport::default()
            },
            judgment: RunJudgment {
                cross_check_asked: false,
                attach: AttachOutcome::Attached,
                liveness: None,
                dispatched,
                dispatch_note: None,
                scx_exit: None,
                rejection: None,
                load_refusal: None,
                verifier_stats: Vec::new(),
                progs,
                progs_source: StatsSource::Guest,
                cross_check: None,
            },
            legacy: false,
        }
    }
}

/// The host side of one run, as it was when judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// What the backend saw of the VM.
    pub vm: VmFacts,
    /// The guest's RAM and why it was that size.
    pub memory: GuestMemorySize,
    /// The watchdog the VM ran under (0: unknown, in a record of the first format).
    pub watchdog_ms: u64,
    /// What the kernel console showed.
    pub console: ConsoleFacts,
    /// How the frame channel decoded.
    pub frame_stats: DecodeStats,
    /// The host's own reading of the guest's programs.
    pub reading: HostReading,
}

impl HostFacts {
    /// Why the host could not read the programs from guest memory, when it could not.
    pub fn read_error(&self) -> Option<&str> {
        match &self.reading {
            HostReading::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// Whose reading of `verified_insns` a record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatsSource {
    /// Read by the host from guest memory.
    Host,
    /// Reported by the guest over `bpf(2)`; used when host introspection did not run.
    Guest,
}

/// What the judge made of one run, gate by gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunJudgment {
    /// Whether host and guest were held to agree.
    pub cross_check_asked: bool,
    pub attach: AttachOutcome,
    /// Why the scheduler that attached was not the one enabled at the end, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<String>,
    pub dispatched: bool,
    /// How much work the probe saw, or why it proves no dispatch.
    pub dispatch_note: Option<String>,
    /// The kernel's record of why sched_ext stopped the scheduler, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scx_exit: Option<ScxExit>,
    /// The program the verifier rejected, when the scheduler's log names one.
    pub rejection: Option<VerifierRejection>,
    /// A loader's own words for a refused program load, when it printed no libbpf log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_refusal: Option<String>,
    pub verifier_stats: Vec<VerifierStats>,
    /// The programs this record reports, from `progs_source`.
    pub progs: Vec<ProgStat>,
    pub progs_source: StatsSource,
    pub cross_check: Option<CrossCheck>,
}
