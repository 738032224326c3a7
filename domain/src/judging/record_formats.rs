//! Run records as stored, in either format: the current one (host facts, guest report,
//! judgment) and the first one (ktstr before the guest's observations were kept: one flat
//! list of conclusions), read so that stored sweeps and baselines stay usable; their
//! verdicts stand as written.

use serde::{Deserialize, Deserializer};

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
struct RunRecordV1 {
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

/// A run record in either format: the current one has a `judgment`; the first one was
/// flat and is read as a legacy record.
impl<'de> Deserialize<'de> for RunRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Current {
            host: HostFacts,
            guest: GuestReport,
            judgment: RunJudgment,
            #[serde(default)]
            legacy: bool,
        }
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.get("judgment").is_some() {
            let run: Current = serde_json::from_value(value).map_err(D::Error::custom)?;
            return Ok(RunRecord {
                host: run.host,
                guest: run.guest,
                judgment: run.judgment,
                legacy: run.legacy,
            });
        }
        serde_json::from_value::<RunRecordV1>(value)
            .map(RunRecord::from)
            .map_err(|e| D::Error::custom(format!("{e} (in a run record of the first format)")))
    }
}
