//! Whether a program's `verified_insns` is a property of the cell or of one boot: with
//! several boots per cell (`--repeat`), the counts of each program are compared across
//! the boots that reported it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::cell::CellId;
use crate::report::CellRecord;

/// Which boot of its cell a record is, when each cell was booted more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Boot {
    /// 1-based.
    pub index: u32,
    pub of: u32,
}

impl fmt::Display for Boot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "boot {}/{}", self.index, self.of)
    }
}

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
    let mut by_cell: Vec<(&CellId, Vec<&CellRecord>)> = Vec::new();
    for record in records.iter().filter(|r| r.boot.is_some()) {
        match by_cell.iter_mut().find(|(cell, _)| **cell == record.cell) {
            Some((_, boots)) => boots.push(record),
            None => by_cell.push((&record.cell, vec![record])),
        }
    }
    let mut out = Vec::new();
    for (cell, mut boots) in by_cell {
        boots.sort_by_key(|r| r.boot.map(|b| b.index));
        let mut counts: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for run in boots.iter().filter_map(|r| r.run.as_ref()) {
            for prog in &run.progs {
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

/// How many boots each cell had: 1 unless the sweep repeated them.
pub fn boots_per_cell(records: &[CellRecord]) -> u32 {
    records
        .iter()
        .filter_map(|r| r.boot.map(|b| b.of))
        .max()
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::{prog, record};
    use crate::verdict::Verdict;

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
        let report = crate::report::SweepReport {
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
}
