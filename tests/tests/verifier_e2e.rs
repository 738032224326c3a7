//! Real sweeps: real kernels, real QEMU, real BPF. The fixture scheduler passes across the
//! default presets, and each of its knobs fails the gate it targets, with the reason.

mod common;

use std::fs;
use std::path::Path;

use common::{
    KERNEL_6_1, KERNEL_6_12, assert_passed_host_read, bin_dir, cell_block, ensure_kernels,
    ktstr_in, stderr, stdout, tempfile_dir, verdict,
};
use ktstr_domain::shape::preset::find_preset;

#[test]
fn the_default_sweep_passes_every_admitted_preset_and_the_guest_sees_each_shape() {
    ensure_kernels();
    let dir = tempfile_dir("default");
    // No --kernel: the newest cached kernel with sched_ext, even with 6.1 cached too.
    let out = ktstr_in(&dir, &["verifier", "--max-vcpus", "16", "--show", "all"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    for preset in [
        "tiny-1llc",
        "tiny-2llc",
        "odd-3llc",
        "odd-5llc",
        "odd-7llc",
        "smt-2llc",
        "smt-3llc",
    ] {
        let line = " PASS [";
        assert!(
            text.lines()
                .any(|l| l.starts_with(line) && l.ends_with(&format!(" / {preset}"))),
            "no PASS line for {preset}:\n{text}"
        );
        let block = cell_block(&text, "scx-ktstr", preset);
        assert!(block[0].contains("| kernel kernel_6_12_"), "{block:#?}");
        let shape = find_preset(preset).unwrap().topology.to_string();
        assert!(
            block.contains(&"  scheduler: attached (sched_ext enabled)"),
            "{block:#?}"
        );
        assert!(
            block.iter().any(|l| l.starts_with("  dispatch: confirmed")),
            "{block:#?}"
        );
        assert!(
            block.contains(&format!("  topology: guest saw {shape}").as_str()),
            "{block:#?}"
        );
        assert_passed_host_read(&block);
    }
    assert!(text.contains("verifier summary: 7 ✅  0 ❌  0 🇽"), "{text}");
    // The topology effect: the fixture's select_cpu verifies differently per preset.
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("kernel_6_12_"))
        .unwrap_or_else(|| panic!("no verified_insns row in {text}"));
    assert!(row.contains(".."), "flat across presets: {row}");
    assert!(stderr(&out).contains("backend: qemu ("), "{}", stderr(&out));
}

#[test]
fn each_knob_fails_the_gate_it_targets() {
    ensure_kernels();
    let dir = tempfile_dir("knobs");
    let fixture = bin_dir().join("scx-ktstr");
    let mut manifest = String::new();
    for (name, args) in [
        ("fail-verify", "--fail-verify"),
        ("verify-loop", "--verify-loop"),
        ("no-dispatch", "--no-dispatch"),
        ("die-after-attach", "--die-after-attach"),
        ("wedge-after-attach", "--wedge-after-attach"),
        ("load-only", "--load-only"),
        ("fail-verify-quiet", "--fail-verify-quiet"),
        ("error-after-dispatches", "--error-after-dispatches=2"),
    ] {
        manifest.push_str(&format!(
            "[[scheduler]]\nname = \"{name}\"\nbinary = \"{}\"\nsched_args = [\"{args}\"]\n\n",
            fixture.display()
        ));
    }
    fs::write(dir.join("ktstr.toml"), manifest).unwrap();
    let out = ktstr_in(
        &dir,
        &[
            "verifier",
            "--kernel",
            KERNEL_6_12,
            "--timeout",
            "40",
            "--attach-timeout",
            "15",
            "--format",
            "json",
            "--output",
            "stored",
            "tiny-1llc",
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));

    // Where it failed comes first: the verify gate, the program and the verifier's words.
    let block = cell_block(&text, "fail-verify", "tiny-1llc");
    assert_eq!(
        verdict(&block),
        "verdict: FAIL [verify] the verifier rejected ktstr_dispatch: R7 invalid mem access \
         'scalar' (processed 11 insns)",
        "{block:#?}"
    );
    for name in ["fail-verify", "verify-loop"] {
        let block = cell_block(&text, name, "tiny-1llc");
        assert!(
            verdict(&block)
                .starts_with("verdict: FAIL [verify] the verifier rejected ktstr_dispatch: "),
            "{block:#?}"
        );
        assert!(
            block
                .iter()
                .any(|l| l.contains("-- BEGIN PROG LOAD LOG --")),
            "{block:#?}"
        );
        assert!(block.iter().any(|l| l.contains("processed=")), "{block:#?}");
    }
    let looped = cell_block(&text, "verify-loop", "tiny-1llc");
    assert!(
        looped.iter().any(|l| l.trim() == "--- end repeat ---"),
        "{looped:#?}"
    );
    assert!(
        looped
            .iter()
            .any(|l| l.trim().starts_with("--- 8x of the following")),
        "{looped:#?}"
    );

    let block = cell_block(&text, "no-dispatch", "tiny-1llc");
    assert!(
        block.contains(&"  scheduler: attached (sched_ext enabled)"),
        "{block:#?}"
    );
    assert!(
        verdict(&block).starts_with("verdict: FAIL [dispatch]"),
        "{block:#?}"
    );

    // Gone before the probe ended: the liveness gate, with the kernel's record of it.
    let block = cell_block(&text, "die-after-attach", "tiny-1llc");
    assert_eq!(
        verdict(&block),
        "verdict: FAIL [liveness] scheduler process exited during the dispatch probe (exit \
         code 3); sched_ext disabled (unregistered from user space)",
        "{block:#?}"
    );
    // Ejected by the kernel during the probe: its reason, in its words, though the workers
    // ran on (under the fair class once sched_ext let go).
    let block = cell_block(&text, "error-after-dispatches", "tiny-1llc");
    assert_eq!(
        verdict(&block),
        "verdict: FAIL [liveness] sched_ext disabled (scx_bpf_error): ktstr: 2 tasks dispatched \
         (--error-after-dispatches); the scheduler process then exited (exit code 2)",
        "{block:#?}"
    );
    assert!(
        block.contains(
            &"  sched_ext: disabled (scx_bpf_error): ktstr: 2 tasks dispatched \
              (--error-after-dispatches)"
        ),
        "{block:#?}"
    );
    // Refused by the verifier, said only in the loader's words: still the verify gate.
    let block = cell_block(&text, "fail-verify-quiet", "tiny-1llc");
    assert_eq!(
        verdict(&block),
        "verdict: FAIL [verify] the kernel refused a BPF program load (EACCES: the verifier's \
         refusal); the loader printed no verifier log, only: Failed to load BPF program: \
         Permission denied (os error 13)",
        "{block:#?}"
    );

    let block = cell_block(&text, "wedge-after-attach", "tiny-1llc");
    assert!(
        verdict(&block).starts_with("verdict: FAIL [timed_out]"),
        "{block:#?}"
    );

    // Loaded, never attached, idle: the scheduler's own failure, with what it was doing.
    let block = cell_block(&text, "load-only", "tiny-1llc");
    let v = verdict(&block);
    assert!(
        v.starts_with(
            "verdict: FAIL [attach] sched_ext never reached enabled: state stayed disabled for \
             15000 ms; the scheduler was alive with 5 BPF programs loaded but never enabled \
             sched_ext (process state S"
        ),
        "{block:#?}"
    );

    assert!(text.contains("failing combinations (scheduler / kernel / topology):"));
    assert!(text.contains("verifier summary: 0 ✅  8 ❌  0 🇽"), "{text}");

    // The stored sweep judged again from what its records kept: the same verdicts.
    let again = ktstr_in(&dir, &["report", "--rejudge", "stored"]);
    let again_text = stdout(&again);
    assert_eq!(
        again.status.code(),
        Some(1),
        "{again_text}\n{}",
        stderr(&again)
    );
    assert!(
        again_text
            .starts_with("rejudged 8 run(s) under this ktstr's rules: 0 verdict(s) changed\n"),
        "{again_text}"
    );
    for line in text.lines().filter(|l| l.starts_with(" FAIL [")) {
        // `FAIL [  12.3s] cell: reason` as the sweep printed it, less the time.
        let (_, verdict) = line.split_once("] ").unwrap();
        assert!(again_text.contains(verdict), "{verdict}\n{again_text}");
    }
    // A rule that reads the observations differently changes a verdict, and says which:
    // here, the no-dispatch probe's workers made progress after all.
    let cell = common::stored_cell(&dir.join("stored"), "no-dispatch", "tiny-1llc");
    let mut record: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&cell).unwrap()).unwrap();
    for worker in record["run"]["guest"]["probe"]["workers"]
        .as_array_mut()
        .unwrap()
    {
        worker["iterations"] = 100.into();
    }
    fs::write(&cell, record.to_string()).unwrap();
    let moved = stdout(&ktstr_in(&dir, &["report", "--rejudge", "stored"]));
    assert!(
        moved.contains("8 run(s) under this ktstr's rules: 1 verdict(s) changed"),
        "{moved}"
    );
    assert!(
        moved.contains("  verifier/no-dispatch/") && moved.contains("/tiny-1llc: FAIL [dispatch] workload never made progress under SCHED_EXT: 0 iterations from 4 SCHED_EXT workers in "),
        "{moved}"
    );
    assert!(moved.contains("ms → PASS\n"), "{moved}");

    // --raw shows the verifier's own log, every iteration of the loop.
    let raw = ktstr_in(
        &dir,
        &[
            "verifier",
            "--kernel",
            KERNEL_6_12,
            "--scheduler",
            "verify-loop",
            "--raw",
            "tiny-1llc",
        ],
    );
    let raw_text = stdout(&raw);
    assert_eq!(raw.status.code(), Some(1));
    assert!(!raw_text.contains("--- end repeat ---"), "{raw_text}");
    assert!(raw_text.contains("-- END PROG LOAD LOG --"), "{raw_text}");
}

