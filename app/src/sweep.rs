//! The sweep use case: expand the matrix, run cells under a budget, judge and report them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};
use ktstr_domain::attach::{AttachOutcome, GuestReport};
use ktstr_domain::crosscheck::cross_check;
use ktstr_domain::environment::{EnvEvidence, diagnose};
use ktstr_domain::guest_memory::GuestMemorySize;
use ktstr_domain::init_plan::cell_cmdline;
use ktstr_domain::kernel::KernelSpec;
use ktstr_domain::manifest::SchedulerDecl;
use ktstr_domain::matrix::{MatrixError, MatrixRequest, PlannedCell, expand};
use ktstr_domain::report::{CellRecord, RunRecord, StatsSource, SweepReport};
use ktstr_domain::verdict::{EnvCause, Gate, RunFacts, Verdict, cell_verdict};
use ktstr_domain::vstats::parse_verifier_stats;
use ktstr_domain::waits::{CellWaits, WaitOverrides};
use ktstr_domain::wire::decode_all;
use ktstr_ports::{
    GuestImage, GuestImageBuilder, GuestPlan, Hypervisor, HypervisorError, KernelArtifact,
    KernelCache, KernelCacheError, KernelIntrospection, ReportError, Reporter, SchedulerSource,
    VmRun, VmSpec,
};
use thiserror::Error;
use tokio::sync::Semaphore;

/// The adapters one sweep runs on.
#[derive(Clone)]
pub struct SweepPorts {
    pub kernels: Arc<dyn KernelCache>,
    pub hypervisor: Arc<dyn Hypervisor>,
    pub schedulers: Arc<dyn SchedulerSource>,
    pub images: Arc<dyn GuestImageBuilder>,
    /// Host-side reading of `verified_insns`; without it the guest's own report is used.
    pub introspection: Option<Arc<dyn KernelIntrospection>>,
    pub reporter: Arc<dyn Reporter>,
}

impl std::fmt::Debug for SweepPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SweepPorts")
            .field("hypervisor", &self.hypervisor.name())
            .field("introspection", &self.introspection.is_some())
            .finish_non_exhaustive()
    }
}

/// How a sweep runs, beyond which cells it covers.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    pub request: MatrixRequest,
    /// Cells booted at once.
    pub jobs: usize,
    /// Guest RAM all running cells may hold together.
    pub memory_budget_mib: u64,
    /// The user's fixed waits; the rest scale with each cell's vCPUs and the backend.
    pub waits: WaitOverrides,
    /// Guest RAM for every cell (`--memory`); `None` sizes each cell from its image.
    pub memory_mib: Option<u32>,
    /// Kernel command line the guest boots with, beyond the backend's console setup.
    pub kernel_args: Vec<String>,
    /// Fail cells whose host-read and guest-reported programs disagree.
    pub cross_check: bool,
}

