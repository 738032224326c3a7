//! A sweep against a baseline (the base branch's results): per program of each cell, the
//! `verified_insns` before and after, and the cells whose verdict changed. `delta` is
//! always new − base: a program that grew has a positive delta.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::judging::record::CellRecord;
use crate::judging::verdict::Verdict;
use crate::plan::cell::CellId;

/// One program of one cell in both runs, or in one of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgDelta {
    pub cell: CellId,
    pub program: String,
    /// `None`: the program is new (it appeared).
    pub base: Option<u32>,
    /// `None`: the program is gone (it vanished), or its cell no longer reports it.
    pub new: Option<u32>,
}

impl ProgDelta {
    /// new − base, when the program is in both runs.
    pub fn delta(&self) -> Option<i64> {
        Some(i64::from(self.new?) - i64::from(self.base?))
    }

    /// The delta as a percentage of the base; `None` for a base of 0 or a missing side.
    pub fn percent(&self) -> Option<f64> {
        let base = self.base.filter(|&b| b > 0)?;
        Some(self.delta()? as f64 * 100.0 / f64::from(base))
    }

    /// How much the program grew for sorting: an appeared program grew by all of it, a
    /// vanished one shrank by all of it.
    fn growth(&self) -> i64 {
        i64::from(self.new.unwrap_or(0)) - i64::from(self.base.unwrap_or(0))
    }
}

/// A cell's verdict in one run, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    /// The environment kept the cell from being judged.
    Error,
    /// The run has no record of the cell.
    Absent,
}

