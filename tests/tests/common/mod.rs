//! Running the real `ktstr` binary from workspace-level tests.
#![allow(dead_code)] // each test file uses part of it

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, Once, OnceLock};

/// The directory of the freshly built `ktstr`, `ktstr-init` and `scx-ktstr` (built once
/// per test process).
pub fn bin_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--locked",
                "-p",
                "ktstr",
                "-p",
                "ktstr-guest-init",
                "-p",
                "scx-ktstr",
            ])
            .current_dir(&root)
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building ktstr failed");
        let meta = Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
            .current_dir(&root)
            .output()
            .expect("running cargo metadata");
        let meta: serde_json::Value = serde_json::from_slice(&meta.stdout).unwrap();
        PathBuf::from(meta["target_directory"].as_str().unwrap()).join("debug")
    })
}

pub fn ktstr_bin() -> PathBuf {
    bin_dir().join("ktstr")
}

/// Runs `ktstr ARGS` in `dir` (where it looks for `ktstr.toml`); stderr is echoed for the
/// test log.
pub fn ktstr_in(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(ktstr_bin())
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("running ktstr");
    eprintln!(
        "$ ktstr {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub const KERNEL_6_12: &str = "6.12..=6.12.999";
pub const KERNEL_6_1: &str = "6.1..=6.1.999";

/// The lines of one cell's block in the text output.
pub fn cell_block<'a>(out: &'a str, sched: &str, preset: &str) -> Vec<&'a str> {
    let banner = format!("=== {sched} | kernel ");
    let mut lines = out.lines().skip_while(|l| {
        !(l.starts_with(&banner) && l.ends_with(&format!("| topology {preset} ===")))
    });
    let mut block: Vec<&str> = lines.next().into_iter().collect();
    // A block's lines are indented (blank ones come from a scheduler's log); the next
    // cell's line or banner, or the summary, ends it.
    block.extend(lines.take_while(|l| l.starts_with("  ") || l.is_empty()));
    assert!(
        !block.is_empty(),
        "no block for {sched}/{preset} in:\n{out}"
    );
    block
}

pub fn verdict(block: &[&str]) -> String {
    block
        .iter()
        .find(|l| l.trim_start().starts_with("verdict:"))
        .map(|l| l.trim().to_string())
        .unwrap_or_default()
}

/// A passed cell whose `verified_insns` the host read from guest memory, equal to the
/// guest's own view.
pub fn assert_passed_host_read(block: &[&str]) {
    assert!(verdict(block).starts_with("verdict: PASS"), "{block:#?}");
    assert!(
        block.contains(&"  verified_insns (host-read):"),
        "{block:#?}"
    );
    assert!(
        block.contains(&"  cross-check: host and guest agree"),
        "{block:#?}"
    );
}

/// Builds (first time) or finds the sweep's kernels: Debian's 6.12 and, kept without
/// sched_ext, 6.1.
pub fn ensure_kernels() {
    static BUILT: Once = Once::new();
    BUILT.call_once(|| {
        for args in [
            &["kernel", "build"][..],
            &[
                "kernel",
                "build",
                "--source",
                "/usr/src/linux-source-6.1.tar.xz",
                "--allow-dropped",
            ],
        ] {
            let out = ktstr_in(&std::env::temp_dir(), args);
            assert!(out.status.success(), "{}", stderr(&out));
        }
    });
}

/// A fresh, empty working directory under the target dir (no stray ktstr.toml).
pub fn tempfile_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("verifier-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// ktstr's cache directory, found as `ktstr` finds it.
pub fn cache_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("KTSTR_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("ktstr");
    }
    PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/ktstr")
}

