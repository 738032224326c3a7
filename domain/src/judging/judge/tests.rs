//! The judge's tests: every gate and environment error decided from recorded evidence, and
//! judged again from the record.

use super::*;
use crate::judging::evidence::VmFacts;
use crate::plan::cell::CellId;
use crate::plan::guest_memory::GuestMemorySize;
use crate::plan::guest_memory::MemorySource;
use crate::plan::waits::CellWaits;
use crate::plan::waits::{CpuMode, WaitOverrides};
use crate::protocol::frame::Frame;
use crate::protocol::observation::KernelRecord;
use crate::protocol::observation::ProbeReport;
use crate::protocol::observation::ScxSample;
use crate::protocol::wire::encode;
use crate::shape::observed::ObservedTopology;
use crate::shape::preset::find_preset;
use crate::verifier_log::prog::ProgStat;

fn cell() -> PlannedCell {
    PlannedCell {
        id: CellId::new("s", "kernel_6_12", "tiny-1llc").unwrap(),
        scheduler: 0,
        kernel: 0,
        preset: find_preset("tiny-1llc").unwrap(),
    }
}

fn prog(verified_insns: u32) -> ProgStat {
    ProgStat {
        id: 7,
        prog_type: 27,
        name: "ktstr_dispatch".into(),
        verified_insns,
    }
}

fn sample(state: &str, seq: u64) -> Frame {
    Frame::SchedExtSample {
        sample: ScxSample::alive(state, seq),
    }
}

fn probe() -> Frame {
    Frame::WorkerProgress {
        probe: ProbeReport::every_worker_ran(4, 100),
    }
}

fn ran(host: HostReading) -> CellEvidence {
    let topology = cell().preset.topology;
    let frames = [
        Frame::Topology {
            topology: ObservedTopology::ideal(&topology),
        },
        Frame::SchedulerStarted { pid: 9 },
        sample("enabled", 4),
        Frame::PayloadStarting,
        probe(),
        sample("enabled", 4),
        Frame::ProgStats {
            progs: vec![prog(104)],
        },
    ];
    CellEvidence::Ran(Box::new(RunEvidence {
        memory: GuestMemorySize {
            mib: 960,
            source: MemorySource::Sized,
        },
        waits: CellWaits::for_cell(4, CpuMode::Emulated, WaitOverrides::default()),
        vm: VmFacts {
            backend: "test".into(),
            peak_rss_kib: Some(1),
            init_after_ms: Some(80),
            ..VmFacts::default()
        },
        console: "line 1\nline 2\n".into(),
        frame_bytes: frames.iter().flat_map(encode).collect(),
        host,
    }))
}

const CHECK: JudgePolicy = JudgePolicy { cross_check: true };
const NO_CHECK: JudgePolicy = JudgePolicy { cross_check: false };

#[test]
fn setup_failures_are_decided_here_without_a_run() {
    let lacks = judge(
        &cell(),
        CellEvidence::KernelLacks {
            kernel: "kernel_6_1".into(),
            missing: vec!["CONFIG_SCHED_CLASS_EXT".into()],
        },
        CHECK,
    );
    assert_eq!(
        lacks.verdict,
        Verdict::fail(
            Gate::Setup,
            "kernel kernel_6_1 lacks CONFIG_SCHED_CLASS_EXT; not booted (rebuild it with \
             ktstr's kconfig fragment)"
        )
    );
    assert!(lacks.run.is_none());
    let image = judge(
        &cell(),
        CellEvidence::ImageFailed {
            scheduler: "s".into(),
            reason: "libelf.so.1 not found".into(),
        },
        CHECK,
    );
    assert_eq!(
        image.verdict,
        Verdict::env_error(EnvCause::Image, "scheduler `s`: libelf.so.1 not found")
    );
    let start = judge(
        &cell(),
        CellEvidence::VmStartFailed {
            reason: "no qemu".into(),
        },
        CHECK,
    );
    assert_eq!(
        start.verdict,
        Verdict::env_error(EnvCause::VmStart, "no qemu")
    );
}

#[test]
fn the_host_reading_is_cross_checked_only_when_the_policy_asks() {
    let agree = judge(&cell(), ran(HostReading::Programs(vec![prog(104)])), CHECK);
    assert_eq!(agree.verdict, Verdict::Pass);
    assert_eq!(
        agree.run.as_ref().unwrap().judgment.progs_source,
        StatsSource::Host
    );

    let differ = || ran(HostReading::Programs(vec![prog(105)]));
    let failed = judge(&cell(), differ(), CHECK);
    assert!(
        matches!(
            failed.verdict,
            Verdict::Fail {
                gate: Gate::CrossCheck,
                ..
            }
        ),
        "{:?}",
        failed.verdict
    );
    assert_eq!(judge(&cell(), differ(), NO_CHECK).verdict, Verdict::Pass);
}

