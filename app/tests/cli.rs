//! The binary as a user drives it: output, errors and exit codes.

use assert_cmd::Command;
use predicates::prelude::*;

fn ktstr() -> Command {
    Command::cargo_bin("ktstr").unwrap()
}

#[test]
fn presets_lists_the_catalogue_against_the_budget() {
    ktstr()
        .args(["presets", "--max-vcpus", "16"])
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"numa4-12llc +4n12l8c2t +192 .*over budget").unwrap())
        .stdout(predicate::str::contains("host budget: 16 vCPUs per VM"));
}

#[test]
fn schedulers_validates_the_manifest_and_shows_presets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ktstr.toml"),
        "[[scheduler]]\nname = \"scx_simple\"\nbinary = \"bin/scx_simple\"\n[scheduler.topology]\nmin_llcs = 2\n",
    )
    .unwrap();
    ktstr()
        .current_dir(dir.path())
        .args(["schedulers", "--max-vcpus", "9"])
        .assert()
        .success()
        .stdout(predicate::str::contains("scx_simple  (binary "))
        .stdout(predicate::str::contains(
            "  presets: tiny-2llc odd-3llc smt-2llc\n",
        ))
        .stdout(predicate::str::contains("tiny-1llc (1 LLCs < min_llcs 2)"));
}

#[test]
fn a_bad_manifest_fails_with_the_field_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.toml");
    std::fs::write(
        &path,
        "[[scheduler]]\nname = \"a\"\nbinary = \"x\"\nsched_arg = []\n",
    )
    .unwrap();
    ktstr()
        .args(["schedulers", "--manifest"])
        .arg(&path)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid manifest"))
        .stderr(predicate::str::contains("m.toml"))
        .stderr(predicate::str::contains("unknown field `sched_arg`"));
    ktstr()
        .current_dir(dir.path())
        .arg("schedulers")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no ktstr.toml in"));
}

#[test]
fn collapse_reads_standard_input_and_files() {
    let mut log = String::from("func#0 @0\n0: R1=ctx() R10=fp0\n");
    for i in 0..6 {
        let base = 10 + i * 3;
        log.push_str("; acc += (u32)t; @ main.bpf.c:454\n");
        log.push_str(&format!(
            "{base}: (61) r1 = *(u32 *)(r10 -8)        ; R1_w={i}\n"
        ));
        log.push_str(&format!(
            "{}: (0f) r1 += r0         ; R1_w=scalar(id={i})\n",
            base + 1
        ));
        log.push_str(&format!(
            "{}: (63) *(u32 *)(r10 -8) = r1   ; fp-8={i}\n",
            base + 2
        ));
        log.push_str(&format!("{}: (07) r6 += 1   ; R6={i}\n", base + 3));
    }
    log.push_str("R1 invalid mem access 'scalar'\nprocessed 40 insns (limit 1000000) max_states_per_insn 0 total_states 3 peak_states 3 mark_read 0\n");
    ktstr()
        .arg("collapse")
        .write_stdin(log.clone())
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "--- 6x of the following 5 lines ---",
        ))
        .stdout(predicate::str::contains(
            "--- 4 identical iterations omitted ---",
        ))
        .stdout(predicate::str::contains("--- end repeat ---"))
        .stdout(predicate::str::ends_with(
            "verifier stats: processed=40  states=3/3\n",
        ));
    ktstr()
        .args(["collapse", "/nonexistent/verifier.log"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "reading verifier log /nonexistent/verifier.log",
        ));
}

