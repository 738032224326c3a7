//! Whether a cell's results are properties of the cell or of one boot: with several boots
//! per cell (`--repeat`, a soak), each cell's verdicts and each program's counts are
//! compared across its boots, and the boots' wall times give the timing spread.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::judging::record::CellRecord;
use crate::judging::verdict::Verdict;
use crate::plan::cell::CellId;
use crate::results::report::SweepReport;

/// A program whose count differed between boots of one cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnstableProgram {
    pub cell: CellId,
    pub program: String,
    /// The count of each boot that reported the program, in boot order.
    pub counts: Vec<u32>,
}

/// Every program whose `verified_insns` was not the same in every boot of its cell that
/// reported it, in record order. Single-boot records are never compared.
pub fn unstable_programs(records: &[CellRecord]) -> Vec<UnstableProgram> {
    let mut out = Vec::new();
    for (cell, boots) in boots_by_cell(records) {
        let mut counts: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for run in boots.iter().filter_map(|r| r.run.as_ref()) {
            for prog in &run.judgment.progs {
                counts
                    .entry(prog.name.as_str())
                    .or_default()
                    .push(prog.verified_insns);
            }
        }
        for (program, counts) in counts {
            if counts.windows(2).any(|w| w[0] != w[1]) {
                out.push(UnstableProgram {
                    cell: cell.clone(),
                    program: program.to_string(),
                    counts,
                });
            }
        }
    }
    out
}

/// The repeated cells' records, each cell's in boot order, cells in record order.
fn boots_by_cell(records: &[CellRecord]) -> Vec<(&CellId, Vec<&CellRecord>)> {
    let mut by_cell: Vec<(&CellId, Vec<&CellRecord>)> = Vec::new();
    for record in records.iter().filter(|r| r.boot.is_some()) {
        match by_cell.iter_mut().find(|(cell, _)| **cell == record.cell) {
            Some((_, boots)) => boots.push(record),
            None => by_cell.push((&record.cell, vec![record])),
        }
    }
    for (_, boots) in &mut by_cell {
        boots.sort_by_key(|r| r.boot.map(|b| b.index));
    }
    by_cell
}

/// A cell whose boots did not all end the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsteadyVerdict {
    pub cell: CellId,
    /// Each boot's outcome without its reason (`PASS`, `FAIL [dispatch]`,
    /// `ERROR [environment: vm-died]`), in boot order.
    pub verdicts: Vec<String>,
}

/// Every repeated cell whose boots got different verdicts (by gate or cause: reasons
/// carry timings and so are not compared), in record order.
pub fn unsteady_verdicts(records: &[CellRecord]) -> Vec<UnsteadyVerdict> {
    boots_by_cell(records)
        .into_iter()
        .filter_map(|(cell, boots)| {
            let verdicts: Vec<String> = boots.iter().map(|r| outcome(&r.verdict)).collect();
            verdicts
                .windows(2)
                .any(|w| w[0] != w[1])
                .then(|| UnsteadyVerdict {
                    cell: cell.clone(),
                    verdicts,
                })
        })
        .collect()
}

fn outcome(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Pass => "PASS".into(),
        Verdict::Fail { gate, .. } => format!("FAIL [{gate}]"),
        Verdict::Error { cause, .. } => format!("ERROR [environment: {cause}]"),
    }
}

/// How long boots took: over every boot of every repeated cell, and the cell whose boots
/// spread the most.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WallSpread {
    pub min_ms: u64,
    pub median_ms: u64,
    pub max_ms: u64,
    pub widest_cell: CellId,
    /// The widest cell's fastest and slowest boot.
    pub widest_ms: (u64, u64),
}

/// The spread of boot wall times; `None` without repeated cells.
pub fn wall_spread(records: &[CellRecord]) -> Option<WallSpread> {
    let by_cell = boots_by_cell(records);
    let mut all: Vec<u64> = by_cell
        .iter()
        .flat_map(|(_, boots)| boots.iter().map(|r| r.wall_ms))
        .collect();
    all.sort_unstable();
    let (widest_cell, widest_ms) = by_cell
        .iter()
        .map(|(cell, boots)| {
            let lo = boots.iter().map(|r| r.wall_ms).min().unwrap_or(0);
            let hi = boots.iter().map(|r| r.wall_ms).max().unwrap_or(0);
            (*cell, (lo, hi))
        })
        .max_by_key(|(_, (lo, hi))| hi - lo)?;
    Some(WallSpread {
        min_ms: *all.first()?,
        median_ms: all[all.len() / 2],
        max_ms: *all.last()?,
        widest_cell: widest_cell.clone(),
        widest_ms,
    })
}

/// How many boots each cell had: 1 unless the sweep repeated them.
pub fn boots_per_cell(records: &[CellRecord]) -> u32 {
    records
        .iter()
        .filter_map(|r| r.boot.map(|b| b.of))
        .max()
        .unwrap_or(1)
}

/// A sweep's boots of each cell, compared.
impl SweepReport {
    /// Programs whose `verified_insns` differed between boots of one cell.
    pub fn unstable_programs(&self) -> Vec<UnstableProgram> {
        unstable_programs(&self.records)
    }

