//! The live progress line on a terminal: cells done of all, elapsed, an estimate, and the
//! cells running now. Cell lines are printed above it.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ktstr_domain::plan::cell::CellId;

/// Running cells are named while they fit in this many characters.
const RUNNING_WIDTH: usize = 60;

pub(crate) struct Progress {
    bar: ProgressBar,
    running: Mutex<Vec<String>>,
}

impl Progress {
    /// A bar of `total` cells drawn on standard error.
    pub(crate) fn new(total: usize) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {pos}/{len} cells [{elapsed_precise}, about {eta} left] {msg}",
            )
            .expect("the template is valid"),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        Progress {
            bar,
            running: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn started(&self, cell: &CellId) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.push(short_name(cell));
        self.bar.set_message(running_message(&running));
    }

    /// Prints `text` above the bar, then counts `cell` done.
    pub(crate) fn finished(&self, cell: &CellId, print: impl FnOnce()) {
        self.bar.suspend(print);
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = running.iter().position(|c| *c == short_name(cell)) {
            running.remove(at);
        }
        self.bar.set_message(running_message(&running));
        self.bar.inc(1);
    }

    /// Removes the bar before the summary is printed.
    pub(crate) fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

fn short_name(cell: &CellId) -> String {
    format!("{}/{}", cell.scheduler, cell.preset)
}

/// `running: a/tiny-1llc, b/smt-2llc (+3 more)`, within `RUNNING_WIDTH` characters.
pub(crate) fn running_message(running: &[String]) -> String {
    if running.is_empty() {
        return String::new();
    }
    let mut shown = String::from("running:");
    for (i, name) in running.iter().enumerate() {
        let left = running.len() - i - 1;
        let more = if left > 0 {
            format!(" (+{left} more)").len()
        } else {
            0
        };
        if i > 0 && shown.len() + 2 + name.len() + more > RUNNING_WIDTH {
            shown.push_str(&format!(" (+{} more)", running.len() - i));
            return shown;
        }
        shown.push_str(if i == 0 { " " } else { ", " });
        shown.push_str(name);
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_cells_are_named_while_they_fit() {
        assert_eq!(running_message(&[]), "");
        let two = [
            "scx-ktstr/tiny-1llc".to_string(),
            "scx-ktstr/smt-2llc".into(),
        ];
        assert_eq!(
            running_message(&two),
            "running: scx-ktstr/tiny-1llc, scx-ktstr/smt-2llc"
        );
        let many: Vec<String> = (0..9).map(|i| format!("scx_bpfland/odd-{i}llc")).collect();
        let shown = running_message(&many);
        assert!(shown.len() <= RUNNING_WIDTH + 12, "{shown}");
        assert_eq!(shown, "running: scx_bpfland/odd-0llc (+8 more)");
        assert!(shown.ends_with(" more)"), "{shown}");
    }
}
