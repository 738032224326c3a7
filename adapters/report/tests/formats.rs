//! The file formats CI systems read: veristat's CSV, JUnit XML and the Markdown summary,
//! each parsed back and checked.

mod common;

use common::*;
use ktstr_domain::results::baseline::compare;
use ktstr_report::junit::render_junit;
use ktstr_report::markdown::render_markdown;
use ktstr_report::veristat::{COLUMNS, render_csv};
use quick_xml::events::Event;

#[test]
fn the_csv_has_veristats_columns_and_a_row_per_program() {
    let report = two_kernel_report();
    let text = render_csv(&report).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(reader.headers().unwrap(), COLUMNS.as_slice());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let programs: usize = report
        .records
        .iter()
        .filter_map(|r| r.run.as_ref())
        .map(|run| run.judgment.progs.len())
        .sum();
    assert_eq!(rows.len(), programs);
    let first = &report.records[0];
    let prog = &first.run.as_ref().unwrap().judgment.progs[0];
    assert_eq!(
        rows[0].iter().collect::<Vec<_>>(),
        [
            first.cell.to_string().as_str(),
            prog.name.as_str(),
            "success",
            prog.verified_insns.to_string().as_str()
        ]
    );
}

#[test]
fn a_rejected_program_is_a_failure_row_with_its_processed_count() {
    let report = ktstr_domain::results::report::SweepReport {
        records: vec![rejected()],
        planned: 1,
        complete: true,
    };
    let text = render_csv(&report).unwrap();
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(text.as_bytes())
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows.iter()
            .map(|r| r.iter().skip(1).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        [["ktstr_enqueue", "failure", "48"]]
    );
}

/// (name, classname, failure or error element with its `type` and `message`).
type Case = (String, String, Option<(String, String, String)>);

fn parse_junit(xml: &str) -> Vec<Case> {
    let attr = |e: &quick_xml::events::BytesStart<'_>, key: &str| -> String {
        e.attributes()
            .map(Result::unwrap)
            .find(|a| a.key.as_ref() == key.as_bytes())
            .map(|a| {
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .unwrap()
                    .into_owned()
            })
            .unwrap_or_default()
    };
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut cases: Vec<Case> = Vec::new();
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                cases.push((attr(&e, "name"), attr(&e, "classname"), None));
            }
            Event::Start(e) | Event::Empty(e)
                if matches!(e.name().as_ref(), b"failure" | b"error") =>
            {
                let kind = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                let case = cases.last_mut().expect("inside a testcase");
                case.2 = Some((kind, attr(&e, "type"), attr(&e, "message")));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    cases
}

#[test]
fn junit_has_a_case_per_cell_named_like_it_with_the_gate_and_reason() {
    let cells = every_cell();
    let report = ktstr_domain::results::report::SweepReport {
        planned: cells.len(),
        records: cells.clone(),
        complete: true,
    };
    let cases = parse_junit(&render_junit(&report).unwrap());
    assert_eq!(cases.len(), cells.len());
    for (case, record) in cases.iter().zip(&cells) {
        assert_eq!(case.0, record.cell.to_string());
        assert_eq!(case.1, record.cell.scheduler);
        match &record.verdict {
            ktstr_domain::judging::verdict::Verdict::Pass => assert_eq!(case.2, None),
            ktstr_domain::judging::verdict::Verdict::Fail { gate, reason } => assert_eq!(
                case.2,
                Some(("failure".into(), gate.to_string(), reason.clone()))
            ),
            ktstr_domain::judging::verdict::Verdict::Error { cause, reason } => assert_eq!(
                case.2,
                Some((
                    "error".into(),
                    format!("environment: {cause}"),
                    reason.clone()
                ))
            ),
        }
    }
    let xml = render_junit(&report).unwrap();
    assert!(
        xml.contains("R6 invalid mem access"),
        "the log is the output"
    );
}

#[test]
fn the_markdown_summary_has_the_grid_failures_with_reruns_and_the_baseline() {
    let mut report = two_kernel_report();
    for r in report.records.iter_mut().filter(|r| !r.verdict.passed()) {
        r.repro = Some(format!(
            "ktstr verifier --scheduler {} {}",
            r.cell.scheduler, r.cell
        ));
    }
    let mut base = report.clone();
    for r in &mut base.records {
        for p in r
            .run
            .iter_mut()
            .flat_map(|run| run.judgment.progs.iter_mut())
        {
            p.verified_insns -= 2;
        }
    }
    let comparison = compare(&base.records, &report.records);
    let md = render_markdown(&report, Some(&comparison));
    insta::assert_snapshot!(md);
    assert!(md.starts_with("## ktstr verifier: "), "{md}");
    let grid_rows = md
        .lines()
        .filter(|l| l.starts_with("| tiny-") || l.starts_with("| smt-"))
        .count();
    assert_eq!(grid_rows, report.grid().rows.len(), "{md}");
    for failing in report.failing() {
        assert!(md.contains(&format!("- `{}` **FAIL", failing.cell)), "{md}");
        assert!(
            md.contains("  - rerun: `ktstr verifier --scheduler "),
            "{md}"
        );
    }
    // Every program grew by 2: the delta column says +2.
    assert!(
        md.lines().filter(|l| l.contains("| +2 |")).count() > 0,
        "{md}"
    );
}
