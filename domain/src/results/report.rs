//! The sweep report model: a sweep's cell records and the summaries drawn from them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::judging::record::CellRecord;
use crate::judging::verdict::Verdict;
use crate::shape::preset::PRESETS;

/// All records of a sweep. `complete` is false when the sweep was interrupted: then
/// `planned` exceeds the number of records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    pub records: Vec<CellRecord>,
    pub planned: usize,
    pub complete: bool,
}

/// Marks a count that differed between boots of one cell.
pub const BOOT_VARIANCE_MARK: &str = "~";

/// `verified_insns` of one program across topologies: one number when flat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsnsRange {
    pub lo: u32,
    pub hi: u32,
    /// Some cell's boots disagreed on this count: the range is not the topology's alone.
    #[serde(default)]
    pub varies_between_boots: bool,
}

impl InsnsRange {
    fn widen(range: Option<InsnsRange>, n: u32) -> InsnsRange {
        match range {
            None => InsnsRange {
                lo: n,
                hi: n,
                varies_between_boots: false,
            },
            Some(r) => InsnsRange {
                lo: r.lo.min(n),
                hi: r.hi.max(n),
                ..r
            },
        }
    }
}

impl fmt::Display for InsnsRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)?;
        } else {
            write!(f, "{}..{}", self.lo, self.hi)?;
        }
        // The summary explains the mark under the table.
        if self.varies_between_boots {
            write!(f, "{BOOT_VARIANCE_MARK}")?;
        }
        Ok(())
    }
}

/// Rows: kernels; columns: programs; `None` where a kernel reported nothing for a program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsnsTable {
    pub scheduler: String,
    pub programs: Vec<String>,
    pub rows: Vec<InsnsRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsnsRow {
    pub kernel: String,
    pub cells: Vec<Option<InsnsRange>>,
}

/// A (topology, scheduler) entry of the summary grid, across kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GridStatus {
    /// Passed on every kernel that ran it.
    Pass,
    /// Failed on every kernel.
    Fail,
    /// Passed on some kernels, failed on others.
    Mixed,
    /// No scheduler failure, but at least one kernel's cell hit an environment error, so
    /// nothing can be claimed for every kernel.
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grid {
    pub schedulers: Vec<String>,
    pub rows: Vec<GridRow>,
    pub passed: usize,
    pub failed: usize,
    pub mixed: usize,
    pub errors: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridRow {
    pub topology: String,
    pub cells: Vec<Option<GridStatus>>,
}

/// Keeps first-seen order while deduplicating.
fn ordered_unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.iter().any(|o| o == item) {
            out.push(item.to_string());
        }
    }
    out
}

fn preset_rank(name: &str) -> usize {
    PRESETS
        .iter()
        .position(|p| p.name == name)
        .unwrap_or(PRESETS.len())
}

impl SweepReport {
    /// One table per scheduler, in the order schedulers first appear.
    pub fn insns_tables(&self) -> Vec<InsnsTable> {
        let unstable = self.unstable_programs();
        let schedulers = ordered_unique(self.records.iter().map(|r| r.cell.scheduler.as_str()));
        schedulers
            .into_iter()
            .map(|scheduler| {
                let records: Vec<&CellRecord> = self
                    .records
                    .iter()
                    .filter(|r| r.cell.scheduler == scheduler)
                    .collect();
                let kernels = ordered_unique(records.iter().map(|r| r.cell.kernel.as_str()));
                let mut ranges: BTreeMap<(String, String), InsnsRange> = BTreeMap::new();
                for record in &records {
                    let Some(run) = &record.run else { continue };
                    for prog in &run.judgment.progs {
                        let key = (record.cell.kernel.clone(), prog.name.clone());
                        let mut widened =
                            InsnsRange::widen(ranges.get(&key).copied(), prog.verified_insns);
                        widened.varies_between_boots |= unstable
                            .iter()
                            .any(|u| u.cell == record.cell && u.program == prog.name);
                        ranges.insert(key, widened);
                    }
                }
                let mut programs: Vec<String> =
                    ranges.keys().map(|(_, prog)| prog.clone()).collect();
                programs.sort();
                programs.dedup();
                let rows = kernels
                    .into_iter()
                    .map(|kernel| InsnsRow {
                        cells: programs
                            .iter()
                            .map(|p| ranges.get(&(kernel.clone(), p.clone())).copied())
                            .collect(),
                        kernel,
                    })
                    .collect();
                InsnsTable {
                    scheduler,
                    programs,
                    rows,
                }
            })
            .collect()
    }

