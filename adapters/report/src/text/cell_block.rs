//! One cell's block, printed as soon as the cell finishes.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use ktstr_domain::judging::attach::AttachOutcome;
use ktstr_domain::judging::record::{CellRecord, RunRecord, StatsSource};
use ktstr_domain::judging::verdict::Verdict;
use ktstr_domain::protocol::wire::DecodeStats;
use ktstr_domain::results::timing::breakdown;
use ktstr_domain::verifier_log::collapse::collapse;
use ktstr_domain::verifier_log::prog::prog_type_name;

use super::TextOptions;
use super::style::{bad, good, guest_line, sanitize, strip_escapes, warn};

/// The whole block for one cell, ending with a newline.
pub fn render_cell(record: &CellRecord, opts: &TextOptions) -> String {
    let mut out = String::new();
    write_cell(&mut out, record, opts).expect("writing to a String cannot fail");
    out
}

fn write_cell(out: &mut String, record: &CellRecord, opts: &TextOptions) -> fmt::Result {
    let cell = &record.cell;
    match record.boot {
        Some(boot) => writeln!(
            out,
            "=== {} | kernel {} | topology {} | {boot} ===",
            cell.scheduler, cell.kernel, cell.preset
        )?,
        None => writeln!(
            out,
            "=== {} | kernel {} | topology {} ===",
            cell.scheduler, cell.kernel, cell.preset
        )?,
    }
    match &record.run {
        Some(run) => write_run(out, record, run, opts)?,
        None => {
            let reason = match &record.verdict {
                Verdict::Fail { reason, .. } | Verdict::Error { reason, .. } => reason.as_str(),
                Verdict::Pass => "no VM run was recorded",
            };
            writeln!(out, "  error: {}", continued(reason, "    "))?;
        }
    }
    match &record.verdict {
        Verdict::Pass => {
            let backend = record.run.as_ref().map(|r| r.host.vm.backend.as_str());
            write!(
                out,
                "  verdict: {} ({} ms",
                good("PASS", opts),
                record.wall_ms
            )?;
            match backend {
                Some(backend) => writeln!(out, ", {})", sanitize(backend)),
                None => writeln!(out, ")"),
            }
        }
        Verdict::Fail { gate, reason } => writeln!(
            out,
            "  verdict: {} [{gate}] {}",
            bad("FAIL", opts),
            continued(reason, "    ")
        ),
        // Not the scheduler's ❌: the environment failed and the cell proves nothing.
        Verdict::Error { cause, reason } => writeln!(
            out,
            "  verdict: {} [environment: {cause}] {}",
            warn("ERROR", opts),
            continued(reason, "    ")
        ),
    }
}

