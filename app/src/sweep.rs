//! The sweep use case: expand the matrix, run cells under a budget, judge and report them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};
use ktstr_domain::judging::environment::{CONSOLE_TAIL_LINES, tail_lines};
use ktstr_domain::judging::evidence::{CellEvidence, HostReading, RunEvidence};
use ktstr_domain::judging::judge::{JudgePolicy, judge};
use ktstr_domain::judging::record::Boot;
use ktstr_domain::judging::record::CellRecord;
use ktstr_domain::kernel::spec::KernelSpec;
use ktstr_domain::plan::guest_memory::GuestMemorySize;
use ktstr_domain::plan::manifest::SchedulerDecl;
use ktstr_domain::plan::matrix::{Matrix, MatrixError, MatrixRequest, PlannedCell, expand};
use ktstr_domain::plan::partition::Partition;
use ktstr_domain::plan::waits::{CellWaits, WaitOverrides};
use ktstr_domain::protocol::init_plan::cell_cmdline;
use ktstr_domain::results::report::SweepReport;
use ktstr_ports::{
    GuestImage, GuestImageBuilder, GuestMemory, GuestPlan, Hypervisor, KernelArtifact, KernelCache,
    KernelCacheError, KernelIntrospection, ReportError, Reporter, SchedulerSource, VmSpec,
};
use thiserror::Error;
use tokio::sync::{OnceCell, Semaphore};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::error_text::error_chain;

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
    /// Boots of each cell (`--repeat`); more than one compares their `verified_insns`.
    pub boots_per_cell: u32,
    /// This machine's shard of the sweep (`--partition`).
    pub partition: Option<Partition>,
    /// `ktstr verifier` and the options that shape results (manifest, memory, waits…):
    /// a cell that did not pass gets this plus its kernel, scheduler and name as the
    /// command that reruns just that cell.
    pub rerun_command: Vec<String>,
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

