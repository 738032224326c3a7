//! The sweep as JUnit XML: a testcase per cell named like the cell, the failing gate and
//! its reason as the failure, the collapsed scheduler log as the case's output.

use std::time::Duration;

use ktstr_domain::judging::record::CellRecord;
use ktstr_domain::judging::verdict::Verdict;
use ktstr_domain::results::report::SweepReport;
use ktstr_domain::verifier_log::collapse::collapse;
use ktstr_domain::verifier_log::escapes::strip_escapes;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

/// The suite is named after the command; a report holds one suite.
const SUITE: &str = "ktstr verifier";

pub fn render_junit(report: &SweepReport) -> Result<String, quick_junit::SerializeError> {
    let mut suite = TestSuite::new(SUITE);
    suite.add_test_cases(report.records.iter().map(test_case));
    let mut junit = Report::new("ktstr");
    junit.add_test_suite(suite);
    junit.to_string()
}

/// The case's name: the cell's, with the boot when cells were booted more than once.
pub fn case_name(record: &CellRecord) -> String {
    match record.boot {
        Some(boot) => format!("{}#boot{}", record.cell, boot.index),
        None => record.cell.to_string(),
    }
}

fn test_case(record: &CellRecord) -> TestCase {
    let status = match &record.verdict {
        Verdict::Pass => TestCaseStatus::success(),
        Verdict::Fail { gate, reason } => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status
                .set_type(gate.to_string())
                .set_message(reason.as_str());
            status
        }
        // The environment failed, not the scheduler: JUnit's error, not its failure.
        Verdict::Error { cause, reason } => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status
                .set_type(format!("environment: {cause}"))
                .set_message(reason.as_str());
            status
        }
    };
    let mut case = TestCase::new(case_name(record), status);
    case.set_classname(record.cell.scheduler.as_str())
        .set_time(Duration::from_millis(record.wall_ms));
    if let Some(run) = &record.run {
        let mut output = strip_escapes(&collapse(&run.guest.scheduler_log)).into_owned();
        if !record.verdict.passed() && !run.host.console.tail.is_empty() {
            output.push_str("\n--- kernel console (last lines) ---\n");
            output.push_str(&strip_escapes(&run.host.console.tail));
        }
        if !output.is_empty() {
            case.set_system_out(output);
        }
    }
    case
}