fn write_run(
    out: &mut String,
    record: &CellRecord,
    run: &RunRecord,
    opts: &TextOptions,
) -> fmt::Result {
    match &run.judgment.attach {
        AttachOutcome::Attached => writeln!(
            out,
            "  scheduler: {} (sched_ext enabled)",
            good("attached", opts)
        )?,
        // The watchdog cut the run short, so a missing confirmation proves nothing.
        _ if run.host.vm.timed_out => writeln!(
            out,
            "  scheduler: {} — VM timed out before exit",
            bad("UNKNOWN", opts)
        )?,
        other => {
            let reason = other.failure_reason().unwrap_or_default();
            writeln!(
                out,
                "  scheduler: {} — {}",
                bad("NOT ATTACHED", opts),
                continued(&reason, "    ")
            )?;
        }
    }

    // The kernel's own words when sched_ext stopped the scheduler.
    if let Some(exit) = &run.judgment.scx_exit {
        writeln!(out, "  sched_ext: {}", continued(&exit.to_string(), "    "))?;
    }
    // Gone before the probe ended: what the probe saw after that says nothing.
    if let Some(why) = &run.judgment.liveness {
        writeln!(
            out,
            "  liveness: {} — {}",
            bad("LOST", opts),
            continued(why, "    ")
        )?;
    }
    if run.legacy {
        writeln!(
            out,
            "  record: first format (conclusions only, no guest observations; its verdict \
             stands as written)"
        )?;
    }

    let note = run.judgment.dispatch_note.as_deref();
    if run.judgment.dispatched {
        match note {
            Some(note) => writeln!(
                out,
                "  dispatch: {} ({})",
                good("confirmed", opts),
                continued(note, "    ")
            )?,
            None => writeln!(out, "  dispatch: {}", good("confirmed", opts))?,
        }
    } else {
        writeln!(
            out,
            "  dispatch: {} — {}",
            bad("NOT CONFIRMED", opts),
            continued(note.unwrap_or("no WorkloadDispatched frame"), "    ")
        )?;
    }

    write_progs(out, run)?;

    // With the cross-check on, a failed read is one of its mismatches below.
    if let (Some(e), None) = (run.host.read_error(), &run.judgment.cross_check) {
        writeln!(
            out,
            "  host read: {} — {} (guest-reported numbers shown)",
            warn("FAILED", opts),
            continued(e, "    ")
        )?;
    }
    if let Some(check) = &run.judgment.cross_check {
        if check.agrees() {
            writeln!(out, "  cross-check: host and guest agree")?;
        } else {
            writeln!(out, "  cross-check: {}", bad("MISMATCH", opts))?;
            for m in &check.mismatches {
                writeln!(out, "    - {}", continued(m, "      "))?;
            }
        }
    }

    if let Some(seen) = &run.guest.topology {
        match seen.check(&record.topology) {
            Ok(()) => writeln!(out, "  topology: guest saw {}", record.topology)?,
            Err(mismatch) => writeln!(out, "  topology: {} — {mismatch}", bad("MISMATCH", opts))?,
        }
    }

    for e in &run.guest.guest_errors {
        writeln!(
            out,
            "  {}: {}",
            bad("guest error", opts),
            continued(e, "    ")
        )?;
    }

    if let Some(wire) = wire_trouble(&run.host.frame_stats) {
        writeln!(out, "  frames: {wire}")?;
    }

    let segments = breakdown(&run.guest.phases, record.wall_ms);
    if !segments.is_empty() {
        let mut parts: Vec<String> = segments
            .iter()
            .map(|(label, ms)| format!("{label} {ms} ms"))
            .collect();
        // The guest's clock starts with its kernel; the host's with the VM.
        if let Some(ms) = run.host.vm.init_after_ms {
            parts.push(format!("VM start to init {ms} ms (host)"));
        }
        writeln!(out, "  time: {}", parts.join(" · "))?;
    }
    // What the guest had and what its VM cost the host: the first thing to look at when
    // memory is in doubt.
    write!(out, "  memory: guest {} MiB", run.host.memory.mib)?;
    match run.host.vm.peak_rss_kib {
        Some(kib) => writeln!(out, " · host RSS peak {} MiB", kib / 1024)?,
        None => writeln!(out)?,
    }

    // The console explains a guest that vanished or hung; a scheduler's own failure is in
    // its log below.
    let vanished = run.host.vm.timed_out
        || run.judgment.attach == AttachOutcome::Unconfirmed
        || record.verdict.is_env_error();
    if vanished && !run.host.console.tail.is_empty() {
        writeln!(out, "  --- kernel console (last lines) ---")?;
        for line in run.host.console.tail.lines() {
            writeln!(out, "  {}", sanitize(&strip_escapes(line)))?;
        }
    }

    if !run.judgment.verifier_stats.is_empty() {
        writeln!(out, "  --- verifier stats ---")?;
        for s in &run.judgment.verifier_stats {
            writeln!(out, "  {s}")?;
        }
    }

    if !run.guest.scheduler_log.is_empty() {
        writeln!(out, "  --- scheduler log ---")?;
        let log = if opts.raw {
            Cow::Borrowed(run.guest.scheduler_log.as_str())
        } else {
            collapse(&run.guest.scheduler_log)
        };
        for line in log.lines() {
            if line.trim().is_empty() {
                writeln!(out)?;
            } else {
                // Loaders colour their own log lines: colours on a colour terminal, plain
                // text anywhere else.
                writeln!(out, "  {}", guest_line(line, opts))?;
            }
        }
    }
    Ok(())
}

fn write_progs(out: &mut String, run: &RunRecord) -> fmt::Result {
    if run.judgment.progs.is_empty() {
        return writeln!(out, "  verified_insns: none reported");
    }
    let source = match run.judgment.progs_source {
        StatsSource::Host => "host-read",
        StatsSource::Guest => "guest-reported",
    };
    writeln!(out, "  verified_insns ({source}):")?;
    let names: Vec<Cow<'_, str>> = run
        .judgment
        .progs
        .iter()
        .map(|p| sanitize(&p.name))
        .collect();
    let name_w = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let types: Vec<Cow<'_, str>> = run
        .judgment
        .progs
        .iter()
        .map(|p| prog_type_name(p.prog_type))
        .collect();
    let type_w = types.iter().map(|t| t.len()).max().unwrap_or(0);
    let insns_w = run
        .judgment
        .progs
        .iter()
        .map(|p| p.verified_insns.to_string().len())
        .max()
        .unwrap_or(0);
    for ((name, prog_type), prog) in names.iter().zip(&types).zip(&run.judgment.progs) {
        writeln!(
            out,
            "    {name:<name_w$}  {prog_type:<type_w$}  {:>insns_w$}",
            prog.verified_insns
        )?;
    }
    Ok(())
}

/// Only decode anomalies are worth a line; a clean stream says nothing.
fn wire_trouble(stats: &DecodeStats) -> Option<String> {
    let problems: Vec<String> = [
        (stats.corrupt, "corrupt"),
        (stats.truncated, "truncated"),
        (stats.oversized, "oversized"),
        (stats.bad_payload, "with bad payload"),
        (stats.unknown_kind, "of unknown kind"),
        (stats.excess, "past the frame limit, dropped"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .chain((stats.garbage_bytes > 0).then(|| format!("{} garbage bytes", stats.garbage_bytes)))
    .collect();
    if problems.is_empty() {
        return None;
    }
    Some(format!("{} decoded; {}", stats.frames, problems.join(", ")))
}

/// Sanitised text whose further lines are indented under the first.
fn continued(text: &str, indent: &str) -> String {
    text.trim_end()
        .lines()
        .map(sanitize)
        .collect::<Vec<_>>()
        .join(&format!("\n{indent}"))
}