    /// Rows: topologies in catalogue order; columns: schedulers.
    pub fn grid(&self) -> Grid {
        let schedulers = ordered_unique(self.records.iter().map(|r| r.cell.scheduler.as_str()));
        let mut topologies = ordered_unique(self.records.iter().map(|r| r.cell.preset.as_str()));
        topologies.sort_by_key(|t| preset_rank(t));
        let (mut passed, mut failed, mut mixed, mut errors) = (0, 0, 0, 0);
        let rows = topologies
            .into_iter()
            .map(|topology| {
                let cells = schedulers
                    .iter()
                    .map(|s| {
                        let cells: Vec<&Verdict> = self
                            .records
                            .iter()
                            .filter(|r| r.cell.scheduler == *s && r.cell.preset == topology)
                            .map(|r| &r.verdict)
                            .collect();
                        // A scheduler failure is known whatever the environment did elsewhere;
                        // without one, an environment error leaves the entry unknown.
                        let any_error = cells.iter().any(|v| v.is_env_error());
                        let verdicts: Vec<bool> = cells
                            .iter()
                            .filter(|v| !v.is_env_error())
                            .map(|v| v.passed())
                            .collect();
                        let status = if cells.is_empty() {
                            return None;
                        } else if any_error && verdicts.iter().all(|&p| p) {
                            errors += 1;
                            GridStatus::Error
                        } else if verdicts.iter().all(|&p| p) {
                            passed += 1;
                            GridStatus::Pass
                        } else if verdicts.iter().all(|&p| !p) {
                            failed += 1;
                            GridStatus::Fail
                        } else {
                            mixed += 1;
                            GridStatus::Mixed
                        };
                        Some(status)
                    })
                    .collect();
                GridRow { topology, cells }
            })
            .collect();
        Grid {
            schedulers,
            rows,
            passed,
            failed,
            mixed,
            errors,
        }
    }

    /// The authoritative list of cells the scheduler failed, in record order.
    pub fn failing(&self) -> Vec<&CellRecord> {
        self.records.iter().filter(|r| r.verdict.failed()).collect()
    }

    /// Cells that could not judge the scheduler because the environment failed.
    pub fn env_errors(&self) -> Vec<&CellRecord> {
        self.records
            .iter()
            .filter(|r| r.verdict.is_env_error())
            .collect()
    }

    /// True when the sweep ran to the end and every cell passed.
    pub fn succeeded(&self) -> bool {
        self.complete && self.records.iter().all(|r| r.verdict.passed())
    }

    /// How the sweep ended, most serious first: interrupted, a scheduler failed, an
    /// environment error left cells unjudged, or everything passed.
    pub fn outcome(&self) -> SweepOutcome {
        if !self.complete {
            SweepOutcome::Interrupted
        } else if self.records.iter().any(|r| r.verdict.failed()) {
            SweepOutcome::Failed
        } else if self.records.iter().any(|r| r.verdict.is_env_error()) {
            SweepOutcome::EnvironmentError
        } else {
            SweepOutcome::Passed
        }
    }
}

/// How a sweep ended, one exit status each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepOutcome {
    Passed,
    /// At least one cell failed a gate.
    Failed,
    /// No cell failed, but some could not be judged: fix the environment and rerun them.
    EnvironmentError,
    Interrupted,
}

impl SweepOutcome {
    /// 0 passed, 1 a scheduler failed, 3 an environment error (2 is a usage or tool
    /// error), 130 interrupted.
    pub fn exit_code(self) -> u8 {
        match self {
            SweepOutcome::Passed => 0,
            SweepOutcome::Failed => 1,
            SweepOutcome::EnvironmentError => 3,
            SweepOutcome::Interrupted => 130,
        }
    }
}

/// Records for tests, here and in other crates.
#[cfg(any(test, feature = "test-support"))]
pub mod samples {
    use super::*;
    use crate::judging::record::RunRecord;
    use crate::plan::cell::CellId;
    use crate::verifier_log::prog::ProgStat;

    pub fn prog(name: &str, insns: u32) -> ProgStat {
        ProgStat {
            id: 1,
            prog_type: 27,
            name: name.into(),
            verified_insns: insns,
        }
    }

