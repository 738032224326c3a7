//! Cells sized for what they carry, and the environment's failures told apart from the
//! scheduler's: guest memory and waits per cell, OOM kills, dead VMs, slow boots.

mod common;

use std::time::Duration;

use common::*;
use ktstr_domain::judging::verdict::{EnvCause, Gate};
use ktstr_domain::plan::waits::WaitOverrides;
use ktstr_domain::protocol::frame::Frame;
use ktstr_domain::results::report::SweepOutcome;

/// The frames of a scheduler the OOM killer took while it loaded.
fn killed_while_loading() -> Vec<Frame> {
    vec![
        Frame::Phase {
            phase: "init".into(),
            uptime_ms: 1500,
        },
        started(50)[0].clone(),
        started(50)[1].clone(),
        Frame::SchedulerDied {
            status: "killed by signal 9".into(),
        },
    ]
}

#[tokio::test]
async fn guest_memory_is_sized_per_cell_and_overridable() {
    let mut h = Harness::new(vec![artifact("6.12.117", &[])]);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    h.hypervisor.expect_run().returning(move |spec| {
        record.lock().unwrap().push((
            spec.topology.cpus(),
            spec.memory_mib,
            spec.cmdline.clone(),
            spec.timeout,
        ));
        Ok(vm(&healthy(&spec), false))
    });
    // No fixed waits: they scale with the cell.
    let mut scaled = settings(&["tiny-1llc", "smt-2llc"]);
    scaled.waits = WaitOverrides::default();
    let (report, _) = sweep(&one_scheduler(), h, &scaled).await;
    let report = report.unwrap();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    // 256 MiB base + 12 MiB of image + 640 MiB floor + 8 MiB per CPU, rounded up to 64.
    assert_eq!((seen[0].0, seen[0].1), (4, 960));
    assert_eq!((seen[1].0, seen[1].1), (8, 960 + 64));
    // The backend's console and frame devices and the cell's waits, scaled with its
    // vCPUs, travel on the kernel command line.
    assert_eq!(
        seen[0].2,
        "nokaslr console=ttyS0 ktstr.frames=/dev/ttyS1 ktstr.attach_ms=61000 \
         ktstr.probe_ms=516"
    );
    assert!(
        seen[1]
            .2
            .ends_with("ktstr.attach_ms=62000 ktstr.probe_ms=532")
    );
    assert_eq!(seen[0].3, Duration::from_secs(124));
    assert_eq!(report.records[0].run.as_ref().unwrap().host.memory.mib, 960);

    // The manifest's memory_mib, then --memory, win over the sizing.
    let manifest =
        decls("[[scheduler]]\nname = \"sched\"\nbinary = \"/bin/sched\"\nmemory_mib = 1536\n");
    for (cli, want) in [(None, 1536), (Some(700), 700)] {
        let mut h = Harness::new(vec![artifact("6.12.117", &[])]);
        h.hypervisor
            .expect_run()
            .withf(move |spec| spec.memory_mib == want)
            .returning(|spec| Ok(vm(&healthy(&spec), false)));
        let mut s = settings(&["tiny-1llc"]);
        s.memory_mib = cli;
        let (report, _) = sweep(&manifest, h, &s).await;
        assert!(report.unwrap().succeeded());
    }
}

#[tokio::test]
async fn an_oom_kill_is_an_environment_error_naming_the_memory_and_the_fix() {
    let mut h = Harness::new(vec![artifact("6.12.117", &[])]);
    h.hypervisor.expect_run().returning(|_| {
        let mut run = vm(&killed_while_loading(), false);
        run.console = "[    9.1] Out of memory: Killed process 50 (scx_layered) \
                       total-vm:272952kB, anon-rss:1024kB\n"
            .into();
        Ok(run)
    });
    let (report, _) = sweep(&one_scheduler(), h, &settings(&["tiny-1llc"])).await;
    let report = report.unwrap();
    let (cause, reason) = env_error(&report.records[0].verdict);
    assert_eq!(cause, EnvCause::GuestOutOfMemory);
    assert_eq!(
        reason,
        "guest ran out of memory (960 MiB): the kernel's OOM killer killed scx_layered; \
         raise --memory"
    );
    assert!(report.failing().is_empty());
    assert_eq!(report.outcome(), SweepOutcome::EnvironmentError);

    // Without the kernel's word, the same death is the scheduler's.
    let mut h = Harness::new(vec![artifact("6.12.117", &[])]);
    h.hypervisor
        .expect_run()
        .returning(|_| Ok(vm(&killed_while_loading(), false)));
    let (report, _) = sweep(&one_scheduler(), h, &settings(&["tiny-1llc"])).await;
    let (gate, _) = failed_gate(&report.unwrap().records[0].verdict);
    assert_eq!(gate, Gate::Attach);
}

#[tokio::test]
async fn a_dead_vm_and_a_slow_boot_are_environment_errors_but_a_wedge_is_not() {
    let mut h = Harness::new(vec![artifact("6.12.117", &[])]);
    h.hypervisor.expect_run().returning(|spec| {
        let run = match spec.topology.to_string().as_str() {
            // tiny-1llc: QEMU killed under a loading scheduler.
            "1n1l4c1t" => {
                let mut run = vm(&killed_while_loading()[..2], false);
                run.facts.vm_died = Some("QEMU killed by signal 9".into());
                run
            }
            // tiny-2llc: the watchdog fired before the guest reached its init.
            "1n2l2c1t" => vm(&[], true),
            // odd-3llc: attached, then the guest stopped answering.
            _ => {
                let mut frames = healthy(&spec);
                frames.truncate(3);
                frames.push(Frame::Phase {
                    phase: "attached".into(),
                    uptime_ms: 2600,
                });
                vm(&frames, true)
            }
        };
        Ok(run)
    });
    let (report, _) = sweep(
        &one_scheduler(),
        h,
        &settings(&["tiny-1llc", "tiny-2llc", "odd-3llc"]),
    )
    .await;
    let report = report.unwrap();
    let (cause, reason) = env_error(verdict_of(
        &report,
        "verifier/sched/kernel_6_12_117/tiny-1llc",
    ));
    assert_eq!(cause, EnvCause::VmDied);
    assert!(
        reason.starts_with("the VM process died (QEMU killed by signal 9) while the guest was"),
        "{reason}"
    );
    let (cause, reason) = env_error(verdict_of(
        &report,
        "verifier/sched/kernel_6_12_117/tiny-2llc",
    ));
    assert_eq!(cause, EnvCause::BootTimeout);
    assert_eq!(
        reason,
        "the guest did not finish booting within the 30 s watchdog; raise --timeout"
    );
    let (gate, reason) = failed_gate(verdict_of(
        &report,
        "verifier/sched/kernel_6_12_117/odd-3llc",
    ));
    assert_eq!(gate, Gate::TimedOut);
    assert_eq!(
        reason,
        "host watchdog fired: no word from the guest for 30 s, while the guest was running \
         the dispatch probe (last milestone `attached` at 2.6 s)"
    );
    // One real failure outranks the environment errors in the exit status.
    assert_eq!(report.outcome(), SweepOutcome::Failed);
    assert_eq!(report.env_errors().len(), 2);
}
