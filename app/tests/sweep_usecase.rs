//! The sweep use case end to end over mocked ports: every verdict path, mixed kernels,
//! filters, pre-boot failures and host introspection.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use ktstr::sweep::SweepError;
use ktstr_domain::judging::attach::AttachOutcome;
use ktstr_domain::judging::record::StatsSource;
use ktstr_domain::judging::verdict::{EnvCause, Gate};
use ktstr_domain::plan::matrix::MatrixError;
use ktstr_domain::protocol::frame::Frame;
use ktstr_domain::protocol::observation::AttachExpiry;
use ktstr_domain::protocol::wire::encode;
use ktstr_domain::results::report::GridStatus;
use ktstr_domain::shape::observed::ObservedTopology;
use ktstr_ports::{
    GuestImageError, HypervisorError, IntrospectionError, MockGuestImageBuilder, MockGuestMemory,
    MockKernelIntrospection, MockSchedulerSource, SchedulerSourceError, VmRun,
};

#[tokio::test]
async fn a_healthy_sweep_passes_every_cell_and_reports_them() {
    let mut h = Harness::new(vec![artifact("6.12.117", &[])]);
    h.hypervisor
        .expect_run()
        .times(2)
        .returning(|spec| Ok(vm(&healthy(&spec), false)));
    let (report, recorder) =
        sweep(&one_scheduler(), h, &settings(&["tiny-1llc", "tiny-2llc"])).await;
    let report = report.unwrap();
    assert!(report.succeeded());
    assert_eq!(report.records.len(), 2);
    let run = report.records[0].run.as_ref().unwrap();
    assert_eq!(run.judgment.attach, AttachOutcome::Attached);
    assert_eq!(run.judgment.progs_source, StatsSource::Guest);
    assert_eq!(run.judgment.progs[0].verified_insns, 104);
    assert_eq!(run.guest.scheduler_log, "scheduler up\n");
    assert_eq!(recorder.started.lock().unwrap().as_ref().unwrap().0, 2);
    assert_eq!(recorder.cells.lock().unwrap().len(), 2);
    // Each cell was announced before it finished, for progress displays.
    let mut booting = recorder.booting.lock().unwrap().clone();
    booting.sort();
    let mut cells = recorder.cells.lock().unwrap().clone();
    cells.sort();
    assert_eq!(booting, cells);
    assert_eq!(recorder.finished.lock().unwrap().as_ref(), Some(&report));
    let table = &report.insns_tables()[0];
    assert_eq!(table.programs, ["ktstr_dispatch", "ktstr_init"]);
    assert_eq!(table.rows[0].cells[0].unwrap().to_string(), "104");
}

