//! ktstr's kernel cache: builds kernels with sched_ext from source into a cache keyed by
//! their inputs, and resolves `--kernel` specs to bootable artifacts.

pub mod build;
pub mod cache_dir;
pub mod source;
pub mod spec_lookup;
mod step_log;

use std::io;
use std::path::Path;

use ktstr_domain::kernel::config_variant::VariantError;
use ktstr_domain::kernel::kconfig::{FragmentOption, parse_fragment};
use thiserror::Error;

pub use build::{BuildRequest, BuildStage, Builder, UserFragment};
pub use cache_dir::{CacheDir, Corrupt, Entry, Metadata};
pub use source::KernelSource;
pub use spec_lookup::FsKernelCache;

/// The kconfig fragment every ktstr kernel is built with.
pub const FRAGMENT: &str = include_str!("../ktstr.kconfig");

/// The fragment's options; the fragment ships with the binary, so a parse error is a bug.
pub fn fragment_options() -> Vec<FragmentOption> {
    parse_fragment(FRAGMENT).expect("ktstr.kconfig is well-formed (tested)")
}

#[derive(Debug, Error)]
pub enum CacheError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "kernel source {0} not found; install Debian's: apt-get install linux-source-6.12 (or pass --source DIR|TARBALL)"
    )]
    SourceMissing(String),
    #[error("kernel source {path}: {reason}")]
    BadSource { path: String, reason: String },
    #[error(
        "kernel {label}: `make olddefconfig` dropped {}; this source cannot give what ktstr needs (pass --allow-dropped to keep it anyway, e.g. for a pre-sched_ext kernel)",
        dropped.join(", ")
    )]
    Dropped { label: String, dropped: Vec<String> },
    #[error("{step} failed (exit {code}); full log: {log}\n--- last lines ---\n{tail}")]
    Step {
        step: String,
        code: String,
        log: String,
        tail: String,
    },
    #[error("`{tool}` not found: {hint}")]
    Tool { tool: String, hint: String },
    #[error("no cached kernel matches `{spec}`")]
    NoMatch { spec: String },
    #[error("--kconfig: {0}")]
    Variant(#[from] VariantError),
    /// The build was stopped from outside (a signal); nothing was installed.
    #[error(
        "kernel build stopped while {step}; nothing was installed and its scratch space is removed"
    )]
    Stopped { step: String },
}

impl CacheError {
    pub fn io(path: &Path, source: io::Error) -> Self {
        CacheError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_fragment_parses_and_has_what_sched_ext_needs() {
        let opts = super::fragment_options();
        let has = |name: &str| opts.iter().any(|o| o.name == name && o.value == "y");
        for name in [
            "CONFIG_SCHED_CLASS_EXT",
            "CONFIG_BPF_SYSCALL",
            "CONFIG_DEBUG_INFO_BTF",
            "CONFIG_NUMA",
            "CONFIG_FUNCTION_TRACER",
            "CONFIG_SECCOMP_FILTER",
            "CONFIG_MEMBARRIER",
        ] {
            assert!(has(name), "{name}");
        }
        assert!(opts.iter().all(|o| !o.reason.is_empty()));
    }
}
