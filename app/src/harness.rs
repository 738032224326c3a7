//! A test harness over a sweep's cells, so `cargo nextest run` (or `cargo test`) runs
//! each cell as a test named like the cell, with nextest's partitioning, archives, JUnit
//! and CI integration unchanged. Each test runs `ktstr verifier` for its one cell; under
//! nextest that is one process per cell.
//!
//! In a scheduler's repository, a test target with `harness = false`:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     ktstr::harness::run(&ktstr::harness::CellHarness {
//!         ktstr: "ktstr".into(),
//!         dir: env!("CARGO_MANIFEST_DIR").into(),
//!         args: vec!["--kernel".into(), "6.12".into()],
//!         filters: vec![],
//!     })
//! }
//! ```
//!
//! No retries are configured: a cell that passes only sometimes is a bug to report.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use libtest_mimic::{Arguments, Failed, Trial};

/// What the harness runs.
#[derive(Debug, Clone)]
pub struct CellHarness {
    /// The `ktstr` binary.
    pub ktstr: PathBuf,
    /// Where `ktstr` runs (and finds `ktstr.toml`).
    pub dir: PathBuf,
    /// `ktstr verifier` options shared by every cell (kernel, manifest, memory…).
    pub args: Vec<String>,
    /// Cell filters that choose which cells become tests (preset names, schedulers…).
    pub filters: Vec<String>,
}

impl CellHarness {
    fn verifier(&self, extra: &[&str]) -> Command {
        let mut command = Command::new(&self.ktstr);
        command
            .arg("verifier")
            .args(&self.args)
            .args(extra)
            .current_dir(&self.dir);
        command
    }

    /// The sweep's cells, as `ktstr verifier --list` names them.
    pub fn cells(&self) -> Result<Vec<String>, String> {
        let mut list = vec!["--list"];
        list.extend(self.filters.iter().map(String::as_str));
        let out = self
            .verifier(&list)
            .output()
            .map_err(|e| format!("running {}: {e}", self.ktstr.display()))?;
        if !out.status.success() {
            return Err(format!(
                "listing the cells failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// Runs one cell; its whole output is the failure message when it did not pass.
    pub fn run_cell(&self, cell: &str) -> Result<(), Failed> {
        // The cell's full name, alone, is a filter only it matches.
        let out = self
            .verifier(&["--show", "all", cell])
            .output()
            .map_err(|e| Failed::from(format!("running {}: {e}", self.ktstr.display())))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            print!("{text}");
            Ok(())
        } else {
            Err(Failed::from(format!("{cell}: {}\n{text}", out.status)))
        }
    }
}

/// Lists or runs the cells as libtest's command line asks.
pub fn run(harness: &CellHarness) -> ExitCode {
    let args = Arguments::from_args();
    let cells = match harness.cells() {
        Ok(cells) => cells,
        Err(why) => {
            eprintln!("ktstr harness: {why}");
            return ExitCode::from(2);
        }
    };
    let trials = cells
        .into_iter()
        .map(|cell| {
            let harness = harness.clone();
            Trial::test(cell.clone(), move || harness.run_cell(&cell))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}