#[tokio::test]
async fn each_attach_outcome_fails_the_attach_gate_with_its_reason() {
    let mut h = Harness::new(vec![artifact("6.12.117", &[])]);
    h.hypervisor.expect_run().returning(|spec| {
        let frames = match spec.topology.to_string().as_str() {
            // tiny-1llc: the loader exited during load; its log has verifier statistics but
            // no libbpf rejection naming a program, so the attach gate is the one failed.
            "1n1l4c1t" => [
                &started(1)[..],
                &[
                    Frame::SchedulerDied {
                        status: "exit code 1".into(),
                    },
                    Frame::SchedulerLog {
                        text: "R1 invalid mem access 'scalar'\nprocessed 186 insns (limit 1000000) max_states_per_insn 0 total_states 7 peak_states 7 mark_read 0\n".into(),
                    },
                ],
            ]
            .concat(),
            // tiny-2llc: alive, never enabled, until the attach wait ran out.
            "1n2l2c1t" => vec![
                started(1)[0].clone(),
                started(1)[1].clone(),
                Frame::AttachExpired {
                    expiry: AttachExpiry {
                        waited_ms: 5000,
                        state: "disabled".into(),
                        programs: Some(0),
                        process_state: Some('S'),
                        cpu_ms: 10,
                    },
                },
            ],
            // odd-3llc: the guest vanished before its init said a word (an early panic):
            // the scheduler never ran, so that is the machine's failure, not a pass either.
            _ => vec![],
        };
        Ok(vm(&frames, false))
    });
    let (report, _) = sweep(
        &one_scheduler(),
        h,
        &settings(&["tiny-1llc", "tiny-2llc", "odd-3llc"]),
    )
    .await;
    let report = report.unwrap();
    let (gate, reason) = failed_gate(verdict_of(
        &report,
        "verifier/sched/kernel_6_12_117/tiny-1llc",
    ));
    assert_eq!(gate, Gate::Attach);
    assert_eq!(
        reason,
        "scheduler process exited during BPF load/startup (exit code 1)"
    );
    let died = report.records[0].run.as_ref().unwrap();
    assert_eq!(died.judgment.verifier_stats.len(), 1);
    assert_eq!(
        died.judgment.verifier_stats[0].to_string(),
        "processed=186  states=7/7"
    );
    let (gate, reason) = failed_gate(verdict_of(
        &report,
        "verifier/sched/kernel_6_12_117/tiny-2llc",
    ));
    assert_eq!(gate, Gate::Attach);
    assert!(
        reason.contains("state stayed disabled for 5000 ms"),
        "{reason}"
    );
    let (cause, reason) = env_error(verdict_of(
        &report,
        "verifier/sched/kernel_6_12_117/odd-3llc",
    ));
    assert_eq!(cause, EnvCause::VmDied);
    assert!(reason.contains("before its init ran"), "{reason}");
    assert!(!report.succeeded());
    assert_eq!(report.failing().len(), 2);
}

#[tokio::test]
async fn attach_without_dispatch_and_timeouts_fail_their_gates() {
    let mut h = Harness::new(vec![artifact("6.12.117", &[])]);
    h.hypervisor.expect_run().returning(|spec| {
        let mut frames = healthy(&spec);
        let timed_out = spec.topology.to_string() == "1n2l2c1t";
        if !timed_out {
            let at = frames.iter().position(is_probe).unwrap();
            frames[at] = probe(4, 0);
        }
        Ok(vm(&frames, timed_out))
    });
    let (report, _) = sweep(&one_scheduler(), h, &settings(&["tiny-1llc", "tiny-2llc"])).await;
    let report = report.unwrap();
    let (gate, reason) = failed_gate(verdict_of(
        &report,
        "verifier/sched/kernel_6_12_117/tiny-1llc",
    ));
    assert_eq!(gate, Gate::Dispatch);
    assert!(
        reason.ends_with("0 iterations from 4 SCHED_EXT workers in 2000 ms"),
        "{reason}"
    );
    let (gate, _) = failed_gate(verdict_of(
        &report,
        "verifier/sched/kernel_6_12_117/tiny-2llc",
    ));
    assert_eq!(gate, Gate::TimedOut);
}

#[tokio::test]
async fn a_failure_on_one_kernel_only_is_mixed_in_the_grid() {
    let mut h = Harness::new(vec![artifact("6.12.117", &[]), artifact("6.13", &[])]);
    h.hypervisor.expect_run().returning(|spec| {
        if spec.kernel_image.starts_with("/kernels/6.13") && spec.topology.llcs == 2 {
            let died = Frame::SchedulerDied {
                status: "exit code 1".into(),
            };
            Ok(vm(&[&started(1)[..], &[died]].concat(), false))
        } else {
            Ok(vm(&healthy(&spec), false))
        }
    });
    let (report, _) = sweep(&one_scheduler(), h, &settings(&["tiny-1llc", "tiny-2llc"])).await;
    let report = report.unwrap();
    let grid = report.grid();
    assert_eq!(grid.rows[0].topology, "tiny-1llc");
    assert_eq!(grid.rows[0].cells, [Some(GridStatus::Pass)]);
    assert_eq!(grid.rows[1].cells, [Some(GridStatus::Mixed)]);
    assert_eq!((grid.passed, grid.failed, grid.mixed), (1, 0, 1));
    let failing: Vec<String> = report
        .failing()
        .iter()
        .map(|r| r.cell.to_string())
        .collect();
    assert_eq!(failing, ["verifier/sched/kernel_6_13/tiny-2llc"]);
}

