//! `ktstr bench --boot-profile`: where each cell's boot went, from the host's clock up to
//! the kernel and the kernel's own records after it (medians over the runs).

use std::collections::BTreeMap;

use comfy_table::{Table, presets::NOTHING};
use ktstr_domain::judging::record::CellRecord;
use ktstr_domain::results::boot_profile::BootProfile;

use crate::bench::{by_cell, median, median_ms};

/// Kernel command-line words that make the guest keep and send its boot records:
/// `initcall_debug` times every initcall, a larger log keeps all of its records.
pub const PROFILE_KERNEL_ARGS: [&str; 3] =
    ["initcall_debug", "log_buf_len=1M", "ktstr.boot_profile=1"];

/// How many initcalls each cell lists.
const SLOWEST_SHOWN: usize = 8;

/// The stretches of one run's boot in ms: `before kernel` (VM start, firmware and
/// decompression: the host's VM start to init, less the guest's uptime at init), the
/// kernel's own segments, then `exec to init` (the init's start up to its first frame).
fn stretches(record: &CellRecord) -> Vec<(&'static str, u64)> {
    let Some(run) = &record.run else {
        return Vec::new();
    };
    let Some(profile) = BootProfile::of(&run.guest) else {
        return Vec::new();
    };
    let init_uptime = run
        .guest
        .phases
        .iter()
        .find(|(p, _)| p == "init")
        .map(|(_, ms)| *ms);
    let mut out = Vec::new();
    if let (Some(host), Some(guest)) = (run.host.vm.init_after_ms, init_uptime) {
        out.push(("before kernel", host.saturating_sub(guest)));
    }
    out.extend(profile.segments());
    if let (Some(exec), Some(guest)) = (profile.run_init_us, init_uptime) {
        out.push(("exec to init", guest.saturating_sub(exec / 1000)));
    }
    out.push(("initcalls Σ", profile.initcall_total_us / 1000));
    out
}

/// The profile tables: per cell, the median of each stretch, then its slowest initcalls.
pub fn render(records: &[CellRecord]) -> String {
    let columns = [
        "before kernel",
        "setup",
        "smp bring-up",
        "initcalls",
        "to init",
        "exec to init",
        "initcalls Σ",
    ];
    let mut header = vec!["cell", "vCPUs"];
    header.extend(columns);
    let mut t = Table::new();
    t.load_preset(NOTHING).set_header(header);
    let mut slowest_lines = Vec::new();
    for (cell, runs) in &by_cell(records) {
        let per_run: Vec<Vec<(&str, u64)>> = runs.iter().map(|r| stretches(r)).collect();
        let mut row = vec![cell.clone(), runs[0].topology.cpus().to_string()];
        for column in columns {
            let values = per_run
                .iter()
                .filter_map(|s| s.iter().find(|(l, _)| *l == column).map(|(_, ms)| *ms));
            row.push(median_ms(values));
        }
        t.add_row(row);
        let profiles: Vec<BootProfile> = runs
            .iter()
            .filter_map(|r| BootProfile::of(&r.run.as_ref()?.guest))
            .collect();
        if let Some(line) = slowest_initcalls(&profiles) {
            slowest_lines.push(format!("  {cell}: {line}"));
        }
    }
    let lines: Vec<String> = t.lines().map(|l| l.trim_end().to_string()).collect();
    let mut out = format!(
        "boot profile (medians; before kernel = host VM start to init less the guest's uptime then; the rest from the kernel's log records, with initcall_debug on):\n{}\n",
        lines.join("\n")
    );
    if !slowest_lines.is_empty() {
        out.push_str("slowest initcalls (median ms):\n");
        for line in slowest_lines {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// `acpi_init 320, pty_init 287, ...`: each initcall's median over the runs that list it.
fn slowest_initcalls(profiles: &[BootProfile]) -> Option<String> {
    let mut by_name: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for p in profiles {
        for call in &p.slowest {
            by_name.entry(&call.name).or_default().push(call.usecs);
        }
    }
    let mut calls: Vec<(&str, u64)> = by_name
        .into_iter()
        .map(|(name, mut us)| (name, median(&mut us)))
        .collect();
    calls.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    calls.truncate(SLOWEST_SHOWN);
    (!calls.is_empty()).then(|| {
        calls
            .iter()
            .map(|(name, us)| format!("{name} {}", us / 1000))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

#[cfg(test)]
mod tests {
    use ktstr_domain::judging::verdict::Verdict;
    use ktstr_domain::protocol::observation::KernelRecord;
    use ktstr_domain::results::report::samples::record;

    use super::*;

    fn profiled(acpi_us: u64, init_after_ms: u64) -> CellRecord {
        let text = [
            (900_000, "smp: Bringing up secondary CPUs ...".to_string()),
            (1_000_000, "smp: Brought up 1 node, 4 CPUs".to_string()),
            (
                2_500_000,
                format!("initcall acpi_init+0x0/0x48e returned 0 after {acpi_us} usecs"),
            ),
            (
                2_510_000,
                "initcall pty_init+0x0/0x300 returned 0 after 100000 usecs".to_string(),
            ),
            (2_600_000, "Run /init as init process".to_string()),
        ];
        let records: Vec<KernelRecord> = text
            .into_iter()
            .map(|(usec, text)| KernelRecord { usec, text })
            .collect();
        let mut r = record("verifier/s/k/tiny-1llc", Verdict::Pass, vec![]);
        let run = r.run.as_mut().unwrap();
        run.guest.phases = vec![("init".into(), 2_650)];
        run.host.vm.init_after_ms = Some(init_after_ms);
        run.guest.kernel_log = records;
        r
    }

    #[test]
    fn the_profile_splits_each_boot_and_names_the_slowest_initcalls() {
        let records = [
            profiled(300_000, 3_000),
            profiled(320_000, 3_100),
            profiled(340_000, 3_500),
        ];
        let out = render(&records);
        let row = out
            .lines()
            .find(|l| l.contains("verifier/s/k/tiny-1llc"))
            .unwrap();
        let cells: Vec<&str> = row
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        // before kernel (median of 350, 450, 850), setup, smp, initcalls, to init,
        // exec to init, initcalls Σ.
        assert_eq!(
            cells,
            [
                "verifier/s/k/tiny-1llc",
                "4",
                "450 ms",
                "900 ms",
                "100 ms",
                "1510 ms",
                "90 ms",
                "50 ms",
                "420 ms"
            ]
        );
        assert!(
            out.contains("  verifier/s/k/tiny-1llc: acpi_init 320, pty_init 100\n"),
            "{out}"
        );
    }

    #[test]
    fn runs_without_a_profile_show_dashes() {
        let out = render(&[record("verifier/s/k/tiny-1llc", Verdict::Pass, vec![])]);
        assert!(out.contains("-"), "{out}");
        assert!(!out.contains("slowest initcalls"), "{out}");
    }
}
