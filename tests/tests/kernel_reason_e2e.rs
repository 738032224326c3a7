//! The kernel's own reason in every verdict: the Linux 6.12 tree's `scx_central`, built from
//! Debian's source, is disabled by sched_ext at init on these guests, and every output says
//! so in the kernel's words rather than "the process exited".

mod common;

use std::fs;

use common::{KERNEL_6_12, ensure_kernels, kernel_example, stderr, stdout, tempfile_dir};

const REASON: &str = "sched_ext disabled (scx_bpf_error): init from non-central CPU";

#[test]
fn scx_central_fails_attach_with_the_kernels_reason_in_every_output() {
    ensure_kernels();
    let central = kernel_example("scx_central");
    let dir = tempfile_dir("kernel-reason");
    fs::write(
        dir.join("ktstr.toml"),
        format!(
            "[[scheduler]]\nname = \"scx_central\"\nbinary = \"{}\"\n",
            central.display()
        ),
    )
    .unwrap();
    let summary_file = dir.join("step-summary.md");
    let out = common::ktstr_on_github(
        &dir,
        &[
            "verifier",
            "--kernel",
            KERNEL_6_12,
            "--format",
            "text",
            "--format",
            "json",
            "--format",
            "junit",
            "--output",
            "out",
            "--summary",
            "summary.md",
            "tiny-1llc",
        ],
        &summary_file,
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));

    // The FAIL line and the cell's verdict.
    let fail = text
        .lines()
        .find(|l| l.starts_with(" FAIL [") && l.contains("scx_central /"))
        .unwrap_or_else(|| panic!("no FAIL line:\n{text}"));
    assert!(fail.contains(&format!(": [attach] {REASON}; ")), "{fail}");
    assert!(
        text.contains(&format!("  verdict: FAIL [attach] {REASON}")),
        "{text}"
    );
    // The GitHub annotation.
    let annotation = text
        .lines()
        .find(|l| l.starts_with("::error title=ktstr FAIL [attach] verifier/scx_central/"))
        .unwrap_or_else(|| panic!("no annotation:\n{text}"));
    assert!(annotation.contains(&format!("::{REASON}")), "{annotation}");

    // JSON: the verdict's reason and the kernel's record, as data.
    let cell = common::stored_cell(&dir.join("out"), "scx_central", "tiny-1llc");
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&cell).unwrap()).unwrap();
    assert_eq!(json["verdict"]["gate"], "attach", "{json}");
    assert!(
        json["verdict"]["reason"]
            .as_str()
            .unwrap()
            .starts_with(REASON),
        "{json}"
    );
    let exit = &json["run"]["judgment"]["scx_exit"];
    assert_eq!(exit["scheduler"], "central", "{exit}");
    assert_eq!(exit["kind"], "error", "{exit}");
    assert_eq!(exit["reason"], "scx_bpf_error", "{exit}");
    assert_eq!(exit["message"], "init from non-central CPU", "{exit}");

    // JUnit and the Markdown summaries.
    let junit = fs::read_to_string(dir.join("out/junit.xml")).unwrap();
    assert!(junit.contains(REASON), "{junit}");
    for md in [dir.join("summary.md"), summary_file] {
        let md = fs::read_to_string(&md).unwrap();
        assert!(md.contains(REASON), "{md}");
    }
}