#[tokio::test]
async fn filters_and_the_scheduler_flag_decide_which_vms_boot() {
    let two = decls(
        "[[scheduler]]\nname = \"a\"\nbinary = \"/a\"\n[[scheduler]]\nname = \"b\"\nbinary = \"/b\"\nkernels = [\"6.12..6.12.200\"]\n",
    );
    let mut h = Harness::new(vec![artifact("6.12.117", &[]), artifact("6.13", &[])]);
    // `--scheduler b` drops `a`, b's kernels list drops 6.13, the filter keeps one preset.
    h.hypervisor
        .expect_run()
        .times(1)
        .returning(|spec| Ok(vm(&healthy(&spec), false)));
    let mut s = settings(&["smt-2llc"]);
    s.request.scheduler = Some("b".into());
    let (report, _) = sweep(&two, h, &s).await;
    let names: Vec<String> = report
        .unwrap()
        .records
        .iter()
        .map(|r| r.cell.to_string())
        .collect();
    assert_eq!(names, ["verifier/b/kernel_6_12_117/smt-2llc"]);
}

#[tokio::test]
async fn an_unknown_kernel_label_in_a_cell_name_is_an_error_naming_present_labels() {
    let h = Harness::new(vec![artifact("6.12.117", &[])]);
    let (result, recorder) = sweep(
        &one_scheduler(),
        h,
        &settings(&["verifier/sched/kernel_6_14/tiny-1llc"]),
    )
    .await;
    let err = result.unwrap_err();
    assert!(matches!(err, SweepError::Matrix(MatrixError::Cell { .. })));
    assert!(
        err.to_string().ends_with("present: kernel_6_12_117"),
        "{err}"
    );
    assert!(recorder.started.lock().unwrap().is_none());
}

#[tokio::test]
async fn cells_that_cannot_boot_fail_at_setup_without_a_vm() {
    let two = decls(
        "[[scheduler]]\nname = \"a\"\nbinary = \"/a\"\n[[scheduler]]\nname = \"broken\"\nbinary = \"/missing\"\n",
    );
    let mut h = Harness::new(vec![
        artifact("6.12.117", &[]),
        artifact("6.1.158", &["CONFIG_SCHED_CLASS_EXT"]),
    ]);
    let mut schedulers = MockSchedulerSource::new();
    schedulers.expect_binary().returning(|d| {
        if d.name == "broken" {
            Err(SchedulerSourceError::Missing {
                name: d.name.clone(),
                path: "/missing".into(),
            })
        } else {
            Ok(PathBuf::from("/a"))
        }
    });
    h.schedulers = schedulers;
    // Only `a` on 6.12 boots.
    h.hypervisor
        .expect_run()
        .times(1)
        .withf(|spec| spec.kernel_image.starts_with("/kernels/6.12.117"))
        .returning(|spec| Ok(vm(&healthy(&spec), false)));
    let (report, _) = sweep(&two, h, &settings(&["tiny-1llc"])).await;
    let report = report.unwrap();
    assert_eq!(report.records.len(), 4);
    assert!(verdict_of(&report, "verifier/a/kernel_6_12_117/tiny-1llc").passed());
    let (gate, reason) = failed_gate(verdict_of(&report, "verifier/a/kernel_6_1_158/tiny-1llc"));
    assert_eq!(gate, Gate::Setup);
    assert!(
        reason.contains("kernel_6_1_158 lacks CONFIG_SCHED_CLASS_EXT"),
        "{reason}"
    );
    // A scheduler binary that is not there says nothing about the scheduler's BPF.
    let (cause, reason) = env_error(verdict_of(
        &report,
        "verifier/broken/kernel_6_12_117/tiny-1llc",
    ));
    assert_eq!(cause, EnvCause::Image);
    assert!(reason.contains("/missing"), "{reason}");
    assert!(report.records.iter().filter(|r| r.run.is_none()).count() == 3);
}

