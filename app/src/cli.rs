//! The command line.

use std::fmt::Display;
use std::path::PathBuf;
use std::str::FromStr;

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
    Verifier(crate::verifier::VerifierCommand),
    /// Run a sweep several times and report per-cell wall time, its phases and host memory.
    Bench(crate::bench::BenchArgs),
    /// Compare two results directories (--format json): per program of each cell the base
    /// and new verified_insns, largest growth first, and the cells whose verdict changed.
    Compare(crate::results_cmd::CompareArgs),
    /// Merge the results of a sweep's shards (--partition) into one report: the tables,
    /// exit status and files a single-machine run gives.
    Report(crate::results_cmd::ReportArgs),
    /// Show each hypervisor backend, whether it can run on this host and why, and which
    /// one `--backend auto` picks.
    Backends,
    /// List the topology presets and which the host budget admits.
    Presets {
        /// Largest vCPU count one VM may have (default: 8 per host CPU).
        #[arg(long, value_parser = at_least_one::<u32>)]
        max_vcpus: Option<u32>,
    },
    /// Validate the scheduler manifest and show the presets each scheduler is swept across.
    Schedulers {
        /// Scheduler manifest (default: ./ktstr.toml).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Largest vCPU count one VM may have (default: 8 per host CPU).
        #[arg(long, value_parser = at_least_one::<u32>)]
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
        /// Label shown in sweeps (default: the kernel version). With --kconfig, the
        /// variant's name: the label becomes VERSION+NAME.
        #[arg(long)]
        label: Option<String>,
        /// A kconfig fragment merged after ktstr's own (repeatable, in order): the kernel
        /// becomes a variant labelled VERSION+NAME (NAME from --label or the file name),
        /// chosen only by that label or its key, never by a version, range or default.
        #[arg(long = "kconfig", value_name = "FRAGMENT")]
        kconfig: Vec<PathBuf>,
        /// Parallel compile jobs (default: host CPUs).
        #[arg(long, value_parser = at_least_one::<usize>)]
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

/// A count or duration that means nothing at zero (`--jobs 0` would boot nothing,
/// `--max-vcpus 0` admit nothing): refused with the reason instead of taken silently.
pub fn at_least_one<T>(text: &str) -> Result<T, String>
where
    T: FromStr + PartialOrd + From<u8>,
    T::Err: Display,
{
    let value: T = text
        .trim()
        .parse()
        .map_err(|e| format!("`{text}` is not a whole number: {e}"))?;
    if value < T::from(1) {
        return Err("must be at least 1".into());
    }
    Ok(value)
}

impl Cli {
    /// Parses the process's command line (exiting with clap's message on bad input), and
    /// records which cell options it gave for the rerun lines.
    pub fn from_process() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let command = Cli::command();
        let matches = command.clone().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        cli.note_given(&command, &matches);
        cli
    }

    /// As [`Cli::from_process`], from `words` (the program name first); for tests.
    pub fn try_from_words(words: &[&str]) -> Result<Self, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        let command = Cli::command();
        let matches = command.clone().try_get_matches_from(words)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        cli.note_given(&command, &matches);
        Ok(cli)
    }

    fn note_given(&mut self, command: &clap::Command, matches: &clap::ArgMatches) {
        let Some((name, sub)) = matches.subcommand() else {
            return;
        };
        let Some(sub_command) = command.find_subcommand(name) else {
            return;
        };
        match &mut self.command {
            Command::Verifier(v) => v.sweep.note_given(sub_command, sub),
            Command::Bench(b) => b.sweep.note_given(sub_command, sub),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn refusal(args: &[&str]) -> String {
        Cli::try_parse_from(args).unwrap_err().to_string()
    }

    #[test]
    fn zero_counts_and_durations_are_refused_by_name() {
        for (args, option) in [
            (&["ktstr", "presets", "--max-vcpus", "0"][..], "--max-vcpus"),
            (&["ktstr", "verifier", "--jobs", "0"], "--jobs"),
            (&["ktstr", "verifier", "--max-vcpus", "0"], "--max-vcpus"),
            (&["ktstr", "verifier", "--timeout", "0"], "--timeout"),
            (
                &["ktstr", "verifier", "--attach-timeout", "0"],
                "--attach-timeout",
            ),
            (&["ktstr", "verifier", "--probe-ms", "0"], "--probe-ms"),
            (&["ktstr", "bench", "--repeat", "0"], "--repeat"),
            (&["ktstr", "kernel", "build", "--jobs", "0"], "--jobs"),
        ] {
            let err = refusal(args);
            assert!(
                err.contains(option) && err.contains("must be at least 1"),
                "{args:?}: {err}"
            );
        }
        let err = refusal(&["ktstr", "verifier", "--jobs", "two"]);
        assert!(err.contains("`two` is not a whole number"), "{err}");
        assert!(Cli::try_parse_from(["ktstr", "verifier", "--jobs", "1"]).is_ok());
    }
}
