//! The own VMM on real KVM: in the nested-KVM bed (`scripts/nested-kvm.sh`, an L1 KVM host
//! booted under TCG, see docs/nested-kvm.md), `--backend kvm` and QEMU on the same KVM give
//! every cell the same verdict and every program the same `verified_insns`: the fixture
//! across presets, each knob's failing cell and the published schedulers. Both leave
//! nothing behind. One L1 boot runs it all (about 10 minutes on 2 cores).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{bin_dir, ktstr_bin, published_manifest, tempfile_dir};
use ktstr_domain::judging::record::CellRecord;
use ktstr_domain::judging::verdict::{Gate, Verdict};

const BACKENDS: [&str; 2] = ["kvm", "qemu"];
const FIXTURE_PRESETS: &str = "tiny-1llc tiny-2llc odd-3llc smt-2llc numa2-4llc";
const KNOBS: [(&str, Gate); 6] = [
    ("fail-verify", Gate::Verify),
    ("verify-loop", Gate::Verify),
    ("no-dispatch", Gate::Dispatch),
    ("die-after-attach", Gate::Liveness),
    ("wedge-after-attach", Gate::TimedOut),
    ("load-only", Gate::Attach),
];

#[test]
fn the_own_vmm_gives_qemus_verdicts_and_counts_on_nested_kvm() {
    let dir = tempfile_dir("nested-kvm");
    write_manifests(&dir);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = dir.join("run.sh");
    fs::write(&script, bed_script(&dir, &vmm_port_tests(&root))).unwrap();

    let status = Command::new("bash")
        .arg(root.join("scripts/nested-kvm.sh"))
        .arg("--ktstr")
        .arg(ktstr_bin())
        .args(["--", "sh"])
        .arg(&script)
        .current_dir(&root)
        .status()
        .expect("running nested-kvm.sh");
    let logs = logs(&dir);
    assert_ne!(
        status.code(),
        Some(125),
        "the bed's L1 host died or faulted (not ktstr's doing; see the console above)\n{logs}"
    );
    assert_eq!(status.code(), Some(0), "{logs}");

    let [kvm, qemu] = BACKENDS.map(|b| merged(b, records(&dir.join(b))));
    assert_eq!(
        kvm.keys().collect::<Vec<_>>(),
        qemu.keys().collect::<Vec<_>>(),
        "{logs}"
    );
    assert_eq!(kvm.len(), 5 + KNOBS.len() + 2, "{logs}");
    for (cell, own) in &kvm {
        let theirs = &qemu[cell];
        assert_eq!(
            gate(&own.verdict),
            gate(&theirs.verdict),
            "{cell}: own VMM {:?}, QEMU {:?}\n{logs}",
            own.verdict,
            theirs.verdict
        );
        // A rejection carries the verifier's own words and counts: they match too.
        if gate(&own.verdict) == "fail verify" {
            assert_eq!(own.verdict, theirs.verdict, "{cell}");
        }
        assert_eq!(
            insns(own),
            insns(theirs),
            "{cell}: verified_insns differ\n{logs}"
        );
        // The same guest: counts move with its RAM (ENVIRONMENT.md).
        assert_eq!(
            own.run.as_ref().unwrap().host.memory.mib,
            theirs.run.as_ref().unwrap().host.memory.mib,
            "{cell}"
        );
        assert_eq!(
            own.run.as_ref().unwrap().host.vm.backend,
            "kvm (own VMM)",
            "{cell}"
        );
        assert_eq!(
            theirs.run.as_ref().unwrap().host.vm.backend,
            "qemu (kvm)",
            "{cell}"
        );
    }
    // What each cell should be, whichever backend ran it.
    for (cell, record) in &kvm {
        match KNOBS
            .iter()
            .find(|(knob, _)| cell.starts_with(&format!("knobs/{knob}/")))
        {
            Some((_, expected)) => {
                assert_eq!(gate(&record.verdict), format!("fail {expected}"), "{cell}")
            }
            None => {
                assert_eq!(record.verdict, Verdict::Pass, "{cell}\n{logs}");
                assert!(!insns(record).is_empty(), "{cell}");
            }
        }
    }
    // The own VMM's port tests on real KVM: every vCPU thread and descriptor of a run,
    // stopped by its watchdog or dropped, is gone with it.
    let port = fs::read_to_string(dir.join("vmm-port.log")).unwrap();
    assert!(port.contains("test result: ok."), "{port}");
    assert!(!port.contains("skipped on KVM"), "{port}");
    let before = fs::read_to_string(dir.join("before.txt")).unwrap();
    for backend in BACKENDS {
        let after = fs::read_to_string(dir.join(backend).join("leftovers.txt")).unwrap();
        assert_eq!(after, before, "{backend} left this behind in L1");
    }
}

