//! Fault drills on real sweeps: the host failing one cell (its QEMU out of memory in a
//! cgroup, QEMU gone or broken mid-sweep through `--qemu`), two sweeps at once on a cold
//! cache, a cache directory that is full or read-only. Each gets the right environment
//! error, every other cell keeps its result, and nothing is left behind.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{
    KERNEL_6_12, cache_base, cell_block, ensure_kernels, ktstr_bin, stderr, stdout, tempfile_dir,
    verdict,
};

const CELLS: [&str; 3] = ["tiny-1llc", "tiny-2llc", "odd-3llc"];

/// An executable script `name` in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `ktstr verifier` on the fixture in `dir`, one cell at a time, with `env` set; then
/// checks that no QEMU of it is left.
fn sweep(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(ktstr_bin());
    cmd.args([
        "verifier",
        "--kernel",
        KERNEL_6_12,
        "--jobs",
        "1",
        "--show",
        "all",
    ])
    .args(args)
    .current_dir(dir)
    .env("NO_COLOR", "1")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (key, value) in env {
        cmd.env(key, value);
    }
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    eprintln!("{}{}", stdout(&out), stderr(&out));
    assert_nothing_left_by(pid);
    out
}

/// Each cell's verdict line, in CELLS order.
fn verdicts(text: &str) -> Vec<String> {
    CELLS
        .iter()
        .map(|preset| verdict(&cell_block(text, "scx-ktstr", preset)))
        .collect()
}

/// No QEMU started by sweep `pid` is still running (each names its files through
/// `/proc/<pid>/fd/`), and no file of it is in `/dev/shm` or the temp dir.
fn assert_nothing_left_by(pid: u32) {
    for dir in [Path::new("/dev/shm"), &std::env::temp_dir()] {
        let mine: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("ktstr") && n.contains(&pid.to_string()))
            .collect();
        assert_eq!(mine, Vec::<String>::new(), "left in {}", dir.display());
    }
    let found = Command::new("pgrep")
        .args(["-f", &format!("/proc/{pid}/fd/")])
        .output()
        .unwrap();
    assert!(
        found.stdout.is_empty(),
        "left running: {}",
        String::from_utf8_lossy(&found.stdout)
    );
}

/// The cell whose QEMU runs in the wrapper's Nth start gets `verdict`; the others pass.
fn drill(name: &str, wrapper: &str, nth: usize, expected: &str) {
    ensure_kernels();
    let dir = tempfile_dir(name);
    let qemu = script(&dir, "qemu", wrapper);
    let mut args = vec!["--qemu", qemu.to_str().unwrap()];
    args.extend(CELLS);
    let out = sweep(&dir, &args, &[]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{text}");
    // Which cell met the broken start depends on the order cells start in: one did.
    let all = verdicts(&stdout(&out));
    let hit: Vec<&String> = all
        .iter()
        .filter(|v| !v.starts_with("verdict: PASS"))
        .collect();
    assert_eq!(hit.len(), CELLS.len() - nth + 1, "{all:#?}");
    for v in hit {
        assert!(v.starts_with(expected), "{v}\nexpected {expected}");
    }
}

#[test]
fn qemu_gone_mid_sweep_fails_only_the_later_cells_as_vm_start() {
    drill(
        "qemu-gone",
        "rm -f \"$0\"\nexec qemu-system-x86_64 \"$@\"\n",
        2,
        "verdict: ERROR [environment: vm-start] cannot start ",
    );
}

#[test]
fn qemu_broken_mid_sweep_fails_only_the_later_cells_with_its_words() {
    drill(
        "qemu-broken",
        "if [ -e \"$0.ran\" ]; then\n  echo 'qemu: undefined symbol: drill' >&2\n  exit 127\nfi\n\
         touch \"$0.ran\"\nexec qemu-system-x86_64 \"$@\"\n",
        2,
        "verdict: ERROR [environment: vm-start] the VM did not start: QEMU exited with exit \
         status: 127 before the guest said anything: qemu: undefined symbol: drill",
    );
}

/// The second QEMU runs in a memory cgroup (v1, as these machines mount it) far smaller
/// than its guest: the kernel's OOM killer ends it while the guest boots.
#[test]
fn a_cell_whose_vm_the_host_runs_out_of_memory_for_is_vm_died_and_the_others_pass() {
    let cgroups = Path::new("/sys/fs/cgroup/memory");
    assert!(
        cgroups.join("memory.limit_in_bytes").exists(),
        "this drill needs the cgroup v1 memory controller at {}",
        cgroups.display()
    );
    let wrapper = "n=$(cat \"$0.count\" 2>/dev/null || echo 0)\nn=$((n + 1))\necho $n > \"$0.count\"\n\
        if [ $n -eq 2 ]; then\n  cg=/sys/fs/cgroup/memory/ktstr-drill-$$\n  mkdir $cg\n  \
        echo $((160 << 20)) > $cg/memory.limit_in_bytes\n  echo $$ > $cg/cgroup.procs\nfi\n\
        exec qemu-system-x86_64 \"$@\"\n";
    let result = std::panic::catch_unwind(|| {
        drill(
            "host-oom",
            wrapper,
            CELLS.len(),
            "verdict: ERROR [environment: vm-died] the VM process died (QEMU killed by signal \
             9, SIGKILL: the host's OOM killer",
        )
    });
    // The drill's cgroups go whatever happened (empty once their QEMU is dead).
    for entry in fs::read_dir(cgroups).unwrap().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("ktstr-drill-")
        {
            let _ = fs::remove_dir(entry.path());
        }
    }
    result.unwrap();
}

