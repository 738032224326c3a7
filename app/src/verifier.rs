//! `ktstr verifier`: wires the real adapters into the sweep use case.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ktstr_domain::kernel::spec::KernelSpec;
use ktstr_domain::plan::guest_memory::{MAX_GUEST_MIB, MIN_GUEST_MIB};
use ktstr_domain::plan::manifest::{SchedulerBinary, SchedulerDecl};
use ktstr_domain::plan::matrix::MatrixRequest;
use ktstr_domain::plan::partition::Partition;
use ktstr_domain::plan::waits::WaitOverrides;
use ktstr_host::find_executable;
use ktstr_initramfs::InitramfsBuilder;
use ktstr_introspection::GuestIntrospector;
use ktstr_ports::Reporter;
use ktstr_report::{JsonReporter, MultiReporter, Show, TextOptions, TextReporter};
use ktstr_scheduler_source::CargoSchedulerSource;

use crate::backends::{self, BackendChoice, HostFacts};
use crate::cli::at_least_one;
use crate::host;
use crate::host_env::HostEnv;
use crate::manifest_file::{DEFAULT_MANIFEST, load_manifest};
use crate::outputs::{Format, PublishArgs, check_outputs, publish, write_formats};
use crate::stop::Stop;
use crate::sweep::{SweepPorts, SweepSettings, plan_cells, run_sweep};

/// The fixture scheduler's binary and the guest init, installed beside `ktstr`.
pub const FIXTURE: &str = "scx-ktstr";
pub const GUEST_INIT: &str = "ktstr-init";

/// Bytes of scheduler output the guest keeps (the tail): enough for the verifier's
/// largest logs.
const LOG_LIMIT_BYTES: u64 = 32 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowCells {
    /// Every cell.
    All,
    /// Failed cells and environment errors.
    Failures,
    /// No blocks: one line per cell.
    None,
}

