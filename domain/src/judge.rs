//! Where a cell's verdict is decided: one pure function from the planned cell, what ktstr
//! found before booting or what the VM left behind, and the policy, to the cell record.
//! Setup failures, the host reading and the cross-check policy, the gates and the
//! environment diagnosis are all settled here and nowhere else.

use crate::attach::{AttachOutcome, GuestReport};
use crate::crosscheck::{CrossCheck, cross_check};
use crate::environment::{EnvEvidence, diagnose};
use crate::guest_memory::GuestMemorySize;
use crate::matrix::PlannedCell;
use crate::prog::ProgStat;
use crate::report::{CellRecord, RunRecord, StatsSource};
use crate::verdict::{EnvCause, Gate, RunFacts, Verdict, cell_verdict};
use crate::vstats::parse_verifier_stats;
use crate::waits::CellWaits;
use crate::wire::decode_all;

/// Lines of the kernel console kept in a record.
pub const CONSOLE_TAIL_LINES: usize = 40;

/// How the judge weighs what it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JudgePolicy {
    /// Fail cells whose host-read and guest-reported programs disagree, or whose host
    /// read failed. Without it a failed host read is reported, not judged.
    pub cross_check: bool,
}

/// The host's own reading of the guest's programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostReading {
    /// No introspection for this backend or run: the guest's report stands alone.
    NotRead,
    Programs(Vec<ProgStat>),
    /// The read failed, with why.
    Failed(String),
}

/// What a VM left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEvidence {
    pub memory: GuestMemorySize,
    pub waits: CellWaits,
    /// Backend and accelerator, e.g. `qemu (tcg)`.
    pub backend: String,
    pub console: String,
    pub frame_bytes: Vec<u8>,
    pub timed_out: bool,
    /// How the VM died under the guest, when it did.
    pub vm_died: Option<String>,
    pub peak_rss_kib: Option<u64>,
    pub host: HostReading,
}

/// Everything known about one cell when it is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellEvidence {
    /// The kernel lacks options ktstr needs: never booted.
    KernelLacks {
        kernel: String,
        missing: Vec<String>,
    },
    /// The scheduler binary or its guest image could not be prepared.
    ImageFailed {
        scheduler: String,
        reason: String,
    },
    /// The backend could not start the VM.
    VmStartFailed {
        reason: String,
    },
    Ran(Box<RunEvidence>),
}

/// The record of one cell; `wall_ms` is left for the caller, who timed it.
pub fn judge(cell: &PlannedCell, evidence: CellEvidence, policy: JudgePolicy) -> CellRecord {
    let record = |verdict, run| CellRecord {
        cell: cell.id.clone(),
        topology: cell.preset.topology,
        verdict,
        run,
        wall_ms: 0,
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
            let (verdict, run) = judge_run(cell, *run, policy);
            record(verdict, Some(run))
        }
    }
}

fn judge_run(cell: &PlannedCell, vm: RunEvidence, policy: JudgePolicy) -> (Verdict, RunRecord) {
    let decoded = decode_all(&vm.frame_bytes);
    let attach = AttachOutcome::from_frames(&decoded.frames);
    let guest = GuestReport::from_frames(&decoded.frames);
    let topology_check = guest
        .topology
        .as_ref()
        .map(|seen| seen.check(&cell.preset.topology));
    let (progs, progs_source, cross, host_read_error) = match vm.host {
        HostReading::NotRead => (guest.progs.clone(), StatsSource::Guest, None, None),
        HostReading::Programs(host_progs) => {
            let check = policy
                .cross_check
                .then(|| cross_check(&host_progs, &guest.progs));
            (host_progs, StatsSource::Host, check, None)
        }
        // A failed host read fails the cross-check only when one was asked for; otherwise
        // it is reported beside the guest's numbers, not judged.
        HostReading::Failed(e) => {
            let failed = policy.cross_check.then(|| CrossCheck {
                mismatches: vec![e.clone()],
            });
            (guest.progs.clone(), StatsSource::Guest, failed, Some(e))
        }
    };
    let verdict = cell_verdict(RunFacts {
        timed_out: vm.timed_out,
        watchdog: vm.waits.watchdog,
        phases: &guest.phases,
        attach: &attach,
        dispatched: guest.dispatched,
        dispatch_note: guest.dispatch_note.as_deref(),
        died_status: guest.died_status.as_deref(),
        payload_started: guest.payload_started,
        topology: topology_check.as_ref(),
        cross_check: cross.as_ref(),
    });
    // A failure the environment caused is reported as such, never as the scheduler's.
    let verdict = match &verdict {
        Verdict::Fail { .. } => diagnose(&EnvEvidence {
            console: &vm.console,
            scheduler_log: &guest.scheduler_log,
            guest_errors: &guest.guest_errors,
            vm_died: vm.vm_died.as_deref(),
            timed_out: vm.timed_out,
            watchdog: vm.waits.watchdog,
            memory: vm.memory,
            phases: &guest.phases,
            attach_expiry: guest.attach_expiry.as_ref(),
        })
        .map_or(verdict, |(cause, reason)| Verdict::env_error(cause, reason)),
        _ => verdict,
    };
    let run = RunRecord {
        backend: vm.backend,
        verifier_stats: parse_verifier_stats(&guest.scheduler_log),
        attach,
        dispatched: guest.dispatched,
        dispatch_note: guest.dispatch_note,
        timed_out: vm.timed_out,
        vm_died: vm.vm_died,
        memory_mib: vm.memory.mib,
        progs,
        progs_source,
        host_read_error,
        cross_check: cross,
        scheduler_log: guest.scheduler_log,
        observed_topology: guest.topology,
        guest_errors: guest.guest_errors,
        frame_stats: decoded.stats,
        phases: guest.phases,
        peak_rss_kib: vm.peak_rss_kib,
        console_tail: tail_lines(&vm.console, CONSOLE_TAIL_LINES),
    };
    (verdict, run)
}

/// The last `n` lines of `text`.
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut tail = lines[lines.len().saturating_sub(n)..].join("\n");
    if !tail.is_empty() {
        tail.push('\n');
    }
    tail
}
