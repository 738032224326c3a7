//! Where a cell's verdict is decided: one pure function from the planned cell, what ktstr
//! found before booting or what the VM left behind, and the policy, to the cell record.
//! Setup failures, the host reading and the cross-check policy, the gates and the
//! environment diagnosis are all settled here and nowhere else, and a stored run is judged
//! again by the same function (`rejudge`).

use std::time::Duration;

use crate::judging::attach::AttachOutcome;
use crate::judging::crosscheck::{CrossCheck, cross_check};
use crate::judging::dispatch::judge_dispatch;
use crate::judging::environment::{ConsoleFacts, EnvEvidence, diagnose};
use crate::judging::evidence::{CellEvidence, HostReading, RunEvidence};
use crate::judging::liveness::{LivenessFacts, judge_liveness};
use crate::judging::record::{CellRecord, HostFacts, RunJudgment, RunRecord, StatsSource};
use crate::judging::scx_exit::ScxExit;
use crate::judging::verdict::{EnvCause, Gate, RunFacts, Verdict, cell_verdict};
use crate::plan::matrix::PlannedCell;
use crate::protocol::guest_report::GuestReport;
use crate::protocol::wire::decode_all;
use crate::shape::observed::TopologyMismatch;
use crate::shape::topology::Topology;
use crate::verifier_log::rejection::{find_load_refusal, find_rejection};
use crate::verifier_log::vstats::parse_verifier_stats;

/// How the judge weighs what it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JudgePolicy {
    /// Fail cells whose host-read and guest-reported programs disagree, or whose host
    /// read failed. Without it a failed host read is reported, not judged.
    pub cross_check: bool,
}

/// The cell a run is judged for: its preset's name and shape.
#[derive(Debug, Clone, Copy)]
struct JudgedCell<'a> {
    preset: &'a str,
    topology: &'a Topology,
}

/// The record of one cell; `wall_ms` and `boot` are left for the caller, who timed the
/// cell and knows which boot of it this was.
pub fn judge(cell: &PlannedCell, evidence: CellEvidence, policy: JudgePolicy) -> CellRecord {
    let record = |verdict, run| CellRecord {
        cell: cell.id.clone(),
        topology: cell.preset.topology,
        verdict,
        run,
        wall_ms: 0,
        boot: None,
        repro: None,
    };
    match evidence {
        CellEvidence::KernelLacks { kernel, missing } => record(
            Verdict::fail(
                Gate::Setup,
                format!(
                    "kernel {kernel} lacks {}; not booted (rebuild it with ktstr's kconfig \
                     fragment)",
                    missing.join(", ")
                ),
            ),
            None,
        ),
        CellEvidence::ImageFailed { scheduler, reason } => record(
            Verdict::env_error(
                EnvCause::Image,
                format!("scheduler `{scheduler}`: {reason}"),
            ),
            None,
        ),
        CellEvidence::VmStartFailed { reason } => {
            record(Verdict::env_error(EnvCause::VmStart, reason), None)
        }
        CellEvidence::Ran(run) => {
            let (host, guest) = read_run(*run);
            let judged = JudgedCell {
                preset: cell.preset.name,
                topology: &cell.preset.topology,
            };
            let (verdict, judgment) = judge_run(judged, &host, &guest, policy);
            record(
                verdict,
                Some(RunRecord {
                    host,
                    guest,
                    judgment,
                    legacy: false,
                }),
            )
        }
    }
}

/// A stored record's verdict under today's rules, from its host facts and guest report.
/// `None` for a record that kept no run to judge (never booted) or only conclusions (the
/// first format): its verdict stands as written.
pub fn rejudge(record: &CellRecord) -> Option<Verdict> {
    let run = record.run.as_ref().filter(|run| !run.legacy)?;
    let cell = JudgedCell {
        preset: &record.cell.preset,
        topology: &record.topology,
    };
    let policy = JudgePolicy {
        cross_check: run.judgment.cross_check_asked,
    };
    Some(judge_run(cell, &run.host, &run.guest, policy).0)
}

/// The raw evidence read once into what a record keeps: the frames decoded into the
/// guest's report, the console into its facts.
fn read_run(run: RunEvidence) -> (HostFacts, GuestReport) {
    let decoded = decode_all(&run.frame_bytes);
    let guest = GuestReport::from_frames(&decoded.frames);
    let host = HostFacts {
        vm: run.vm,
        memory: run.memory,
        watchdog_ms: u64::try_from(run.waits.watchdog.as_millis()).unwrap_or(u64::MAX),
        console: ConsoleFacts::read(&run.console),
        frame_stats: decoded.stats,
        reading: run.host,
    };
    (host, guest)
}