impl From<ShowCells> for Show {
    fn from(show: ShowCells) -> Show {
        match show {
            ShowCells::All => Show::All,
            ShowCells::Failures => Show::Failures,
            ShowCells::None => Show::None,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct VerifierArgs {
    /// Keep cells whose name contains any of these (e.g. `tiny-1llc`).
    pub filters: Vec<String>,
    /// Kernel: a version, range (a..b, a..=b), path or cache key; repeatable.
    #[arg(long = "kernel")]
    pub kernels: Vec<String>,
    /// Only this declared scheduler.
    #[arg(long)]
    pub scheduler: Option<String>,
    /// Scheduler manifest (default: ./ktstr.toml, else the built-in fixture scx-ktstr).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Print verifier logs untouched (no cycle collapse).
    #[arg(long)]
    pub raw: bool,
    /// Which finished cells get their whole block (programs, stats, log) under their
    /// one-line verdict.
    #[arg(long, value_enum, default_value_t = ShowCells::Failures)]
    pub show: ShowCells,
    /// Cells booted at once (default: host CPUs).
    #[arg(long, value_parser = at_least_one::<usize>)]
    pub jobs: Option<usize>,
    /// Run one shard of the sweep: `hash:K/N` (by cell name) or `count:K/N` (by
    /// position); `ktstr report` merges the shards' results.
    #[arg(long, value_name = "KIND:K/N")]
    pub partition: Option<Partition>,
    /// Largest vCPU count one VM may have (default: 8 per host CPU).
    #[arg(long, value_parser = at_least_one::<u32>, help_heading = CELL_OPTIONS)]
    pub max_vcpus: Option<u32>,
    /// Host watchdog per VM: seconds the guest may go without a word on its frame channel
    /// (default: scaled with the cell's vCPUs and the accelerator: 124 s for 4 vCPUs under
    /// TCG, 248 s for 128). A VM is stopped at four times this in any case.
    #[arg(long, value_parser = at_least_one::<u64>, help_heading = CELL_OPTIONS)]
    pub timeout: Option<u64>,
    /// Seconds the guest waits for sched_ext to reach `enabled` (default: scaled, 61 s for
    /// 4 vCPUs under TCG, 92 s for 128).
    #[arg(long, value_parser = at_least_one::<u64>, help_heading = CELL_OPTIONS)]
    pub attach_timeout: Option<u64>,
    /// Most milliseconds the dispatch probe runs after attach; it ends as soon as every
    /// worker has run again after a wake-up (default: scaled, about 500).
    #[arg(long, value_parser = at_least_one::<u64>, help_heading = CELL_OPTIONS)]
    pub probe_ms: Option<u64>,
    /// Guest RAM of every cell, in MiB (default: sized from the scheduler's image and the
    /// cell's vCPUs; a scheduler's `memory_mib` in the manifest overrides that).
    #[arg(long, value_name = "MIB", value_parser = parse_memory_mib, help_heading = CELL_OPTIONS)]
    pub memory: Option<u32>,
    /// Do not fail cells whose host-read and guest-reported programs disagree.
    #[arg(long, help_heading = CELL_OPTIONS)]
    pub no_cross_check: bool,
    /// Hypervisor backend (`ktstr backends` shows which can run here).
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto, help_heading = CELL_OPTIONS)]
    pub backend: BackendChoice,
    /// The QEMU binary the qemu backend runs (default: qemu-system-x86_64 on PATH), e.g. a
    /// build of your own or a wrapper.
    #[arg(long, value_name = "PATH", help_heading = CELL_OPTIONS)]
    pub qemu: Option<PathBuf>,
    /// Not supported: guests always boot with `nokaslr` (see docs/introspection.md).
    #[arg(long)]
    pub kaslr: bool,
    /// A word added to every guest's kernel command line, after ktstr's own (e.g.
    /// `--kernel-arg initcall_debug`); repeatable.
    #[arg(long = "kernel-arg", value_name = "WORD", value_parser = parse_kernel_word, help_heading = CELL_OPTIONS)]
    pub kernel_args: Vec<String>,
    /// The options under [`CELL_OPTIONS`] as the command line gave them (clap's value
    /// sources): what a cell's rerun line repeats. Filled by [`VerifierArgs::note_given`].
    #[arg(skip)]
    pub given_cell_options: Vec<String>,
}

/// The help heading of the options that change what a cell does; its rerun line repeats
/// those given on the command line, and only those.
pub const CELL_OPTIONS: &str = "What a cell does";

impl VerifierArgs {
    /// Records, from the parsed command line, which of the [`CELL_OPTIONS`] it gave and
    /// how (`command` is the subcommand these arguments belong to).
    pub fn note_given(&mut self, command: &clap::Command, matches: &clap::ArgMatches) {
        self.given_cell_options = given_cell_options(command, matches);
    }
}

/// `--long value` for each option under [`CELL_OPTIONS`] given on the command line, in
/// the order the options are declared; a flag alone when it takes no value.
fn given_cell_options(command: &clap::Command, matches: &clap::ArgMatches) -> Vec<String> {
    let mut words = Vec::new();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if arg.get_help_heading() != Some(CELL_OPTIONS)
            || matches.value_source(id) != Some(clap::parser::ValueSource::CommandLine)
        {
            continue;
        }
        let long = format!("--{}", arg.get_long().unwrap_or(id));
        if !arg.get_action().takes_values() {
            words.push(long);
            continue;
        }
        for value in matches.get_raw(id).into_iter().flatten() {
            words.push(long.clone());
            words.push(value.to_string_lossy().into_owned());
        }
    }
    words
}

/// One command-line word: a space would split it into words ktstr never checked.
fn parse_kernel_word(text: &str) -> Result<String, String> {
    if text.is_empty() || text.contains(char::is_whitespace) {
        return Err(format!(
            "`{text}` is not one kernel command-line word: pass each word with its own --kernel-arg"
        ));
    }
    Ok(text.to_string())
}

fn parse_memory_mib(text: &str) -> Result<u32, String> {
    let mib: u32 = text
        .parse()
        .map_err(|e| format!("`{text}` is not a number of MiB: {e}"))?;
    if mib < MIN_GUEST_MIB {
        return Err(format!(
            "{mib} MiB is too small: a guest needs at least {MIN_GUEST_MIB} MiB"
        ));
    }
    if mib > MAX_GUEST_MIB {
        return Err(format!(
            "{mib} MiB is above the {MAX_GUEST_MIB} MiB one guest may have (is it in MiB?)"
        ));
    }
    Ok(mib)
}

/// The built-in subject when no manifest exists: the fixture scheduler, no knobs.
pub fn fixture_decl(exe_dir: &Path) -> SchedulerDecl {
    SchedulerDecl {
        memory_mib: None,
        name: FIXTURE.to_string(),
        binary: SchedulerBinary::Path(exe_dir.join(FIXTURE).display().to_string()),
        sched_args: Vec::new(),
        kernels: Vec::new(),
        topology: Default::default(),
    }
}

fn companion(env: &HostEnv, name: &str, package: &str) -> Result<PathBuf> {
    let path = env.exe_dir.join(name);
    if !path.is_file() {
        bail!(
            "{} not found beside ktstr; build it with: cargo build --release -p {package}",
            path.display()
        );
    }
    Ok(path)
}

