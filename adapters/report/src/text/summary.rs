//! The end-of-sweep summaries: verified_insns per scheduler, the pass/fail grid, and the
//! failing combinations.

use std::fmt::{self, Write as _};

use comfy_table::{Table, TableComponent, presets};
use ktstr_domain::judging::record::CellRecord;
use ktstr_domain::judging::verdict::Verdict;
use ktstr_domain::plan::cell::CellId;
use ktstr_domain::results::report::{BOOT_VARIANCE_MARK, GridStatus, SweepReport};

use super::TextOptions;
use super::style::{bad, good, sanitize, warn};

const PASS_MARK: &str = "✅";
const FAIL_MARK: &str = "❌";
const MIXED_MARK: &str = "🇽";
/// An environment error: the cell could not judge the scheduler.
const ERROR_MARK: &str = "⚠️";
const ABSENT: &str = "-";

/// All three summaries, preceded and followed by an INCOMPLETE line when the sweep was
/// interrupted, so the partial picture cannot be mistaken for the whole.
pub fn render_summary(report: &SweepReport, opts: &TextOptions) -> String {
    let mut out = String::new();
    write_summary(&mut out, report, opts).expect("writing to a String cannot fail");
    out
}

fn write_summary(out: &mut String, report: &SweepReport, opts: &TextOptions) -> fmt::Result {
    let incomplete = (!report.complete).then(|| {
        format!(
            "{}: sweep interrupted after {} of {} cells; the summary covers only finished cells",
            warn("INCOMPLETE", opts),
            report.records.len(),
            report.planned
        )
    });
    if let Some(line) = &incomplete {
        writeln!(out, "{line}")?;
        writeln!(out)?;
    }
    write_insns(out, report)?;
    write_boot_variance(out, report, opts)?;
    write_boot_outcomes(out, report, opts)?;
    writeln!(out)?;
    write_grid(out, report)?;
    writeln!(out)?;
    write_failing(out, report, opts)?;
    if let Some(line) = &incomplete {
        writeln!(out)?;
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// With several boots per cell: whether each program's count was the same in every boot,
/// and every count of those that were not.
fn write_boot_variance(out: &mut String, report: &SweepReport, opts: &TextOptions) -> fmt::Result {
    let boots = report.boots_per_cell();
    if boots < 2 {
        return Ok(());
    }
    let unstable = report.unstable_programs();
    if unstable.is_empty() {
        return writeln!(
            out,
            "{}: every program's verified_insns was the same in all {boots} boots of its cell",
            good("stable", opts)
        );
    }
    writeln!(
        out,
        "{} between boots of one cell ({BOOT_VARIANCE_MARK} above; {boots} boots each):",
        warn("verified_insns differ", opts)
    )?;
    for u in &unstable {
        let counts: Vec<String> = u.counts.iter().map(u32::to_string).collect();
        writeln!(
            out,
            "  {}  {}: {}",
            cell_path(&u.cell),
            sanitize(&u.program),
            counts.join(", ")
        )?;
    }
    Ok(())
}

/// With several boots per cell: whether each cell ended the same way every time, and how
/// long the boots took.
fn write_boot_outcomes(out: &mut String, report: &SweepReport, opts: &TextOptions) -> fmt::Result {
    let boots = report.boots_per_cell();
    if boots < 2 {
        return Ok(());
    }
    let unsteady = report.unsteady_verdicts();
    if unsteady.is_empty() {
        writeln!(
            out,
            "{}: every cell got the same verdict in all {boots} boots",
            good("steady", opts)
        )?;
    } else {
        writeln!(
            out,
            "{} between boots of one cell ({boots} boots each):",
            warn("verdicts differ", opts)
        )?;
        for u in &unsteady {
            writeln!(out, "  {}: {}", cell_path(&u.cell), u.verdicts.join(", "))?;
        }
    }
    if let Some(s) = report.wall_spread() {
        writeln!(
            out,
            "time per boot: median {} ms, {}..{} ms over all boots; widest cell {}: {}..{} ms",
            s.median_ms,
            s.min_ms,
            s.max_ms,
            cell_path(&s.widest_cell),
            s.widest_ms.0,
            s.widest_ms.1
        )?;
    }
    Ok(())
}

/// `scheduler / kernel / preset`, as the summary's lists name a cell.
fn cell_path(cell: &CellId) -> String {
    format!(
        "{} / {} / {}",
        sanitize(&cell.scheduler),
        sanitize(&cell.kernel),
        cell.preset
    )
}

fn write_insns(out: &mut String, report: &SweepReport) -> fmt::Result {
    writeln!(
        out,
        "verified_insns (rows: kernel, columns: BPF program, cell: range across topologies):"
    )?;
    let tables = report.insns_tables();
    if tables.is_empty() {
        return writeln!(out, "  no cells finished");
    }
    for t in tables {
        writeln!(out, "{}:", sanitize(&t.scheduler))?;
        if t.programs.is_empty() {
            writeln!(out, "  no programs reported")?;
            continue;
        }
        let header = std::iter::once("kernel".to_string())
            .chain(t.programs.iter().map(|p| sanitize(p).into_owned()));
        let rows = t.rows.iter().map(|row| {
            std::iter::once(sanitize(&row.kernel).into_owned())
                .chain(
                    row.cells
                        .iter()
                        .map(|c| c.map_or_else(|| ABSENT.to_string(), |r| r.to_string())),
                )
                .collect()
        });
        out.push_str(&table(header.collect(), rows.collect()));
    }
    Ok(())
}

fn write_grid(out: &mut String, report: &SweepReport) -> fmt::Result {
    let grid = report.grid();
    write!(
        out,
        "verifier summary: {} {PASS_MARK}  {} {FAIL_MARK}  {} {MIXED_MARK}",
        grid.passed, grid.failed, grid.mixed
    )?;
    // Only present when it happened, so the summary line stays as it was otherwise.
    if grid.errors > 0 {
        write!(out, "  {} {ERROR_MARK} (environment)", grid.errors)?;
    }
    writeln!(out)?;
    if grid.rows.is_empty() {
        return Ok(());
    }
    let header = std::iter::once("topology".to_string())
        .chain(grid.schedulers.iter().map(|s| sanitize(s).into_owned()))
        .collect();
    let rows = grid
        .rows
        .iter()
        .map(|row| {
            std::iter::once(sanitize(&row.topology).into_owned())
                .chain(row.cells.iter().map(|c| {
                    match c {
                        Some(GridStatus::Pass) => PASS_MARK,
                        Some(GridStatus::Fail) => FAIL_MARK,
                        Some(GridStatus::Mixed) => MIXED_MARK,
                        Some(GridStatus::Error) => ERROR_MARK,
                        None => ABSENT,
                    }
                    .to_string()
                }))
                .collect()
        })
        .collect();
    out.push_str(&table(header, rows));
    Ok(())
}

fn write_failing(out: &mut String, report: &SweepReport, opts: &TextOptions) -> fmt::Result {
    let errors = report.env_errors();
    if !errors.is_empty() {
        writeln!(
            out,
            "{} (not scheduler failures; fix the cause and rerun these cells):",
            warn("environment errors", opts)
        )?;
        for r in errors {
            if let Verdict::Error { cause, reason } = &r.verdict {
                let first = reason.lines().next().unwrap_or_default();
                writeln!(out, "  {}: [{cause}] {}", combination(r), sanitize(first))?;
                write_rerun(out, r)?;
            }
        }
        writeln!(out)?;
    }
    let failing = report.failing();
    if failing.is_empty() {
        return writeln!(out, "{}", good("no failing combinations", opts));
    }
    writeln!(
        out,
        "{} (scheduler / kernel / topology):",
        bad("failing combinations", opts)
    )?;
    for r in failing {
        writeln!(out, "  {}", combination(r))?;
        write_rerun(out, r)?;
    }
    Ok(())
}

/// The command that reruns just this cell, under its line.
fn write_rerun(out: &mut String, record: &CellRecord) -> fmt::Result {
    match &record.repro {
        Some(repro) => writeln!(out, "    rerun: {}", sanitize(repro)),
        None => Ok(()),
    }
}

/// `scheduler / kernel / topology` of a cell.
fn combination(record: &CellRecord) -> String {
    let c = &record.cell;
    format!(
        "{} / {} / {}",
        sanitize(&c.scheduler),
        sanitize(&c.kernel),
        sanitize(&c.preset)
    )
}

/// A borderless table with an underlined header, indented by two spaces. Cells carry no
/// colour: escapes would throw off the column widths.
fn table(header: Vec<String>, rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_style(TableComponent::HeaderLines, '-')
        .set_header(header);
    for row in rows {
        t.add_row(row);
    }
    // Two spaces between columns and none at the edges, so the underline ends with the text.
    let last = t.column_count().saturating_sub(1);
    for (i, column) in t.column_iter_mut().enumerate() {
        column.set_padding((0, if i == last { 0 } else { 2 }));
    }
    let mut out = String::new();
    for line in t.lines() {
        let line = line.trim_end();
        if !line.is_empty() {
            out.push_str("  ");
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}
