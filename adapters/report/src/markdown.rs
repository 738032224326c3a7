//! The sweep as a Markdown summary for a pull request (GitHub's step summary): the counts,
//! the grid, the failing cells with a command that reruns each, and the baseline table
//! when there is one.

use std::fmt::Write as _;

use ktstr_domain::judging::verdict::Verdict;
use ktstr_domain::results::baseline::Comparison;
use ktstr_domain::results::report::{GridStatus, SweepReport};

/// Baseline rows shown; the rest are counted.
const BASELINE_ROWS: usize = 50;

pub fn render_markdown(report: &SweepReport, baseline: Option<&Comparison>) -> String {
    let mut out = String::new();
    let passed = report.records.iter().filter(|r| r.verdict.passed()).count();
    let _ = writeln!(
        out,
        "## ktstr verifier: {passed} passed, {} failed, {} environment errors{}\n",
        report.failing().len(),
        report.env_errors().len(),
        if report.complete {
            String::new()
        } else {
            format!(
                " (INCOMPLETE: {} of {} cells)",
                report.records.len(),
                report.planned
            )
        }
    );
    write_grid(&mut out, report);
    write_not_passed(&mut out, report);
    if let Some(comparison) = baseline {
        write_baseline(&mut out, comparison);
    }
    out
}

fn write_grid(out: &mut String, report: &SweepReport) {
    let grid = report.grid();
    if grid.rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "| topology | {} |",
        grid.schedulers
            .iter()
            .map(|s| cell_text(s))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(out, "|---|{}", "---|".repeat(grid.schedulers.len()));
    for row in &grid.rows {
        let marks: Vec<&str> = row
            .cells
            .iter()
            .map(|c| match c {
                Some(GridStatus::Pass) => "✅",
                Some(GridStatus::Fail) => "❌",
                Some(GridStatus::Mixed) => "🇽",
                Some(GridStatus::Error) => "⚠️",
                None => "",
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", row.topology, marks.join(" | "));
    }
    out.push('\n');
}

fn write_not_passed(out: &mut String, report: &SweepReport) {
    let not_passed: Vec<_> = report
        .records
        .iter()
        .filter(|r| !r.verdict.passed())
        .collect();
    if not_passed.is_empty() {
        return;
    }
    let _ = writeln!(out, "### Failing cells and environment errors\n");
    for record in not_passed {
        let why = match &record.verdict {
            Verdict::Fail { gate, reason } => format!("**FAIL [{gate}]** {}", inline(reason)),
            Verdict::Error { cause, reason } => {
                format!("**ERROR [environment: {cause}]** {}", inline(reason))
            }
            Verdict::Pass => continue,
        };
        let _ = writeln!(out, "- `{}` {why}", record.cell);
        if let Some(repro) = &record.repro {
            let _ = writeln!(out, "  - rerun: `{repro}`");
        }
    }
    out.push('\n');
}

fn write_baseline(out: &mut String, comparison: &Comparison) {
    let _ = writeln!(out, "### verified_insns against the baseline\n");
    let changed: Vec<_> = comparison
        .programs
        .iter()
        .filter(|p| p.base != p.new)
        .collect();
    if changed.is_empty() {
        let _ = writeln!(out, "No program's count changed.\n");
    } else {
        let _ = writeln!(out, "| cell | program | base | new | delta | % |");
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
        for p in changed.iter().take(BASELINE_ROWS) {
            let num = |n: Option<u32>| n.map_or("—".to_string(), |n| n.to_string());
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                p.cell,
                cell_text(&p.program),
                num(p.base),
                num(p.new),
                p.delta().map_or("—".to_string(), |d| format!("{d:+}")),
                p.percent()
                    .map_or("—".to_string(), |pct| format!("{pct:+.1}%")),
            );
        }
        if changed.len() > BASELINE_ROWS {
            let _ = writeln!(out, "\n…and {} more.", changed.len() - BASELINE_ROWS);
        }
        out.push('\n');
    }
    if !comparison.verdict_changes.is_empty() {
        let _ = writeln!(out, "| cell | base | new |\n|---|---|---|");
        for c in &comparison.verdict_changes {
            let _ = writeln!(out, "| `{}` | {} | {} |", c.cell, c.base, c.new);
        }
        out.push('\n');
    }
}

/// Text safe inside a table cell: no pipes, no line breaks.
fn cell_text(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A reason on one line, its first line only.
fn inline(text: &str) -> String {
    cell_text(text.lines().next().unwrap_or_default())
}
