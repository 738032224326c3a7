//! Records of one sweep split across machines (`--partition`), merged back into one
//! report: each cell once, and a cell two shards judged differently shown as a conflict.

use serde::{Deserialize, Serialize};

use crate::judging::record::Boot;
use crate::judging::record::CellRecord;
use crate::judging::verdict::Verdict;
use crate::plan::cell::CellId;
use crate::results::report::SweepReport;

/// One cell that two or more shards ran with different verdicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub cell: CellId,
    pub boot: Option<Boot>,
    /// Every verdict, in shard order.
    pub verdicts: Vec<Verdict>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// Every shard's records once each, in shard order. A conflicting cell keeps every
    /// differing record, so the tables and the exit status see each verdict.
    pub report: SweepReport,
    pub conflicts: Vec<Conflict>,
    /// Records dropped because another shard had the same cell with the same verdict.
    pub duplicates: usize,
}

/// Merges shards: `planned` and `complete` add up, records are deduplicated by (cell,
/// boot) and verdict.
pub fn merge(shards: Vec<SweepReport>) -> Merged {
    let mut planned = 0;
    let mut complete = true;
    let mut records: Vec<CellRecord> = Vec::new();
    let mut duplicates = 0;
    for shard in shards {
        planned += shard.planned;
        complete &= shard.complete;
        for record in shard.records {
            let same = |r: &CellRecord| r.cell == record.cell && r.boot == record.boot;
            if records
                .iter()
                .any(|r| same(r) && r.verdict == record.verdict)
            {
                duplicates += 1;
                planned = planned.saturating_sub(1);
                continue;
            }
            records.push(record);
        }
    }
    let mut conflicts: Vec<Conflict> = Vec::new();
    for record in &records {
        if conflicts
            .iter()
            .any(|c| c.cell == record.cell && c.boot == record.boot)
        {
            continue;
        }
        let verdicts: Vec<Verdict> = records
            .iter()
            .filter(|r| r.cell == record.cell && r.boot == record.boot)
            .map(|r| r.verdict.clone())
            .collect();
        if verdicts.len() > 1 {
            conflicts.push(Conflict {
                cell: record.cell.clone(),
                boot: record.boot,
                verdicts,
            });
        }
    }
    Merged {
        report: SweepReport {
            records,
            planned,
            complete,
        },
        conflicts,
        duplicates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judging::verdict::Gate;
    use crate::results::report::tests::{prog, record};

    const A: &str = "verifier/s/k/tiny-1llc";
    const B: &str = "verifier/s/k/smt-2llc";

    fn shard(records: Vec<CellRecord>, planned: usize) -> SweepReport {
        SweepReport {
            complete: records.len() == planned,
            records,
            planned,
        }
    }

    #[test]
    fn disjoint_shards_add_up() {
        let merged = merge(vec![
            shard(vec![record(A, Verdict::Pass, vec![prog("p", 1)])], 1),
            shard(vec![record(B, Verdict::Pass, vec![prog("p", 2)])], 1),
        ]);
        assert_eq!(merged.report.records.len(), 2);
        assert_eq!(merged.report.planned, 2);
        assert!(merged.report.complete);
        assert!(merged.conflicts.is_empty());
        assert_eq!(merged.duplicates, 0);
    }

    #[test]
    fn a_cell_judged_differently_by_two_shards_is_a_conflict_and_kept_twice() {
        let fail = Verdict::fail(Gate::Dispatch, "no progress");
        let merged = merge(vec![
            shard(vec![record(A, Verdict::Pass, vec![])], 1),
            shard(
                vec![
                    record(A, fail.clone(), vec![]),
                    record(B, Verdict::Pass, vec![]),
                ],
                2,
            ),
            // The same cell with the same verdict once more: a duplicate, dropped.
            shard(vec![record(B, Verdict::Pass, vec![])], 1),
        ]);
        assert_eq!(
            merged.conflicts,
            [Conflict {
                cell: A.parse().unwrap(),
                boot: None,
                verdicts: vec![Verdict::Pass, fail],
            }]
        );
        assert_eq!(merged.duplicates, 1);
        assert_eq!(merged.report.records.len(), 3);
        assert_eq!(merged.report.planned, 3);
        assert!(!merged.report.succeeded(), "the failure is not hidden");
    }

    #[test]
    fn an_incomplete_shard_makes_the_merge_incomplete() {
        let merged = merge(vec![
            shard(vec![record(A, Verdict::Pass, vec![])], 1),
            shard(vec![], 3),
        ]);
        assert!(!merged.report.complete);
        assert_eq!(merged.report.planned, 4);
    }
}
