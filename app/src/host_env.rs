//! What the process's environment tells ktstr, read once at the edge and passed on as
//! values.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use ktstr_domain::kernel::spec::KernelSpec;
use ktstr_kernel_cache::{CacheDir, FsKernelCache};

use crate::kernel_cmd::cache_base;

#[derive(Debug, Clone)]
pub struct HostEnv {
    pub cwd: PathBuf,
    pub home: Option<PathBuf>,
    /// `KTSTR_CACHE_DIR`, `$XDG_CACHE_HOME/ktstr` or `~/.cache/ktstr`.
    pub cache_base: PathBuf,
    /// `KTSTR_KERNEL`: the kernel used when no `--kernel` is given.
    pub default_kernel: Option<KernelSpec>,
    /// `PATH`, to find QEMU and cargo.
    pub path: OsString,
    /// The directory of the running `ktstr`, where its companion binaries live.
    pub exe_dir: PathBuf,
    /// Colour on standard output: a terminal and no `NO_COLOR`.
    pub color: bool,
    /// Standard error is a terminal (progress displays).
    pub stderr_tty: bool,
    /// Running as a GitHub Actions step (`GITHUB_ACTIONS=true`): annotate failures.
    pub github_actions: bool,
    /// `GITHUB_STEP_SUMMARY`: where GitHub takes a step's Markdown summary from.
    pub step_summary: Option<PathBuf>,
}

impl HostEnv {
    pub fn from_process() -> Result<Self> {
        let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
        let home = var("HOME");
        let cache_base = cache_base(var("KTSTR_CACHE_DIR"), var("XDG_CACHE_HOME"), home.clone())?;
        let default_kernel = match std::env::var("KTSTR_KERNEL") {
            Ok(spec) if !spec.is_empty() => Some(
                spec.parse()
                    .with_context(|| format!("KTSTR_KERNEL=`{spec}` is not a kernel spec"))?,
            ),
            _ => None,
        };
        let exe = std::env::current_exe().context("locating the ktstr binary")?;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Ok(HostEnv {
            cwd: std::env::current_dir().context("reading the current directory")?,
            home,
            cache_base,
            default_kernel,
            path: std::env::var_os("PATH").unwrap_or_default(),
            exe_dir: exe.parent().map(PathBuf::from).unwrap_or_default(),
            color: std::io::stdout().is_terminal() && !no_color,
            stderr_tty: std::io::stderr().is_terminal(),
            github_actions: std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
            step_summary: var("GITHUB_STEP_SUMMARY").filter(|p| !p.as_os_str().is_empty()),
        })
    }

    pub fn kernel_cache(&self) -> FsKernelCache {
        FsKernelCache::new(
            CacheDir::new(self.cache_base.join("kernels")),
            self.cwd.clone(),
            self.home.clone(),
            self.default_kernel.clone(),
        )
    }
}
