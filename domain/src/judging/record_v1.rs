//! Run records of the first format (ktstr before the guest's observations were kept): one
//! flat list of conclusions. Read so that stored sweeps and baselines stay usable; their
//! verdicts stand as written.

use serde::Deserialize;

use crate::judging::attach::AttachOutcome;
use crate::judging::crosscheck::CrossCheck;
use crate::judging::environment::ConsoleFacts;
use crate::judging::evidence::{HostReading, VmFacts};
use crate::judging::record::{HostFacts, RunJudgment, RunRecord, StatsSource};
use crate::judging::scx_exit::ScxExit;
use crate::plan::guest_memory::{GuestMemorySize, MemorySource};
use crate::protocol::guest_report::GuestReport;
use crate::protocol::wire::DecodeStats;
use crate::shape::observed::ObservedTopology;
use crate::verifier_log::prog::ProgStat;
use crate::verifier_log::rejection::VerifierRejection;
use crate::verifier_log::vstats::VerifierStats;

/// The first format's run record, field for field (its boot profile is not kept).
#[derive(Debug, Deserialize)]
pub(crate) struct RunRecordV1 {
    backend: String,
    attach: AttachOutcome,
    dispatched: bool,
    dispatch_note: Option<String>,
    #[serde(default)]
    scx_exit: Option<ScxExit>,
    timed_out: bool,
    vm_died: Option<String>,
    memory_mib: u32,
    progs: Vec<ProgStat>,
    progs_source: StatsSource,
    host_read_error: Option<String>,
    cross_check: Option<CrossCheck>,
    verifier_stats: Vec<VerifierStats>,
    #[serde(default)]
    rejection: Option<VerifierRejection>,
    scheduler_log: String,
    observed_topology: Option<ObservedTopology>,
    guest_errors: Vec<String>,
    frame_stats: DecodeStats,
    phases: Vec<(String, u64)>,
    peak_rss_kib: Option<u64>,
    #[serde(default)]
    init_after_ms: Option<u64>,
    console_tail: String,
}

impl From<RunRecordV1> for RunRecord {
    fn from(v1: RunRecordV1) -> Self {
        let reading = match (v1.progs_source, v1.host_read_error) {
            (StatsSource::Host, _) => HostReading::Programs(v1.progs.clone()),
            (StatsSource::Guest, Some(e)) => HostReading::Failed(e),
            (StatsSource::Guest, None) => HostReading::NotRead,
        };
        let guest = GuestReport {
            payload_started: v1.attach == AttachOutcome::Attached,
            scheduler_log: v1.scheduler_log,
            progs: match v1.progs_source {
                StatsSource::Guest => v1.progs.clone(),
                StatsSource::Host => Vec::new(),
            },
            topology: v1.observed_topology,
            guest_errors: v1.guest_errors,
            phases: v1.phases,
            ..GuestReport::default()
        };
        RunRecord {
            host: HostFacts {
                vm: VmFacts {
                    backend: v1.backend,
                    timed_out: v1.timed_out,
                    vm_died: v1.vm_died,
                    flooded: None,
                    peak_rss_kib: v1.peak_rss_kib,
                    init_after_ms: v1.init_after_ms,
                },
                memory: GuestMemorySize {
                    mib: v1.memory_mib,
                    source: MemorySource::Sized,
                },
                watchdog_ms: 0,
                console: ConsoleFacts {
                    tail: v1.console_tail,
                    ..ConsoleFacts::default()
                },
                frame_stats: v1.frame_stats,
                reading,
            },
            guest,
            judgment: RunJudgment {
                cross_check_asked: v1.cross_check.is_some(),
                attach: v1.attach,
                liveness: None,
                dispatched: v1.dispatched,
                dispatch_note: v1.dispatch_note,
                scx_exit: v1.scx_exit,
                rejection: v1.rejection,
                load_refusal: None,
                verifier_stats: v1.verifier_stats,
                progs: v1.progs,
                progs_source: v1.progs_source,
                cross_check: v1.cross_check,
            },
            legacy: true,
        }
    }
}
