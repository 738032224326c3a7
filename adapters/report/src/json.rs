//! JSON records: one file per cell as it finishes, and a summary when the sweep ends.
//!
//! Every file is written to a temporary name beside it and renamed into place, so a reader
//! (or a crash) never sees a half-written file under the final name.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ktstr_domain::judging::record::CellRecord;
use ktstr_domain::plan::cell::CellId;
use ktstr_domain::results::determinism::{UnstableProgram, UnsteadyVerdict, WallSpread};
use ktstr_domain::results::report::{Grid, InsnsTable, SweepOutcome, SweepReport};
use ktstr_ports::reporter::{ReportError, Reporter};
use serde::Serialize;

const SUMMARY_FILE: &str = "summary.json";

/// Writes `{dir}/{scheduler}/{kernel}/{preset}.json` per cell and `{dir}/summary.json`.
#[derive(Debug)]
pub struct JsonReporter {
    dir: PathBuf,
    // Distinguishes temporary files of concurrent writers in this process.
    tmp_seq: AtomicU64,
}

/// The shape of `summary.json`.
#[derive(Serialize)]
struct Summary {
    complete: bool,
    planned: usize,
    finished: usize,
    passed: usize,
    failed: usize,
    /// Cells the environment kept from judging the scheduler.
    env_errors: usize,
    succeeded: bool,
    /// `passed`, `failed`, `environment_error` or `interrupted`, as the exit status says.
    outcome: SweepOutcome,
    insns_tables: Vec<InsnsTable>,
    grid: Grid,
    failing: Vec<String>,
    /// The cells of `env_errors`, by name.
    environment_errors: Vec<String>,
    /// Boots of each cell (`--repeat`).
    boots_per_cell: u32,
    /// Programs whose `verified_insns` differed between boots of one cell.
    unstable_programs: Vec<UnstableProgram>,
    /// Cells whose boots got different verdicts.
    unsteady_verdicts: Vec<UnsteadyVerdict>,
    /// Wall time per boot, with several boots per cell.
    #[serde(skip_serializing_if = "Option::is_none")]
    wall_spread: Option<WallSpread>,
}

impl JsonReporter {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JsonReporter {
            dir: dir.into(),
            tmp_seq: AtomicU64::new(0),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn summary_path(&self) -> PathBuf {
        self.dir.join(SUMMARY_FILE)
    }

    /// Where a cell's record goes. Refuses components that would leave the directory.
    pub fn cell_path(&self, cell: &CellId) -> Result<PathBuf, ReportError> {
        let mut path = self.dir.clone();
        for part in [&cell.scheduler, &cell.kernel] {
            path.push(safe_component(part, cell)?);
        }
        path.push(format!("{}.json", safe_component(&cell.preset, cell)?));
        Ok(path)
    }

    /// Where a record goes: its cell's path, or `{preset}.boot{N}.json` for one boot of a
    /// cell booted several times (`--repeat`), so no boot overwrites another.
    pub fn record_path(&self, record: &CellRecord) -> Result<PathBuf, ReportError> {
        let path = self.cell_path(&record.cell)?;
        Ok(match record.boot {
            Some(boot) => path.with_extension(format!("boot{}.json", boot.index)),
            None => path,
        })
    }

    fn write_json(&self, path: &Path, value: &impl Serialize) -> Result<(), ReportError> {
        let mut bytes = serde_json::to_vec_pretty(value)
            .map_err(|e| ReportError::caused(format!("serializing {}", path.display()), e))?;
        bytes.push(b'\n');
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        write_atomic(path, &bytes, seq)
            .map_err(|e| ReportError::caused(format!("writing {}", path.display()), e))
    }
}

/// `CellId` already refuses `/`; `.`/`..` and backslashes would still escape or confuse.
fn safe_component<'a>(part: &'a str, cell: &CellId) -> Result<&'a str, ReportError> {
    let bad = part.is_empty() || part == "." || part == ".." || part.contains(['/', '\\', '\0']);
    if bad {
        return Err(ReportError::new(format!(
            "cell `{cell}` has component `{part}` that cannot be a file name"
        )));
    }
    Ok(part)
}