/// The fixture's, the knobs' and the published schedulers' manifests, beside the script.
fn write_manifests(dir: &Path) {
    let fixture = bin_dir().join("scx-ktstr");
    // numa2-4llc needs the fixture to accept two nodes (the default is one).
    fs::write(
        dir.join("fixture.toml"),
        format!(
            "[[scheduler]]\nname = \"scx-ktstr\"\nbinary = \"{}\"\n\
             [scheduler.topology]\nmax_numa_nodes = 2\n",
            fixture.display()
        ),
    )
    .unwrap();
    let mut knobs = String::new();
    for (name, _) in KNOBS {
        knobs.push_str(&format!(
            "[[scheduler]]\nname = \"{name}\"\nbinary = \"{}\"\nsched_args = [\"--{name}\"]\n\n",
            fixture.display()
        ));
    }
    fs::write(dir.join("knobs.toml"), knobs).unwrap();
    fs::write(dir.join("published.toml"), published_manifest()).unwrap();
}

/// The own VMM's port tests (tiny hand-made guests through the hypervisor port), built
/// here to run inside L1.
fn vmm_port_tests(root: &Path) -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .args([
            "test",
            "--locked",
            "-p",
            "ktstr-vmm",
            "--test",
            "backend_port",
        ])
        .args(["--no-run", "--message-format=json"])
        .current_dir(root)
        .output()
        .expect("running cargo test --no-run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|m| Some(PathBuf::from(m["executable"].as_str()?)))
        .expect("cargo names the backend_port test binary")
}

/// What a sweep could leave behind: guest RAM files, VM work directories (L1's /tmp is
/// this machine's, seen through an overlay), VM processes.
const LEFTOVERS: &str = "{ ls /dev/shm; ls -d /tmp/ktstr-vm-* 2>/dev/null; pgrep -a qemu-system; }";

/// Reruns, once, each cell under results directory `$1` that ended in an environment
/// error, with the sweep command that follows, into `$1-retry`.
const RETRY_ERRORS: &str = r#"retry_errors() {
  dir=$1; shift
  for f in $(grep -rl '"verdict": "error"' "$dir" --include='*.json'); do
    case $f in */summary.json) continue;; esac
    preset=$(basename "$f" .json); sched=$(basename "$(dirname "$(dirname "$f")")")
    "$@" --output "$dir-retry" --scheduler "$sched" "$preset" >> "$dir-retry.log" 2>&1
  done
}
"#;

