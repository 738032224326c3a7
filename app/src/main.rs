use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use ktstr::cli::{Cli, Command, KernelCommand};
use ktstr::host_env::HostEnv;
use ktstr::stop::Stop;
use ktstr::{backends, commands, host, kernel_cmd, manifest_file};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::from_process();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // Logs go to standard error, never into the report; colour only on a terminal.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(level))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", ktstr::error_text::error_chain(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Verifier(args) => {
            let env = HostEnv::from_process()?;
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            return runtime.block_on(ktstr::verifier::run(&env, args));
        }
        Command::Bench(args) => {
            let env = HostEnv::from_process()?;
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            return runtime.block_on(ktstr::bench::run(&env, args));
        }
        Command::Compare(args) => {
            let env = HostEnv::from_process()?;
            return ktstr::results_cmd::run_compare(&env, &args);
        }
        Command::Report(args) => {
            let env = HostEnv::from_process()?;
            return ktstr::results_cmd::run_report(&env, &args);
        }
        Command::Backends => {
            let env = HostEnv::from_process()?;
            print!(
                "{}",
                backends::report(&backends::HostFacts::probe(&env.path))
            );
        }
        Command::Presets { max_vcpus } => {
            print!("{}", commands::presets(host::host_budget(max_vcpus)));
        }
        Command::Schedulers {
            manifest,
            max_vcpus,
        } => {
            let cwd = std::env::current_dir().context("reading the current directory")?;
            let (path, decls) = manifest_file::load_manifest(manifest.as_deref(), &cwd)?;
            println!("manifest: {}", path.display());
            print!(
                "{}",
                commands::schedulers(&decls, host::host_budget(max_vcpus))
            );
        }
        Command::Kernel { command } => {
            // A build is stopped whole by SIGINT, SIGTERM or SIGHUP (its steps killed, its
            // scratch removed, its lock released), then ends with the signal's status.
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let stop = runtime
                .block_on(async { Stop::listen() })
                .context("listening for SIGINT, SIGTERM and SIGHUP")?;
            match kernel(command, stop.flag()) {
                Ok(text) => print!("{text}"),
                Err(e) => match stop.received() {
                    Some(signal) => {
                        eprintln!("error: {}", ktstr::error_text::error_chain(e.as_ref()));
                        return Ok(ExitCode::from(signal.exit_code()));
                    }
                    None => return Err(e),
                },
            }
        }
        Command::Collapse { file } => {
            let log = match &file {
                Some(path) => std::fs::read(path)
                    .with_context(|| format!("reading verifier log {}", path.display()))?,
                None => {
                    let mut buf = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut buf)
                        .context("reading the verifier log from standard input")?;
                    buf
                }
            };
            print!("{}", commands::collapse_log(&String::from_utf8_lossy(&log)));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn kernel(command: KernelCommand, stop: Arc<AtomicBool>) -> Result<String> {
    let env = HostEnv::from_process()?;
    let kernels = env.kernel_cache();
    match command {
        KernelCommand::Build {
            source,
            label,
            kconfig,
            jobs,
            allow_dropped,
            force,
        } => {
            let args = kernel_cmd::BuildArgs {
                source,
                label,
                kconfig,
                jobs,
                allow_dropped,
                force,
            };
            kernel_cmd::build(kernels.cache(), &args, env.stderr_tty, stop)
        }
        KernelCommand::List => kernel_cmd::list(kernels.cache(), std::time::SystemTime::now()),
        KernelCommand::Path { spec } => kernel_cmd::path(&kernels, &spec),
        KernelCommand::Rm { spec } => kernel_cmd::remove(&kernels, &spec),
    }
}
