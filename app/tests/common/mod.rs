//! The harness the sweep use-case tests share: mocked ports and realistic frames.
#![allow(dead_code)] // each test file uses part of it

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ktstr::sweep::{SweepError, SweepPorts, SweepSettings, run_sweep};
use ktstr_domain::judging::evidence::VmFacts;
use ktstr_domain::judging::record::CellRecord;
use ktstr_domain::judging::verdict::{EnvCause, Gate, Verdict};
use ktstr_domain::kernel::spec::KernelLabel;
use ktstr_domain::plan::cell::CellId;
use ktstr_domain::plan::guest_memory::ImageFootprint;
use ktstr_domain::plan::manifest::{SchedulerDecl, parse_manifest};
use ktstr_domain::plan::matrix::MatrixRequest;
use ktstr_domain::plan::waits::{CpuMode, WaitOverrides};
use ktstr_domain::protocol::frame::Frame;
use ktstr_domain::protocol::init_plan::GuestChannels;
use ktstr_domain::protocol::observation::ProbeReport;
use ktstr_domain::protocol::observation::ScxSample;
use ktstr_domain::protocol::wire::encode;
use ktstr_domain::results::report::SweepReport;
use ktstr_domain::shape::constraints::HostBudget;
use ktstr_domain::shape::observed::ObservedTopology;
use ktstr_domain::verifier_log::prog::ProgStat;
use ktstr_ports::{
    GuestImage, KernelArtifact, MockGuestImageBuilder, MockHypervisor, MockKernelCache,
    MockKernelIntrospection, MockSchedulerSource, ReportError, Reporter, VmRun, VmSpec,
};

/// Collects what the use case reports, in order.
#[derive(Default)]
pub struct Recorder {
    pub started: Mutex<Option<(usize, Vec<String>)>>,
    /// Cells whose VM was about to boot.
    pub booting: Mutex<Vec<String>>,
    pub cells: Mutex<Vec<String>>,
    pub finished: Mutex<Option<SweepReport>>,
}

impl Reporter for Recorder {
    fn sweep_started(&self, planned: usize, warnings: &[String]) -> Result<(), ReportError> {
        *self.started.lock().unwrap() = Some((planned, warnings.to_vec()));
        Ok(())
    }
    fn cell_started(&self, cell: &CellId) {
        self.booting.lock().unwrap().push(cell.to_string());
    }
    fn cell_finished(&self, record: &CellRecord) -> Result<(), ReportError> {
        self.cells.lock().unwrap().push(record.cell.to_string());
        Ok(())
    }
    fn sweep_finished(&self, report: &SweepReport) -> Result<(), ReportError> {
        *self.finished.lock().unwrap() = Some(report.clone());
        Ok(())
    }
}