#[tokio::test]
async fn image_and_launch_failures_are_environment_errors() {
    let mut h = Harness::new(vec![artifact("6.12.117", &[])]);
    let mut images = MockGuestImageBuilder::new();
    images
        .expect_build()
        .returning(|_| Err(GuestImageError("libelf.so.1 not found".into())));
    h.images = images;
    h.hypervisor.expect_run().times(0);
    let (report, _) = sweep(&one_scheduler(), h, &settings(&["tiny-1llc"])).await;
    let (cause, reason) = env_error(&report.unwrap().records[0].verdict);
    assert_eq!(cause, EnvCause::Image);
    assert!(reason.contains("libelf.so.1"), "{reason}");

    let mut h = Harness::new(vec![artifact("6.12.117", &[])]);
    h.hypervisor.expect_run().returning(|_| {
        Err(HypervisorError::Spawn {
            what: "qemu-system-x86_64".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        })
    });
    let (report, _) = sweep(&one_scheduler(), h, &settings(&["tiny-1llc"])).await;
    let report = report.unwrap();
    let (cause, reason) = env_error(&report.records[0].verdict);
    assert_eq!(cause, EnvCause::VmStart);
    // The cause travels with the error all the way to the record.
    assert_eq!(reason, "cannot start qemu-system-x86_64: no such file");
    assert_eq!(report.outcome().exit_code(), 3);
}

#[tokio::test]
async fn a_topology_the_guest_does_not_see_is_the_backends_error() {
    let mut h = Harness::new(vec![artifact("6.12.117", &[])]);
    h.hypervisor.expect_run().returning(|spec| {
        let mut frames = healthy(&spec);
        let mut seen = ObservedTopology::ideal(&spec.topology);
        seen.llcs = vec![seen.online_cpus.clone()];
        frames[0] = Frame::Topology { topology: seen };
        Ok(vm(&frames, false))
    });
    let (report, _) = sweep(&one_scheduler(), h, &settings(&["tiny-2llc"])).await;
    let report = report.unwrap();
    let (cause, reason) = env_error(&report.records[0].verdict);
    assert_eq!(cause, EnvCause::Topology);
    assert!(
        reason
            .ends_with("did not present preset tiny-2llc: guest sees 1n1l4c1t, preset is 1n2l2c1t"),
        "{reason}"
    );
    assert_eq!(report.outcome().exit_code(), 3);
}

fn with_memory(frames: &[Frame]) -> VmRun {
    let mut run = vm(frames, false);
    let mut memory = MockGuestMemory::new();
    memory
        .expect_ram_map()
        .return_const(ktstr_domain::shape::ram_map::RamMap::for_size(1 << 20));
    run.memory = Some(Box::new(memory));
    run
}

#[tokio::test]
async fn host_introspection_is_used_and_cross_checked() {
    for (host_insns, cross_check, expect_pass) in
        [(104, true, true), (105, true, false), (105, false, true)]
    {
        let mut h = Harness::new(vec![artifact("6.12.117", &[])]);
        h.hypervisor
            .expect_run()
            .returning(|spec| Ok(with_memory(&healthy(&spec))));
        let mut introspection = MockKernelIntrospection::new();
        introspection
            .expect_read_programs()
            .times(1)
            .returning(move |k, _| {
                assert_eq!(k.vmlinux, Path::new("/kernels/6.12.117/vmlinux"));
                Ok(vec![
                    prog(7, "ktstr_dispatch", host_insns),
                    prog(8, "ktstr_init", 2296),
                ])
            });
        h.introspection = Some(introspection);
        let mut s = settings(&["tiny-1llc"]);
        s.cross_check = cross_check;
        let (report, _) = sweep(&one_scheduler(), h, &s).await;
        let record = &report.unwrap().records[0];
        let run = record.run.as_ref().unwrap();
        assert_eq!(run.judgment.progs_source, StatsSource::Host);
        assert_eq!(run.judgment.progs[0].verified_insns, host_insns);
        assert_eq!(record.verdict.passed(), expect_pass, "{:?}", record.verdict);
        if !expect_pass {
            let (gate, reason) = failed_gate(&record.verdict);
            assert_eq!(gate, Gate::CrossCheck);
            assert!(reason.contains("host 105 != guest 104"), "{reason}");
        }
    }
}