/// What runs inside L1: the VMM's port tests, then the same sweeps on each backend, one
/// cell at a time (L1 has two CPUs), then what is left of them.
fn bed_script(dir: &Path, port_tests: &Path) -> String {
    let ktstr = ktstr_bin();
    let sweeps = [
        // Waits for a guest under nested paging emulated by TCG; the knobs' bound how long
        // the wedged and the never-enabling cells take.
        (
            "fixture",
            "--manifest fixture.toml --timeout 120 --attach-timeout 90",
            FIXTURE_PRESETS,
        ),
        (
            "knobs",
            "--manifest knobs.toml --timeout 60 --attach-timeout 20",
            "tiny-1llc",
        ),
        (
            "published",
            "--manifest published.toml --timeout 120 --attach-timeout 90",
            "tiny-1llc",
        ),
    ];
    let mut script = format!(
        "{RETRY_ERRORS}cd {}\n{LEFTOVERS} > before.txt\n{} --test-threads 1 > vmm-port.log 2>&1\n",
        dir.display(),
        port_tests.display()
    );
    for backend in BACKENDS {
        script.push_str(&format!("mkdir -p {backend}\n"));
        for (name, args, presets) in sweeps {
            let sweep = format!(
                "{} verifier --backend {backend} --kernel 6.12..=6.12.999 --jobs 1 \
                 --max-vcpus 16 --format json {args}",
                ktstr.display()
            );
            script.push_str(&format!(
                "{sweep} --output {backend}/{name} {presets} > {backend}/{name}.log 2>&1\n\
                 echo \"{backend} {name}: exit $?\"\n"
            ));
            // A cell that ended in an environment error gets one more boot (see `merged`).
            script.push_str(&format!("retry_errors {backend}/{name} {sweep}\n"));
        }
        script.push_str(&format!("{LEFTOVERS} > {backend}/leftovers.txt\n"));
    }
    script.push_str("exit 0\n");
    script
}

/// Every cell record under `dir`, by `sweep/scheduler/kernel/preset.json`.
fn records(dir: &Path) -> BTreeMap<String, CellRecord> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if path.extension().is_some_and(|e| e == "json")
            && path.file_name().is_some_and(|n| n != "summary.json")
        {
            let key = path.strip_prefix(dir).unwrap().display().to_string();
            let record = serde_json::from_slice(&fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.insert(key, record);
        }
    }
    out
}

/// Each sweep's records with a retried cell's second boot in place of its first. A retry
/// happens only after an environment error (the bed loses about one L2 boot in 240 on
/// 2 cores), and is written to the terminal, the first boot's console with it, so that
/// it is never hidden; a second error still fails the test.
fn merged(backend: &str, all: BTreeMap<String, CellRecord>) -> BTreeMap<String, CellRecord> {
    let (retries, mut out): (BTreeMap<_, _>, BTreeMap<_, _>) = all
        .into_iter()
        .partition(|(key, _)| key.split('/').next().unwrap().ends_with("-retry"));
    for (key, second) in retries {
        let key = key.replacen("-retry/", "/", 1);
        let first = out
            .insert(key.clone(), second)
            .expect("a retry has a first boot");
        assert!(
            first.verdict.is_env_error(),
            "{key} was retried after {:?}",
            first.verdict
        );
        let console = first.run.map(|r| r.host.console.tail).unwrap_or_default();
        // Straight to the terminal: the harness keeps a passing test's own output.
        let _ = writeln!(
            std::io::stderr(),
            "nested-kvm: {backend} {key} booted again after {:?}; its first console:\n{console}",
            first.verdict
        );
    }
    out
}

/// The gate a verdict failed, `Pass`/`Error` kept apart.
fn gate(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Pass => "pass".to_string(),
        Verdict::Fail { gate, .. } => format!("fail {gate}"),
        Verdict::Error { cause, reason } => format!("error {cause:?}: {reason}"),
    }
}

fn insns(record: &CellRecord) -> BTreeMap<String, u32> {
    record
        .run
        .iter()
        .flat_map(|run| &run.judgment.progs)
        .map(|p| (p.name.clone(), p.verified_insns))
        .collect()
}

/// Each sweep's text output, for a failing assertion.
fn logs(dir: &Path) -> String {
    let mut text = String::new();
    for backend in BACKENDS {
        for sweep in [
            "fixture",
            "knobs",
            "published",
            "fixture-retry",
            "knobs-retry",
            "published-retry",
        ] {
            let path = dir.join(backend).join(format!("{sweep}.log"));
            let log = fs::read_to_string(&path).unwrap_or_default();
            text.push_str(&format!("--- {} ---\n{log}\n", path.display()));
        }
    }
    text
}
