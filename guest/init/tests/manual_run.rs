//! Runs the built `ktstr-init --plan` end to end on the build host, which has no sched_ext:
//! a plain file stands in for the serial port, `/bin/sh` for the scheduler.

use std::path::Path;
use std::process::Command;

use ktstr_domain::protocol::frame::Frame;
use ktstr_domain::protocol::init_plan::InitPlan;
use ktstr_domain::protocol::wire::decode_all;

fn run_init(dir: &Path, script: &str, attach_timeout_ms: u64) -> Vec<Frame> {
    let frames = dir.join("frames.bin");
    std::fs::write(&frames, b"").unwrap();
    let plan = InitPlan {
        scheduler: "/bin/sh".into(),
        sched_args: vec!["-c".into(), script.into()],
        attach_timeout_ms,
        probe_ms: 50,
        frame_device: frames.to_str().unwrap().into(),
        log_limit_bytes: 4096,
        boot_profile: false,
    };
    let plan_path = dir.join("plan.json");
    std::fs::write(&plan_path, plan.to_json()).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_ktstr-init"))
        .arg("--plan")
        .arg(&plan_path)
        .status()
        .unwrap();
    assert!(status.success());
    let decoded = decode_all(&std::fs::read(&frames).unwrap());
    assert_eq!(decoded.stats.garbage_bytes, 0);
    // Milestones are interleaved with the lifecycle; they are checked on their own.
    let (phases, rest): (Vec<Frame>, Vec<Frame>) = decoded
        .frames
        .into_iter()
        .partition(|f| matches!(f, Frame::Phase { .. }));
    let names: Vec<String> = phases
        .iter()
        .map(|f| match f {
            Frame::Phase { phase, .. } => phase.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("init"), "{names:?}");
    assert_eq!(
        names.last().map(String::as_str),
        Some("reboot"),
        "{names:?}"
    );
    rest
}

fn log_of(frames: &[Frame]) -> String {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::SchedulerLog { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn scheduler_that_exits_is_reported_dead_with_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let frames = run_init(
        dir.path(),
        "echo loading; echo 'libbpf: failed' >&2; exit 3",
        5000,
    );
    assert!(matches!(frames[0], Frame::Topology { .. }), "{frames:?}");
    assert!(matches!(frames[1], Frame::SchedulerStarted { .. }));
    // The guest's first look at sched_ext, before any attach.
    assert!(
        matches!(frames[2], Frame::SchedExtSample { .. }),
        "{frames:?}"
    );
    assert_eq!(
        frames[3],
        Frame::SchedulerDied {
            status: "exit code 3".into()
        }
    );
    assert!(!frames.contains(&Frame::PayloadStarting));
    let log = log_of(&frames);
    assert!(log.starts_with("loading\nlibbpf: failed\n"), "{log:?}");
}

#[test]
fn scheduler_that_never_enables_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let frames = run_init(dir.path(), "echo waiting; exec sleep 3", 100);
    let reason = frames
        .iter()
        .find_map(|f| match f {
            Frame::AttachExpired { expiry } => Some(expiry.reason()),
            _ => None,
        })
        .expect("AttachExpired frame");
    // The build host has no sched_ext, so the state file is missing; the reason goes on to
    // say what the scheduler (here a sleeping shell) was doing.
    assert!(
        reason.starts_with("state stayed unreadable for 100 ms; the scheduler was "),
        "{reason}"
    );
    assert!(reason.contains("process state S, 0.0 s of CPU"), "{reason}");
    assert!(!frames.contains(&Frame::PayloadStarting));
    assert!(log_of(&frames).starts_with("waiting\n"));
}

#[test]
fn refuses_to_run_by_hand_without_a_plan() {
    let out = Command::new(env!("CARGO_BIN_EXE_ktstr-init"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--plan"));
}