#[derive(Debug, Error)]
pub enum SweepError {
    #[error(transparent)]
    Kernels(#[from] KernelCacheError),
    #[error(transparent)]
    Matrix(#[from] MatrixError),
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// Lines of the kernel console kept in a record.
const CONSOLE_TAIL_LINES: usize = 40;

/// The last `n` lines of `text`.
fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut tail = lines[lines.len().saturating_sub(n)..].join("\n");
    if !tail.is_empty() {
        tail.push('\n');
    }
    tail
}

/// Runs the sweep until done or until `interrupt` resolves; an interrupted sweep still
/// returns (and reports) the cells that finished, marked incomplete.
pub async fn run_sweep(
    decls: &[SchedulerDecl],
    kernel_specs: &[KernelSpec],
    ports: &SweepPorts,
    settings: &SweepSettings,
    interrupt: impl Future<Output = ()>,
) -> Result<SweepReport, SweepError> {
    let kernels = ports.kernels.resolve(kernel_specs).await?;
    let labels: Vec<_> = kernels.iter().map(|k| k.label.clone()).collect();
    let matrix = expand(decls, &labels, &settings.request)?;
    ports
        .reporter
        .sweep_started(matrix.cells.len(), &matrix.warnings)?;

    let images = prepare_images(decls, &matrix.cells, ports).await;
    let jobs = Semaphore::new(settings.jobs.max(1));
    let budget = settings.memory_budget_mib.clamp(1, u64::from(u32::MAX)) as u32;
    let memory = Semaphore::new(budget as usize);
    let ctx = CellContext {
        ports,
        settings,
        jobs: &jobs,
        memory: &memory,
        memory_budget: budget,
    };

    let mut running: FuturesUnordered<_> = matrix
        .cells
        .iter()
        .enumerate()
        .map(|(index, cell)| {
            let kernel = &kernels[cell.kernel];
            let image = &images[&cell.scheduler];
            let decl = &decls[cell.scheduler];
            let ctx = &ctx;
            async move { (index, ctx.run(cell, decl, kernel, image).await) }
        })
        .collect();

    let mut finished: Vec<(usize, CellRecord)> = Vec::new();
    tokio::pin!(interrupt);
    loop {
        tokio::select! {
            // Cells that already finished are reported before an interrupt is honoured.
            biased;
            next = running.next() => match next {
                None => break,
                // An interrupted VM has no outcome; the count below marks the sweep.
                Some((_, None)) => {}
                Some((index, Some(record))) => {
                    ports.reporter.cell_finished(&record)?;
                    finished.push((index, record));
                }
            },
            () = &mut interrupt => break,
        }
    }
    // Dropping the in-flight cells tears their VMs down before the summary is printed.
    drop(running);
    finished.sort_by_key(|(index, _)| *index);
    let report = SweepReport {
        complete: finished.len() == matrix.cells.len(),
        records: finished.into_iter().map(|(_, r)| r).collect(),
        planned: matrix.cells.len(),
    };
    ports.reporter.sweep_finished(&report)?;
    Ok(report)
}

/// One initramfs per scheduler used, or the reason it could not be built.
async fn prepare_images(
    decls: &[SchedulerDecl],
    cells: &[PlannedCell],
    ports: &SweepPorts,
) -> HashMap<usize, Result<GuestImage, String>> {
    let mut images = HashMap::new();
    for cell in cells {
        if images.contains_key(&cell.scheduler) {
            continue;
        }
        let decl = &decls[cell.scheduler];
        let image = match ports.schedulers.binary(decl).await {
            Err(e) => Err(e.to_string()),
            Ok(scheduler) => {
                let plan = GuestPlan {
                    scheduler,
                    sched_args: decl.sched_args.clone(),
                };
                ports.images.build(&plan).await.map_err(|e| e.to_string())
            }
        };
        images.insert(cell.scheduler, image);
    }
    images
}

struct CellContext<'a> {
    ports: &'a SweepPorts,
    settings: &'a SweepSettings,
    jobs: &'a Semaphore,
    memory: &'a Semaphore,
    memory_budget: u32,
}

impl CellContext<'_> {
    /// `None` when the cell was interrupted and has no outcome.
    async fn run(
        &self,
        cell: &PlannedCell,
        decl: &SchedulerDecl,
        kernel: &KernelArtifact,
        image: &Result<GuestImage, String>,
    ) -> Option<CellRecord> {
        let topology = cell.preset.topology;
        let unbooted = |verdict: Verdict| CellRecord {
            cell: cell.id.clone(),
            topology,
            verdict,
            run: None,
            wall_ms: 0,
        };
        if !kernel.missing_options.is_empty() {
            return Some(unbooted(Verdict::fail(
                Gate::Setup,
                format!(
                    "kernel {} lacks {}; not booted (rebuild it with ktstr's kconfig fragment)",
                    kernel.label.sanitized(),
                    kernel.missing_options.join(", ")
                ),
            )));
        }
        let image = match image {
            Ok(image) => image,
            Err(reason) => {
                return Some(unbooted(Verdict::env_error(
                    EnvCause::Image,
                    format!("scheduler `{}`: {reason}", decl.name),
                )));
            }
        };
        let memory = GuestMemorySize::for_cell(
            topology.cpus(),
            image.footprint,
            decl.memory_mib,
            self.settings.memory_mib,
        );
        let waits = CellWaits::for_cell(
            topology.cpus(),
            self.ports.hypervisor.cpu_mode(),
            self.settings.waits,
        );
        let _job = self.jobs.acquire().await.ok()?;
        let _memory = self
            .memory
            .acquire_many(memory.mib.min(self.memory_budget))
            .await
            .ok()?;
        let started = Instant::now();
        let mut cmdline = self.settings.kernel_args.clone();
        cmdline.push(cell_cmdline(waits.attach, waits.probe));
        let spec = VmSpec {
            kernel_image: kernel.image.clone(),
            initramfs: image.path.clone(),
            cmdline: cmdline.join(" "),
            topology,
            memory_mib: memory.mib,
            timeout: waits.watchdog,
        };
        let vm = match self.ports.hypervisor.run(spec).await {
            Ok(vm) => vm,
            Err(HypervisorError::Interrupted) => return None,
            Err(e) => {
                return Some(unbooted(Verdict::env_error(
                    EnvCause::VmStart,
                    e.to_string(),
                )));
            }
        };
        let mut record = self.judge(cell, kernel, vm, memory, waits).await;
        record.wall_ms = started.elapsed().as_millis() as u64;
        Some(record)
    }

