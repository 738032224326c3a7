//! The JSON reporter against a real directory.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use ktstr_domain::judging::record::CellRecord;
use ktstr_domain::plan::cell::CellId;
use ktstr_ports::reporter::Reporter;
use ktstr_report::JsonReporter;
use serde_json::Value;

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Each boot of a repeated cell has its own record; the summary lists what differed.
#[test]
fn every_boot_has_its_own_record() {
    let tmp = tempfile::tempdir().unwrap();
    let reporter = JsonReporter::new(tmp.path());
    let report = repeated_report();
    reporter.sweep_started(report.planned, &[]).unwrap();
    for record in &report.records {
        reporter.cell_finished(record).unwrap();
    }
    reporter.sweep_finished(&report).unwrap();
    let cell_dir = tmp.path().join("scx-ktstr").join(K12);
    for index in 1..=3 {
        let path = cell_dir.join(format!("tiny-2llc.boot{index}.json"));
        let back: CellRecord = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back.boot.unwrap().index, index);
    }
    assert!(!cell_dir.join("tiny-2llc.json").exists());
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(reporter.summary_path()).unwrap()).unwrap();
    assert_eq!(summary["boots_per_cell"], 3);
    let unstable = &summary["unstable_programs"][0];
    assert_eq!(unstable["program"], "ktstr_enqueue");
    assert_eq!(unstable["counts"], serde_json::json!([412, 418, 412]));
}

#[test]
fn writes_one_record_per_cell_and_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("results");
    let reporter = JsonReporter::new(&dir);
    let report = two_kernel_report();

    reporter.sweep_started(report.planned, &[]).unwrap();
    for record in &report.records {
        reporter.cell_finished(record).unwrap();
    }
    reporter.sweep_finished(&report).unwrap();

    for record in &report.records {
        let c = &record.cell;
        let path = dir
            .join(&c.scheduler)
            .join(&c.kernel)
            .join(format!("{}.json", c.preset));
        let back: CellRecord = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(&back, record, "{}", path.display());
    }
    let files = files_under(&dir);
    assert_eq!(files.len(), report.records.len() + 1, "{files:?}");
    assert!(
        files
            .iter()
            .all(|f| f.extension().is_some_and(|e| e == "json")),
        "temporary files left behind: {files:?}"
    );

    let summary: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["complete"], true);
    assert_eq!(summary["planned"], 12);
    assert_eq!(summary["finished"], 12);
    assert_eq!(summary["passed"], 9);
    assert_eq!(summary["failed"], 3);
    assert_eq!(summary["succeeded"], false);
    assert_eq!(
        summary["failing"],
        serde_json::json!([
            "verifier/scx-simple/kernel_6_12_117/smt-2llc",
            "verifier/scx-ktstr/kernel_6_16_4/tiny-2llc",
            "verifier/scx-simple/kernel_6_16_4/smt-2llc",
        ])
    );
    assert_eq!(
        summary["grid"],
        serde_json::to_value(report.grid()).unwrap()
    );
    assert_eq!(
        summary["insns_tables"],
        serde_json::to_value(report.insns_tables()).unwrap()
    );
}

#[test]
fn incomplete_summary_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let reporter = JsonReporter::new(tmp.path());
    let report = incomplete_report();
    reporter.sweep_started(report.planned, &[]).unwrap();
    reporter.sweep_finished(&report).unwrap();
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(reporter.summary_path()).unwrap()).unwrap();
    insta::assert_json_snapshot!(summary);
}

#[test]
fn a_new_sweep_removes_the_previous_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let stale = tmp.path().join("summary.json");
    fs::write(&stale, r#"{"complete": true}"#).unwrap();
    let reporter = JsonReporter::new(tmp.path());
    reporter.sweep_started(1, &[]).unwrap();
    assert!(!stale.exists());
    // Starting with nothing to remove is fine too.
    reporter.sweep_started(1, &[]).unwrap();
}

#[test]
fn rewriting_a_cell_replaces_its_file() {
    let tmp = tempfile::tempdir().unwrap();
    let reporter = JsonReporter::new(tmp.path());
    let mut record = passing();
    reporter.cell_finished(&record).unwrap();
    record.wall_ms = 1;
    reporter.cell_finished(&record).unwrap();
    let path = reporter.cell_path(&record.cell).unwrap();
    let back: CellRecord = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(back.wall_ms, 1);
}

#[test]
fn refuses_cell_names_that_escape_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let reporter = JsonReporter::new(tmp.path().join("out"));
    let mut record = passing();
    record.cell = CellId {
        scheduler: "..".into(),
        kernel: "k".into(),
        preset: "tiny-1llc".into(),
    };
    let err = reporter.cell_finished(&record).unwrap_err();
    assert!(err.to_string().contains("`..`"), "{err}");
    assert!(!tmp.path().join("k").exists());
}

#[test]
fn errors_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    // A file where the scheduler's directory should be.
    fs::write(tmp.path().join("scx-ktstr"), "").unwrap();
    let reporter = JsonReporter::new(tmp.path());
    let err = reporter.cell_finished(&passing()).unwrap_err().to_string();
    assert!(err.contains("scx-ktstr"), "{err}");
}

#[test]
fn environment_errors_are_counted_and_named_apart_from_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let reporter = JsonReporter::new(tmp.path());
    let report = env_error_report();
    reporter.sweep_started(report.planned, &[]).unwrap();
    for record in &report.records {
        reporter.cell_finished(record).unwrap();
    }
    reporter.sweep_finished(&report).unwrap();
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(reporter.summary_path()).unwrap()).unwrap();
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["env_errors"], 1);
    assert_eq!(summary["outcome"], "environment_error");
    assert_eq!(
        summary["environment_errors"],
        serde_json::json!(["verifier/scx_layered/kernel_6_16_4/tiny-1llc"])
    );
    let cell = tmp.path().join("scx_layered/kernel_6_16_4/tiny-1llc.json");
    let record: Value = serde_json::from_str(&fs::read_to_string(cell).unwrap()).unwrap();
    assert_eq!(record["verdict"]["verdict"], "error");
    assert_eq!(record["verdict"]["cause"], "guest-oom");
    assert_eq!(record["run"]["host"]["memory"]["mib"], 544);
}
