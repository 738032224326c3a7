//! Resolving `--kernel` specs to bootable artifacts: build trees, image files
//! and cache entries by version, range or key.

use std::fs;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use ktstr_domain::kernel::kconfig::KernelConfig;
use ktstr_domain::kernel::spec::{KernelLabel, KernelSpec, KernelVersion, sanitize_label};
use ktstr_ports::{KernelArtifact, KernelCache, KernelCacheError};

use crate::cache_dir::{CONFIG, CacheDir, Entry, IMAGE, VMLINUX};

const BUILD_HINT: &str =
    "build one with `ktstr kernel build` (its source: apt-get install linux-source-6.12)";

/// The kernel cache on disk plus what resolution needs from the caller's environment.
#[derive(Debug, Clone)]
pub struct FsKernelCache {
    cache: CacheDir,
    /// Relative paths in specs are relative to this.
    cwd: PathBuf,
    /// `~` in specs expands to this.
    home: Option<PathBuf>,
    /// Used when no spec is given (the app passes `KTSTR_KERNEL`); else the newest entry.
    default_spec: Option<KernelSpec>,
}

/// A resolved kernel before labels are made unique.
struct Found {
    /// What makes two resolutions the same kernel: the entry key or the image path.
    identity: String,
    /// A short, stable suffix to tell kernels with the same label apart.
    tag: String,
    artifact: KernelArtifact,
}

impl FsKernelCache {
    pub fn new(
        cache: CacheDir,
        cwd: PathBuf,
        home: Option<PathBuf>,
        default_spec: Option<KernelSpec>,
    ) -> Self {
        FsKernelCache {
            cache,
            cwd,
            home,
            default_spec,
        }
    }

    pub fn cache(&self) -> &CacheDir {
        &self.cache
    }

    /// Resolves specs (none: the default kernel) with labels unique within the result.
    pub fn resolve_specs(
        &self,
        specs: &[KernelSpec],
    ) -> Result<Vec<KernelArtifact>, KernelCacheError> {
        let mut found: Vec<Found> = Vec::new();
        if specs.is_empty() {
            match &self.default_spec {
                Some(spec) => found.extend(self.resolve_one(spec)?),
                None => found.push(self.newest()?),
            }
        }
        for spec in specs {
            for f in self.resolve_one(spec)? {
                if !found.iter().any(|g| g.identity == f.identity) {
                    found.push(f);
                }
            }
        }
        Ok(unique_labels(found))
    }

    /// The complete cache entries a version, range or key spec selects (newest first).
    pub fn entries(&self, spec: &KernelSpec) -> Result<Vec<Entry>, KernelCacheError> {
        let all = self.complete_entries()?;
        let mut chosen: Vec<Entry> = match spec {
            // A kconfig variant is chosen only by its label or key: a version or a range
            // means the plain kernel, so a sweep never lands on a variant unasked.
            KernelSpec::Version { version, raw } => all
                .into_iter()
                .filter(|e| e.meta.variant.is_none())
                .filter(|e| e.meta.version == *version || e.meta.label == *raw)
                .collect(),
            KernelSpec::Range { start, end, .. } => all
                .into_iter()
                .filter(|e| e.meta.variant.is_none())
                .filter(|e| (*start..=*end).contains(&e.meta.version))
                .collect(),
            KernelSpec::CacheKey(key) => {
                if let Err(corrupt) = self.cache.load(key)
                    && corrupt.dir.is_dir()
                {
                    return Err(KernelCacheError::Unusable {
                        spec: key.clone(),
                        reason: format!(
                            "cache entry is corrupt ({}); remove it with `ktstr kernel rm {key}` and rebuild",
                            corrupt.reason
                        ),
                    });
                }
                all.into_iter()
                    .filter(|e| {
                        e.meta.key == *key || sanitize_label(&e.meta.label) == sanitize_label(key)
                    })
                    .collect()
            }
            KernelSpec::Path(p) => {
                return Err(KernelCacheError::NotFound {
                    spec: p.clone(),
                    hint: "a path names a kernel outside the cache".into(),
                });
            }
        };
        chosen.sort_by_key(|e| std::cmp::Reverse(e.meta.built_at_unix));
        if chosen.is_empty() {
            return Err(KernelCacheError::NotFound {
                spec: spec.to_string(),
                hint: self.cached_summary()?,
            });
        }
        Ok(chosen)
    }

    fn resolve_one(&self, spec: &KernelSpec) -> Result<Vec<Found>, KernelCacheError> {
        match spec {
            KernelSpec::Path(p) => Ok(vec![self.resolve_path(p)?]),
            KernelSpec::Version { .. } => {
                // A version names one kernel: the newest build of it.
                let newest = self.entries(spec)?.into_iter().next();
                Ok(newest.map(from_entry).into_iter().collect())
            }
            KernelSpec::Range { .. } | KernelSpec::CacheKey(_) => {
                Ok(self.entries(spec)?.into_iter().map(from_entry).collect())
            }
        }
    }

    /// The newest kernel that can run a sweep: one kept without sched_ext, or a kconfig
    /// variant, is only ever used when named.
    fn newest(&self) -> Result<Found, KernelCacheError> {
        self.complete_entries()?
            .into_iter()
            .filter(|e| e.meta.sched_ext && e.meta.missing_options.is_empty())
            .filter(|e| e.meta.variant.is_none())
            .max_by_key(|e| e.meta.built_at_unix)
            .map(from_entry)
            .ok_or_else(|| KernelCacheError::NoDefault {
                hint: format!(
                    "{}pass --kernel, or {BUILD_HINT}; cache: {}",
                    self.corrupt_summary(),
                    self.cache.root().display()
                ),
            })
    }