#[test]
fn kaslr_is_refused_with_the_reason() {
    ktstr()
        .args(["verifier", "--kaslr"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--kaslr is not supported"))
        .stderr(predicate::str::contains("nokaslr"));
}

#[test]
fn a_kernel_arg_holding_several_words_is_refused() {
    ktstr()
        .args(["verifier", "--kernel-arg", "quiet loglevel=8"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "`quiet loglevel=8` is not one kernel command-line word",
        ));
}

#[test]
fn memory_outside_what_a_guest_may_have_is_refused_with_the_range() {
    ktstr()
        .args(["verifier", "--memory", "64"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("64 MiB is too small"));
    ktstr()
        .args(["verifier", "--memory", "131072"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("above the 65536 MiB"));
    ktstr()
        .args(["verifier", "--memory", "lots"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`lots` is not a number of MiB"));
}

#[test]
fn backends_says_which_backend_runs_here_and_a_missing_one_is_explained() {
    ktstr()
        .arg("backends")
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"(?m)^qemu +available +qemu \((tcg|kvm)\) — ").unwrap())
        .stdout(predicate::str::contains("auto picks: qemu"));
    // Without QEMU on PATH nothing can run, and the error names the package.
    let empty = tempfile::tempdir().unwrap();
    ktstr()
        .env("PATH", empty.path())
        .arg("backends")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "qemu   unavailable  qemu-system-x86_64 not found on PATH; install it with: apt-get install qemu-system-x86",
        ));
    ktstr()
        .env("PATH", empty.path())
        .args(["verifier", "--backend", "qemu", "tiny-1llc"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "backend qemu is not available: qemu-system-x86_64 not found on PATH",
        ));
    // Off a Microsoft Hypervisor root partition, asking for it says what is missing.
    if !std::path::Path::new("/dev/mshv").exists() {
        ktstr()
            .args(["verifier", "--backend", "mshv", "tiny-1llc"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                "backend mshv is not available: needs the Microsoft Hypervisor: no /dev/mshv",
            ));
        ktstr()
            .arg("backends")
            .assert()
            .success()
            .stdout(predicate::str::contains(
                "mshv   unavailable  needs the Microsoft Hypervisor: no /dev/mshv",
            ));
    }
    ktstr()
        .args(["verifier", "--backend", "vmware"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "possible values: auto, kvm, mshv, qemu",
        ));
}

/// `ktstr kernel build` on a tree whose first step never ends, stopped by `signal`:
/// the signal's exit status, the step's processes gone, no scratch or entry left, the
/// lock free for the next build.
fn stopped_kernel_build(signal: &str, code: i32) {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("linux");
    std::fs::create_dir_all(&tree).unwrap();
    let nap = format!("700.{}{}", std::process::id(), code);
    std::fs::write(
        tree.join("Makefile"),
        format!("tinyconfig:\n\tsleep {nap} & sleep {nap}; wait\n"),
    )
    .unwrap();
    std::fs::write(tree.join("Kconfig"), "").unwrap();
    let cache = tmp.path().join("cache");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ktstr"))
        .args(["kernel", "build", "--source"])
        .arg(&tree)
        .env("KTSTR_CACHE_DIR", &cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let napping = || {
        std::process::Command::new("pgrep")
            .args(["-f", &format!("sleep {nap}")])
            .output()
            .unwrap()
            .status
            .success()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !napping() {
        assert!(Instant::now() < deadline, "the build never reached make");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(
        stderr.contains("kernel build stopped while make tinyconfig; nothing was installed"),
        "{stderr}"
    );
    assert!(!napping(), "make's children outlived the build");
    let left: Vec<String> = std::fs::read_dir(cache.join("kernels"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "{stderr}");
    for lock in std::fs::read_dir(cache.join("kernels")).unwrap().flatten() {
        let file = std::fs::File::open(lock.path()).unwrap();
        assert!(
            file.try_lock().is_ok(),
            "{} still held",
            lock.path().display()
        );
    }
}

#[test]
fn sigterm_and_sigint_stop_a_kernel_build_whole() {
    stopped_kernel_build("TERM", 143);
    stopped_kernel_build("INT", 130);
}

/// Bad output options are refused before anything is resolved or booted (the bogus
/// kernel after them is never looked at), each error naming its thing once.
#[test]
fn output_options_are_checked_before_the_sweep_and_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &["--baseline", "/nonexistent"],
            "error: --baseline: /nonexistent is not a directory of ktstr results (write one with `ktstr verifier --format json --output DIR`)\n",
        ),
        (
            &["--summary", "/nonexistent/summary.md"],
            "error: --summary /nonexistent/summary.md: /nonexistent is not a directory; create it or pass another FILE\n",
        ),
        (
            &["--format", "json", "--output", "/proc/ktstr-results"],
            "error: --output /proc/ktstr-results: cannot create it; pass a writable directory: No such file or directory (os error 2)\n",
        ),
    ];
    for (options, said) in cases {
        ktstr()
            .current_dir(dir.path())
            .args(["verifier", "--kernel", "/nonexistent-kernel"])
            .args(options)
            .assert()
            .code(2)
            .stdout("")
            .stderr(said);
    }
    ktstr()
        .args(["compare", "/nonexistent", "/tmp"])
        .assert()
        .code(2)
        .stderr("error: /nonexistent is not a directory of ktstr results (write one with `ktstr verifier --format json --output DIR`)\n");
}