impl Outcome {
    fn of(verdict: &Verdict) -> Self {
        match verdict {
            Verdict::Pass => Outcome::Pass,
            Verdict::Fail { .. } => Outcome::Fail,
            Verdict::Error { .. } => Outcome::Error,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Error => "error",
            Outcome::Absent => "absent",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictChange {
    pub cell: CellId,
    pub base: Outcome,
    pub new: Outcome,
}

impl VerdictChange {
    /// The cell fails now and did not before (absent or passing or unjudged).
    pub fn is_new_failure(&self) -> bool {
        self.new == Outcome::Fail && self.base != Outcome::Fail
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comparison {
    /// Every program in either run, largest growth first.
    pub programs: Vec<ProgDelta>,
    /// Cells whose verdict differs, in cell order.
    pub verdict_changes: Vec<VerdictChange>,
}

/// Per cell: the verdict (the worst of its boots) and each program's count (the largest
/// of its boots, so a count that varies between boots is compared at its worst).
#[derive(Default)]
struct Side {
    outcomes: BTreeMap<CellId, Outcome>,
    counts: BTreeMap<(CellId, String), u32>,
}

impl Side {
    fn of(records: &[CellRecord]) -> Self {
        let mut side = Side::default();
        for record in records {
            let outcome = Outcome::of(&record.verdict);
            side.outcomes
                .entry(record.cell.clone())
                .and_modify(|o| *o = worst(*o, outcome))
                .or_insert(outcome);
            for prog in record.run.iter().flat_map(|run| &run.judgment.progs) {
                side.counts
                    .entry((record.cell.clone(), prog.name.clone()))
                    .and_modify(|n| *n = (*n).max(prog.verified_insns))
                    .or_insert(prog.verified_insns);
            }
        }
        side
    }
}

fn worst(a: Outcome, b: Outcome) -> Outcome {
    let rank = |o: Outcome| match o {
        Outcome::Fail => 0,
        Outcome::Error => 1,
        Outcome::Pass => 2,
        Outcome::Absent => 3,
    };
    if rank(a) <= rank(b) { a } else { b }
}

/// Compares the records of a new run with a baseline's.
pub fn compare(base: &[CellRecord], new: &[CellRecord]) -> Comparison {
    let (base, new) = (Side::of(base), Side::of(new));
    let keys: std::collections::BTreeSet<&(CellId, String)> =
        base.counts.keys().chain(new.counts.keys()).collect();
    let mut programs: Vec<ProgDelta> = keys
        .into_iter()
        .map(|key| ProgDelta {
            cell: key.0.clone(),
            program: key.1.clone(),
            base: base.counts.get(key).copied(),
            new: new.counts.get(key).copied(),
        })
        .collect();
    // Largest growth first; ties in cell and program order (already sorted, and stable).
    programs.sort_by_key(|p| std::cmp::Reverse(p.growth()));
    let cells: std::collections::BTreeSet<&CellId> =
        base.outcomes.keys().chain(new.outcomes.keys()).collect();
    let verdict_changes = cells
        .into_iter()
        .filter_map(|cell| {
            let b = base.outcomes.get(cell).copied().unwrap_or(Outcome::Absent);
            let n = new.outcomes.get(cell).copied().unwrap_or(Outcome::Absent);
            (b != n).then(|| VerdictChange {
                cell: cell.clone(),
                base: b,
                new: n,
            })
        })
        .collect();
    Comparison {
        programs,
        verdict_changes,
    }
}

/// What makes a comparison fail a CI run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Thresholds {
    /// The most a program may grow, in percent of its base count.
    pub max_growth_percent: Option<f64>,
    /// Fail when a cell fails that did not fail in the baseline.
    pub fail_on_new_failure: bool,
}

impl Comparison {
    /// Each reason the comparison breaks `limits`, one line each; empty when it does not.
    pub fn breaches(&self, limits: &Thresholds) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(max) = limits.max_growth_percent {
            for p in &self.programs {
                if let (Some(pct), Some(delta)) = (p.percent(), p.delta())
                    && pct > max
                {
                    out.push(format!(
                        "{} {}: verified_insns grew {delta:+} ({pct:+.1}%), above the {max}% allowed",
                        p.cell, p.program
                    ));
                }
            }
        }
        if limits.fail_on_new_failure {
            for c in self.verdict_changes.iter().filter(|c| c.is_new_failure()) {
                out.push(format!("{} fails now ({} in the baseline)", c.cell, c.base));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judging::verdict::Gate;
    use crate::results::report::tests::{prog, record};

    const TINY: &str = "verifier/s/kernel_6_12_118/tiny-1llc";
    const SMT: &str = "verifier/s/kernel_6_12_118/smt-2llc";

    fn pass(cell: &str, progs: &[(&str, u32)]) -> CellRecord {
        record(
            cell,
            Verdict::Pass,
            progs.iter().map(|(n, i)| prog(n, *i)).collect(),
        )
    }

    #[test]
    fn the_delta_is_new_minus_base_and_growth_sorts_first() {
        let base = [pass(
            TINY,
            &[("enqueue", 1000), ("dispatch", 200), ("old", 5)],
        )];
        let new = [pass(
            TINY,
            &[("enqueue", 1100), ("dispatch", 150), ("fresh", 40)],
        )];
        let c = compare(&base, &new);
        type Row<'a> = (&'a str, Option<u32>, Option<u32>, Option<i64>);
        let rows: Vec<Row<'_>> = c
            .programs
            .iter()
            .map(|p| (p.program.as_str(), p.base, p.new, p.delta()))
            .collect();
        assert_eq!(
            rows,
            [
                ("enqueue", Some(1000), Some(1100), Some(100)),
                ("fresh", None, Some(40), None),
                ("old", Some(5), None, None),
                ("dispatch", Some(200), Some(150), Some(-50)),
            ]
        );
        assert_eq!(c.programs[0].percent(), Some(10.0));
        assert_eq!(c.programs[3].percent(), Some(-25.0));
        assert!(c.verdict_changes.is_empty());
    }

    #[test]
    fn growth_above_the_threshold_and_new_failures_breach() {
        let base = [
            pass(TINY, &[("enqueue", 1000)]),
            pass(SMT, &[("enqueue", 900)]),
        ];
        let new = [
            pass(TINY, &[("enqueue", 1101)]),
            record(SMT, Verdict::fail(Gate::Verify, "rejected"), vec![]),
        ];
        let c = compare(&base, &new);
        assert_eq!(
            c.verdict_changes,
            [VerdictChange {
                cell: SMT.parse().unwrap(),
                base: Outcome::Pass,
                new: Outcome::Fail,
            }]
        );
        let limits = Thresholds {
            max_growth_percent: Some(10.0),
            fail_on_new_failure: true,
        };
        assert_eq!(
            c.breaches(&limits),
            [
                format!("{TINY} enqueue: verified_insns grew +101 (+10.1%), above the 10% allowed"),
                format!("{SMT} fails now (pass in the baseline)"),
            ]
        );
        // Exactly at the limit, and without the failure flag, nothing breaches.
        let at_limit = compare(&base[..1], &[pass(TINY, &[("enqueue", 1100)])]);
        assert!(at_limit.breaches(&limits).is_empty());
        assert!(c.breaches(&Thresholds::default()).is_empty());
    }

    #[test]
    fn cells_in_one_run_only_change_from_or_to_absent() {
        let c = compare(&[pass(TINY, &[])], &[pass(SMT, &[])]);
        let outcomes: Vec<(Outcome, Outcome)> =
            c.verdict_changes.iter().map(|v| (v.base, v.new)).collect();
        assert_eq!(
            outcomes,
            [
                (Outcome::Absent, Outcome::Pass),
                (Outcome::Pass, Outcome::Absent)
            ]
        );
        assert!(!c.verdict_changes.iter().any(VerdictChange::is_new_failure));
    }
}
