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

#[test]
fn a_guest_too_small_for_the_scheduler_is_an_out_of_memory_environment_error() {
    ensure_kernels();
    let dir = tempfile_dir("oom-drill");
    // 384 MiB of guest RAM, and a loader that wants 512 MiB before it loads anything.
    fs::write(
        dir.join("ktstr.toml"),
        format!(
            "[[scheduler]]\nname = \"hungry\"\nbinary = \"{}\"\n\
             sched_args = [\"--alloc-mib\", \"512\"]\nmemory_mib = 384\n",
            bin_dir().join("scx-ktstr").display()
        ),
    )
    .unwrap();
    let out = ktstr_in(&dir, &["verifier", "--kernel", KERNEL_6_12, "tiny-1llc"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text}\n{}", stderr(&out));
    let block = cell_block(&text, "hungry", "tiny-1llc");
    assert_eq!(
        verdict(&block),
        "verdict: ERROR [environment: guest-oom] guest ran out of memory (384 MiB): the \
         kernel's OOM killer killed scx-ktstr; raise memory_mib in the manifest (or pass \
         --memory)",
        "{block:#?}"
    );
    assert!(
        text.contains("verifier summary: 0 ✅  0 ❌  0 🇽  1 ⚠️ (environment)"),
        "{text}"
    );
    assert!(text.contains("no failing combinations"), "{text}");

    // The fix the message names works: with the sized default the same scheduler passes.
    fs::write(
        dir.join("ktstr.toml"),
        format!(
            "[[scheduler]]\nname = \"hungry\"\nbinary = \"{}\"\n\
             sched_args = [\"--alloc-mib\", \"512\"]\n",
            bin_dir().join("scx-ktstr").display()
        ),
    )
    .unwrap();
    let out = ktstr_in(&dir, &["verifier", "--kernel", KERNEL_6_12, "tiny-1llc"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn a_full_guest_tmpfs_is_an_environment_error() {
    ensure_kernels();
    let dir = tempfile_dir("disk-full");
    fs::write(
        dir.join("ktstr.toml"),
        format!(
            "[[scheduler]]\nname = \"writer\"\nbinary = \"{}\"\n\
             sched_args = [\"--fill-disk\"]\nmemory_mib = 384\n",
            bin_dir().join("scx-ktstr").display()
        ),
    )
    .unwrap();
    let out = ktstr_in(&dir, &["verifier", "--kernel", KERNEL_6_12, "tiny-1llc"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text}\n{}", stderr(&out));
    let block = cell_block(&text, "writer", "tiny-1llc");
    assert!(
        verdict(&block).starts_with(
            "verdict: ERROR [environment: guest-disk-full] guest ran out of tmpfs space (384 MiB"
        ),
        "{block:#?}"
    );
    assert!(
        verdict(&block).contains("No space left on device"),
        "{block:#?}"
    );
}

#[test]
fn an_attach_wait_that_runs_out_on_a_busy_loader_is_a_slow_guest() {
    ensure_kernels();
    let dir = tempfile_dir("slow-guest");
    fs::write(
        dir.join("ktstr.toml"),
        format!(
            "[[scheduler]]\nname = \"slow\"\nbinary = \"{}\"\n\
             sched_args = [\"--spin-before-load\", \"30\"]\n",
            bin_dir().join("scx-ktstr").display()
        ),
    )
    .unwrap();
    let out = ktstr_in(
        &dir,
        &[
            "verifier",
            "--kernel",
            KERNEL_6_12,
            "--attach-timeout",
            "8",
            "tiny-1llc",
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text}\n{}", stderr(&out));
    let block = cell_block(&text, "slow", "tiny-1llc");
    let verdict = verdict(&block);
    assert!(
        verdict.starts_with(
            "verdict: ERROR [environment: slow-guest] the 8 s attach wait ran out while the \
             scheduler was still loading: alive, no BPF program loaded yet (process state R"
        ),
        "{block:#?}"
    );
    assert!(verdict.ends_with("raise --attach-timeout"), "{block:#?}");
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
    // The cell's QEMU carries the sweep's pid in its RAM file names.
    let mine = format!("ktstr-{}-", child.id());
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
            "verdict: ERROR [environment: vm-died] the VM process died (QEMU killed by signal 9)"
        ),
        "{block:#?}"
    );
    assert!(text.contains("no failing combinations"), "{text}");
}
