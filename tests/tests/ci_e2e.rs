//! Sweeps as CI runs them, on real cells: shards merged back into the single-machine
//! summary, a baseline comparison that catches a grown program and fails its threshold,
//! and the CSV, JUnit and Markdown files parsed back.

mod common;

use std::fs;
use std::path::Path;

use common::{
    KERNEL_6_12, bin_dir, ensure_kernels, ktstr_in, stderr, stdout, tempfile_dir, veristat,
};

const PRESETS: [&str; 3] = ["tiny-1llc", "tiny-2llc", "odd-3llc"];

/// The summary of a sweep's text: everything from the verified_insns table on.
fn summary(text: &str) -> &str {
    let at = text
        .find("verified_insns (rows: kernel")
        .unwrap_or_else(|| panic!("no summary in:\n{text}"));
    &text[at..]
}

/// A sweep of `PRESETS` with `extra`: its exit status, standard output and error.
fn sweep(dir: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["verifier", "--kernel", KERNEL_6_12];
    args.extend(extra);
    args.extend(PRESETS);
    let out = ktstr_in(dir, &args);
    (out.status.code(), stdout(&out), stderr(&out))
}

#[test]
fn two_shards_merged_give_the_single_machine_summary() {
    ensure_kernels();
    let dir = tempfile_dir("shards");
    let (code, whole, err) = sweep(&dir, &["--format", "json", "--output", "whole"]);
    assert_eq!(code, Some(0), "{whole}\n{err}");
    let mut shard_cells = Vec::new();
    for k in 1..=2 {
        let output = format!("shard{k}");
        let partition = format!("hash:{k}/2");
        let (code, text, err) = sweep(
            &dir,
            &[
                "--partition",
                &partition,
                "--format",
                "json",
                "--output",
                &output,
            ],
        );
        assert_eq!(code, Some(0), "{text}\n{err}");
        assert!(
            text.contains(&format!("partition {partition}: this shard runs")),
            "{text}"
        );
        shard_cells.extend(
            text.lines()
                .filter(|l| l.starts_with(" PASS ["))
                .map(|l| l.rsplit(" / ").next().unwrap().to_string()),
        );
    }
    // Every cell in exactly one shard.
    shard_cells.sort();
    let mut all = PRESETS.map(String::from).to_vec();
    all.sort();
    assert_eq!(shard_cells, all);

    let merged = ktstr_in(&dir, &["report", "shard1", "shard2"]);
    let merged_text = stdout(&merged);
    assert_eq!(
        merged.status.code(),
        Some(0),
        "{merged_text}\n{}",
        stderr(&merged)
    );
    assert_eq!(summary(&merged_text), summary(&whole));
}

