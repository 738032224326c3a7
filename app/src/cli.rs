//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Verify, attach and dispatch sched_ext schedulers across kernels and CPU topologies.
#[derive(Debug, Parser)]
#[command(name = "ktstr", version, about)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the topology presets and which the host budget admits.
    Presets {
        /// Largest vCPU count one VM may have (default: 8 per host CPU).
        #[arg(long)]
        max_vcpus: Option<u32>,
    },
    /// Validate the scheduler manifest and show the presets each scheduler is swept across.
    Schedulers {
        /// Scheduler manifest (default: ./ktstr.toml).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Largest vCPU count one VM may have (default: 8 per host CPU).
        #[arg(long)]
        max_vcpus: Option<u32>,
    },
    /// Collapse unrolled loops in a BPF verifier log (from FILE or standard input).
    Collapse {
        /// The log; standard input when absent.
        file: Option<PathBuf>,
    },
}
