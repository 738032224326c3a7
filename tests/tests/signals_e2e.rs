//! Every way a sweep can be ended from outside: SIGINT (Ctrl-C), SIGTERM (a CI runner's
//! cancel, `timeout`) and SIGHUP (a closed terminal) each end it as incomplete, with the
//! finished cells' records written and the exit status shells report; SIGKILL ends it at
//! once. Either way no QEMU process and no file of the run is left.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{KERNEL_6_12, ensure_kernels, ktstr_bin, tempfile_dir};

struct Stopped {
    pid: u32,
    status: ExitStatus,
    stdout: String,
    stderr: String,
    output: PathBuf,
}

/// Sweeps four tiny cells one at a time with JSON records; once the first cell has
/// finished and the second VM is running, sends `signal` to ktstr alone (as `kill` or a
/// CI runner does, not to its process group).
fn stopped_sweep(signal: &str) -> Stopped {
    ensure_kernels();
    let dir = tempfile_dir(&format!("signal-{signal}"));
    let mut child = Command::new(ktstr_bin())
        .args(["verifier", "--kernel", KERNEL_6_12, "--jobs", "1"])
        .args(["--format", "json", "--output", "out"])
        .args(["tiny-1llc", "tiny-2llc", "odd-3llc", "smt-2llc"])
        .current_dir(&dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        // A finished cell's line: ` PASS [  5.1s] …` (or a failure's).
        let done = line.starts_with(" PASS [") || line.starts_with(" FAIL [");
        line.clear();
        if done {
            break;
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    stdout.read_to_string(&mut seen).unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Stopped {
        pid,
        status,
        stdout: seen,
        stderr,
        output: dir.join("out"),
    }
}

/// Nothing of process `pid` outlives it: no QEMU (each names its files through
/// `/proc/<pid>/fd/`), no RAM file in `/dev/shm`, no VM directory in the temp dir.
fn assert_nothing_left(pid: u32) {
    let qemu_of_run = format!("/proc/{pid}/fd/");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let qemu = Command::new("pgrep")
            .args(["-f", &qemu_of_run])
            .output()
            .unwrap();
        if qemu.stdout.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "QEMU still running: {}",
            String::from_utf8_lossy(&qemu.stdout)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let leftovers = |dir: &Path, prefix: &str| -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(prefix))
            .collect()
    };
    assert_eq!(
        leftovers(Path::new("/dev/shm"), &format!("ktstr-{pid}-")),
        Vec::<String>::new()
    );
    assert_eq!(
        leftovers(&std::env::temp_dir(), &format!("ktstr-vm-{pid}-")),
        Vec::<String>::new()
    );
}

/// The finished cells' JSON records (the summary left out).
fn records(output: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![output.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n != "summary.json") {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn sigint_sigterm_and_sighup_end_a_sweep_as_incomplete_and_leave_nothing() {
    for (signal, code) in [("INT", 130), ("TERM", 143), ("HUP", 129)] {
        let run = stopped_sweep(signal);
        let all = format!("SIG{signal}\n{}\n{}", run.stdout, run.stderr);
        assert_eq!(run.status.code(), Some(code), "{all}");
        // At least the first cell finished, and not all four did.
        let done: usize = run
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("INCOMPLETE: sweep interrupted after "))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no INCOMPLETE line in {all}"));
        assert!((1..4).contains(&done), "{all}");
        assert!(
            run.stdout
                .contains(&format!("verifier summary: {done} ✅  0 ❌  0 🇽")),
            "{all}"
        );
        // Each finished cell's record is there, and the summary says the sweep is not whole.
        assert_eq!(records(&run.output).len(), done, "{all}");
        let summary: serde_json::Value =
            serde_json::from_slice(&fs::read(run.output.join("summary.json")).unwrap()).unwrap();
        assert_eq!(summary["complete"], false, "{summary}");
        assert_nothing_left(run.pid);
    }
}

#[test]
fn sigkill_leaves_no_vm_process_and_no_file() {
    let run = stopped_sweep("KILL");
    assert_eq!(run.status.signal(), Some(9), "{}", run.stderr);
    // The cell that finished before the kill keeps its record; no summary claims more.
    assert_eq!(records(&run.output).len(), 1);
    assert!(!run.output.join("summary.json").exists());
    assert_nothing_left(run.pid);
}