/// A cache directory of its own whose `kernels` are the real cache's (read only here).
fn cold_cache(dir: &Path) -> PathBuf {
    let cache = dir.join("cache");
    fs::create_dir_all(&cache).unwrap();
    std::os::unix::fs::symlink(cache_base().join("kernels"), cache.join("kernels")).unwrap();
    cache
}

/// Files under `dir` that a sweep left half-written.
fn partials(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|read| {
            read.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn two_sweeps_at_once_on_a_cold_cache_both_pass_and_share_one_image() {
    ensure_kernels();
    let dir = tempfile_dir("cold-cache");
    let cache = cold_cache(&dir);
    let start = || {
        Command::new(ktstr_bin())
            .args([
                "verifier",
                "--kernel",
                KERNEL_6_12,
                "--jobs",
                "1",
                "tiny-1llc",
            ])
            .current_dir(&dir)
            .env("KTSTR_CACHE_DIR", &cache)
            .env("NO_COLOR", "1")
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(), start());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0));
    }
    let images: Vec<String> = fs::read_dir(cache.join("initramfs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(images.len(), 1, "{images:?}");
    assert!(images[0].ends_with(".cpio.gz"), "{images:?}");
}

/// A cache on a tiny tmpfs, full or mounted read-only: every cell is an image
/// environment error naming the directory and the cause, and no partial image stays.
#[test]
fn a_full_or_read_only_cache_is_an_image_environment_error_naming_it() {
    ensure_kernels();
    for (name, options, cause) in [
        ("cache-full", "size=64k", "No space left on device"),
        ("cache-ro", "size=64k", "Read-only file system"),
    ] {
        let dir = tempfile_dir(name);
        let cache = dir.join("cache");
        fs::create_dir_all(&cache).unwrap();
        let mount = |args: &[&str]| {
            let status = Command::new("mount").args(args).status().unwrap();
            assert!(status.success(), "mount {args:?}");
        };
        mount(&[
            "-t",
            "tmpfs",
            "-o",
            options,
            "tmpfs",
            cache.to_str().unwrap(),
        ]);
        std::os::unix::fs::symlink(cache_base().join("kernels"), cache.join("kernels")).unwrap();
        fs::create_dir(cache.join("initramfs")).unwrap();
        if name == "cache-ro" {
            mount(&["-o", "remount,ro", cache.to_str().unwrap()]);
        }
        let out = sweep(&dir, &CELLS[..2], &[("KTSTR_CACHE_DIR", &cache)]);
        let left = partials(&cache.join("initramfs"));
        let _ = Command::new("umount").arg(&cache).status();
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(3), "{text}");
        let images = cache.join("initramfs");
        for preset in &CELLS[..2] {
            let v = verdict(&cell_block(&text, "scx-ktstr", preset));
            assert!(
                v.starts_with("verdict: ERROR [environment: image] scheduler `scx-ktstr`: cannot build the guest image: cannot write the image in")
                    && v.contains(&images.display().to_string())
                    && v.contains(cause),
                "{v}"
            );
        }
        assert_eq!(left, Vec::<String>::new());
    }
}
