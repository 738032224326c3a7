//! Running the real `ktstr` binary from workspace-level tests.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

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
pub fn ktstr_in(dir: &std::path::Path, args: &[&str]) -> Output {
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
