//! Cell records as stored: the first format (flat conclusions, written by ktstr before the
//! guest's observations were kept) is still read, and a current record is judged again to
//! the verdict it was written with.

use ktstr_domain::judging::attach::AttachOutcome;
use ktstr_domain::judging::evidence::{CellEvidence, HostReading, RunEvidence, VmFacts};
use ktstr_domain::judging::judge::{JudgePolicy, judge, rejudge};
use ktstr_domain::judging::record::{CellRecord, StatsSource};
use ktstr_domain::judging::verdict::{Gate, Verdict};
use ktstr_domain::plan::cell::CellId;
use ktstr_domain::plan::guest_memory::{GuestMemorySize, MemorySource};
use ktstr_domain::plan::matrix::PlannedCell;
use ktstr_domain::plan::waits::{CellWaits, CpuMode, WaitOverrides};
use ktstr_domain::protocol::frame::Frame;
use ktstr_domain::protocol::observation::{ProbeReport, ScxSample};
use ktstr_domain::protocol::wire::encode;
use ktstr_domain::shape::observed::ObservedTopology;
use ktstr_domain::shape::preset::find_preset;

/// Records a ktstr of the first format wrote (commit 8d9fc19), from a real sweep.
const V1_PASS: &str = include_str!("fixtures/record-v1-pass.json");
const V1_FAIL: &str = include_str!("fixtures/record-v1-fail.json");

#[test]
fn a_record_of_the_first_format_is_read_and_keeps_its_verdict() {
    let pass: CellRecord = serde_json::from_str(V1_PASS).unwrap();
    assert_eq!(pass.verdict, Verdict::Pass);
    let run = pass.run.as_ref().unwrap();
    assert!(run.legacy);
    assert_eq!(run.host.vm.backend, "qemu (tcg)");
    assert_eq!(run.host.memory.mib, 1024);
    assert_eq!(run.judgment.attach, AttachOutcome::Attached);
    assert_eq!(run.judgment.progs_source, StatsSource::Host);
    assert_eq!(run.judgment.progs.len(), 5);
    assert!(run.guest.scheduler_log.contains("scx-ktstr: attached"));
    assert!(run.guest.topology.is_some());
    // Conclusions only: nothing to judge again.
    assert_eq!(rejudge(&pass), None);

    let fail: CellRecord = serde_json::from_str(V1_FAIL).unwrap();
    assert_eq!(
        fail.verdict,
        Verdict::fail(
            Gate::Attach,
            "scheduler process exited after attaching (exit code 3)"
        )
    );
    assert_eq!(rejudge(&fail), None);
    // Written back, it stays a legacy record.
    let again: CellRecord = serde_json::from_str(&serde_json::to_string(&fail).unwrap()).unwrap();
    assert_eq!(again, fail);
}

#[test]
fn a_broken_record_of_either_format_names_what_is_wrong() {
    let e = serde_json::from_str::<CellRecord>(&V1_PASS.replace("\"backend\"", "\"backnd\""))
        .unwrap_err();
    assert!(e.to_string().contains("backend"), "{e}");
    assert!(e.to_string().contains("first format"), "{e}");
    let current = serde_json::to_string(&judged()).unwrap();
    let e = serde_json::from_str::<CellRecord>(&current.replace("\"dispatched\"", "\"dispatchd\""))
        .unwrap_err();
    assert!(e.to_string().contains("dispatched"), "{e}");
}

fn judged() -> CellRecord {
    let preset = find_preset("tiny-2llc").unwrap();
    let cell = PlannedCell {
        id: CellId::new("s", "kernel_6_12", preset.name).unwrap(),
        scheduler: 0,
        kernel: 0,
        preset,
    };
    let frames = [
        Frame::Topology {
            topology: ObservedTopology::ideal(&cell.preset.topology),
        },
        Frame::SchedulerStarted { pid: 9 },
        Frame::SchedExtSample {
            sample: ScxSample::alive("enabled", 2),
        },
        Frame::PayloadStarting,
        Frame::WorkerProgress {
            probe: ProbeReport::every_worker_ran(4, 0),
        },
        Frame::SchedExtSample {
            sample: ScxSample::alive("enabled", 2),
        },
    ];
    judge(
        &cell,
        CellEvidence::Ran(Box::new(RunEvidence {
            vm: VmFacts {
                backend: "qemu (tcg)".into(),
                ..VmFacts::default()
            },
            memory: GuestMemorySize {
                mib: 1024,
                source: MemorySource::Sized,
            },
            waits: CellWaits::for_cell(4, CpuMode::Emulated, WaitOverrides::default()),
            console: "Linux version 6.12\n".into(),
            frame_bytes: frames.iter().flat_map(encode).collect(),
            host: HostReading::NotRead,
        })),
        JudgePolicy { cross_check: true },
    )
}

#[test]
fn a_current_record_reads_back_whole_and_is_judged_again_to_its_verdict() {
    let record = judged();
    assert!(matches!(
        record.verdict,
        Verdict::Fail {
            gate: Gate::Dispatch,
            ..
        }
    ));
    let stored: CellRecord =
        serde_json::from_str(&serde_json::to_string_pretty(&record).unwrap()).unwrap();
    assert_eq!(stored, record);
    assert_eq!(rejudge(&stored), Some(record.verdict.clone()));
    // The observations decide: with progress in them, today's rules pass the cell.
    let mut moved = stored;
    let probe = moved.run.as_mut().unwrap().guest.probe.as_mut().unwrap();
    probe.workers[0].iterations = 5;
    assert_eq!(rejudge(&moved), Some(Verdict::Pass));
}
