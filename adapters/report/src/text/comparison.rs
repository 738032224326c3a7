//! The comparison with a baseline, for the terminal: changed programs largest growth
//! first, then the cells whose verdict changed, then what breaks the thresholds.

use std::fmt::Write as _;

use comfy_table::{Table, presets::NOTHING};
use ktstr_domain::results::baseline::{Comparison, Thresholds};

use super::TextOptions;
use super::style::{bad, good, sanitize};

pub fn render_comparison(
    comparison: &Comparison,
    limits: &Thresholds,
    opts: &TextOptions,
) -> String {
    let mut out = String::new();
    let changed: Vec<_> = comparison
        .programs
        .iter()
        .filter(|p| p.base != p.new)
        .collect();
    let unchanged = comparison.programs.len() - changed.len();
    let _ = writeln!(
        out,
        "verified_insns against the baseline (delta = new - base, largest growth first; {unchanged} unchanged):"
    );
    if changed.is_empty() {
        let _ = writeln!(out, "  no program's count changed");
    } else {
        let mut t = Table::new();
        t.load_preset(NOTHING)
            .set_header(["cell", "program", "base", "new", "delta", "%"]);
        let num = |n: Option<u32>| n.map_or("-".to_string(), |n| n.to_string());
        for p in changed {
            t.add_row([
                p.cell.to_string(),
                sanitize(&p.program).into_owned(),
                num(p.base),
                num(p.new),
                p.delta().map_or_else(
                    || if p.base.is_none() { "new" } else { "gone" }.to_string(),
                    |d| format!("{d:+}"),
                ),
                p.percent()
                    .map_or("-".to_string(), |pct| format!("{pct:+.1}%")),
            ]);
        }
        for line in t.lines() {
            let _ = writeln!(out, "  {}", line.trim_end());
        }
    }
    if !comparison.verdict_changes.is_empty() {
        let _ = writeln!(out, "verdict changes:");
        for c in &comparison.verdict_changes {
            let _ = writeln!(out, "  {}  {} -> {}", c.cell, c.base, c.new);
        }
    }
    let breaches = comparison.breaches(limits);
    if limits.max_growth_percent.is_some() || limits.fail_on_new_failure {
        if breaches.is_empty() {
            let _ = writeln!(out, "{}", good("baseline thresholds met", opts));
        } else {
            let _ = writeln!(out, "{}:", bad("baseline thresholds broken", opts));
            for b in breaches {
                let _ = writeln!(out, "  {b}");
            }
        }
    }
    out
}
