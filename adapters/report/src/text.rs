//! The terminal reporter: one line per finished cell (and its whole block when asked),
//! a live progress line on a terminal, then the sweep summaries.

mod cell_block;
mod comparison;
mod github;
mod line;
mod progress;
mod style;
mod summary;

use std::fmt;
use std::io::{self, Write};
use std::sync::{Mutex, PoisonError};

use ktstr_domain::judging::record::CellRecord;
use ktstr_domain::plan::cell::CellId;
use ktstr_domain::results::report::SweepReport;
use ktstr_ports::reporter::{ReportError, Reporter};

pub use cell_block::render_cell;
pub use comparison::render_comparison;
pub use line::render_line;
use progress::Progress;
pub use summary::render_summary;

/// Which finished cells get their whole block under their line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Show {
    /// Every cell.
    All,
    /// Cells that failed or hit an environment error.
    #[default]
    Failures,
    /// None: one line per cell only.
    None,
}

/// How text is rendered. The app decides `color` (a TTY and no `NO_COLOR`); this crate
/// never looks at the environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextOptions {
    /// Print scheduler logs as received instead of folding repeated loop iterations.
    pub raw: bool,
    /// Colour status words with ANSI escapes.
    pub color: bool,
    pub show: Show,
    /// Draw a live progress line on standard error (a terminal).
    pub progress: bool,
    /// Under GitHub Actions: an `::error` annotation per cell that did not pass.
    pub github: bool,
}

/// Writes rendered text to a sink, one whole block per event.
pub struct TextReporter {
    // Cells finish concurrently: the lock keeps each block contiguous.
    out: Mutex<Box<dyn Write + Send>>,
    opts: TextOptions,
    progress: Mutex<Option<Progress>>,
}

impl TextReporter {
    pub fn new(out: Box<dyn Write + Send>, opts: TextOptions) -> Self {
        TextReporter {
            out: Mutex::new(out),
            opts,
            progress: Mutex::new(None),
        }
    }

    pub fn stdout(opts: TextOptions) -> Self {
        Self::new(Box::new(io::stdout()), opts)
    }

    fn emit(&self, text: &str) -> Result<(), ReportError> {
        // A panic in another writer must not silence the rest of the sweep.
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| ReportError::caused("writing the text report", e))
    }
}

impl fmt::Debug for TextReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextReporter")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// The lines printed before any cell runs.
pub fn render_start(planned: usize, warnings: &[String], opts: &TextOptions) -> String {
    let mut out = String::new();
    for w in warnings {
        out.push_str(&style::warn("warning", opts));
        out.push_str(": ");
        out.push_str(&style::sanitize(w));
        out.push('\n');
    }
    out.push_str(&format!("running {planned} cell(s)\n"));
    out
}

/// What a finished cell prints: its line, and its block when `opts.show` asks for it.
pub fn render_finished(record: &CellRecord, opts: &TextOptions) -> String {
    let mut text = render_line(record, opts);
    let block = match opts.show {
        Show::All => true,
        Show::Failures => !record.verdict.passed(),
        Show::None => false,
    };
    if block {
        text.push_str(&render_cell(record, opts));
    }
    if opts.github
        && let Some(annotation) = github::annotation(record)
    {
        text.push_str(&annotation);
    }
    text
}

impl TextReporter {
    fn progress(&self) -> std::sync::MutexGuard<'_, Option<Progress>> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Reporter for TextReporter {
    fn sweep_started(&self, planned: usize, warnings: &[String]) -> Result<(), ReportError> {
        self.emit(&render_start(planned, warnings, &self.opts))?;
        if self.opts.progress {
            *self.progress() = Some(Progress::new(planned));
        }
        Ok(())
    }

    fn cell_started(&self, cell: &CellId) {
        if let Some(progress) = self.progress().as_ref() {
            progress.started(cell);
        }
    }

    fn cell_finished(&self, record: &CellRecord) -> Result<(), ReportError> {
        let text = render_finished(record, &self.opts);
        match self.progress().as_ref() {
            Some(progress) => {
                let mut result = Ok(());
                progress.finished(&record.cell, || result = self.emit(&text));
                result
            }
            None => self.emit(&text),
        }
    }

    fn sweep_finished(&self, report: &SweepReport) -> Result<(), ReportError> {
        if let Some(progress) = self.progress().take() {
            progress.clear();
        }
        self.emit(&render_summary(report, &self.opts))
    }
}