fn judge_run(
    cell: JudgedCell<'_>,
    host: &HostFacts,
    guest: &GuestReport,
    policy: JudgePolicy,
) -> (Verdict, RunJudgment) {
    let attach = AttachOutcome::from_report(guest);
    let scx_exit = ScxExit::last_in(&guest.scx_log);
    let liveness = match attach {
        AttachOutcome::Attached => judge_liveness(LivenessFacts {
            before_start: guest.samples.first(),
            end: guest.end_sample(),
            died: guest
                .died_status
                .as_deref()
                .filter(|_| guest.died_during_probe),
            exit: scx_exit.as_ref(),
            exit_after_last_enable: ScxExit::follows_last_enable(&guest.scx_log),
        })
        .err(),
        _ => None,
    };
    let dispatch = guest.probe.as_ref().map_or_else(
        || Err("the guest sent no probe report".to_string()),
        judge_dispatch,
    );
    let (progs, progs_source, cross) = match &host.reading {
        HostReading::NotRead => (guest.progs.clone(), StatsSource::Guest, None),
        HostReading::Programs(host_progs) => {
            let check = policy
                .cross_check
                .then(|| cross_check(host_progs, &guest.progs));
            (host_progs.clone(), StatsSource::Host, check)
        }
        // A failed host read fails the cross-check only when one was asked for; otherwise
        // it is reported beside the guest's numbers, not judged.
        HostReading::Failed(e) => {
            let failed = policy.cross_check.then(|| CrossCheck {
                mismatches: vec![e.clone()],
            });
            (guest.progs.clone(), StatsSource::Guest, failed)
        }
    };
    let rejection = find_rejection(&guest.scheduler_log);
    let load_refusal = find_load_refusal(&guest.scheduler_log);
    let watchdog = Duration::from_millis(host.watchdog_ms);
    let vm = &host.vm;
    let verdict = cell_verdict(RunFacts {
        timed_out: vm.timed_out,
        watchdog,
        phases: &guest.phases,
        attach: &attach,
        liveness: liveness.as_deref(),
        dispatch: dispatch.as_deref().map_err(String::as_str),
        died_status: guest
            .died_status
            .as_deref()
            .filter(|_| !guest.died_during_probe),
        scx_exit: scx_exit.as_ref(),
        cross_check: cross.as_ref(),
        rejection: rejection.as_ref(),
        load_refusal: load_refusal.as_deref(),
    });
    // A failure the environment caused is reported as such, never as the scheduler's; a
    // guest stopped for flooding is never judged on what it got through.
    let verdict = match &verdict {
        _ if verdict.failed() || vm.flooded.is_some() => diagnose(&EnvEvidence {
            console: &host.console,
            scheduler_log: &guest.scheduler_log,
            guest_errors: &guest.guest_errors,
            vm_died: vm.vm_died.as_deref(),
            flooded: vm.flooded.as_deref(),
            timed_out: vm.timed_out,
            watchdog,
            memory: host.memory,
            phases: &guest.phases,
            frames: host.frame_stats.frames as usize,
            scheduler_failed: matches!(attach, AttachOutcome::Died | AttachOutcome::NotAttached(_)),
            attach_expiry: guest.attach_expiry.as_ref(),
        })
        .map_or(verdict, |(cause, reason)| Verdict::env_error(cause, reason)),
        _ => verdict,
    };
    let topology_check = guest
        .topology
        .as_ref()
        .map(|seen| seen.check(cell.topology));
    let verdict = shape_verdict(&cell, &vm.backend, topology_check.as_ref(), verdict);
    // A stream out of order cannot be read as the guest meant it: named, never guessed at.
    let verdict = match &guest.out_of_order {
        Some(e) if vm.flooded.is_none() => Verdict::env_error(
            EnvCause::Protocol,
            format!(
                "the guest's frames broke the protocol's order ({e}): ktstr's init or the \
                 frame channel failed, not the scheduler"
            ),
        ),
        _ => verdict,
    };
    let judgment = RunJudgment {
        cross_check_asked: policy.cross_check,
        attach,
        liveness,
        dispatched: dispatch.is_ok(),
        dispatch_note: Some(dispatch.unwrap_or_else(|why| why)),
        scx_exit,
        verifier_stats: parse_verifier_stats(&guest.scheduler_log),
        rejection,
        load_refusal,
        progs,
        progs_source,
        cross_check: cross,
    };
    (verdict, judgment)
}

/// A guest that did not see the preset ran on a machine the backend built wrong: whatever
/// the scheduler did there says nothing about the preset, so the cell is the
/// environment's error, naming the backend. A guest that reported nothing at all is
/// judged by its other gates, unless it passed them (then ktstr's own init failed).
fn shape_verdict(
    cell: &JudgedCell<'_>,
    backend: &str,
    check: Option<&Result<(), TopologyMismatch>>,
    verdict: Verdict,
) -> Verdict {
    match (check, &verdict) {
        (Some(Err(mismatch)), _) => Verdict::env_error(
            EnvCause::Topology,
            format!(
                "backend {backend} did not present preset {}: {mismatch}",
                cell.preset
            ),
        ),
        (None, Verdict::Pass) => Verdict::env_error(
            EnvCause::Topology,
            "the guest's init reported no topology, so the preset's shape is unconfirmed",
        ),
        _ => verdict,
    }
}

#[cfg(test)]
mod tests;