/// The kernels and the cells this machine's sweep would run, without booting anything.
pub async fn plan_cells(
    decls: &[SchedulerDecl],
    kernel_specs: &[KernelSpec],
    ports: &SweepPorts,
    settings: &SweepSettings,
) -> Result<(Vec<KernelArtifact>, Matrix), SweepError> {
    let kernels = ports.kernels.resolve(kernel_specs).await?;
    for k in &kernels {
        info!(kernel = %k.label.sanitized(), image = %k.image.display(), "kernel resolved");
    }
    let labels: Vec<_> = kernels.iter().map(|k| k.label.clone()).collect();
    let mut matrix = expand(decls, &labels, &settings.request)?;
    if let Some(partition) = settings.partition {
        let all = matrix.cells.len();
        let mut position = 0;
        matrix.cells.retain(|cell| {
            position += 1;
            partition.selects(&cell.id, position - 1)
        });
        matrix.warnings.push(format!(
            "partition {partition}: this shard runs {} of the sweep's {all} cells",
            matrix.cells.len()
        ));
    }
    Ok((kernels, matrix))
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
    let (kernels, matrix) = plan_cells(decls, kernel_specs, ports, settings).await?;
    let planned = matrix.cells.len() * settings.boots_per_cell.max(1) as usize;
    ports.reporter.sweep_started(planned, &matrix.warnings)?;

    let images = Images::for_cells(decls, &matrix.cells, ports);
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

    let boots = settings.boots_per_cell.max(1);
    let mut running: FuturesUnordered<_> = matrix
        .cells
        .iter()
        .flat_map(|cell| (1..=boots).map(move |index| (cell, index)))
        .enumerate()
        .map(|(order, (cell, index))| {
            let kernel = &kernels[cell.kernel];
            let images = &images;
            let decl = &decls[cell.scheduler];
            let ctx = &ctx;
            let boot = (boots > 1).then_some(Boot { index, of: boots });
            let span = info_span!("cell", id = %cell.id, boot = index);
            async move {
                let image = images.get(cell.scheduler).await;
                let record = ctx.run(cell, decl, kernel, image).await.map(|mut record| {
                    record.boot = boot;
                    if !record.verdict.passed() {
                        record.repro = Some(rerun_line(
                            &settings.rerun_command,
                            kernel,
                            &decl.name,
                            cell,
                        ));
                    }
                    record
                });
                (order, record)
            }
            .instrument(span)
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
        complete: finished.len() == planned,
        records: finished.into_iter().map(|(_, r)| r).collect(),
        planned,
    };
    ports.reporter.sweep_finished(&report)?;
    Ok(report)
}

/// The command that reruns just `cell`: the sweep's own options, then its kernel, its
/// scheduler and its name as the filter.
fn rerun_line(
    command: &[String],
    kernel: &KernelArtifact,
    scheduler: &str,
    cell: &PlannedCell,
) -> String {
    let name = cell.id.to_string();
    command
        .iter()
        .map(String::as_str)
        .chain([
            "--kernel",
            &kernel.rerun_spec,
            "--scheduler",
            scheduler,
            &name,
        ])
        .map(shell_word)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `word` as a POSIX shell reads it back: unchanged when it is plain, single-quoted
/// otherwise.
pub fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// One initramfs per scheduler used, or the reason it could not be built. Each is built
/// when its scheduler's first cell needs it, so one scheduler's cells boot while another's
/// image (and its scheduler binary) is still being prepared.
struct Images<'a> {
    decls: &'a [SchedulerDecl],
    ports: &'a SweepPorts,
    by_scheduler: HashMap<usize, OnceCell<Result<GuestImage, String>>>,
}

impl<'a> Images<'a> {
    fn for_cells(decls: &'a [SchedulerDecl], cells: &[PlannedCell], ports: &'a SweepPorts) -> Self {
        let by_scheduler = cells
            .iter()
            .map(|cell| (cell.scheduler, OnceCell::new()))
            .collect();
        Images {
            decls,
            ports,
            by_scheduler,
        }
    }

    async fn get(&self, scheduler: usize) -> &Result<GuestImage, String> {
        self.by_scheduler[&scheduler]
            .get_or_init(|| build_image(&self.decls[scheduler], self.ports))
            .await
    }
}

async fn build_image(decl: &SchedulerDecl, ports: &SweepPorts) -> Result<GuestImage, String> {
    let image = match ports.schedulers.binary(decl).await {
        Err(e) => Err(error_chain(&e)),
        Ok(scheduler) => {
            info!(scheduler = %decl.name, binary = %scheduler.display(), "scheduler binary");
            let plan = GuestPlan {
                scheduler,
                sched_args: decl.sched_args.clone(),
            };
            ports.images.build(&plan).await.map_err(|e| error_chain(&e))
        }
    };
    match &image {
        Ok(image) => info!(
            scheduler = %decl.name,
            image = %image.path.display(),
            unpacked_bytes = image.footprint.unpacked_bytes,
            "guest image built"
        ),
        Err(e) => warn!(scheduler = %decl.name, error = %e, "guest image failed"),
    }
    image
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
        let policy = JudgePolicy {
            cross_check: self.settings.cross_check,
        };
        let judged = |evidence| {
            let record = judge(cell, evidence, policy);
            if let Some(run) = &record.run {
                info!(frames = ?run.host.frame_stats, "frames decoded");
            }
            info!(verdict = ?record.verdict, "judged");
            record
        };
        if !kernel.missing_options.is_empty() {
            return Some(judged(CellEvidence::KernelLacks {
                kernel: kernel.label.sanitized().to_string(),
                missing: kernel.missing_options.clone(),
            }));
        }
        let image = match image {
            Ok(image) => image,
            Err(reason) => {
                return Some(judged(CellEvidence::ImageFailed {
                    scheduler: decl.name.clone(),
                    reason: reason.clone(),
                }));
            }
        };
        let topology = cell.preset.topology;
        let memory = GuestMemorySize::for_cell(
            topology.cpus(),
            image.footprint,
            decl.memory_mib,
            self.settings.memory_mib,
        );
        let hypervisor = &self.ports.hypervisor;
        let waits =
            CellWaits::for_cell(topology.cpus(), hypervisor.cpu_mode(), self.settings.waits);
        let job = self.jobs.acquire().await.ok()?;
        let _memory = self
            .memory
            .acquire_many(memory.mib.min(self.memory_budget))
            .await
            .ok()?;
        self.ports.reporter.cell_started(&cell.id);
        let started = Instant::now();
        let mut cmdline = self.settings.kernel_args.clone();
        cmdline.push(cell_cmdline(
            hypervisor.guest_channels(),
            waits.attach,
            waits.probe,
        ));
        let spec = VmSpec {
            kernel_image: kernel.image.clone(),
            vmlinux: Some(kernel.vmlinux.clone()),
            initramfs: image.path.clone(),
            cmdline: cmdline.join(" "),
            topology,
            memory_mib: memory.mib,
            timeout: waits.watchdog,
        };
        info!(
            backend = %hypervisor.name(),
            memory_mib = memory.mib,
            watchdog_s = waits.watchdog.as_secs(),
            cmdline = %spec.cmdline,
            "booting"
        );
        let ran = hypervisor.run(spec).await;
        // The VM is gone: the next cell may boot while this one's memory is read and judged.
        drop(job);
        let evidence = match ran {
            Err(e) => {
                warn!(error = %error_chain(&e), "the VM did not start");
                CellEvidence::VmStartFailed {
                    reason: error_chain(&e),
                }
            }
            Ok(vm) => {
                info!(
                    frame_bytes = vm.frame_bytes.len(),
                    timed_out = vm.facts.timed_out,
                    vm_died = vm.facts.vm_died.as_deref().unwrap_or("no"),
                    peak_rss_kib = vm.facts.peak_rss_kib,
                    init_after_ms = vm.facts.init_after_ms,
                    "VM stopped"
                );
                debug!(console_tail = %tail_lines(&vm.console, CONSOLE_TAIL_LINES), "guest console");
                let host = self.read_host_programs(kernel, vm.memory).await;
                CellEvidence::Ran(Box::new(RunEvidence {
                    vm: vm.facts,
                    memory,
                    waits,
                    console: vm.console,
                    frame_bytes: vm.frame_bytes,
                    host,
                }))
            }
        };
        let mut record = judged(evidence);
        record.wall_ms = started.elapsed().as_millis() as u64;
        Some(record)
    }

    /// The host's reading of the guest's programs, when it has introspection and memory.
    async fn read_host_programs(
        &self,
        kernel: &KernelArtifact,
        memory: Option<Box<dyn GuestMemory>>,
    ) -> HostReading {
        let (Some(introspection), Some(memory)) = (self.ports.introspection.clone(), memory) else {
            info!("host read: not available for this run");
            return HostReading::NotRead;
        };
        let kernel = kernel.clone();
        let read = tokio::task::spawn_blocking(move || {
            introspection.read_programs(&kernel, memory.as_ref())
        })
        .await;
        let reading = match read {
            Ok(Ok(progs)) => HostReading::Programs(progs),
            Ok(Err(e)) => HostReading::Failed(error_chain(&e)),
            Err(e) => HostReading::Failed(format!("the introspection task failed: {e}")),
        };
        match &reading {
            HostReading::Programs(progs) => info!(programs = progs.len(), "host read"),
            HostReading::Failed(e) => warn!(error = %e, "host read failed"),
            HostReading::NotRead => {}
        }
        reading
    }
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn words_a_shell_reads_back_unchanged() {
        assert_eq!(
            shell_word("verifier/s/kernel_6_12/tiny-1llc"),
            "verifier/s/kernel_6_12/tiny-1llc"
        );
        assert_eq!(shell_word("--memory=512"), "--memory=512");
        assert_eq!(shell_word("my dir/x"), "'my dir/x'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("$HOME"), "'$HOME'");
    }
}
