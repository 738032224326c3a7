//! Fan-out to several reporters (the app drives the terminal and JSON reporters together).

use std::fmt;
use std::sync::Arc;

use ktstr_domain::judging::record::CellRecord;
use ktstr_domain::plan::cell::CellId;
use ktstr_domain::results::report::SweepReport;
use ktstr_ports::reporter::{ReportError, Reporter};

/// Forwards every event to each reporter in order.
///
/// Every reporter sees every event even when an earlier one fails (a full disk must not
/// silence the terminal); the first error is returned.
pub struct MultiReporter(pub Vec<Arc<dyn Reporter>>);

impl MultiReporter {
    pub fn new(reporters: Vec<Arc<dyn Reporter>>) -> Self {
        MultiReporter(reporters)
    }

    fn each(
        &self,
        f: impl Fn(&dyn Reporter) -> Result<(), ReportError>,
    ) -> Result<(), ReportError> {
        let mut first_err = None;
        for reporter in &self.0 {
            if let Err(e) = f(reporter.as_ref()) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl fmt::Debug for MultiReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiReporter")
            .field("reporters", &self.0.len())
            .finish()
    }
}

impl Reporter for MultiReporter {
    fn sweep_started(&self, planned: usize, warnings: &[String]) -> Result<(), ReportError> {
        self.each(|r| r.sweep_started(planned, warnings))
    }

    fn cell_started(&self, cell: &CellId) {
        for reporter in &self.0 {
            reporter.cell_started(cell);
        }
    }

    fn cell_finished(&self, record: &CellRecord) -> Result<(), ReportError> {
        self.each(|r| r.cell_finished(record))
    }

    fn sweep_finished(&self, report: &SweepReport) -> Result<(), ReportError> {
        self.each(|r| r.sweep_finished(report))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records the events it sees; fails every one when `fail` is set.
    #[derive(Default)]
    struct Probe {
        seen: Mutex<Vec<String>>,
        fail: Option<&'static str>,
    }

    impl Probe {
        fn result(&self, event: String) -> Result<(), ReportError> {
            self.seen.lock().unwrap().push(event);
            self.fail.map_or(Ok(()), |why| Err(ReportError::new(why)))
        }
    }

    impl Reporter for Probe {
        fn sweep_started(&self, planned: usize, _: &[String]) -> Result<(), ReportError> {
            self.result(format!("start {planned}"))
        }

        fn cell_started(&self, cell: &CellId) {
            let _ = self.result(format!("started {cell}"));
        }

        fn cell_finished(&self, record: &CellRecord) -> Result<(), ReportError> {
            self.result(format!("cell {}", record.cell))
        }

        fn sweep_finished(&self, report: &SweepReport) -> Result<(), ReportError> {
            self.result(format!("end {}", report.records.len()))
        }
    }

    #[test]
    fn every_reporter_sees_every_event_and_the_first_error_wins() {
        let first = Arc::new(Probe {
            fail: Some("disk full"),
            ..Probe::default()
        });
        let second = Arc::new(Probe {
            fail: Some("pipe closed"),
            ..Probe::default()
        });
        let third = Arc::new(Probe::default());
        let multi = MultiReporter::new(vec![first.clone(), second.clone(), third.clone()]);
        let report = SweepReport {
            records: vec![],
            planned: 0,
            complete: true,
        };
        let err = multi.sweep_started(3, &[]).unwrap_err();
        assert_eq!(err.what, "disk full");
        let cell = CellId::new("s", "k", "tiny-1llc").unwrap();
        multi.cell_started(&cell);
        assert!(multi.sweep_finished(&report).is_err());
        for probe in [&first, &second, &third] {
            assert_eq!(
                *probe.seen.lock().unwrap(),
                ["start 3", format!("started {cell}").as_str(), "end 0"]
            );
        }
    }

    #[test]
    fn all_ok_is_ok() {
        let multi = MultiReporter::new(vec![Arc::new(Probe::default())]);
        assert!(multi.sweep_started(0, &[]).is_ok());
        assert_eq!(format!("{multi:?}"), "MultiReporter { reporters: 1 }");
    }
}
