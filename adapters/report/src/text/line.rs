//! One line per finished cell, as test runners print them: the verdict, the time, the
//! cell, and for a failure the gate and the first line of its reason.

use ktstr_domain::judging::record::CellRecord;
use ktstr_domain::judging::verdict::Verdict;

use super::TextOptions;
use super::style::{bad, good, sanitize, warn};

/// `   PASS [  3.105s] scx-ktstr / kernel_6_12_118 / tiny-1llc`, ending with a newline.
pub fn render_line(record: &CellRecord, opts: &TextOptions) -> String {
    let cell = &record.cell;
    let mut name = sanitize(&format!(
        "{} / {} / {}",
        cell.scheduler, cell.kernel, cell.preset
    ))
    .into_owned();
    if let Some(boot) = record.boot {
        name.push_str(&format!(" ({boot})"));
    }
    // Padded before colouring, so the escapes do not count as width.
    let (status, why) = match &record.verdict {
        Verdict::Pass => (good(&format!("{:>5}", "PASS"), opts), String::new()),
        Verdict::Fail { gate, reason } => (
            bad(&format!("{:>5}", "FAIL"), opts),
            format!(": [{gate}] {}", first_line(reason)),
        ),
        Verdict::Error { cause, reason } => (
            warn(&format!("{:>5}", "ERROR"), opts),
            format!(": [environment: {cause}] {}", first_line(reason)),
        ),
    };
    let secs = record.wall_ms as f64 / 1000.0;
    format!("{status} [{secs:>8.3}s] {name}{why}\n")
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim_end();
    let more = if text.trim_end().lines().nth(1).is_some() {
        " …"
    } else {
        ""
    };
    format!("{}{more}", sanitize(line))
}
