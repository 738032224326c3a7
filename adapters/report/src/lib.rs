//! Reporters for ktstr sweeps: a terminal reporter, a JSON record writer, and a
//! fan-out that drives several at once.

pub mod json;
pub mod junit;
pub mod markdown;
pub mod multi;
pub mod text;
pub mod veristat;

pub use json::JsonReporter;
pub use json::read_results;
pub use multi::MultiReporter;
pub use text::{
    Show, TextOptions, TextReporter, render_cell, render_comparison, render_finished, render_line,
    render_summary,
};
