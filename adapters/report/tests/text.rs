//! Snapshots of the terminal rendering, and the reporter's I/O behaviour.

mod common;

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use common::*;
use ktstr_ports::reporter::Reporter;
use ktstr_report::{
    Show, TextOptions, TextReporter, render_cell, render_finished, render_line, render_summary,
};

/// Every cell's block: what the per-cell tests render.
const PLAIN: TextOptions = TextOptions {
    raw: false,
    color: false,
    show: Show::All,
    progress: false,
    github: false,
};
const RAW: TextOptions = TextOptions { raw: true, ..PLAIN };
const COLOR: TextOptions = TextOptions {
    color: true,
    ..PLAIN
};
/// The default: a line per cell, blocks for failures only; without and with a terminal.
const COMPACT: TextOptions = TextOptions {
    show: Show::Failures,
    ..PLAIN
};
const COMPACT_TTY: TextOptions = TextOptions {
    color: true,
    show: Show::Failures,
    ..PLAIN
};

/// What a sweep of every kind of cell prints with `opts`, summary included.
fn sweep_output(opts: TextOptions) -> String {
    let buf = SharedBuf::default();
    let reporter = TextReporter::new(Box::new(buf.clone()), opts);
    let cells = every_cell();
    reporter.sweep_started(cells.len(), &[]).unwrap();
    for record in &cells {
        reporter.cell_finished(record).unwrap();
    }
    buf.text()
}

/// By default, like nextest: one line per cell, the whole block only under failures.
#[test]
fn compact_output_without_a_terminal() {
    let out = sweep_output(COMPACT);
    assert!(!out.contains('\x1b'));
    insta::assert_snapshot!(out);
}

#[test]
fn compact_output_on_a_terminal() {
    let out = sweep_output(COMPACT_TTY);
    assert!(out.contains("\x1b["), "a terminal gets colour");
    insta::assert_snapshot!(out);
}

#[test]
fn show_none_prints_one_line_per_cell_and_all_every_block() {
    let none = sweep_output(TextOptions {
        show: Show::None,
        ..PLAIN
    });
    assert_eq!(none.lines().count(), 1 + every_cell().len(), "{none}");
    assert!(!none.contains("==="), "{none}");
    let all = sweep_output(PLAIN);
    assert_eq!(all.matches("=== ").count(), every_cell().len(), "{all}");
}

#[test]
fn the_line_names_the_gate_and_the_first_line_of_the_reason() {
    let line = render_line(&rejected(), &COMPACT);
    assert_eq!(
        line,
        " FAIL [   8.421s] scx-ktstr / kernel_6_16_4 / tiny-1llc: [verify] the verifier \
         rejected ktstr_enqueue: R6 invalid mem access 'scalar' (processed 48 insns)\n"
    );
}

/// `--repeat 3`: each boot has its line, and the summary marks and lists the count that
/// differed between boots.
#[test]
fn repeated_boots_mark_counts_that_differ() {
    let report = repeated_report();
    let line = render_line(&report.records[1], &COMPACT);
    assert!(
        line.ends_with("scx-ktstr / kernel_6_12_117 / tiny-2llc (boot 2/3)\n"),
        "{line}"
    );
    insta::assert_snapshot!(render_summary(&report, &PLAIN));
    let mut stable = report.clone();
    stable.records.retain(|r| r.cell.preset == "smt-2llc");
    let summary = render_summary(&stable, &PLAIN);
    assert!(
        summary.contains(
            "stable: every program's verified_insns was the same in all 3 boots of its cell"
        ),
        "{summary}"
    );
    assert!(!summary.contains('~'), "{summary}");
}

#[test]
fn passing_cell() {
    insta::assert_snapshot!(render_cell(&passing(), &PLAIN));
}

#[test]
fn verifier_rejection_collapsed() {
    insta::assert_snapshot!(render_cell(&rejected(), &PLAIN));
}

#[test]
fn verifier_rejection_raw() {
    insta::assert_snapshot!(render_cell(&rejected(), &RAW));
}

#[test]
fn not_attached_cell() {
    insta::assert_snapshot!(render_cell(&not_attached(), &PLAIN));
}

