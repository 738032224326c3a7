//! Presenting a sweep as it runs and when it ends.

use ktstr_domain::judging::record::CellRecord;
use ktstr_domain::plan::cell::CellId;
use ktstr_domain::results::report::SweepReport;
use thiserror::Error;

use crate::BoxError;

#[derive(Debug, Error)]
/// `what` names the file or step and what was being done to it; the cause follows.
#[error("{what}")]
pub struct ReportError {
    pub what: String,
    #[source]
    pub source: Option<BoxError>,
}

impl ReportError {
    pub fn new(what: impl Into<String>) -> Self {
        ReportError {
            what: what.into(),
            source: None,
        }
    }

    pub fn caused(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        ReportError {
            what: what.into(),
            source: Some(source.into()),
        }
    }
}

#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait Reporter: Send + Sync {
    /// Before any cell runs: how many cells, and what was left out and why.
    fn sweep_started(&self, planned: usize, warnings: &[String]) -> Result<(), ReportError>;
    /// A cell's VM is about to boot (for progress displays; nothing is recorded).
    fn cell_started(&self, cell: &CellId);
    /// One cell's full outcome, as soon as it is known.
    fn cell_finished(&self, record: &CellRecord) -> Result<(), ReportError>;
    /// The summaries, after the last cell (or after an interruption).
    fn sweep_finished(&self, report: &SweepReport) -> Result<(), ReportError>;
}
