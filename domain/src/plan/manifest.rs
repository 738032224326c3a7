//! The scheduler manifest (`ktstr.toml`): which schedulers a sweep covers and how.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::kernel::spec::KernelSpec;
use crate::plan::guest_memory::{MAX_GUEST_MIB, MIN_GUEST_MIB};
use crate::shape::constraints::TopologyConstraints;

/// Where a scheduler's userspace binary comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerBinary {
    /// A prebuilt binary; a relative path is relative to the manifest's directory.
    Path(String),
    /// A package of the surrounding Cargo workspace, built on demand.
    Package(String),
}

/// One declared scheduler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerDecl {
    pub name: String,
    pub binary: SchedulerBinary,
    pub sched_args: Vec<String>,
    pub kernels: Vec<KernelSpec>,
    pub topology: TopologyConstraints,
    /// Guest RAM for this scheduler's cells; `None` sizes it from the image and vCPUs.
    pub memory_mib: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ManifestError {
    #[error("{0}")]
    Toml(String),
    #[error(
        "the manifest declares no schedulers; add a [[scheduler]] table with a name and a binary or package"
    )]
    Empty,
    #[error("scheduler #{0} has an empty name")]
    EmptyName(usize),
    #[error("scheduler name `{0}` contains `/`, which would make cell names ambiguous; rename it")]
    Slash(String),
    #[error("scheduler `{0}` is declared twice; scheduler names must be unique")]
    Duplicate(String),
    #[error("scheduler `{0}` sets both `binary` and `package`; keep one")]
    BothSources(String),
    #[error(
        "scheduler `{0}` needs `binary = \"path/to/scheduler\"` or `package = \"cargo-package\"`"
    )]
    NoSource(String),
    #[error("scheduler `{0}` sets max_numa_nodes below min_numa_nodes")]
    NumaBounds(String),
    #[error("scheduler `{0}` sets max_llcs below min_llcs")]
    LlcBounds(String),
    #[error(
        "scheduler `{0}` sets memory_mib = {1}; a guest may have {MIN_GUEST_MIB} to \
         {MAX_GUEST_MIB} MiB (leave it out to size memory from the image)"
    )]
    MemoryOutOfRange(String, u32),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    scheduler: Vec<RawScheduler>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScheduler {
    name: String,
    binary: Option<String>,
    package: Option<String>,
    #[serde(default)]
    sched_args: Vec<String>,
    #[serde(default)]
    kernels: Vec<KernelSpec>,
    #[serde(default)]
    topology: TopologyConstraints,
    memory_mib: Option<u32>,
}

