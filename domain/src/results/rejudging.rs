//! A stored sweep judged again under today's rules (`ktstr report --rejudge`): each run
//! from its host facts and guest report, the verdicts that changed named.

use crate::judging::judge::rejudge;
use crate::judging::verdict::Verdict;
use crate::plan::cell::CellId;
use crate::results::report::SweepReport;

/// What judging a stored sweep again did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rejudged {
    /// Runs judged again.
    pub judged: usize,
    /// Cells whose verdict changed: the stored one, then today's.
    pub changed: Vec<(CellId, Verdict, Verdict)>,
    /// Records of the first format, which kept no observations: their verdicts stand.
    pub legacy: usize,
}

/// Judges every stored run again and puts today's verdict in its record.
pub fn rejudge_report(report: &mut SweepReport) -> Rejudged {
    let mut out = Rejudged::default();
    for record in &mut report.records {
        if record.run.as_ref().is_some_and(|run| run.legacy) {
            out.legacy += 1;
        }
        let Some(verdict) = rejudge(record) else {
            continue;
        };
        out.judged += 1;
        if verdict != record.verdict {
            let stored = std::mem::replace(&mut record.verdict, verdict.clone());
            out.changed.push((record.cell.clone(), stored, verdict));
        }
    }
    out
}