pub fn artifact(version: &str, missing: &[&str]) -> KernelArtifact {
    KernelArtifact {
        label: KernelLabel::new(version, version.parse().ok()),
        rerun_spec: format!("{version}-x86_64-aaaa"),
        image: PathBuf::from(format!("/kernels/{version}/bzImage")),
        vmlinux: PathBuf::from(format!("/kernels/{version}/vmlinux")),
        missing_options: missing.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn decls(text: &str) -> Vec<SchedulerDecl> {
    parse_manifest(text).unwrap()
}

pub fn one_scheduler() -> Vec<SchedulerDecl> {
    decls("[[scheduler]]\nname = \"sched\"\nbinary = \"/bin/sched\"\n")
}

pub fn settings(filters: &[&str]) -> SweepSettings {
    SweepSettings {
        request: MatrixRequest {
            scheduler: None,
            filters: filters.iter().map(|f| f.to_string()).collect(),
            host: HostBudget { max_vcpus: 16 },
        },
        jobs: 2,
        memory_budget_mib: 4096,
        waits: WaitOverrides {
            watchdog: Some(Duration::from_secs(30)),
            attach: Some(Duration::from_secs(5)),
            probe: Some(Duration::from_millis(300)),
        },
        memory_mib: None,
        kernel_args: vec!["nokaslr".into()],
        cross_check: true,
        boots_per_cell: 1,
        partition: None,
        rerun_command: vec!["ktstr".into(), "verifier".into()],
    }
}

pub fn prog(id: u32, name: &str, insns: u32) -> ProgStat {
    ProgStat {
        id,
        prog_type: 27,
        name: name.into(),
        verified_insns: insns,
    }
}

/// The scheduler started and the guest's first look at sched_ext, as every run begins.
pub fn started(pid: u32) -> [Frame; 2] {
    [
        Frame::SchedulerStarted { pid },
        Frame::SchedExtSample {
            sample: ScxSample::alive("disabled", 0),
        },
    ]
}

/// The guest's look at sched_ext while the scheduler is enabled.
pub fn enabled_sample() -> Frame {
    Frame::SchedExtSample {
        sample: ScxSample::alive("enabled", 1),
    }
}

/// A probe of `workers` that each blocked, then made `iterations`.
pub fn probe(workers: u32, iterations: u64) -> Frame {
    Frame::WorkerProgress {
        probe: ProbeReport::every_worker_ran(workers, iterations),
    }
}

/// Whether `frame` is the probe's report.
pub fn is_probe(frame: &Frame) -> bool {
    matches!(frame, Frame::WorkerProgress { .. })
}

/// The frames of a healthy run on `spec`'s topology.
pub fn healthy(spec: &VmSpec) -> Vec<Frame> {
    vec![
        Frame::Topology {
            topology: ObservedTopology::ideal(&spec.topology),
        },
        Frame::SchedulerStarted { pid: 42 },
        Frame::SchedExtSample {
            sample: ScxSample::alive("disabled", 0),
        },
        enabled_sample(),
        Frame::PayloadStarting,
        probe(spec.topology.cpus(), 1000),
        enabled_sample(),
        Frame::ProgStats {
            progs: vec![
                prog(7, "ktstr_dispatch", 100 + spec.topology.cpus()),
                prog(8, "ktstr_init", 2296),
            ],
        },
        Frame::SchedulerLog {
            text: "scheduler up\n".into(),
        },
        // Milestones may arrive anywhere in the stream; the init's first and its last
        // (sent before it reboots) are enough here.
        Frame::Phase {
            phase: "init".into(),
            uptime_ms: 1500,
        },
        Frame::Phase {
            phase: "reboot".into(),
            uptime_ms: 3000,
        },
    ]
}

pub fn vm(frames: &[Frame], timed_out: bool) -> VmRun {
    VmRun {
        facts: VmFacts {
            backend: "mock".into(),
            timed_out,
            ..VmFacts::default()
        },
        console: String::new(),
        frame_bytes: frames.iter().flat_map(encode).collect(),
        memory: None,
    }
}

/// What every mocked image costs in guest RAM: 3 MiB packed, 9 MiB unpacked.
pub const IMAGE_FOOTPRINT: ImageFootprint = ImageFootprint {
    compressed_bytes: 3 << 20,
    unpacked_bytes: 9 << 20,
};

/// The devices every mocked backend names; the use case puts them on the command line.
pub const GUEST_DEVICES: GuestChannels = GuestChannels::CONSOLE_FIRST;

pub struct Harness {
    pub kernels: Vec<KernelArtifact>,
    pub hypervisor: MockHypervisor,
    pub schedulers: MockSchedulerSource,
    pub images: MockGuestImageBuilder,
    pub introspection: Option<MockKernelIntrospection>,
    pub recorder: Arc<Recorder>,
}

impl Harness {
    pub fn new(kernels: Vec<KernelArtifact>) -> Self {
        let mut schedulers = MockSchedulerSource::new();
        schedulers
            .expect_binary()
            .returning(|d| Ok(PathBuf::from(format!("/bin/{}", d.name))));
        let mut images = MockGuestImageBuilder::new();
        images.expect_build().returning(|plan| {
            Ok(GuestImage {
                path: Path::new("/images").join(plan.scheduler.file_name().unwrap()),
                footprint: IMAGE_FOOTPRINT,
            })
        });
        let mut hypervisor = MockHypervisor::new();
        hypervisor.expect_cpu_mode().return_const(CpuMode::Emulated);
        hypervisor
            .expect_guest_channels()
            .return_const(GUEST_DEVICES);
        Harness {
            kernels,
            hypervisor,
            schedulers,
            images,
            introspection: None,
            recorder: Arc::new(Recorder::default()),
        }
    }

    pub fn ports(self) -> (SweepPorts, Arc<Recorder>) {
        let mut cache = MockKernelCache::new();
        let kernels = self.kernels;
        cache
            .expect_resolve()
            .returning(move |_| Ok(kernels.clone()));
        let ports = SweepPorts {
            kernels: Arc::new(cache),
            hypervisor: Arc::new(self.hypervisor),
            schedulers: Arc::new(self.schedulers),
            images: Arc::new(self.images),
            introspection: self
                .introspection
                .map(|i| Arc::new(i) as Arc<dyn ktstr_ports::KernelIntrospection>),
            reporter: self.recorder.clone(),
        };
        (ports, self.recorder)
    }
}

pub async fn sweep(
    decls: &[SchedulerDecl],
    harness: Harness,
    settings: &SweepSettings,
) -> (Result<SweepReport, SweepError>, Arc<Recorder>) {
    let (ports, recorder) = harness.ports();
    let never = std::future::pending::<()>();
    let result = run_sweep(decls, &[], &ports, settings, never).await;
    (result, recorder)
}

pub fn verdict_of<'a>(report: &'a SweepReport, cell: &str) -> &'a Verdict {
    &report
        .records
        .iter()
        .find(|r| r.cell.to_string() == cell)
        .unwrap_or_else(|| panic!("no record for {cell}"))
        .verdict
}

pub fn failed_gate(verdict: &Verdict) -> (Gate, String) {
    match verdict {
        Verdict::Fail { gate, reason } => (*gate, reason.clone()),
        other => panic!("expected a failure, got {other:?}"),
    }
}

pub fn env_error(verdict: &Verdict) -> (EnvCause, String) {
    match verdict {
        Verdict::Error { cause, reason } => (*cause, reason.clone()),
        other => panic!("expected an environment error, got {other:?}"),
    }
}
