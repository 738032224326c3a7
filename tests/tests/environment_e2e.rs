//! The environment's failures on real VMs: a guest too small for what the scheduler needs,
//! a full guest tmpfs and a VM process killed under the guest are environment errors (exit
//! status 3), never the scheduler's ❌.

mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    KERNEL_6_12, bin_dir, cell_block, ensure_kernels, ktstr_bin, ktstr_in, stderr, stdout,
    tempfile_dir, verdict,
};

/// Sweeps the fixture, declared as `name` with `sched_args` (and `memory_mib` when given),
/// on tiny-1llc; returns the exit status, the text and the cell's verdict line.
fn sweep_fixture(
    name: &str,
    sched_args: &[&str],
    memory_mib: Option<u32>,
    extra: &[&str],
) -> (Option<i32>, String, String) {
    ensure_kernels();
    let dir = tempfile_dir(name);
    let args: Vec<String> = sched_args.iter().map(|a| format!("\"{a}\"")).collect();
    let memory = memory_mib.map_or(String::new(), |m| format!("memory_mib = {m}\n"));
    fs::write(
        dir.join("ktstr.toml"),
        format!(
            "[[scheduler]]\nname = \"{name}\"\nbinary = \"{}\"\nsched_args = [{}]\n{memory}",
            bin_dir().join("scx-ktstr").display(),
            args.join(", ")
        ),
    )
    .unwrap();
    let mut cmd = vec!["verifier", "--kernel", KERNEL_6_12, "--show", "all"];
    cmd.extend(extra);
    cmd.push("tiny-1llc");
    let out = ktstr_in(&dir, &cmd);
    let text = stdout(&out);
    let verdict = verdict(&cell_block(&text, name, "tiny-1llc"));
    (
        out.status.code(),
        format!("{text}\n{}", stderr(&out)),
        verdict,
    )
}

#[test]
fn a_guest_too_small_for_the_scheduler_is_an_out_of_memory_environment_error() {
    // 384 MiB of guest RAM, and a loader that wants 512 MiB before it loads anything.
    let (code, text, verdict) = sweep_fixture("hungry", &["--alloc-mib", "512"], Some(384), &[]);
    assert_eq!(code, Some(3), "{text}");
    assert_eq!(
        verdict,
        "verdict: ERROR [environment: guest-oom] guest ran out of memory (384 MiB): the \
         kernel's OOM killer killed scx-ktstr; raise memory_mib in the manifest (or pass \
         --memory)",
        "{text}"
    );
    assert!(
        text.contains("verifier summary: 0 ✅  0 ❌  0 🇽  1 ⚠️ (environment)"),
        "{text}"
    );
    assert!(text.contains("no failing combinations"), "{text}");

    // The fix the message names works: with the sized default the same scheduler passes.
    let (code, text, _) = sweep_fixture("hungry", &["--alloc-mib", "512"], None, &[]);
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn a_full_guest_tmpfs_is_an_environment_error() {
    let (code, text, verdict) = sweep_fixture("writer", &["--fill-disk"], Some(384), &[]);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        verdict.starts_with(
            "verdict: ERROR [environment: guest-disk-full] guest ran out of tmpfs space (384 MiB"
        ),
        "{text}"
    );
    assert!(verdict.contains("No space left on device"), "{text}");
}

#[test]
fn an_attach_wait_that_runs_out_on_a_busy_loader_is_a_slow_guest() {
    let (code, text, verdict) = sweep_fixture(
        "slow",
        &["--spin-before-load", "30"],
        None,
        &["--attach-timeout", "8"],
    );
    assert_eq!(code, Some(3), "{text}");
    assert!(
        verdict.starts_with(
            "verdict: ERROR [environment: slow-guest] the 8 s attach wait ran out while the \
             scheduler was still loading: alive, no BPF program loaded yet (process state R"
        ),
        "{text}"
    );
    assert!(verdict.ends_with("raise --attach-timeout"), "{text}");
}

/// A hostile guest: garbage without end on the frame channel, with planted headers that
/// claim huge frames. The host stops the VM at the channel's limit and names the flood;
/// it decodes what it kept without a crash and holds no more than the limit.
#[test]
fn a_guest_flooding_its_frame_channel_is_stopped_and_named() {
    // Under TCG the serial line carries about 1 MB/s: the waits must outlast 64 MiB.
    let (code, text, verdict) = sweep_fixture(
        "flood",
        &["--flood-frames", "/dev/ttyS1"],
        None,
        &["--attach-timeout", "400", "--timeout", "400"],
    );
    assert_eq!(code, Some(3), "{text}");
    assert_eq!(
        verdict,
        "verdict: ERROR [environment: guest-flood] the guest wrote more than 64 MiB to its \
         frame channel, and was stopped (ktstr's init never does: the scheduler or the \
         kernel flooded it)",
        "{text}"
    );
    // The frames the init sent before the flood still decoded; the garbage was skipped.
    let frames = text
        .lines()
        .find(|l| l.trim_start().starts_with("frames: "))
        .unwrap_or_else(|| panic!("no frames line in {text}"));
    assert!(
        frames.contains(" decoded;") && frames.contains("garbage bytes"),
        "{frames}"
    );
    // QEMU's peak memory stays far below what the guest wrote: it never held the flood.
    let peak: u64 = text
        .split("host RSS peak ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {text}"));
    assert!(peak < 1024, "{text}");
}

#[test]
fn a_vm_killed_under_the_guest_is_a_vm_died_environment_error() {
    ensure_kernels();
    let dir = tempfile_dir("vm-died");
    let child = Command::new(ktstr_bin())
        .args(["verifier", "--kernel", KERNEL_6_12, "tiny-1llc"])
        .current_dir(&dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The cell's QEMU opens its files through the sweep's /proc/<pid>/fd.
    let mine = format!("/proc/{}/fd/", child.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let killed = Command::new("pkill")
            .args(["-KILL", "-f", &mine])
            .status()
            .unwrap();
        if killed.success() {
            break;
        }
        assert!(Instant::now() < deadline, "no QEMU of {mine} appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text}\n{}", stderr(&out));
    let block = cell_block(&text, "scx-ktstr", "tiny-1llc");
    assert!(
        verdict(&block).starts_with(
            "verdict: ERROR [environment: vm-died] the VM process died (QEMU killed by signal 9, SIGKILL: the host's OOM killer if it ran out of memory (see dmesg))"
        ),
        "{block:#?}"
    );
    assert!(text.contains("no failing combinations"), "{text}");
}
