//! The fixture's cells as tests, through ktstr's harness (`harness = false`): what
//! `cargo nextest run -p ktstr-tests --test cells` runs, one process per cell. Two small
//! cells keep it short.

mod common;

use std::process::ExitCode;

use common::{KERNEL_6_12, ensure_kernels, ktstr_bin, tempfile_dir};
use ktstr::harness::{CellHarness, run};

fn main() -> ExitCode {
    ensure_kernels();
    // A directory per process: nextest runs each cell in a process of its own, at once.
    let dir = tempfile_dir(&format!("harness-{}", std::process::id()));
    run(&CellHarness {
        ktstr: ktstr_bin(),
        dir,
        args: vec!["--kernel".into(), KERNEL_6_12.into()],
        filters: vec!["tiny-1llc".into(), "smt-2llc".into()],
    })
}