#[test]
fn a_grown_program_breaks_the_baseline_threshold_with_its_sign() {
    ensure_kernels();
    let dir = tempfile_dir("baseline");
    let fixture = bin_dir().join("scx-ktstr");
    let manifest = |args: &str| {
        format!(
            "[[scheduler]]\nname = \"scx-ktstr\"\nbinary = \"{}\"\nsched_args = [{args}]\n",
            fixture.display()
        )
    };
    fs::write(dir.join("base.toml"), manifest("")).unwrap();
    fs::write(dir.join("new.toml"), manifest("\"--pad-span\", \"4\"")).unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["verifier", "--kernel", KERNEL_6_12, "tiny-1llc"];
        all.extend(args);
        let out = ktstr_in(&dir, &all);
        (out.status.code(), stdout(&out), stderr(&out))
    };
    let (code, text, err) = run(&[
        "--manifest",
        "base.toml",
        "--format",
        "json",
        "--format",
        "csv",
        "--output",
        "base",
    ]);
    assert_eq!(code, Some(0), "{text}\n{err}");
    let (code, text, err) = run(&[
        "--manifest",
        "new.toml",
        "--format",
        "json",
        "--format",
        "csv",
        "--format",
        "junit",
        "--output",
        "new",
        "--summary",
        "summary.md",
        "--baseline",
        "base",
        "--max-growth",
        "10%",
    ]);
    assert_eq!(code, Some(4), "the threshold's own status:\n{text}\n{err}");
    let row = text
        .lines()
        .find(|l| l.contains("tiny-1llc") && l.contains("ktstr_select_cpu"))
        .unwrap_or_else(|| panic!("no ktstr_select_cpu row:\n{text}"));
    let fields: Vec<&str> = row.split_whitespace().collect();
    let (base, new): (u32, u32) = (fields[2].parse().unwrap(), fields[3].parse().unwrap());
    assert!(new > base, "{row}");
    assert_eq!(
        fields[4],
        format!("+{}", new - base),
        "delta = new - base: {row}"
    );
    assert!(
        fields[5].starts_with('+') && fields[5].ends_with('%'),
        "{row}"
    );
    assert!(text.contains("baseline thresholds broken:"), "{text}");
    assert!(
        text.contains("ktstr_select_cpu: verified_insns grew +"),
        "{text}"
    );

    // The same comparison from the two directories.
    let out = ktstr_in(&dir, &["compare", "base", "new", "--max-growth", "10%"]);
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    assert!(stdout(&out).contains(row.trim()), "{}", stdout(&out));
    let out = ktstr_in(&dir, &["compare", "base", "new", "--max-growth", "10000%"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // veristat's CSV: the cell as file_name, every program with its count.
    let csv_text = fs::read_to_string(dir.join("new/verifier.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec!["file_name", "prog_name", "verdict", "total_insns"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let select = rows
        .iter()
        .find(|r| &r[1] == "ktstr_select_cpu")
        .expect("ktstr_select_cpu in the CSV");
    assert_eq!(&select[0], "verifier/scx-ktstr/kernel_6_12_118/tiny-1llc");
    assert_eq!(
        (&select[2], select[3].parse::<u32>().unwrap()),
        ("success", new)
    );

    // The kernel community's own tool compares our two CSVs, with the same delta.
    let out = std::process::Command::new(veristat())
        .args(["-C", "base/verifier.csv", "new/verifier.csv"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let compared = stdout(&out);
    assert!(out.status.success(), "{compared}\n{}", stderr(&out));
    let line = compared
        .lines()
        .find(|l| l.contains("ktstr_select_cpu"))
        .unwrap_or_else(|| panic!("veristat lists no ktstr_select_cpu:\n{compared}"));
    assert!(
        line.contains(&format!(" {base} ")) && line.contains(&format!(" {new} ")),
        "{line}"
    );
    assert!(line.contains(&format!("+{} (", new - base)), "{line}");

    // JUnit: one passing case named like the cell.
    let xml = fs::read_to_string(dir.join("new/junit.xml")).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut cases = Vec::new();
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                let name = e.name().as_ref().to_vec();
                if name == b"testcase" {
                    let attr = e
                        .attributes()
                        .map(Result::unwrap)
                        .find(|a| a.key.as_ref() == b"name")
                        .unwrap();
                    cases.push(
                        attr.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .unwrap()
                            .into_owned(),
                    );
                }
                assert!(name != b"failure" && name != b"error", "{xml}");
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(cases, ["verifier/scx-ktstr/kernel_6_12_118/tiny-1llc"]);

    // Markdown: the counts, the grid and the baseline row.
    let md = fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        md.starts_with("## ktstr verifier: 1 passed, 0 failed, 0 environment errors"),
        "{md}"
    );
    assert!(md.contains("| tiny-1llc | ✅ |"), "{md}");
    assert!(
        md.contains(&format!(
            "| ktstr_select_cpu | {base} | {new} | +{} |",
            new - base
        )),
        "{md}"
    );
}

/// nextest lists the harness's cells as tests named like the cells and runs each in a
/// process of its own (`tests/cells.rs`).
#[test]
fn nextest_runs_each_cell_of_the_harness_as_a_test() {
    ensure_kernels();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let nextest = std::process::Command::new(env!("CARGO"))
        .args(["nextest", "--version"])
        .output();
    if !nextest.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: cargo-nextest is not installed (cargo install cargo-nextest)");
        return;
    }
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "nextest",
            "run",
            "--locked",
            "-p",
            "ktstr-tests",
            "--test",
            "cells",
            "--no-fail-fast",
            "--color",
            "never",
        ])
        .current_dir(&root)
        .output()
        .unwrap();
    let text = format!("{}\n{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    for preset in ["tiny-1llc", "smt-2llc"] {
        let name = format!("verifier/scx-ktstr/kernel_6_12_118/{preset}");
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("PASS [") && l.ends_with(&name)),
            "no PASS line for {name}:\n{text}"
        );
    }
    assert!(text.contains("2 tests run: 2 passed"), "{text}");
}

/// Under GitHub Actions a failing cell is an `::error` annotation and the step summary
/// gets the Markdown; the rerun line it carries reruns exactly that cell.
#[test]
fn github_gets_annotations_a_step_summary_and_a_rerun_line_that_works() {
    ensure_kernels();
    let dir = tempfile_dir("github");
    fs::write(
        dir.join("ktstr.toml"),
        format!(
            "[[scheduler]]\nname = \"fail-verify\"\nbinary = \"{}\"\nsched_args = [\"--fail-verify\"]\n",
            bin_dir().join("scx-ktstr").display()
        ),
    )
    .unwrap();
    let summary_file = dir.join("step-summary.md");
    let out = common::ktstr_on_github(
        &dir,
        &["verifier", "--kernel", KERNEL_6_12, "tiny-1llc", "smt-2llc"],
        &summary_file,
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    let annotation = text
        .lines()
        .find(|l| l.starts_with("::error title=ktstr FAIL [verify] verifier/fail-verify/"))
        .unwrap_or_else(|| panic!("no annotation:\n{text}"));
    assert!(
        annotation.contains("::the verifier rejected ktstr_dispatch: "),
        "{annotation}"
    );
    let md = fs::read_to_string(&summary_file).unwrap();
    assert!(
        md.starts_with("## ktstr verifier: 0 passed, 2 failed"),
        "{md}"
    );

    // The failing list's rerun line, run as a shell would: that cell alone, same verdict.
    let rerun = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("rerun: "))
        .find(|l| l.ends_with("/smt-2llc"))
        .unwrap_or_else(|| panic!("no rerun line for smt-2llc:\n{text}"));
    assert!(md.contains(&format!("rerun: `{rerun}`")), "{md}");
    let command = rerun.replacen("ktstr ", &format!("{} ", common::ktstr_bin().display()), 1);
    let again = std::process::Command::new("sh")
        .args(["-c", &command])
        .current_dir(&dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let again_text = stdout(&again);
    assert_eq!(again.status.code(), Some(1), "{again_text}");
    assert!(
        again_text.starts_with("running 1 cell(s)\n"),
        "{again_text}"
    );
    assert!(
        again_text.contains("fail-verify / kernel_6_12_118 / smt-2llc: [verify] the verifier rejected ktstr_dispatch"),
        "{again_text}"
    );
}