    /// The corrupt entries, each with its fix, when a usable kernel was looked for in
    /// vain: a damaged cache must not read like an empty one.
    fn corrupt_summary(&self) -> String {
        let scanned = self.cache.scan().unwrap_or_default();
        scanned
            .iter()
            .filter_map(|e| e.as_ref().err())
            .map(|c| {
                format!(
                    "cache entry {} is corrupt ({}): rebuild it with `ktstr kernel build` \
                     (with --source for a source other than Debian's linux-source-6.12) or \
                     remove it with `ktstr kernel rm {}`; ",
                    c.key, c.reason, c.key
                )
            })
            .collect()
    }

    fn complete_entries(&self) -> Result<Vec<Entry>, KernelCacheError> {
        let scanned = self.cache.scan().map_err(|e| KernelCacheError::Io {
            what: "scanning the cache".into(),
            source: Box::new(e),
        })?;
        Ok(scanned.into_iter().filter_map(Result::ok).collect())
    }

    fn cached_summary(&self) -> Result<String, KernelCacheError> {
        let entries = self.complete_entries()?;
        if entries.is_empty() {
            return Ok(format!("the cache is empty; {BUILD_HINT}"));
        }
        let listed: Vec<String> = entries
            .iter()
            .map(|e| format!("{} ({})", e.meta.label, e.meta.key))
            .collect();
        Ok(format!(
            "cached: {}; build another with `ktstr kernel build --source DIR|TARBALL`",
            listed.join(", ")
        ))
    }

    /// A build tree, a cache-entry-like directory, or an image file with `vmlinux` and
    /// its config beside it.
    fn resolve_path(&self, spec: &str) -> Result<Found, KernelCacheError> {
        let path = self.expand(spec);
        let unusable = |reason: String| KernelCacheError::Unusable {
            spec: spec.to_string(),
            reason,
        };
        let (image, vmlinux, config) = if path.is_dir() {
            let tree_image = path.join("arch/x86/boot/bzImage");
            if tree_image.exists() || path.join("Makefile").exists() {
                (tree_image, path.join("vmlinux"), path.join(".config"))
            } else {
                (path.join(IMAGE), path.join(VMLINUX), path.join(CONFIG))
            }
        } else if path.is_file() {
            let dir = path.parent().unwrap_or(Path::new("."));
            let config = [dir.join(".config"), dir.join(CONFIG)]
                .into_iter()
                .find(|c| c.is_file())
                .unwrap_or_else(|| dir.join(CONFIG));
            (path.clone(), dir.join(VMLINUX), config)
        } else {
            return Err(unusable(format!("{} does not exist", path.display())));
        };
        for (file, what) in [
            (&image, "the kernel image (run `make bzImage` in the tree)"),
            (&vmlinux, "vmlinux (symbols and BTF for introspection)"),
            (&config, "the kernel's .config (to check for sched_ext)"),
        ] {
            if !file.is_file() {
                return Err(unusable(format!("missing {what}: {}", file.display())));
            }
        }
        let text = fs::read_to_string(&config)
            .map_err(|e| unusable(format!("reading {}: {e}", config.display())))?;
        let version = KernelConfig::version_in_header(&text);
        let canonical = fs::canonicalize(&image).unwrap_or(image.clone());
        Ok(Found {
            identity: canonical.display().to_string(),
            tag: String::new(),
            artifact: artifact(
                KernelLabel::new(spec, version),
                path.display().to_string(),
                image,
                vmlinux,
                &text,
            ),
        })
    }

    fn expand(&self, spec: &str) -> PathBuf {
        match (spec.strip_prefix("~/"), &self.home) {
            (Some(rest), Some(home)) => home.join(rest),
            _ if spec == "~" => self.home.clone().unwrap_or_else(|| PathBuf::from(spec)),
            _ => self.cwd.join(spec),
        }
    }
}

fn artifact(
    label: KernelLabel,
    rerun_spec: String,
    image: PathBuf,
    vmlinux: PathBuf,
    config: &str,
) -> KernelArtifact {
    KernelArtifact {
        label,
        rerun_spec,
        image,
        vmlinux,
        missing_options: KernelConfig::parse(config).missing_required(),
    }
}

fn from_entry(entry: Entry) -> Found {
    let config = fs::read_to_string(entry.config()).unwrap_or_default();
    let version: Option<KernelVersion> = Some(entry.meta.version);
    let tag = entry
        .meta
        .key
        .rsplit('-')
        .next()
        .unwrap_or_default()
        .chars()
        .take(8)
        .collect();
    Found {
        identity: entry.meta.key.clone(),
        tag,
        artifact: artifact(
            KernelLabel::new(entry.meta.label.clone(), version),
            entry.meta.key.clone(),
            entry.image(),
            entry.vmlinux(),
            &config,
        ),
    }
}

/// Two different kernels with one label get distinct ones: the later ones gain a suffix.
fn unique_labels(found: Vec<Found>) -> Vec<KernelArtifact> {
    let mut taken: Vec<String> = Vec::new();
    found
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let mut artifact = f.artifact;
            if taken.contains(&artifact.label.sanitized()) {
                let suffix = if f.tag.is_empty() {
                    (i + 1).to_string()
                } else {
                    f.tag
                };
                artifact.label.raw = format!("{}-{suffix}", artifact.label.raw);
            }
            taken.push(artifact.label.sanitized());
            artifact
        })
        .collect()
}

#[async_trait]
impl KernelCache for FsKernelCache {
    async fn resolve(&self, specs: &[KernelSpec]) -> Result<Vec<KernelArtifact>, KernelCacheError> {
        self.resolve_specs(specs)
    }
}

#[cfg(test)]
mod tests;