#[test]
fn a_failed_host_read_is_judged_only_with_the_cross_check() {
    let failed = || ran(HostReading::Failed("cycle in the registry".into()));
    let judged = judge(&cell(), failed(), CHECK);
    assert!(
        matches!(&judged.verdict, Verdict::Fail { gate: Gate::CrossCheck, reason } if reason.contains("cycle")),
        "{:?}",
        judged.verdict
    );
    let reported = judge(&cell(), failed(), NO_CHECK);
    assert_eq!(reported.verdict, Verdict::Pass);
    let run = reported.run.unwrap();
    assert_eq!(run.host.read_error(), Some("cycle in the registry"));
    assert_eq!(run.judgment.progs_source, StatsSource::Guest);
    assert_eq!(run.judgment.progs, [prog(104)]);
    assert_eq!(run.host.console.tail, "line 1\nline 2\n");
    // Without introspection the guest's report stands alone.
    let alone = judge(&cell(), ran(HostReading::NotRead), CHECK);
    assert_eq!(alone.verdict, Verdict::Pass);
    assert_eq!(alone.run.unwrap().judgment.cross_check, None);
}

/// Evidence whose topology frame is `seen` (or absent), with the other frames as `ran`
/// gives them, and the scheduler attached or not.
fn shaped(seen: Option<ObservedTopology>, attached: bool) -> CellEvidence {
    let CellEvidence::Ran(mut run) = ran(HostReading::NotRead) else {
        unreachable!()
    };
    let mut frames: Vec<Frame> = seen
        .map(|topology| Frame::Topology { topology })
        .into_iter()
        .collect();
    frames.push(Frame::SchedulerStarted { pid: 9 });
    frames.push(sample("disabled", 3));
    if attached {
        frames.push(sample("enabled", 4));
        frames.push(Frame::PayloadStarting);
        frames.push(probe());
        frames.push(sample("enabled", 4));
    } else {
        frames.push(Frame::SchedulerDied {
            status: "exit code 1".into(),
        });
    }
    run.frame_bytes = frames.iter().flat_map(encode).collect();
    run.vm.backend = "qemu (kvm)".into();
    CellEvidence::Ran(run)
}

/// A guest that did not see the preset is the backend's failure, named, whatever the
/// scheduler did on it; a guest that said nothing of its shape cannot pass.
#[test]
fn a_shape_the_backend_did_not_present_is_an_environment_error() {
    let smt = PlannedCell {
        preset: find_preset("smt-2llc").unwrap(),
        ..cell()
    };
    let mut one_l3 = ObservedTopology::ideal(&smt.preset.topology);
    one_l3.llcs = vec![one_l3.online_cpus.clone()];
    let expected = Verdict::env_error(
        EnvCause::Topology,
        "backend qemu (kvm) did not present preset smt-2llc: guest sees 1n1l4c2t, preset \
         is 1n2l2c2t",
    );
    for attached in [true, false] {
        let record = judge(&smt, shaped(Some(one_l3.clone()), attached), CHECK);
        assert_eq!(record.verdict, expected, "attached: {attached}");
    }
    let ideal = ObservedTopology::ideal(&smt.preset.topology);
    assert_eq!(
        judge(&smt, shaped(Some(ideal), true), CHECK).verdict,
        Verdict::Pass
    );
    assert_eq!(
        judge(&smt, shaped(None, true), CHECK).verdict,
        Verdict::env_error(
            EnvCause::Topology,
            "the guest's init reported no topology, so the preset's shape is unconfirmed"
        )
    );
    // No word of the shape and a scheduler that died: the scheduler's failure stands.
    assert!(judge(&smt, shaped(None, false), CHECK).verdict.failed());
}

/// Evidence of a run on `cell()`'s shape whose guest then sent `frames`.
fn saw(frames: &[Frame]) -> CellEvidence {
    let CellEvidence::Ran(mut run) = ran(HostReading::NotRead) else {
        unreachable!()
    };
    let topology = Frame::Topology {
        topology: ObservedTopology::ideal(&cell().preset.topology),
    };
    run.frame_bytes = std::iter::once(&topology)
        .chain(frames)
        .flat_map(encode)
        .collect();
    CellEvidence::Ran(run)
}