#[test]
fn timed_out_cell() {
    insta::assert_snapshot!(render_cell(&timed_out(), &PLAIN));
}

#[test]
fn attached_but_not_dispatched_cell() {
    insta::assert_snapshot!(render_cell(&not_dispatched(), &PLAIN));
}

#[test]
fn topology_and_cross_check_mismatch_cell() {
    insta::assert_snapshot!(render_cell(&mismatched(), &PLAIN));
}

#[test]
fn setup_failure_cell() {
    insta::assert_snapshot!(render_cell(&setup_failure(), &PLAIN));
}

#[test]
fn two_kernel_summary() {
    insta::assert_snapshot!(render_summary(&two_kernel_report(), &PLAIN));
}

#[test]
fn incomplete_summary() {
    insta::assert_snapshot!(render_summary(&incomplete_report(), &PLAIN));
}

#[test]
fn all_passing_summary() {
    insta::assert_snapshot!(render_summary(&all_passing_report(), &PLAIN));
}

#[test]
fn raw_keeps_every_iteration_and_collapsed_folds_them() {
    let rejected = rejected();
    let raw = render_cell(&rejected, &RAW);
    let folded = render_cell(&rejected, &PLAIN);
    assert_eq!(raw.matches("main.bpf.c:204").count(), 8);
    assert_eq!(folded.matches("main.bpf.c:204").count(), 2);
    assert!(folded.lines().count() < raw.lines().count());
}

#[test]
fn colour_escapes_only_when_asked() {
    for record in every_cell() {
        let plain = render_cell(&record, &PLAIN);
        assert!(!plain.contains("\x1b["), "{plain}");
        let colored = render_cell(&record, &COLOR);
        assert!(colored.contains("\x1b["), "{colored}");
        // Colour changes only the escapes, never the words.
        assert_eq!(strip_ansi(&colored), plain);
    }
    for report in [
        two_kernel_report(),
        incomplete_report(),
        all_passing_report(),
    ] {
        let plain = render_summary(&report, &PLAIN);
        assert!(!plain.contains("\x1b["), "{plain}");
        let colored = render_summary(&report, &COLOR);
        assert!(colored.contains("\x1b["), "{colored}");
        assert_eq!(strip_ansi(&colored), plain);
    }
}

#[test]
fn guest_text_cannot_inject_escapes() {
    let mut record = passing();
    if let Some(run) = &mut record.run {
        run.guest.scheduler_log = "\x1b[2Jcleared\n".into();
        run.guest.guest_errors = vec!["bell\x07".into()];
    }
    let out = render_cell(&record, &PLAIN);
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out}");
    // Terminal escapes are dropped; other control characters are shown escaped.
    assert!(out.contains("  cleared\n"), "{out}");
    assert!(out.contains("bell\\u{7}"), "{out}");
}

#[test]
fn environment_error_cell() {
    insta::assert_snapshot!(render_cell(&guest_oom(), &PLAIN));
}

#[test]
fn environment_error_summary() {
    insta::assert_snapshot!(render_summary(&env_error_report(), &PLAIN));
}

#[test]
fn a_coloured_scheduler_log_renders_clean() {
    let mut record = passing();
    if let Some(run) = &mut record.run {
        run.guest.scheduler_log =
            "\x1b[2m12:00:01\x1b[0m \x1b[32mINFO\x1b[0m Running scheduler\n".into();
    }
    for opts in [PLAIN, COLOR] {
        let out = strip_ansi(&render_cell(&record, &opts));
        assert!(
            out.contains("\n  12:00:01 INFO Running scheduler\n"),
            "{out}"
        );
        assert!(!out.contains("\\u{1b}"), "{out}");
    }
}

#[test]
fn multi_line_reasons_stay_inside_the_block() {
    let mut record = setup_failure();
    record.verdict = ktstr_domain::judging::verdict::Verdict::fail(
        ktstr_domain::judging::verdict::Gate::Setup,
        "booting failed\ncaused by: no /dev/kvm",
    );
    let out = render_cell(&record, &PLAIN);
    assert!(
        out.contains("  error: booting failed\n    caused by: no /dev/kvm\n"),
        "{out}"
    );
}

