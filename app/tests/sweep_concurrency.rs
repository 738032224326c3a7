//! The sweep use case under load and interruption: job and memory budgets, and VMs torn
//! down when a sweep is interrupted.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use ktstr::sweep::run_sweep;
use ktstr_domain::kernel::spec::KernelSpec;
use ktstr_domain::plan::waits::CpuMode;
use ktstr_domain::protocol::init_plan::GuestChannels;
use ktstr_ports::{HypervisorError, VmRun, VmSpec};

/// A backend whose VMs take a while, counting how many run at once.
#[derive(Default)]
struct SlowHypervisor {
    live: AtomicUsize,
    peak: AtomicUsize,
}

#[async_trait::async_trait]
impl ktstr_ports::Hypervisor for SlowHypervisor {
    fn name(&self) -> String {
        "slow".into()
    }
    fn cpu_mode(&self) -> CpuMode {
        CpuMode::Emulated
    }
    fn guest_channels(&self) -> GuestChannels {
        GUEST_DEVICES
    }
    async fn run(&self, spec: VmSpec) -> Result<VmRun, HypervisorError> {
        let now = self.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.live.fetch_sub(1, Ordering::SeqCst);
        Ok(vm(&healthy(&spec), false))
    }
}

async fn peak_vms(jobs: usize, memory_budget_mib: u64) -> usize {
    let (mut ports, _) = Harness::new(vec![artifact("6.12.117", &[])]).ports();
    let slow = Arc::new(SlowHypervisor::default());
    ports.hypervisor = slow.clone();
    let mut s = settings(&[]);
    s.jobs = jobs;
    s.memory_budget_mib = memory_budget_mib;
    let report = run_sweep(&one_scheduler(), &[], &ports, &s, std::future::pending())
        .await
        .unwrap();
    assert!(report.records.len() > 3);
    assert!(report.succeeded());
    slow.peak.load(Ordering::SeqCst)
}

#[tokio::test]
async fn jobs_and_the_memory_budget_bound_how_many_vms_run_at_once() {
    assert_eq!(peak_vms(1, 1 << 20).await, 1);
    assert_eq!(peak_vms(3, 1 << 20).await, 3);
    // Each VM is sized to at least 960 MiB: a 1 GiB budget fits one at a time.
    assert_eq!(peak_vms(3, 1024).await, 1);
    // A VM bigger than the whole budget still runs, alone.
    assert_eq!(peak_vms(3, 100).await, 1);
}

#[tokio::test]
async fn an_interrupted_sweep_reports_finished_cells_as_incomplete() {
    let (mut ports, recorder) = Harness::new(vec![artifact("6.12.117", &[])]).ports();
    let hanging = Arc::new(HangingHypervisor {
        one_llc_finishes: true,
        ..Default::default()
    });
    ports.hypervisor = hanging.clone();
    let report = run_sweep(
        &one_scheduler(),
        &[],
        &ports,
        &settings(&["tiny-1llc", "tiny-2llc"]),
        tokio::time::sleep(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    assert_eq!(hanging.torn_down.load(Ordering::SeqCst), 1);
    assert!(!report.complete);
    assert_eq!(report.planned, 2);
    assert_eq!(report.records.len(), 1);
    assert!(!report.succeeded());
    assert!(!recorder.finished.lock().unwrap().as_ref().unwrap().complete);
}

/// A backend whose VMs never stop (but, if asked, those of one LLC); counts the runs torn
/// down by being dropped.
#[derive(Default)]
struct HangingHypervisor {
    torn_down: Arc<AtomicUsize>,
    one_llc_finishes: bool,
}

struct TearDown(Arc<AtomicUsize>);

impl Drop for TearDown {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl ktstr_ports::Hypervisor for HangingHypervisor {
    fn name(&self) -> String {
        "hanging".into()
    }
    fn cpu_mode(&self) -> CpuMode {
        CpuMode::Emulated
    }
    fn guest_channels(&self) -> GuestChannels {
        GUEST_DEVICES
    }
    async fn run(&self, spec: VmSpec) -> Result<VmRun, HypervisorError> {
        if self.one_llc_finishes && spec.topology.llcs == 1 {
            return Ok(vm(&healthy(&spec), false));
        }
        let _guard = TearDown(Arc::clone(&self.torn_down));
        std::future::pending::<()>().await;
        unreachable!("a pending future never completes")
    }
}

#[tokio::test]
async fn the_interrupt_future_stops_the_sweep_and_drops_running_vms() {
    let (mut ports, recorder) = Harness::new(vec![artifact("6.12.117", &[])]).ports();
    let hanging = Arc::new(HangingHypervisor::default());
    let torn_down = Arc::clone(&hanging.torn_down);
    ports.hypervisor = hanging;
    let mut s = settings(&["tiny-1llc", "tiny-2llc", "odd-3llc"]);
    s.jobs = 2;
    let report = run_sweep(
        &one_scheduler(),
        &[KernelSpec::CacheKey("k".into())],
        &ports,
        &s,
        tokio::time::sleep(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    assert!(!report.complete);
    assert_eq!(report.planned, 3);
    assert!(report.records.is_empty());
    // The two VMs that were running were torn down before the summary.
    assert_eq!(torn_down.load(Ordering::SeqCst), 2);
    assert!(!recorder.finished.lock().unwrap().as_ref().unwrap().complete);
}

/// A backend that says when it has run a VM.
struct AnnouncingHypervisor {
    vm_ran: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl ktstr_ports::Hypervisor for AnnouncingHypervisor {
    fn name(&self) -> String {
        "announcing".into()
    }
    fn cpu_mode(&self) -> CpuMode {
        CpuMode::Emulated
    }
    fn guest_channels(&self) -> GuestChannels {
        GUEST_DEVICES
    }
    async fn run(&self, spec: VmSpec) -> Result<VmRun, HypervisorError> {
        self.vm_ran.notify_one();
        Ok(vm(&healthy(&spec), false))
    }
}

/// Scheduler `b` takes until some VM has run to build: a sweep that prepared every image
/// before booting anything would wait for it forever.
struct SecondSchedulerWaitsForAVm {
    vm_ran: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl ktstr_ports::SchedulerSource for SecondSchedulerWaitsForAVm {
    async fn binary(
        &self,
        decl: &ktstr_domain::plan::manifest::SchedulerDecl,
    ) -> Result<std::path::PathBuf, ktstr_ports::SchedulerSourceError> {
        if decl.name == "b" {
            tokio::time::timeout(Duration::from_secs(10), self.vm_ran.notified())
                .await
                .expect("b's build held up every VM: no cell booted while it ran");
        }
        Ok(format!("/bin/{}", decl.name).into())
    }
}

#[tokio::test]
async fn one_schedulers_cells_boot_while_anothers_image_is_prepared() {
    let two = decls(
        "[[scheduler]]\nname = \"a\"\nbinary = \"/a\"\n[[scheduler]]\nname = \"b\"\nbinary = \"/b\"\n",
    );
    let (mut ports, _) = Harness::new(vec![artifact("6.12.117", &[])]).ports();
    let vm_ran = Arc::new(tokio::sync::Notify::new());
    ports.hypervisor = Arc::new(AnnouncingHypervisor {
        vm_ran: vm_ran.clone(),
    });
    ports.schedulers = Arc::new(SecondSchedulerWaitsForAVm { vm_ran });
    let report = run_sweep(
        &two,
        &[],
        &ports,
        &settings(&["tiny-1llc"]),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(report.records.len(), 2);
    assert!(report.succeeded(), "{:?}", report.records);
}
