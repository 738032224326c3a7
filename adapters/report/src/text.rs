//! The terminal reporter: one block per finished cell, then the sweep summaries.

mod cell;
mod style;
mod summary;

use std::fmt;
use std::io::{self, Write};
use std::sync::{Mutex, PoisonError};

use ktstr_domain::report::{CellRecord, SweepReport};
use ktstr_ports::reporter::{ReportError, Reporter};

pub use cell::render_cell;
pub use summary::render_summary;

/// How text is rendered. The app decides `color` (a TTY and no `NO_COLOR`); this crate
/// never looks at the environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextOptions {
    /// Print scheduler logs as received instead of folding repeated loop iterations.
    pub raw: bool,
    /// Colour status words with ANSI escapes.
    pub color: bool,
}

/// Writes rendered text to a sink, one whole block per event.
pub struct TextReporter {
    // Cells finish concurrently: the lock keeps each block contiguous.
    out: Mutex<Box<dyn Write + Send>>,
    opts: TextOptions,
}

impl TextReporter {
    pub fn new(out: Box<dyn Write + Send>, opts: TextOptions) -> Self {
        TextReporter {
            out: Mutex::new(out),
            opts,
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

impl Reporter for TextReporter {
    fn sweep_started(&self, planned: usize, warnings: &[String]) -> Result<(), ReportError> {
        self.emit(&render_start(planned, warnings, &self.opts))
    }

    fn cell_finished(&self, record: &CellRecord) -> Result<(), ReportError> {
        self.emit(&render_cell(record, &self.opts))
    }

    fn sweep_finished(&self, report: &SweepReport) -> Result<(), ReportError> {
        self.emit(&render_summary(report, &self.opts))
    }
}