/// The declarations, the directory their relative paths and packages belong to, and the
/// manifest they came from (none for the built-in fixture).
fn declarations(
    env: &HostEnv,
    args: &VerifierArgs,
) -> Result<(PathBuf, Option<PathBuf>, Vec<SchedulerDecl>)> {
    if args.manifest.is_some() || env.cwd.join(DEFAULT_MANIFEST).exists() {
        let (path, decls) = load_manifest(args.manifest.as_deref(), &env.cwd)?;
        let dir = path.parent().unwrap_or(&env.cwd).to_path_buf();
        return Ok((dir, Some(path), decls));
    }
    companion(env, FIXTURE, FIXTURE)?;
    Ok((env.cwd.clone(), None, vec![fixture_decl(&env.exe_dir)]))
}

/// `ktstr verifier` with the options that change what a cell does: what its repro line
/// starts with.
fn rerun_command(args: &VerifierArgs, manifest: Option<&Path>) -> Vec<String> {
    let mut command = vec!["ktstr".to_string(), "verifier".to_string()];
    if let Some(manifest) = manifest {
        command.push("--manifest".into());
        command.push(manifest.display().to_string());
    }
    command.extend(args.given_cell_options.iter().cloned());
    command
}

/// Everything one sweep needs, wired from the real adapters.
#[derive(Debug)]
pub struct Prepared {
    pub decls: Vec<SchedulerDecl>,
    pub kernel_specs: Vec<KernelSpec>,
    pub ports: SweepPorts,
    pub settings: SweepSettings,
}

/// How the terminal text looks for these options on this host.
pub fn text_options(env: &HostEnv, args: &VerifierArgs) -> TextOptions {
    TextOptions {
        raw: args.raw,
        color: env.color,
        show: args.show.into(),
        progress: env.stderr_tty,
        github: env.github_actions,
    }
}

/// The terminal text, plus JSON records with `--format json`.
pub fn reporter_for(env: &HostEnv, command: &VerifierCommand) -> Arc<dyn Reporter> {
    let text: Arc<dyn Reporter> = Arc::new(TextReporter::stdout(text_options(env, &command.sweep)));
    if command.format.contains(&Format::Json) {
        Arc::new(MultiReporter::new(vec![
            text,
            Arc::new(JsonReporter::new(env.cwd.join(&command.output))),
        ]))
    } else {
        text
    }
}

pub fn prepare(
    env: &HostEnv,
    args: &VerifierArgs,
    reporter: Arc<dyn Reporter>,
) -> Result<Prepared> {
    if args.kaslr {
        bail!(
            "--kaslr is not supported: the host reads verified_insns from guest memory at the \
             kernel's link-time addresses, so every guest boots with nokaslr"
        );
    }
    // The backend first: without one nothing else matters.
    let mut facts = HostFacts::probe(&env.path);
    if let Some(qemu) = &args.qemu {
        let path = env.cwd.join(qemu);
        if !path.is_file() {
            bail!(
                "--qemu {}: no such file; pass the path of a qemu-system-x86_64",
                path.display()
            );
        }
        facts.qemu = Some(path);
    }
    let selection = backends::select(args.backend, &facts)?;
    eprint!("{}", selection.explain());
    let (workspace, manifest, decls) = declarations(env, args)?;
    let kernel_specs = args
        .kernels
        .iter()
        .map(|k| {
            k.parse::<KernelSpec>()
                .with_context(|| format!("--kernel `{k}`"))
        })
        .collect::<Result<Vec<_>>>()?;
    let init = companion(env, GUEST_INIT, "ktstr-guest-init")?;
    let cargo = find_executable(&env.path, "cargo").unwrap_or_else(|| PathBuf::from("cargo"));
    let ports = SweepPorts {
        kernels: Arc::new(env.kernel_cache()),
        hypervisor: backends::build(&selection, &facts)?,
        schedulers: Arc::new(CargoSchedulerSource::new(workspace, cargo)),
        images: Arc::new(InitramfsBuilder::new(
            init,
            env.cache_base.join("initramfs"),
            LOG_LIMIT_BYTES,
        )),
        introspection: Some(Arc::new(GuestIntrospector::new())),
        reporter,
    };
    let settings = SweepSettings {
        request: MatrixRequest {
            scheduler: args.scheduler.clone(),
            filters: args.filters.clone(),
            host: host::host_budget(args.max_vcpus),
        },
        jobs: args.jobs.unwrap_or_else(host::host_cpus_usize),
        memory_budget_mib: host::memory_budget_mib(),
        waits: WaitOverrides {
            watchdog: args.timeout.map(Duration::from_secs),
            attach: args.attach_timeout.map(Duration::from_secs),
            probe: args.probe_ms.map(Duration::from_millis),
        },
        memory_mib: args.memory,
        kernel_args: ["panic=-1", "nokaslr", "quiet", "loglevel=4"]
            .iter()
            .map(|s| s.to_string())
            .chain(args.kernel_args.iter().cloned())
            .collect(),
        cross_check: !args.no_cross_check,
        boots_per_cell: 1,
        partition: args.partition,
        rerun_command: rerun_command(args, manifest.as_deref()),
    };
    Ok(Prepared {
        decls,
        kernel_specs,
        ports,
        settings,
    })
}