/// Parses and validates a manifest's text.
pub fn parse_manifest(text: &str) -> Result<Vec<SchedulerDecl>, ManifestError> {
    let raw: RawManifest =
        toml::from_str(text).map_err(|e| ManifestError::Toml(e.to_string().trim().to_string()))?;
    if raw.scheduler.is_empty() {
        return Err(ManifestError::Empty);
    }
    let mut seen = HashSet::new();
    raw.scheduler
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            if s.name.is_empty() {
                return Err(ManifestError::EmptyName(i + 1));
            }
            if s.name.contains('/') {
                return Err(ManifestError::Slash(s.name));
            }
            if !seen.insert(s.name.clone()) {
                return Err(ManifestError::Duplicate(s.name));
            }
            let t = &s.topology;
            if t.max_numa_nodes < t.min_numa_nodes {
                return Err(ManifestError::NumaBounds(s.name));
            }
            if t.max_llcs.is_some_and(|max| max < t.min_llcs) {
                return Err(ManifestError::LlcBounds(s.name));
            }
            if let Some(mib) = s
                .memory_mib
                .filter(|m| !(MIN_GUEST_MIB..=MAX_GUEST_MIB).contains(m))
            {
                return Err(ManifestError::MemoryOutOfRange(s.name, mib));
            }
            let binary = match (s.binary, s.package) {
                (Some(_), Some(_)) => return Err(ManifestError::BothSources(s.name)),
                (None, None) => return Err(ManifestError::NoSource(s.name)),
                (Some(path), None) => SchedulerBinary::Path(path),
                (None, Some(package)) => SchedulerBinary::Package(package),
            };
            Ok(SchedulerDecl {
                name: s.name,
                binary,
                sched_args: s.sched_args,
                kernels: s.kernels,
                topology: s.topology,
                memory_mib: s.memory_mib,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_declaration() {
        let decls = parse_manifest(
            r#"
            [[scheduler]]
            name = "scx-ktstr"
            package = "scx-ktstr"
            sched_args = ["--verify-loop"]
            kernels = ["6.12..=6.13", "6.1.158"]
            [scheduler.topology]
            min_llcs = 2
            max_numa_nodes = 2
            requires_smt = true
            max_cpus = 64

            [[scheduler]]
            name = "scx_simple"
            binary = "bin/scx_simple"
            memory_mib = 1536
            "#,
        )
        .unwrap();
        assert_eq!(decls.len(), 2);
        let a = &decls[0];
        assert_eq!(a.binary, SchedulerBinary::Package("scx-ktstr".into()));
        assert_eq!(a.sched_args, ["--verify-loop"]);
        assert_eq!(a.kernels.len(), 2);
        assert_eq!(a.topology.min_llcs, 2);
        assert_eq!(a.topology.max_numa_nodes, 2);
        assert!(a.topology.requires_smt);
        assert_eq!(a.topology.max_cpus, Some(64));
        let b = &decls[1];
        assert_eq!(b.binary, SchedulerBinary::Path("bin/scx_simple".into()));
        assert_eq!(b.topology, TopologyConstraints::default());
        assert!(b.kernels.is_empty());
        assert_eq!((a.memory_mib, b.memory_mib), (None, Some(1536)));
    }

    fn err(text: &str) -> String {
        parse_manifest(text).unwrap_err().to_string()
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = err("[[scheduler]]\nname = \"a\"\nbinary = \"x\"\nschedargs = []\n");
        assert!(e.contains("unknown field `schedargs`"), "{e}");
        let e =
            err("[[scheduler]]\nname = \"a\"\nbinary = \"x\"\n[scheduler.topology]\nmin_llc = 2\n");
        assert!(e.contains("unknown field `min_llc`"), "{e}");
        let e = err("[[schedulers]]\nname = \"a\"\n");
        assert!(e.contains("unknown field `schedulers`"), "{e}");
    }

    #[test]
    fn invalid_declarations_get_actionable_errors() {
        assert_eq!(
            err(
                "[[scheduler]]\nname = \"a\"\nbinary = \"x\"\n[[scheduler]]\nname = \"a\"\nbinary = \"y\"\n"
            ),
            "scheduler `a` is declared twice; scheduler names must be unique"
        );
        assert!(err("[[scheduler]]\nname = \"a/b\"\nbinary = \"x\"\n").contains("contains `/`"));
        assert!(
            err("[[scheduler]]\nname = \"a\"\nbinary = \"x\"\npackage = \"y\"\n")
                .contains("both `binary` and `package`")
        );
        assert!(err("[[scheduler]]\nname = \"a\"\n").contains("needs `binary"));
        assert!(err("").contains("declares no schedulers"));
        assert!(err("[[scheduler]]\nname = \"\"\nbinary = \"x\"\n").contains("empty name"));
        let e = err("[[scheduler]]\nname = \"a\"\nbinary = \"x\"\nkernels = [\"6.16..6.14\"]\n");
        assert!(e.contains("start is above its end"), "{e}");
        let e = err(
            "[[scheduler]]\nname = \"a\"\nbinary = \"x\"\n[scheduler.topology]\nmin_numa_nodes = 2\n",
        );
        assert!(e.contains("max_numa_nodes below min_numa_nodes"), "{e}");
        let e = err(
            "[[scheduler]]\nname = \"a\"\nbinary = \"x\"\n[scheduler.topology]\nmin_llcs = 4\nmax_llcs = 2\n",
        );
        assert!(e.contains("max_llcs below min_llcs"), "{e}");
        let e = err("[[scheduler]]\nname = \"a\"\nbinary = \"x\"\nmemory_mib = 64\n");
        assert!(
            e.contains("memory_mib = 64") && e.contains("128 to 65536 MiB"),
            "{e}"
        );
        let e = err("[[scheduler]]\nname = \"a\"\nbinary = \"x\"\nmemory_mib = 131072\n");
        assert!(e.contains("memory_mib = 131072"), "{e}");
    }
}
