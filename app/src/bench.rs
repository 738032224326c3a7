//! `ktstr bench`: runs the same sweep several times and reports per-cell wall time, where
//! it went, and the VMs' host memory.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use comfy_table::{Table, presets::NOTHING};
use ktstr_domain::judging::record::CellRecord;
use ktstr_domain::plan::cell::CellId;
use ktstr_domain::results::report::SweepReport;
use ktstr_domain::results::timing::breakdown;
use ktstr_ports::{ReportError, Reporter};

use crate::bench_profile::{self, PROFILE_KERNEL_ARGS};
use crate::cli::at_least_one;
use crate::host_env::HostEnv;
use crate::stop::Stop;
use crate::sweep::run_sweep;
use crate::verifier::{VerifierArgs, prepare};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub sweep: VerifierArgs,
    /// How many times to run the sweep.
    #[arg(long, default_value_t = 5, value_parser = at_least_one::<usize>)]
    pub repeat: usize,
    /// Also show where each cell's boot went: before the kernel, the kernel's setup, SMP
    /// bring-up, initcalls (the slowest by name) and the hand-over to the init. Boots with
    /// `initcall_debug`, which itself costs a little boot time.
    #[arg(long)]
    pub boot_profile: bool,
}

/// Keeps every record; prints one progress line per cell to stderr.
#[derive(Debug, Default)]
struct Collector {
    records: Mutex<Vec<CellRecord>>,
}

impl Reporter for Collector {
    fn sweep_started(&self, planned: usize, warnings: &[String]) -> Result<(), ReportError> {
        for w in warnings {
            eprintln!("warning: {w}");
        }
        eprintln!("bench: {planned} cell(s)");
        Ok(())
    }
    fn cell_started(&self, _cell: &CellId) {}

    fn cell_finished(&self, record: &CellRecord) -> Result<(), ReportError> {
        let verdict = if record.verdict.passed() {
            "pass"
        } else {
            "FAIL"
        };
        eprintln!("  {} {verdict} {} ms", record.cell, record.wall_ms);
        self.records
            .lock()
            .expect("not poisoned")
            .push(record.clone());
        Ok(())
    }
    fn sweep_finished(&self, _report: &SweepReport) -> Result<(), ReportError> {
        Ok(())
    }
}

pub fn median(values: &mut [u64]) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2
    }
}

/// `123 ms`, the median of `values`, or `-` when there are none.
pub fn median_ms(values: impl Iterator<Item = u64>) -> String {
    let mut values: Vec<u64> = values.collect();
    if values.is_empty() {
        "-".to_string()
    } else {
        format!("{} ms", median(&mut values))
    }
}

/// Each cell's runs, by cell name.
pub fn by_cell(records: &[CellRecord]) -> BTreeMap<String, Vec<&CellRecord>> {
    let mut by_cell: BTreeMap<String, Vec<&CellRecord>> = BTreeMap::new();
    for r in records {
        by_cell.entry(r.cell.to_string()).or_default().push(r);
    }
    by_cell
}

/// The table: per cell, medians of wall time and of each segment, and the peak RSS.
pub fn render(records: &[CellRecord], sweep_walls: &mut [u64]) -> String {
    let by_cell = by_cell(records);
    let segments = [
        "boot",
        "start",
        "load+verify+attach",
        "probe",
        "report",
        "vm overhead",
    ];
    let mut header = vec!["cell", "runs", "failed", "wall", "start→init"];
    header.extend(segments);
    header.push("peak RSS");
    let mut t = Table::new();
    t.load_preset(NOTHING).set_header(header);
    for (cell, runs) in &by_cell {
        let mut walls: Vec<u64> = runs.iter().map(|r| r.wall_ms).collect();
        let failed = runs.iter().filter(|r| !r.verdict.passed()).count();
        let mut row = vec![
            cell.clone(),
            runs.len().to_string(),
            failed.to_string(),
            format!("{} ms", median(&mut walls)),
            median_ms(
                runs.iter()
                    .filter_map(|r| r.run.as_ref()?.host.vm.init_after_ms),
            ),
        ];
        for segment in segments {
            let values: Vec<u64> = runs
                .iter()
                .filter_map(|r| {
                    let run = r.run.as_ref()?;
                    breakdown(&run.guest.phases, r.wall_ms)
                        .into_iter()
                        .find(|(label, _)| *label == segment)
                        .map(|(_, ms)| ms)
                })
                .collect();
            row.push(median_ms(values.into_iter()));
        }
        let rss = runs
            .iter()
            .filter_map(|r| r.run.as_ref()?.host.vm.peak_rss_kib)
            .max();
        row.push(rss.map_or("-".to_string(), |kib| format!("{} MiB", kib / 1024)));
        t.add_row(row);
    }
    let lines: Vec<String> = t.lines().map(|l| l.trim_end().to_string()).collect();
    format!(
        "{}\nsweep wall: median {} ms over {} run(s) (medians per cell; start→init on the host's clock from the VM's start to the init's first frame; segments from the guest's uptime)\n",
        lines.join("\n"),
        median(sweep_walls),
        sweep_walls.len()
    )
}

pub async fn run(env: &HostEnv, mut args: BenchArgs) -> Result<ExitCode> {
    if args.boot_profile {
        let words = PROFILE_KERNEL_ARGS.iter().map(|w| w.to_string());
        args.sweep.kernel_args.extend(words);
    }
    let stop = Stop::listen().context("listening for SIGINT, SIGTERM and SIGHUP")?;
    let collector = Arc::new(Collector::default());
    let p = prepare(env, &args.sweep, collector.clone())?;
    let mut sweep_walls = Vec::new();
    let mut all_passed = true;
    for _ in 0..args.repeat {
        let started = Instant::now();
        let interrupt = async {
            stop.requested().await;
        };
        let report = run_sweep(&p.decls, &p.kernel_specs, &p.ports, &p.settings, interrupt).await?;
        if let Some(signal) = stop.received() {
            eprintln!("bench stopped by {}", signal.name());
            return Ok(ExitCode::from(signal.exit_code()));
        }
        all_passed &= report.succeeded();
        sweep_walls.push(started.elapsed().as_millis() as u64);
    }
    let records = collector.records.lock().expect("not poisoned").clone();
    print!("{}", render(&records, &mut sweep_walls));
    if args.boot_profile {
        print!("{}", bench_profile::render(&records));
    }
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&mut [5, 1, 3]), 3);
        assert_eq!(median(&mut [4, 1, 3, 2]), 2);
        assert_eq!(median(&mut []), 0);
    }
}