fn write_atomic(path: &Path, bytes: &[u8], seq: u64) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("the path has no parent directory"))?;
    fs::create_dir_all(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.{seq}.tmp", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        // Flush to disk before the rename publishes the name.
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl Reporter for JsonReporter {
    /// Creates the directory and drops a stale `summary.json`, so an interrupted sweep
    /// never leaves an earlier sweep's complete-looking summary behind. Per-cell files of
    /// earlier sweeps are left alone; the cells run again are overwritten.
    fn sweep_started(&self, _planned: usize, _warnings: &[String]) -> Result<(), ReportError> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| ReportError::caused(format!("creating {}", self.dir.display()), e))?;
        let summary = self.summary_path();
        match fs::remove_file(&summary) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ReportError::caused(
                format!("removing stale {}", summary.display()),
                e,
            )),
            _ => Ok(()),
        }
    }

    /// Records are written when cells finish; a start has nothing to record.
    fn cell_started(&self, _cell: &CellId) {}

    fn cell_finished(&self, record: &CellRecord) -> Result<(), ReportError> {
        let path = self.record_path(record)?;
        self.write_json(&path, record)
    }

    fn sweep_finished(&self, report: &SweepReport) -> Result<(), ReportError> {
        let passed = report.records.iter().filter(|r| r.verdict.passed()).count();
        let summary = Summary {
            complete: report.complete,
            planned: report.planned,
            finished: report.records.len(),
            passed,
            failed: report.failing().len(),
            env_errors: report.env_errors().len(),
            succeeded: report.succeeded(),
            outcome: report.outcome(),
            insns_tables: report.insns_tables(),
            grid: report.grid(),
            failing: report
                .failing()
                .iter()
                .map(|r| r.cell.to_string())
                .collect(),
            environment_errors: report
                .env_errors()
                .iter()
                .map(|r| r.cell.to_string())
                .collect(),
            boots_per_cell: report.boots_per_cell(),
            unstable_programs: report.unstable_programs(),
            unsteady_verdicts: report.unsteady_verdicts(),
            wall_spread: report.wall_spread(),
        };
        self.write_json(&self.summary_path(), &summary)
    }
}

/// The shape of `summary.json` that reading needs.
#[derive(serde::Deserialize)]
struct SummaryHead {
    complete: bool,
    planned: usize,
}

/// A results directory as written by [`JsonReporter`], read back: every cell record under
/// it (in path order), with `planned` and `complete` from its `summary.json`. Without a
/// summary (the sweep never finished) the records are all there is: incomplete.
pub fn read_results(dir: &Path) -> Result<SweepReport, ReportError> {
    if !dir.is_dir() {
        return Err(ReportError::new(format!(
            "{} is not a directory of ktstr results (write one with `ktstr verifier --format json --output DIR`)",
            dir.display()
        )));
    }
    let mut paths = Vec::new();
    collect_json(dir, &mut paths)
        .map_err(|e| ReportError::caused(format!("reading {}", dir.display()), e))?;
    paths.sort();
    let mut records = Vec::new();
    let mut head = None;
    for path in paths {
        let text = fs::read_to_string(&path)
            .map_err(|e| ReportError::caused(format!("reading {}", path.display()), e))?;
        let invalid = |e| {
            ReportError::caused(
                format!(
                    "{} is not a ktstr record (from --format json)",
                    path.display()
                ),
                e,
            )
        };
        if path.file_name().is_some_and(|n| n == SUMMARY_FILE) && path.parent() == Some(dir) {
            head = Some(serde_json::from_str::<SummaryHead>(&text).map_err(invalid)?);
        } else {
            records.push(serde_json::from_str::<CellRecord>(&text).map_err(invalid)?);
        }
    }
    if head.is_none() && records.is_empty() {
        return Err(ReportError::new(format!(
            "{} holds no ktstr results (write them with --format json --output DIR)",
            dir.display()
        )));
    }
    let (planned, complete) = match head {
        Some(h) => (h.planned, h.complete && h.planned == records.len()),
        None => (records.len(), false),
    };
    Ok(SweepReport {
        records,
        planned,
        complete,
    })
}

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_json(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}