/// Evidence of a scheduler the kernel ejected during the probe, from the guest's
/// observations alone.
fn ejected() -> CellEvidence {
    saw(&[
        Frame::SchedulerStarted { pid: 9 },
        sample("disabled", 3),
        sample("enabled", 4),
        Frame::PayloadStarting,
        probe(),
        sample("disabled", 4),
        Frame::SchedulerDied {
            status: "exit code 2".into(),
        },
        Frame::SchedExtLog {
            records: [
                "sched_ext: BPF scheduler \"ktstr\" enabled",
                "sched_ext: BPF scheduler \"ktstr\" disabled (scx_bpf_error)",
                "sched_ext: ktstr: 2 dispatches",
            ]
            .iter()
            .map(|t| KernelRecord {
                usec: 1,
                text: (*t).into(),
            })
            .collect(),
        },
    ])
}

#[test]
fn an_ejection_during_the_probe_fails_liveness_in_the_kernels_words() {
    let record = judge(&cell(), ejected(), CHECK);
    assert_eq!(
        record.verdict,
        Verdict::fail(
            Gate::Liveness,
            "sched_ext disabled (scx_bpf_error): 2 dispatches; the scheduler process then \
             exited (exit code 2)"
        )
    );
    let run = record.run.unwrap();
    assert_eq!(run.judgment.attach, AttachOutcome::Attached);
    assert_eq!(run.judgment.scx_exit.unwrap().reason, "scx_bpf_error");
    // The workers ran (under the fair class once sched_ext let go): dispatch alone
    // would have passed.
    assert!(run.judgment.dispatched);
}

/// Everything a verdict needs is kept in the record: judged again, it comes out the
/// same, whatever the gate or the environment error.
#[test]
fn every_judged_run_is_judged_again_to_the_same_verdict() {
    let evidence = [
        ran(HostReading::Programs(vec![prog(104)])),
        ran(HostReading::Programs(vec![prog(105)])),
        ran(HostReading::Failed("cycle".into())),
        ran(HostReading::NotRead),
        ejected(),
        shaped(None, true),
        shaped(None, false),
    ];
    for e in evidence {
        for policy in [CHECK, NO_CHECK] {
            let record = judge(&cell(), e.clone(), policy);
            assert_eq!(rejudge(&record), Some(record.verdict.clone()), "{record:?}");
        }
    }
    let never_booted = judge(
        &cell(),
        CellEvidence::VmStartFailed {
            reason: "no qemu".into(),
        },
        CHECK,
    );
    assert_eq!(rejudge(&never_booted), None);
}

#[test]
fn a_stream_out_of_order_is_named_not_judged() {
    // The probe's report with no sign that sched_ext was ever enabled.
    let evidence = saw(&[
        Frame::SchedulerStarted { pid: 9 },
        sample("disabled", 3),
        probe(),
        sample("enabled", 4),
    ]);
    let record = judge(&cell(), evidence, CHECK);
    assert_eq!(
        record.verdict,
        Verdict::env_error(
            EnvCause::Protocol,
            "the guest's frames broke the protocol's order (frame 3 (WorkerProgress) is out \
             of order: not allowed while attaching): ktstr's init or the frame channel \
             failed, not the scheduler"
        )
    );
    assert_eq!(rejudge(&record), Some(record.verdict.clone()));
}

/// Linux sets `enabled` a moment before it bumps `enable_seq`: an attach seen in between
/// (seq still the old one) and the end seen after is one enable, not a restart (the own
/// VMM on nested KVM caught that).
#[test]
fn an_enable_seen_before_its_seq_moved_is_no_restart() {
    let evidence = saw(&[
        Frame::SchedulerStarted { pid: 9 },
        sample("disabled", 0),
        sample("enabled", 0),
        Frame::PayloadStarting,
        probe(),
        sample("enabled", 1),
    ]);
    assert_eq!(judge(&cell(), evidence, CHECK).verdict, Verdict::Pass);
    let restarted = saw(&[
        Frame::SchedulerStarted { pid: 9 },
        sample("disabled", 0),
        sample("enabled", 0),
        Frame::PayloadStarting,
        probe(),
        sample("enabled", 2),
    ]);
    assert!(matches!(
        judge(&cell(), restarted, CHECK).verdict,
        Verdict::Fail {
            gate: Gate::Liveness,
            ..
        }
    ));
}