/// A healthy guest whose programs the host cannot read.
fn failing_host_read() -> Harness {
    let mut h = Harness::new(vec![artifact("6.12.117", &[])]);
    h.hypervisor
        .expect_run()
        .returning(|spec| Ok(with_memory(&healthy(&spec))));
    let mut introspection = MockKernelIntrospection::new();
    introspection.expect_read_programs().returning(|_, _| {
        Err(IntrospectionError::Guest(
            "cycle in the program registry".into(),
        ))
    });
    h.introspection = Some(introspection);
    h
}

#[tokio::test]
async fn a_failed_host_read_fails_the_cell_and_keeps_guest_numbers() {
    let h = failing_host_read();
    let (report, _) = sweep(&one_scheduler(), h, &settings(&["tiny-1llc"])).await;
    let record = &report.unwrap().records[0];
    let (gate, reason) = failed_gate(&record.verdict);
    assert_eq!(gate, Gate::CrossCheck);
    assert!(reason.contains("cycle in the program registry"), "{reason}");
    assert_eq!(
        record.run.as_ref().unwrap().judgment.progs_source,
        StatsSource::Guest
    );
}

#[tokio::test]
async fn without_the_cross_check_a_failed_host_read_is_reported_not_judged() {
    let h = failing_host_read();
    let mut s = settings(&["tiny-1llc"]);
    s.cross_check = false;
    let (report, _) = sweep(&one_scheduler(), h, &s).await;
    let record = &report.unwrap().records[0];
    assert!(record.verdict.passed(), "{:?}", record.verdict);
    let run = record.run.as_ref().unwrap();
    assert_eq!(run.judgment.progs_source, StatsSource::Guest);
    assert_eq!(run.judgment.cross_check, None);
    assert!(
        run.host
            .read_error()
            .is_some_and(|e| e.contains("cycle in the program registry")),
        "{:?}",
        run.host.reading
    );
}

#[tokio::test]
async fn garbage_on_the_frame_channel_is_counted_not_trusted() {
    let mut h = Harness::new(vec![artifact("6.12.117", &[])]);
    h.hypervisor.expect_run().returning(|spec| {
        let mut bytes = b"noise before".to_vec();
        for frame in healthy(&spec) {
            bytes.extend(encode(&frame));
            bytes.extend_from_slice(b"\x00\xffjunk");
        }
        // A corrupted copy of a failure frame must not turn the verdict.
        let mut died = encode(&Frame::SchedulerDied {
            status: "exit code 1".into(),
        });
        let last = died.len() - 1;
        died[last] ^= 0xff;
        bytes.extend(died);
        Ok(VmRun {
            frame_bytes: bytes,
            ..vm(&[], false)
        })
    });
    let (report, _) = sweep(&one_scheduler(), h, &settings(&["tiny-1llc"])).await;
    let record = &report.unwrap().records[0];
    assert!(record.verdict.passed(), "{:?}", record.verdict);
    let stats = record.run.as_ref().unwrap().host.frame_stats;
    assert_eq!(stats.frames, 11, "the healthy frames, each intact");
    assert_eq!(stats.corrupt, 1);
    assert!(stats.garbage_bytes > 0);
}

