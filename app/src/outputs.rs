//! What a finished sweep (or a merge of shards) publishes besides the terminal text:
//! veristat CSV, JUnit XML, a Markdown summary, and the comparison with a baseline, whose
//! thresholds have an exit status of their own.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ktstr_domain::results::baseline::{Comparison, Thresholds, compare};
use ktstr_domain::results::report::SweepReport;
use ktstr_report::junit::render_junit;
use ktstr_report::markdown::render_markdown;
use ktstr_report::veristat::render_csv;
use ktstr_report::{TextOptions, read_results, render_comparison};

use crate::host_env::HostEnv;

/// A baseline's thresholds were broken (a scheduler failure or an environment error, which
/// have their own statuses, take precedence).
pub const EXIT_BASELINE_BROKEN: u8 = 4;

/// What `--format` adds to the text on standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Only the text (the default).
    Text,
    /// A record per cell as it finishes and a summary, under --output.
    Json,
    /// veristat's CSV (`veristat -C` compares two of them), `verifier.csv` under --output.
    Csv,
    /// JUnit XML, a testcase per cell, `junit.xml` under --output.
    Junit,
}

pub const CSV_FILE: &str = "verifier.csv";
pub const JUNIT_FILE: &str = "junit.xml";

#[derive(Debug, Clone, clap::Args)]
pub struct ThresholdArgs {
    /// Fail (exit 4) when a program's verified_insns grew by more than this many percent
    /// of its baseline count (`10%` or `10`).
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub max_growth: Option<f64>,
    /// Fail (exit 4) when a cell fails that did not fail in the baseline.
    #[arg(long)]
    pub fail_on_new_failure: bool,
}

impl ThresholdArgs {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            max_growth_percent: self.max_growth,
            fail_on_new_failure: self.fail_on_new_failure,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct PublishArgs {
    /// Write a Markdown summary (the grid, failing cells with a command that reruns each,
    /// the baseline table) to FILE; under GitHub Actions it also goes to the step summary.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Compare verified_insns and verdicts with an earlier run's results (a directory
    /// written with --format json).
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<PathBuf>,
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%');
    let pct: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a percentage (write 10% or 10)"))?;
    if !pct.is_finite() || pct < 0.0 {
        return Err(format!("`{text}`: the growth allowed must be 0% or more"));
    }
    Ok(pct)
}

/// Writes the file formats of `formats` under `dir` (JSON is written as cells finish).
pub fn write_formats(report: &SweepReport, formats: &[Format], dir: &Path) -> Result<()> {
    let write = |name: &str, text: String| -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(name);
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
        Ok(())
    };
    if formats.contains(&Format::Csv) {
        write(CSV_FILE, render_csv(report).context("rendering the CSV")?)?;
    }
    if formats.contains(&Format::Junit) {
        write(
            JUNIT_FILE,
            render_junit(report).context("rendering JUnit XML")?,
        )?;
    }
    Ok(())
}

/// What the outputs need, checked before the first VM starts, so that bad input costs no
/// sweep: the baseline read, `--output` created when a format writes there, the Markdown
/// summary's directory present. Returns the baseline.
pub fn check_outputs(
    env: &HostEnv,
    formats: &[Format],
    output: &Path,
    args: &PublishArgs,
) -> Result<Option<SweepReport>> {
    if formats.iter().any(|f| *f != Format::Text) {
        let dir = env.cwd.join(output);
        fs::create_dir_all(&dir).with_context(|| {
            format!(
                "--output {}: cannot create it; pass a writable directory",
                dir.display()
            )
        })?;
    }
    if let Some(file) = &args.summary {
        let path = env.cwd.join(file);
        let parent = path.parent().unwrap_or(&env.cwd);
        if !parent.is_dir() {
            bail!(
                "--summary {}: {} is not a directory; create it or pass another FILE",
                path.display(),
                parent.display()
            );
        }
    }
    let Some(dir) = &args.baseline else {
        return Ok(None);
    };
    let base = read_results(&env.cwd.join(dir)).context("--baseline")?;
    Ok(Some(base))
}

/// The baseline comparison printed, the Markdown summary written; returns the exit status
/// the whole run ends with.
pub fn publish(
    env: &HostEnv,
    report: &SweepReport,
    args: &PublishArgs,
    baseline: Option<&SweepReport>,
    opts: &TextOptions,
) -> Result<u8> {
    let comparison = baseline.map(|base| compare(&base.records, &report.records));
    if let Some(c) = &comparison {
        print!(
            "\n{}",
            render_comparison(c, &args.thresholds.thresholds(), opts)
        );
    }
    write_markdown(env, report, comparison.as_ref(), args.summary.as_deref())?;
    Ok(exit_status(
        report,
        comparison.as_ref(),
        &args.thresholds.thresholds(),
    ))
}

/// The sweep's own status first; only a clean one gives way to a broken threshold.
pub fn exit_status(report: &SweepReport, c: Option<&Comparison>, limits: &Thresholds) -> u8 {
    let status = report.outcome().exit_code();
    if status == 0 && c.is_some_and(|c| !c.breaches(limits).is_empty()) {
        EXIT_BASELINE_BROKEN
    } else {
        status
    }
}

pub fn write_markdown(
    env: &HostEnv,
    report: &SweepReport,
    comparison: Option<&Comparison>,
    file: Option<&Path>,
) -> Result<()> {
    if file.is_none() && env.step_summary.is_none() {
        return Ok(());
    }
    let markdown = render_markdown(report, comparison);
    if let Some(file) = file {
        let path = env.cwd.join(file);
        fs::write(&path, &markdown).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &env.step_summary {
        // GitHub collects a step's summary by appending; other steps may have written.
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening GITHUB_STEP_SUMMARY {}", path.display()))?;
        f.write_all(markdown.as_bytes())
            .with_context(|| format!("writing GITHUB_STEP_SUMMARY {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_with_or_without_the_sign() {
        assert_eq!(parse_percent("10%"), Ok(10.0));
        assert_eq!(parse_percent("2.5"), Ok(2.5));
        assert!(
            parse_percent("ten")
                .unwrap_err()
                .contains("not a percentage")
        );
        assert!(parse_percent("-1%").unwrap_err().contains("0% or more"));
    }
}