    /// Turns what the VM left behind into a verdict.
    async fn judge(
        &self,
        cell: &PlannedCell,
        kernel: &KernelArtifact,
        vm: VmRun,
        memory: GuestMemorySize,
        waits: CellWaits,
    ) -> CellRecord {
        let decoded = decode_all(&vm.frame_bytes);
        let attach = AttachOutcome::from_frames(&decoded.frames);
        let guest = GuestReport::from_frames(&decoded.frames);
        let host = self.read_host_programs(kernel, vm.memory).await;
        let topology_check = guest
            .topology
            .as_ref()
            .map(|seen| seen.check(&cell.preset.topology));
        let (progs, progs_source, cross, host_read_error) = match host {
            None => (guest.progs.clone(), StatsSource::Guest, None, None),
            Some(Ok(host_progs)) => {
                let check = self
                    .settings
                    .cross_check
                    .then(|| cross_check(&host_progs, &guest.progs));
                (host_progs, StatsSource::Host, check, None)
            }
            // A failed host read fails the cross-check only when one was asked for;
            // otherwise it is reported beside the guest's numbers, not judged.
            Some(Err(e)) => {
                let failed =
                    self.settings
                        .cross_check
                        .then(|| ktstr_domain::crosscheck::CrossCheck {
                            mismatches: vec![e.clone()],
                        });
                (guest.progs.clone(), StatsSource::Guest, failed, Some(e))
            }
        };
        let verdict = cell_verdict(RunFacts {
            timed_out: vm.timed_out,
            watchdog: waits.watchdog,
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
                watchdog: waits.watchdog,
                memory,
                phases: &guest.phases,
                attach_expiry: guest.attach_expiry.as_ref(),
            })
            .map_or(verdict, |(cause, reason)| Verdict::env_error(cause, reason)),
            _ => verdict,
        };
        CellRecord {
            cell: cell.id.clone(),
            topology: cell.preset.topology,
            verdict,
            run: Some(RunRecord {
                backend: vm.backend,
                verifier_stats: parse_verifier_stats(&guest.scheduler_log),
                attach,
                dispatched: guest.dispatched,
                dispatch_note: guest.dispatch_note,
                timed_out: vm.timed_out,
                vm_died: vm.vm_died,
                memory_mib: memory.mib,
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
            }),
            wall_ms: 0,
        }
    }

    /// `None` when host introspection is not available for this run.
    async fn read_host_programs(
        &self,
        kernel: &KernelArtifact,
        memory: Option<Box<dyn ktstr_ports::GuestMemory>>,
    ) -> Option<Result<Vec<ktstr_domain::prog::ProgStat>, String>> {
        let introspection = self.ports.introspection.clone()?;
        let memory = memory?;
        let kernel = kernel.clone();
        let read = tokio::task::spawn_blocking(move || {
            introspection
                .read_programs(&kernel, memory.as_ref())
                .map_err(|e| e.to_string())
        })
        .await;
        Some(read.unwrap_or_else(|e| Err(format!("introspection task failed: {e}"))))
    }
}
