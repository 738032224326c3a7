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
    /// Boot every declared scheduler per (kernel × topology) cell and check that its BPF
    /// verifies, it attaches, and it dispatches.
    Verifier(crate::verifier::VerifierArgs),
    /// Run a sweep several times and report per-cell wall time, its phases and host memory.
    Bench(crate::bench::BenchArgs),
    /// Show each hypervisor backend, whether it can run on this host and why, and which
    /// one `--backend auto` picks.
    Backends,
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
    /// Build, list, locate and remove cached kernels.
    Kernel {
        #[command(subcommand)]
        command: KernelCommand,
    },
    /// Collapse unrolled loops in a BPF verifier log (from FILE or standard input).
    Collapse {
        /// The log; standard input when absent.
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KernelCommand {
    /// Build a kernel with ktstr's kconfig fragment into the cache (a no-op when cached).
    Build {
        /// Kernel source: a tarball or a clean tree (default: Debian's linux-source-6.12).
        #[arg(long)]
        source: Option<PathBuf>,
        /// Label shown in sweeps (default: the kernel version).
        #[arg(long)]
        label: Option<String>,
        /// Parallel compile jobs (default: host CPUs).
        #[arg(long)]
        jobs: Option<usize>,
        /// Keep the kernel even when fragment options did not survive, e.g. a kernel
        /// older than sched_ext kept for comparison.
        #[arg(long)]
        allow_dropped: bool,
        /// Rebuild even when the cache has this kernel.
        #[arg(long)]
        force: bool,
    },
    /// List cached kernels.
    List,
    /// Print where the kernel a spec names lives (usable as --kernel).
    Path {
        /// A version, range, cache key or label.
        spec: String,
    },
    /// Remove cached kernels a spec selects.
    Rm {
        /// A version, range, cache key or label.
        spec: String,
    },
}
