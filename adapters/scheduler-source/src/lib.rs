//! A declared scheduler's binary: a path checked as it is, or a Cargo package built in
//! release mode in the manifest's workspace.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use ktstr_domain::plan::manifest::{SchedulerBinary, SchedulerDecl};
use ktstr_ports::{SchedulerSource, SchedulerSourceError};
use tokio::process::Command;

#[derive(Debug, Clone)]
pub struct CargoSchedulerSource {
    /// Where `cargo build -p PACKAGE` runs: the manifest's directory.
    workspace: PathBuf,
    cargo: PathBuf,
}

impl CargoSchedulerSource {
    pub fn new(workspace: PathBuf, cargo: PathBuf) -> Self {
        CargoSchedulerSource { workspace, cargo }
    }
}

/// The executable of `package`'s binary target among cargo's JSON messages.
pub fn executable_from_messages(messages: &str, package: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter(|m| {
            // `package_id` is `path+file:///…/name#version` or `name version (…)`.
            let id = m["package_id"].as_str().unwrap_or_default();
            id.contains(&format!("/{package}#"))
                || id.contains(&format!("#{package}@"))
                || id.starts_with(&format!("{package} "))
                || m["target"]["name"] == package
        })
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

fn check_file(name: &str, path: &Path) -> Result<PathBuf, SchedulerSourceError> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(SchedulerSourceError::Missing {
            name: name.to_string(),
            path: path.display().to_string(),
        })
    }
}

#[async_trait]
impl SchedulerSource for CargoSchedulerSource {
    async fn binary(&self, decl: &SchedulerDecl) -> Result<PathBuf, SchedulerSourceError> {
        let package = match &decl.binary {
            SchedulerBinary::Path(path) => return check_file(&decl.name, Path::new(path)),
            SchedulerBinary::Package(package) => package,
        };
        let failed = |detail: String| SchedulerSourceError::Build {
            name: decl.name.clone(),
            package: package.clone(),
            detail,
        };
        let mut cargo = Command::new(&self.cargo);
        cargo
            .args(["build", "--release", "--message-format=json", "-p", package])
            .current_dir(&self.workspace)
            .stdin(Stdio::null())
            // A stopped sweep stops its build too (cargo's target dir stays consistent).
            .kill_on_drop(true);
        ktstr_host::die_with_parent(cargo.as_std_mut());
        let out = cargo
            .output()
            .await
            .map_err(|source| SchedulerSourceError::Cargo {
                name: decl.name.clone(),
                cargo: self.cargo.display().to_string(),
                source,
            })?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(failed(tail.join("\n")));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        executable_from_messages(&stdout, package)
            .ok_or_else(|| failed("the package has no binary target".to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(binary: SchedulerBinary) -> SchedulerDecl {
        SchedulerDecl {
            memory_mib: None,
            name: "s".into(),
            binary,
            sched_args: vec![],
            kernels: vec![],
            topology: Default::default(),
        }
    }

    #[test]
    fn finds_the_package_executable_in_cargo_messages() {
        let messages = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/lib#dep@0.1.0","target":{"kind":["lib"],"name":"dep"},"executable":null}
{"reason":"compiler-artifact","package_id":"path+file:///w/guest/scx-ktstr#0.1.0","target":{"kind":["bin"],"name":"scx-ktstr"},"executable":"/w/target/release/scx-ktstr"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executable_from_messages(messages, "scx-ktstr"),
            Some(PathBuf::from("/w/target/release/scx-ktstr"))
        );
        assert_eq!(executable_from_messages(messages, "dep"), None);
    }

    #[tokio::test]
    async fn a_path_is_checked_and_a_bad_package_reports_cargo_s_error() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("sched");
        std::fs::write(&bin, "").unwrap();
        let source = CargoSchedulerSource::new(tmp.path().to_path_buf(), "cargo".into());
        let path = SchedulerBinary::Path(bin.display().to_string());
        assert_eq!(source.binary(&decl(path)).await.unwrap(), bin);
        let missing = SchedulerBinary::Path("/nonexistent/sched".into());
        let err = source.binary(&decl(missing)).await.unwrap_err().to_string();
        assert!(
            err.contains("/nonexistent/sched") && err.contains("not found"),
            "{err}"
        );
        // No Cargo workspace in an empty directory: cargo's own message comes through.
        let err = source
            .binary(&decl(SchedulerBinary::Package("nope".into())))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("building package `nope` failed"), "{err}");
        assert!(err.contains("Cargo.toml"), "{err}");
    }
}