    pub fn record(cell: &str, verdict: Verdict, progs: Vec<ProgStat>) -> CellRecord {
        let cell: CellId = cell.parse().unwrap();
        let topology = crate::shape::preset::find_preset(&cell.preset)
            .unwrap()
            .topology;
        CellRecord {
            cell,
            topology,
            run: Some(RunRecord::for_tests(progs, verdict.passed())),
            verdict,
            wall_ms: 1,
            boot: None,
            repro: None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::judging::verdict::Gate;

    pub use super::samples::{prog, record};

    fn fail() -> Verdict {
        Verdict::fail(Gate::Dispatch, "no progress")
    }

    #[test]
    fn insns_ranges_span_topologies_and_dash_missing_programs() {
        let report = SweepReport {
            records: vec![
                record(
                    "verifier/s/kernel_a/tiny-1llc",
                    Verdict::Pass,
                    vec![prog("init", 100), prog("dispatch", 7)],
                ),
                record(
                    "verifier/s/kernel_a/tiny-2llc",
                    Verdict::Pass,
                    vec![prog("init", 140), prog("dispatch", 7)],
                ),
                record(
                    "verifier/s/kernel_b/tiny-1llc",
                    fail(),
                    vec![prog("init", 90)],
                ),
            ],
            planned: 3,
            complete: true,
        };
        let tables = report.insns_tables();
        assert_eq!(tables.len(), 1);
        let t = &tables[0];
        assert_eq!(t.programs, ["dispatch", "init"]);
        let show = |row: &InsnsRow| -> Vec<String> {
            row.cells
                .iter()
                .map(|c| c.map_or("-".to_string(), |r| r.to_string()))
                .collect()
        };
        assert_eq!(t.rows[0].kernel, "kernel_a");
        assert_eq!(show(&t.rows[0]), ["7", "100..140"]);
        assert_eq!(show(&t.rows[1]), ["-", "90"]);
    }

    #[test]
    fn grid_marks_mixed_results_across_kernels() {
        let report = SweepReport {
            records: vec![
                record("verifier/s/kernel_a/tiny-2llc", Verdict::Pass, vec![]),
                record("verifier/s/kernel_b/tiny-2llc", fail(), vec![]),
                record("verifier/s/kernel_a/tiny-1llc", Verdict::Pass, vec![]),
                record("verifier/s/kernel_b/tiny-1llc", Verdict::Pass, vec![]),
                record("verifier/t/kernel_a/tiny-1llc", fail(), vec![]),
            ],
            planned: 5,
            complete: true,
        };
        let g = report.grid();
        assert_eq!(g.schedulers, ["s", "t"]);
        assert_eq!(g.rows[0].topology, "tiny-1llc");
        assert_eq!(
            g.rows[0].cells,
            [Some(GridStatus::Pass), Some(GridStatus::Fail)]
        );
        assert_eq!(g.rows[1].cells, [Some(GridStatus::Mixed), None]);
        assert_eq!((g.passed, g.failed, g.mixed, g.errors), (1, 1, 1, 0));
        let failing: Vec<String> = report
            .failing()
            .iter()
            .map(|r| r.cell.to_string())
            .collect();
        assert_eq!(
            failing,
            [
                "verifier/s/kernel_b/tiny-2llc",
                "verifier/t/kernel_a/tiny-1llc"
            ]
        );
        assert!(!report.succeeded());
    }

    #[test]
    fn environment_errors_are_neither_passes_nor_failures() {
        use crate::judging::verdict::EnvCause;
        let oom = || Verdict::env_error(EnvCause::GuestOutOfMemory, "guest ran out of memory");
        let mut report = SweepReport {
            records: vec![
                record("verifier/s/kernel_a/tiny-1llc", oom(), vec![]),
                record("verifier/s/kernel_b/tiny-1llc", Verdict::Pass, vec![]),
                record("verifier/s/kernel_a/tiny-2llc", oom(), vec![]),
                record("verifier/s/kernel_b/tiny-2llc", fail(), vec![]),
            ],
            planned: 4,
            complete: true,
        };
        let g = report.grid();
        assert_eq!(
            g.rows[0].cells,
            [Some(GridStatus::Error)],
            "a pass elsewhere cannot be claimed for every kernel"
        );
        assert_eq!(
            g.rows[1].cells,
            [Some(GridStatus::Fail)],
            "a real failure stays known"
        );
        assert_eq!((g.passed, g.failed, g.mixed, g.errors), (0, 1, 0, 1));
        assert_eq!(report.failing().len(), 1);
        assert_eq!(report.env_errors().len(), 2);
        assert_eq!(report.outcome(), SweepOutcome::Failed);
        report.records.pop();
        assert_eq!(report.outcome(), SweepOutcome::EnvironmentError);
        assert_eq!(report.outcome().exit_code(), 3);
        assert!(!report.succeeded());
        report.complete = false;
        assert_eq!(report.outcome().exit_code(), 130);
    }

    #[test]
    fn success_needs_every_cell_passed_and_a_complete_sweep() {
        let mut report = SweepReport {
            records: vec![record("verifier/s/k/tiny-1llc", Verdict::Pass, vec![])],
            planned: 2,
            complete: false,
        };
        assert!(!report.succeeded());
        report.complete = true;
        assert!(report.succeeded());
    }
}
