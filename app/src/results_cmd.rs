//! `ktstr compare` and `ktstr report`: result directories (`--format json`) compared with
//! each other, or merged from the shards of one sweep (`--partition`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Result, bail};
use ktstr_domain::results::baseline::compare;
use ktstr_domain::results::merge::merge;
use ktstr_domain::results::rejudging::{Rejudged, rejudge_report};
use ktstr_ports::Reporter;
use ktstr_report::{
    JsonReporter, Show, TextOptions, read_results, render_comparison, render_line, render_summary,
};

use crate::host_env::HostEnv;
use crate::outputs::{
    EXIT_BASELINE_BROKEN, Format, PublishArgs, ThresholdArgs, check_outputs, publish,
    write_formats, write_markdown,
};

#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// The baseline's results (e.g. the base branch's).
    pub base: PathBuf,
    /// The results compared with it.
    pub new: PathBuf,
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
    /// Write the comparison as Markdown to FILE too.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Result directories, one per shard (written with --format json).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Files to write from the merged results, as `ktstr verifier --format` does.
    #[arg(long, value_enum)]
    pub format: Vec<Format>,
    /// Where --format writes its files (not one of the shards' directories).
    #[arg(long, default_value = "ktstr-merged")]
    pub output: PathBuf,
    /// Judge every stored run again under this ktstr's rules, from the host's facts and the
    /// guest's report it kept, and name each verdict that changed. Records written before
    /// observations were kept keep their verdict.
    #[arg(long)]
    pub rejudge: bool,
    #[command(flatten)]
    pub publish: PublishArgs,
}

fn text_options(env: &HostEnv) -> TextOptions {
    TextOptions {
        color: env.color,
        show: Show::None,
        github: env.github_actions,
        ..TextOptions::default()
    }
}

pub fn run_compare(env: &HostEnv, args: &CompareArgs) -> Result<ExitCode> {
    let read = |dir: &PathBuf| read_results(&env.cwd.join(dir));
    let (base, new) = (read(&args.base)?, read(&args.new)?);
    let comparison = compare(&base.records, &new.records);
    let limits = args.thresholds.thresholds();
    print!(
        "{}",
        render_comparison(&comparison, &limits, &text_options(env))
    );
    write_markdown(env, &new, Some(&comparison), args.summary.as_deref())?;
    Ok(ExitCode::from(if comparison.breaches(&limits).is_empty() {
        0
    } else {
        EXIT_BASELINE_BROKEN
    }))
}

pub fn run_report(env: &HostEnv, args: &ReportArgs) -> Result<ExitCode> {
    let output = env.cwd.join(&args.output);
    let baseline = check_outputs(env, &args.format, &args.output, &args.publish)?;
    let mut shards = Vec::new();
    for dir in &args.dirs {
        let dir = env.cwd.join(dir);
        if dir == output {
            bail!(
                "--output {} is one of the shards; merge into another directory",
                args.output.display()
            );
        }
        shards.push(read_results(&dir)?);
    }
    let mut merged = merge(shards);
    let opts = text_options(env);
    if args.rejudge {
        print!("{}", render_rejudged(&rejudge_report(&mut merged.report)));
    }
    // The cells that did not pass, a line each, as the sweep printed them.
    for record in merged.report.records.iter().filter(|r| !r.verdict.passed()) {
        print!("{}", render_line(record, &opts));
    }
    print!("{}", render_summary(&merged.report, &opts));
    if !merged.conflicts.is_empty() {
        println!("\nconflicts (shards judged one cell differently; every verdict is counted):");
        for c in &merged.conflicts {
            let verdicts: Vec<String> = c.verdicts.iter().map(|v| v.to_string()).collect();
            println!("  {}: {}", c.cell, verdicts.join(" vs "));
        }
    }
    if merged.duplicates > 0 {
        eprintln!(
            "note: {} cell(s) came from more than one shard with the same verdict; counted once",
            merged.duplicates
        );
    }
    if args.format.contains(&Format::Json) {
        let json: Arc<dyn Reporter> = Arc::new(JsonReporter::new(&output));
        json.sweep_started(merged.report.planned, &[])?;
        for record in &merged.report.records {
            json.cell_finished(record)?;
        }
        json.sweep_finished(&merged.report)?;
    }
    write_formats(&merged.report, &args.format, &output)?;
    let status = publish(env, &merged.report, &args.publish, baseline.as_ref(), &opts)?;
    Ok(ExitCode::from(status))
}

/// `rejudged 12 runs: 1 verdict changed`, each change, and the records that kept theirs.
fn render_rejudged(r: &Rejudged) -> String {
    let mut out = format!(
        "rejudged {} run(s) under this ktstr's rules: {} verdict(s) changed\n",
        r.judged,
        r.changed.len()
    );
    for (cell, stored, today) in &r.changed {
        out.push_str(&format!("  {cell}: {stored} → {today}\n"));
    }
    if r.legacy > 0 {
        out.push_str(&format!(
            "  {} record(s) of the first format keep their verdict: they hold conclusions, \
             not the guest's observations\n",
            r.legacy
        ));
    }
    out
}