/// A sink the test can read back while the reporter owns a handle to it.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Tiny writes make interleaving likely if the reporter did not hold its lock.
        let n = buf.len().min(7);
        self.0.lock().unwrap().extend_from_slice(&buf[..n]);
        std::thread::yield_now();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[test]
fn concurrent_cells_print_whole_blocks() {
    let buf = SharedBuf::default();
    let reporter = Arc::new(TextReporter::new(Box::new(buf.clone()), PLAIN));
    let cells = every_cell();
    std::thread::scope(|s| {
        for record in &cells {
            let reporter = Arc::clone(&reporter);
            s.spawn(move || reporter.cell_finished(record).unwrap());
        }
    });
    let out = buf.text();
    for record in &cells {
        let block = render_finished(record, &PLAIN);
        assert!(out.contains(&block), "block interleaved:\n{out}");
    }
    let total: usize = cells.iter().map(|r| render_finished(r, &PLAIN).len()).sum();
    assert_eq!(out.len(), total);
}

#[test]
fn reporter_prints_warnings_then_cells_then_summary() {
    let buf = SharedBuf::default();
    let reporter = TextReporter::new(Box::new(buf.clone()), PLAIN);
    let report = all_passing_report();
    reporter
        .sweep_started(
            2,
            &["scx-rusty skipped: no kernel has CONFIG_SCHED_CLASS_EXT".into()],
        )
        .unwrap();
    for r in &report.records {
        reporter.cell_finished(r).unwrap();
    }
    reporter.sweep_finished(&report).unwrap();
    let out = buf.text();
    assert!(out.starts_with(
        "warning: scx-rusty skipped: no kernel has CONFIG_SCHED_CLASS_EXT\nrunning 2 cell(s)\n \
         PASS ["
    ));
    assert!(out.ends_with(&render_summary(&report, &PLAIN)));
}

struct BrokenPipe;

impl Write for BrokenPipe {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::BrokenPipe.into())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn write_errors_become_report_errors() {
    let reporter = TextReporter::new(Box::new(BrokenPipe), PLAIN);
    let err = reporter.sweep_started(1, &[]).unwrap_err();
    assert!(err.to_string().contains("text report"), "{err}");
}

/// Removes SGR sequences (`ESC [ ... m`), the only escapes the reporter emits.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn a_failed_host_read_without_the_cross_check_is_shown_not_judged() {
    let mut record = passing();
    if let Some(run) = &mut record.run {
        run.judgment.cross_check = None;
        run.judgment.progs_source = ktstr_domain::judging::record::StatsSource::Guest;
        run.host.reading = ktstr_domain::judging::evidence::HostReading::Failed(
            "reading guest memory: cycle in the program registry".into(),
        );
    }
    let out = render_cell(&record, &PLAIN);
    assert!(
        out.contains(
            "  host read: FAILED — reading guest memory: cycle in the program registry \
             (guest-reported numbers shown)\n"
        ),
        "{out}"
    );
    assert!(out.contains("  verdict: PASS"), "{out}");
}

/// A scheduler the kernel ejected during the probe: the kernel's words and the lost
/// liveness under the attach line; a record of the first format says what it is.
#[test]
fn an_ejection_and_a_first_format_record_are_shown_as_such() {
    let mut record = passing();
    if let Some(run) = &mut record.run {
        run.judgment.scx_exit = Some(ktstr_domain::judging::scx_exit::ScxExit {
            scheduler: "ktstr".into(),
            kind: ktstr_domain::judging::scx_exit::ScxExitKind::Error,
            reason: "scx_bpf_error".into(),
            message: Some("ktstr: 2 tasks dispatched".into()),
        });
        run.judgment.liveness = Some(
            "sched_ext disabled (scx_bpf_error): ktstr: 2 tasks \
                                      dispatched during the dispatch probe"
                .into(),
        );
        run.legacy = true;
    }
    let out = render_cell(&record, &PLAIN);
    assert!(
        out.contains(
            "  scheduler: attached (sched_ext enabled)\n  sched_ext: disabled (scx_bpf_error): \
             ktstr: 2 tasks dispatched\n  liveness: LOST — sched_ext disabled (scx_bpf_error): \
             ktstr: 2 tasks dispatched during the dispatch probe\n  record: first format"
        ),
        "{out}"
    );
}