/// `--repeat 3`: every cell boots three times, each record says which boot it was, and a
/// count that changed between boots is found.
#[tokio::test]
async fn each_cell_boots_as_often_as_asked_and_unstable_counts_are_found() {
    let mut h = Harness::new(vec![artifact("6.12.117", &[])]);
    let boots = std::sync::atomic::AtomicU32::new(0);
    h.hypervisor.expect_run().times(6).returning(move |spec| {
        let mut frames = healthy(&spec);
        // One boot of tiny-2llc counts one program differently.
        let two_llc = spec.topology.to_string() == "1n2l2c1t";
        if two_llc && boots.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            frames.push(Frame::ProgStats {
                progs: vec![prog(7, "ktstr_dispatch", 999), prog(8, "ktstr_init", 2296)],
            });
        }
        Ok(vm(&frames, false))
    });
    let mut settings = settings(&["tiny-1llc", "tiny-2llc"]);
    settings.boots_per_cell = 3;
    settings.jobs = 1;
    let (report, recorder) = sweep(&one_scheduler(), h, &settings).await;
    let report = report.unwrap();
    assert!(report.complete, "{report:?}");
    assert_eq!((report.planned, report.records.len()), (6, 6));
    assert_eq!(recorder.started.lock().unwrap().as_ref().unwrap().0, 6);
    let boots: Vec<(String, u32)> = report
        .records
        .iter()
        .map(|r| (r.cell.preset.clone(), r.boot.unwrap().index))
        .collect();
    assert_eq!(
        boots,
        [
            ("tiny-1llc".to_string(), 1),
            ("tiny-1llc".into(), 2),
            ("tiny-1llc".into(), 3),
            ("tiny-2llc".into(), 1),
            ("tiny-2llc".into(), 2),
            ("tiny-2llc".into(), 3),
        ]
    );
    assert_eq!(report.boots_per_cell(), 3);
    let unstable = report.unstable_programs();
    assert_eq!(unstable.len(), 1, "{unstable:?}");
    assert_eq!(unstable[0].cell.preset, "tiny-2llc");
    assert_eq!(unstable[0].program, "ktstr_dispatch");
    let mut counts = unstable[0].counts.clone();
    counts.sort();
    assert_eq!(counts, [104, 104, 999]);
}

/// A cell that did not pass carries the command that reruns just it; a passing one none.
#[tokio::test]
async fn a_failing_cell_records_the_command_that_reruns_it() {
    let mut h = Harness::new(vec![artifact("6.12.117", &[])]);
    h.hypervisor.expect_run().returning(|spec| {
        let mut frames = healthy(&spec);
        if spec.topology.to_string() == "1n2l2c1t" {
            frames.retain(|f| !is_probe(f));
        }
        Ok(vm(&frames, false))
    });
    let mut settings = settings(&["tiny-1llc", "tiny-2llc"]);
    settings.rerun_command = ["ktstr", "verifier", "--manifest", "my dir/ktstr.toml"]
        .map(String::from)
        .to_vec();
    let (report, _) = sweep(&one_scheduler(), h, &settings).await;
    let report = report.unwrap();
    let repro = |preset: &str| {
        report
            .records
            .iter()
            .find(|r| r.cell.preset == preset)
            .unwrap()
            .repro
            .clone()
    };
    assert_eq!(repro("tiny-1llc"), None);
    assert_eq!(
        repro("tiny-2llc").as_deref(),
        Some(
            "ktstr verifier --manifest 'my dir/ktstr.toml' --kernel 6.12.117-x86_64-aaaa \
             --scheduler sched verifier/sched/kernel_6_12_117/tiny-2llc"
        )
    );
}

/// `--partition`: each shard runs its cells only, and the shards together run them all.
#[tokio::test]
async fn shards_split_the_matrix_and_cover_it_once() {
    let presets = ["tiny-1llc", "tiny-2llc", "odd-3llc", "smt-2llc"];
    let mut seen: Vec<String> = Vec::new();
    for shard in 1..=2 {
        let mut h = Harness::new(vec![artifact("6.12.117", &[])]);
        h.hypervisor
            .expect_run()
            .returning(|spec| Ok(vm(&healthy(&spec), false)));
        let mut settings = settings(&presets);
        settings.partition = Some(format!("hash:{shard}/2").parse().unwrap());
        let (report, recorder) = sweep(&one_scheduler(), h, &settings).await;
        let report = report.unwrap();
        assert!(report.complete);
        let (planned, warnings) = recorder.started.lock().unwrap().clone().unwrap();
        assert_eq!(planned, report.records.len());
        assert!(
            warnings[0].starts_with(&format!("partition hash:{shard}/2: this shard runs ")),
            "{warnings:?}"
        );
        seen.extend(report.records.iter().map(|r| r.cell.preset.clone()));
    }
    seen.sort();
    let mut all = presets.map(String::from).to_vec();
    all.sort();
    assert_eq!(seen, all);
}