    pub fn unsteady_verdicts(&self) -> Vec<UnsteadyVerdict> {
        unsteady_verdicts(&self.records)
    }

    pub fn wall_spread(&self) -> Option<WallSpread> {
        wall_spread(&self.records)
    }

    /// How many boots each cell had (`--repeat`).
    pub fn boots_per_cell(&self) -> u32 {
        boots_per_cell(&self.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judging::record::Boot;
    use crate::judging::verdict::{EnvCause, Gate};
    use crate::results::report::tests::{prog, record};

    fn boot(cell: &str, index: u32, of: u32, insns: &[(&str, u32)]) -> CellRecord {
        let progs = insns.iter().map(|(n, i)| prog(n, *i)).collect();
        CellRecord {
            boot: Some(Boot { index, of }),
            ..record(cell, Verdict::Pass, progs)
        }
    }

    #[test]
    fn a_count_that_differs_between_boots_of_a_cell_is_named_with_every_count() {
        let cell = "verifier/scx_rusty/k/tiny-1llc";
        let other = "verifier/scx_rusty/k/smt-2llc";
        let records = [
            boot(cell, 1, 3, &[("rusty_enqueue", 1234), ("rusty_init", 50)]),
            boot(other, 1, 3, &[("rusty_enqueue", 900)]),
            boot(cell, 2, 3, &[("rusty_enqueue", 1240), ("rusty_init", 50)]),
            boot(other, 2, 3, &[("rusty_enqueue", 900)]),
            boot(cell, 3, 3, &[("rusty_enqueue", 1234), ("rusty_init", 50)]),
            boot(other, 3, 3, &[("rusty_enqueue", 900)]),
        ];
        assert_eq!(
            unstable_programs(&records),
            [UnstableProgram {
                cell: cell.parse().unwrap(),
                program: "rusty_enqueue".into(),
                counts: vec![1234, 1240, 1234],
            }]
        );
        assert_eq!(boots_per_cell(&records), 3);
        // Different topologies differing is the point of the tool, not instability.
        let report = SweepReport {
            records: records.to_vec(),
            planned: 6,
            complete: true,
        };
        let table = &report.insns_tables()[0];
        let enqueue = table
            .programs
            .iter()
            .position(|p| p == "rusty_enqueue")
            .unwrap();
        assert_eq!(
            table.rows[0].cells[enqueue].unwrap().to_string(),
            "900..1240~"
        );
        let init = table
            .programs
            .iter()
            .position(|p| p == "rusty_init")
            .unwrap();
        assert_eq!(table.rows[0].cells[init].unwrap().to_string(), "50");
    }

    #[test]
    fn single_boots_and_stable_counts_are_never_unstable() {
        let cell = "verifier/s/k/tiny-1llc";
        let single = [
            record(cell, Verdict::Pass, vec![prog("p", 1)]),
            record(cell, Verdict::Pass, vec![prog("p", 2)]),
        ];
        assert!(unstable_programs(&single).is_empty());
        assert_eq!(boots_per_cell(&single), 1);
        let stable = [boot(cell, 1, 2, &[("p", 7)]), boot(cell, 2, 2, &[("p", 7)])];
        assert!(unstable_programs(&stable).is_empty());
        // A boot that reported nothing (it failed) is not a disagreement.
        let failed = [boot(cell, 1, 2, &[("p", 7)]), boot(cell, 2, 2, &[])];
        assert!(unstable_programs(&failed).is_empty());
    }

    #[test]
    fn a_cell_whose_boots_end_differently_is_named_with_each_outcome() {
        let cell = "verifier/s/k/tiny-1llc";
        let steady = "verifier/s/k/smt-2llc";
        let with = |name: &str, index: u32, verdict: Verdict, wall_ms: u64| CellRecord {
            boot: Some(Boot { index, of: 3 }),
            wall_ms,
            ..record(name, verdict, vec![])
        };
        let fail = Verdict::Fail {
            gate: Gate::Dispatch,
            reason: "took 812 ms".into(),
        };
        let records = [
            with(cell, 2, fail.clone(), 2900),
            with(cell, 1, Verdict::Pass, 2500),
            with(steady, 1, fail.clone(), 3000),
            with(cell, 3, Verdict::env_error(EnvCause::VmDied, "x"), 2600),
            with(
                steady,
                2,
                Verdict::Fail {
                    gate: Gate::Dispatch,
                    reason: "took 90 ms".into(),
                },
                3100,
            ),
            with(steady, 3, fail, 3050),
        ];
        assert_eq!(
            unsteady_verdicts(&records),
            [UnsteadyVerdict {
                cell: cell.parse().unwrap(),
                verdicts: vec![
                    "PASS".into(),
                    "FAIL [dispatch]".into(),
                    "ERROR [environment: vm-died]".into()
                ],
            }]
        );
        assert_eq!(
            wall_spread(&records),
            Some(WallSpread {
                min_ms: 2500,
                median_ms: 3000,
                max_ms: 3100,
                widest_cell: cell.parse().unwrap(),
                widest_ms: (2500, 2900),
            })
        );
        let single = [record(cell, Verdict::Pass, vec![])];
        assert!(unsteady_verdicts(&single).is_empty());
        assert_eq!(wall_spread(&single), None);
    }
}