/// `ktstr verifier`: the sweep's options, and how often to boot each cell.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifierCommand {
    #[command(flatten)]
    pub sweep: VerifierArgs,
    /// Boot each cell N times and report every program whose verified_insns differ
    /// between the boots (counts that depend on the guest, not on the topology).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = at_least_one::<u32>)]
    pub repeat: u32,
    /// Outputs besides the text, written under --output: json (a record per cell as it
    /// finishes, and a summary), csv (veristat's), junit. Repeatable.
    #[arg(long, value_enum)]
    pub format: Vec<Format>,
    /// Where --format writes its files.
    #[arg(long, default_value = "ktstr-report")]
    pub output: PathBuf,
    #[command(flatten)]
    pub publish: PublishArgs,
    /// Print the names of the cells the sweep would run, one per line, and boot nothing
    /// (what the test harness lists).
    #[arg(long)]
    pub list: bool,
}

pub async fn run(env: &HostEnv, command: VerifierCommand) -> Result<ExitCode> {
    let args = &command.sweep;
    let stop = Stop::listen().context("listening for SIGINT, SIGTERM and SIGHUP")?;
    let baseline = check_outputs(env, &command.format, &command.output, &command.publish)?;
    let mut p = prepare(env, args, reporter_for(env, &command))?;
    p.settings.boots_per_cell = command.repeat;
    if command.list {
        let (_, matrix) = plan_cells(&p.decls, &p.kernel_specs, &p.ports, &p.settings).await?;
        for cell in &matrix.cells {
            println!("{}", cell.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let interrupt = async {
        stop.requested().await;
    };
    let report = run_sweep(&p.decls, &p.kernel_specs, &p.ports, &p.settings, interrupt).await?;
    write_formats(&report, &command.format, &env.cwd.join(&command.output))?;
    let status = publish(
        env,
        &report,
        &command.publish,
        baseline.as_ref(),
        &text_options(env, args),
    )?;
    // An incomplete sweep ends with the status of the signal that stopped it.
    Ok(ExitCode::from(match stop.received() {
        Some(signal) if !report.complete => signal.exit_code(),
        _ => status,
    }))
}

#[cfg(test)]
mod rerun_tests {
    use super::*;
    use crate::cli::{Cli, Command};

    fn sweep(words: &[&str]) -> VerifierArgs {
        match Cli::try_from_words(words).unwrap().command {
            Command::Verifier(v) => v.sweep,
            other => panic!("{other:?}"),
        }
    }

    /// The rerun line repeats every option that changes a cell, as given, and nothing
    /// that only shapes the sweep or its output: one list, the help heading's.
    #[test]
    fn the_rerun_line_repeats_the_cell_options_given_and_only_those() {
        let args = sweep(&[
            "ktstr",
            "verifier",
            "--jobs",
            "2",
            "--kernel-arg",
            "quiet",
            "--timeout=30",
            "--show",
            "all",
            "--no-cross-check",
            "--kernel-arg",
            "nosmt",
            "--backend",
            "qemu",
            "tiny-1llc",
        ]);
        assert_eq!(
            rerun_command(&args, Some(Path::new("/m/ktstr.toml"))),
            [
                "ktstr",
                "verifier",
                "--manifest",
                "/m/ktstr.toml",
                "--timeout",
                "30",
                "--no-cross-check",
                "--backend",
                "qemu",
                "--kernel-arg",
                "quiet",
                "--kernel-arg",
                "nosmt"
            ]
        );
        // Defaults are not repeated: nothing given, nothing added.
        assert_eq!(
            rerun_command(&sweep(&["ktstr", "verifier"]), None),
            ["ktstr", "verifier"]
        );
    }
}