/// A published scheduler from crates.io, built once with `cargo install --locked` into
/// `<cache>/schedulers/<name>-<version>` (a shared target dir keeps the common
/// dependencies) and reused after that. Its BPF is compiled with clang-19, which the setup
/// script installs.
pub fn published_scheduler(name: &str, version: &str) -> PathBuf {
    // One install at a time: the shared target dir is locked by cargo anyway.
    static INSTALL: Mutex<()> = Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let root = cache_base().join("schedulers");
    let dir = root.join(format!("{name}-{version}"));
    let binary = dir.join("bin").join(name);
    if binary.is_file() {
        return binary;
    }
    // scx's build scripts call `clang`; Debian installs it as clang-19.
    let shim = root.join("clang-shim");
    fs::create_dir_all(&shim).unwrap();
    let clang = shim.join("clang");
    if !clang.exists() {
        std::os::unix::fs::symlink("/usr/bin/clang-19", &clang).unwrap();
    }
    let path = std::env::join_paths(std::iter::once(shim.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let status = Command::new(env!("CARGO"))
        .args(["install", "--locked", "--root"])
        .arg(&dir)
        .arg("--target-dir")
        .arg(root.join("target"))
        .arg(format!("{name}@{version}"))
        .env("PATH", path)
        .env("BPF_CLANG", "clang-19")
        .status()
        .expect("running cargo install");
    assert!(status.success(), "cargo install {name}@{version} failed");
    assert!(
        binary.is_file(),
        "{} missing after install",
        binary.display()
    );
    binary
}

/// The version of the scx crates the suite sweeps.
pub const SCX_VERSION: &str = "1.1.4";

/// A manifest of the two published schedulers the suite sweeps: `scx_bpfland`, and
/// `scx_layered` with its example configuration.
pub fn published_manifest() -> String {
    let mut manifest = String::new();
    for (name, args) in [("scx_bpfland", ""), ("scx_layered", "\"--run-example\"")] {
        manifest.push_str(&format!(
            "[[scheduler]]\nname = \"{name}\"\nbinary = \"{}\"\nsched_args = [{args}]\n\n",
            published_scheduler(name, SCX_VERSION).display()
        ));
    }
    manifest
}

/// veristat, the kernel's verifier statistics tool, built once from Debian's
/// linux-source-6.12 into `<cache>/tools/veristat-6.12` (about 30 s) and reused after.
pub fn veristat() -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let dir = cache_base().join("tools").join("veristat-6.12");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-veristat.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .status()
        .expect("running build-veristat.sh");
    assert!(status.success(), "building veristat failed");
    dir.join("veristat")
}

/// One of the Linux 6.12 tree's own example schedulers (`scx_central`, `scx_simple`,
/// `scx_qmap`, `scx_flatcg`), built once from Debian's linux-source-6.12 against the default
/// kernel's BTF into `<cache>/tools/sched_ext-examples-<kernel entry>` and reused after.
pub fn kernel_example(name: &str) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let kernel = default_kernel_dir();
    let entry = kernel.file_name().unwrap().to_string_lossy().into_owned();
    let dir = cache_base()
        .join("tools")
        .join(format!("sched_ext-examples-{entry}"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-kernel-examples.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .arg(kernel.join("vmlinux"))
        .status()
        .expect("running build-kernel-examples.sh");
    assert!(
        status.success(),
        "building the kernel's example schedulers failed"
    );
    dir.join("bin").join(name)
}

/// Runs `ktstr ARGS` in `dir` as under GitHub Actions (no colour, annotations on, the step
/// summary going to `summary_file`).
pub fn ktstr_on_github(dir: &Path, args: &[&str], summary_file: &Path) -> Output {
    Command::new(ktstr_bin())
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", summary_file)
        .output()
        .expect("running ktstr")
}

/// The path of a stored cell's record under a `--format json` directory, whichever kernel
/// the sweep used (one kernel only).
pub fn stored_cell(results: &Path, sched: &str, preset: &str) -> PathBuf {
    let kernel = fs::read_dir(results.join(sched))
        .expect("the scheduler's results")
        .next()
        .expect("a kernel directory")
        .unwrap()
        .path();
    kernel.join(format!("{preset}.json"))
}

/// The default kernel's cache entry, built (or found) through `ktstr kernel build`.
pub fn default_kernel_dir() -> PathBuf {
    let out = ktstr_in(&std::env::temp_dir(), &["kernel", "build"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("kernel "))
        .expect("build names the kernel");
    PathBuf::from(line.rsplit(" in ").next().unwrap())
}