#[test]
fn a_kernel_without_sched_ext_fails_before_booting_and_makes_the_grid_mixed() {
    ensure_kernels();
    let dir = tempfile_dir("mixed");
    let out = ktstr_in(
        &dir,
        &[
            "verifier",
            "--kernel",
            KERNEL_6_12,
            "--kernel",
            KERNEL_6_1,
            "tiny-1llc",
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("lacks CONFIG_SCHED_CLASS_EXT; not booted"),
        "{text}"
    );
    assert!(text.contains("verifier summary: 0 ✅  0 ❌  1 🇽"), "{text}");
    let failing: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("failing combinations"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.trim_start().starts_with("rerun: "))
        .collect();
    assert_eq!(failing.len(), 1, "{text}");
    assert!(
        failing[0].starts_with("  scx-ktstr / kernel_6_1_"),
        "{failing:?}"
    );
}

#[test]
fn verbose_output_traces_each_phase_and_the_qemu_command_on_stderr_only() {
    ensure_kernels();
    let dir = tempfile_dir("verbose");
    let out = ktstr_in(&dir, &["-v", "verifier", "tiny-1llc"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = stderr(&out);
    for phase in [
        "kernel resolved",
        "guest image built",
        "booting",
        "launching QEMU",
        "VM stopped",
        "host read programs=5",
        "frames decoded",
        "judged verdict=Pass",
    ] {
        assert!(log.contains(phase), "no `{phase}` in:\n{log}");
    }
    let launch = log.lines().find(|l| l.contains("launching QEMU")).unwrap();
    assert!(launch.contains("cell{id=verifier/scx-ktstr/"), "{launch}");
    assert!(launch.contains("qemu-system-x86_64 -accel "), "{launch}");
    assert!(launch.contains("ktstr.frames=/dev/ttyS1"), "{launch}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log that is not a terminal"
    );
    // The console tail is -vv's.
    assert!(!log.contains("guest console"), "{log}");
    let text = stdout(&out);
    assert!(!text.contains("INFO"), "log lines in the report:\n{text}");
    assert!(text.contains("verifier summary: 1 ✅"), "{text}");
    // The default output: one line for the passing cell, no block, no progress line in
    // a pipe.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "running 1 cell(s)", "{text}");
    assert!(
        lines[1].starts_with(" PASS [")
            && lines[1].ends_with("s] scx-ktstr / kernel_6_12_118 / tiny-1llc"),
        "{text}"
    );
    assert!(!text.contains("==="), "{text}");
    assert!(!stderr(&out).contains("cells ["), "{}", stderr(&out));

    let out = ktstr_in(&dir, &["-vv", "verifier", "tiny-1llc"]);
    assert!(stderr(&out).contains("guest console"), "{}", stderr(&out));
}

#[test]
fn numa_guests_hold_the_vcpus_the_layout_gives_each_node() {
    ensure_kernels();
    let dir = tempfile_dir("numa");
    fs::write(
        dir.join("ktstr.toml"),
        format!(
            "[[scheduler]]\nname = \"scx-ktstr\"\nbinary = \"{}\"\n[scheduler.topology]\n\
             max_numa_nodes = 2\n",
            bin_dir().join("scx-ktstr").display()
        ),
    )
    .unwrap();
    let out = ktstr_in(
        &dir,
        &[
            "verifier",
            "numa2-4llc",
            "--max-vcpus",
            "16",
            "--show",
            "all",
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    let block = cell_block(&text, "scx-ktstr", "numa2-4llc");
    assert!(
        block.contains(&"  topology: guest saw 2n4l4c1t"),
        "{block:#?}"
    );
    assert_passed_host_read(&block);
}

/// Our own VMM runs real cells where the host has hardware KVM. Here `/dev/kvm` is PVM,
/// which boots no ordinary kernel: the test says so and checks that the backend is
/// refused with that reason instead.
#[test]
fn the_own_vmm_passes_a_real_cell_on_hardware_kvm() {
    ensure_kernels();
    let dir = tempfile_dir("own-vmm");
    let kvm = ktstr_host::KvmAccess::probe_host();
    let out = ktstr_in(
        &dir,
        &[
            "verifier",
            "--backend",
            "kvm",
            "--show",
            "all",
            "tiny-1llc",
            "smt-2llc",
        ],
    );
    if !matches!(kvm, ktstr_host::KvmAccess::Hardware { .. }) {
        eprintln!(
            "skipped on this host: {} (the own VMM's real cells need hardware KVM)",
            kvm.describe()
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("backend kvm is not available: needs hardware KVM"),
            "{}",
            stderr(&out)
        );
        return;
    }
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    for preset in ["tiny-1llc", "smt-2llc"] {
        let block = cell_block(&text, "scx-ktstr", preset);
        assert!(verdict(&block).contains("kvm (own VMM)"), "{block:#?}");
        assert_passed_host_read(&block);
    }
    // The figures the backend is for: VM start to init and the whole cell.
    let row = bench_row(&dir, &["--backend", "kvm"], "tiny-1llc");
    eprintln!("own VMM on hardware KVM, tiny-1llc: {row:?}");
}

/// `ktstr bench --repeat 2 <preset>` with `extra` options: the preset's row, by column.
fn bench_row(dir: &Path, extra: &[&str], preset: &str) -> Vec<(String, String)> {
    let mut args = vec!["bench", "--repeat", "2", preset];
    args.extend(extra);
    let out = ktstr_in(dir, &args);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    let mut lines = text.lines();
    let header = lines.next().expect("a header");
    let row = lines
        .find(|l| l.contains(preset))
        .unwrap_or_else(|| panic!("no {preset} row:\n{text}"));
    // Columns are separated by runs of spaces; values such as `1234 ms` hold one.
    let columns = |line: &str| -> Vec<String> {
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    };
    columns(header).into_iter().zip(columns(row)).collect()
}

/// The bench table gives each cell its host-measured VM start to init next to the
/// guest's own segments, so a backend's start-up cost is a figure, not a guess.
#[test]
fn bench_reports_vm_start_to_init_and_each_phase() {
    ensure_kernels();
    let dir = tempfile_dir("bench");
    let row = bench_row(&dir, &[], "tiny-1llc");
    let value = |column: &str| -> u64 {
        let (_, v) = row
            .iter()
            .find(|(c, _)| c == column)
            .unwrap_or_else(|| panic!("no {column} column: {row:?}"));
        v.trim_end_matches(" ms")
            .parse()
            .unwrap_or_else(|_| panic!("{column} is {v}: {row:?}"))
    };
    assert_eq!(value("runs"), 2, "{row:?}");
    assert_eq!(value("failed"), 0, "{row:?}");
    let (start_to_init, boot, wall) = (value("start→init"), value("boot"), value("wall"));
    // The host's clock runs before the guest's starts: the VM start to init covers the
    // guest's boot segment and is part of the cell's wall time.
    assert!(boot <= start_to_init && start_to_init < wall, "{row:?}");
    for segment in ["load+verify+attach", "probe", "vm overhead"] {
        assert!(value(segment) > 0, "{segment}: {row:?}");
    }
}

/// `--repeat 3` boots the fixture's cell three times; its counts depend on the topology
/// only, so the summary says they were the same in every boot.
#[test]
fn repeated_boots_of_the_fixture_count_the_same() {
    ensure_kernels();
    let dir = tempfile_dir("repeat");
    let out = ktstr_in(
        &dir,
        &[
            "verifier",
            "--kernel",
            KERNEL_6_12,
            "--repeat",
            "3",
            "tiny-1llc",
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    for boot in 1..=3 {
        let suffix = format!("/ tiny-1llc (boot {boot}/3)");
        assert!(
            text.lines()
                .any(|l| l.starts_with(" PASS [") && l.ends_with(&suffix)),
            "no PASS line ending `{suffix}`:\n{text}"
        );
    }
    assert!(
        text.contains(
            "stable: every program's verified_insns was the same in all 3 boots of its cell"
        ),
        "{text}"
    );
    assert!(!text.contains("differ between boots"), "{text}");
}

/// `ktstr bench --boot-profile` splits a real boot from the kernel's own records: time
/// before the kernel, setup, SMP bring-up, initcalls and the hand-over to the init, and
/// names the slowest initcalls of this kernel.
#[test]
fn bench_profiles_where_a_real_boot_went() {
    ensure_kernels();
    let dir = tempfile_dir("boot-profile");
    let out = ktstr_in(
        &dir,
        &[
            "bench",
            "--kernel",
            KERNEL_6_12,
            "--repeat",
            "1",
            "--boot-profile",
            "tiny-1llc",
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    let profile = text
        .split_once("boot profile")
        .unwrap_or_else(|| panic!("no boot profile:\n{text}"))
        .1;
    let row = profile
        .lines()
        .find(|l| l.contains("tiny-1llc") && l.contains(" ms"))
        .unwrap_or_else(|| panic!("no tiny-1llc profile row:\n{profile}"));
    let values: Vec<u64> = row
        .split("  ")
        .map(str::trim)
        .filter_map(|c| c.strip_suffix(" ms")?.parse().ok())
        .collect();
    // before kernel, setup, smp bring-up, initcalls, to init, exec to init, initcalls Σ:
    // every stretch was seen, and a real boot spends time in each of its first four.
    assert_eq!(values.len(), 7, "{row}");
    assert!(values[..4].iter().all(|&ms| ms > 0), "{row}");
    let slowest = profile
        .lines()
        .find(|l| l.trim_start().starts_with("verifier/scx-ktstr/") && l.contains(": "))
        .unwrap_or_else(|| panic!("no slowest initcalls:\n{profile}"));
    // Initcalls every ktstr kernel runs: sched_ext's and ACPI's.
    for initcall in ["scx_init", "acpi_init"] {
        assert!(slowest.contains(initcall), "{slowest}");
    }
}
