//! `ktstr kernel build|list|path|rm`: the kernel cache from the command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use comfy_table::{Table, presets::NOTHING};
use indicatif::{ProgressBar, ProgressStyle};
use ktstr_domain::kernel::spec::KernelSpec;
use ktstr_kernel_cache::{
    BuildRequest, BuildStage, Builder, CacheDir, FsKernelCache, KernelSource, UserFragment,
};

/// Where ktstr caches things: `KTSTR_CACHE_DIR`, else `$XDG_CACHE_HOME/ktstr`, else
/// `~/.cache/ktstr`. Kernels go under `kernels/`, initramfs images under `initramfs/`.
/// The caller reads the variables; this only decides.
pub fn cache_base(
    ktstr_cache_dir: Option<PathBuf>,
    xdg_cache_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Result<PathBuf> {
    if let Some(dir) = ktstr_cache_dir.filter(|d| !d.as_os_str().is_empty()) {
        return Ok(dir);
    }
    if let Some(xdg) = xdg_cache_home.filter(|d| d.is_absolute()) {
        return Ok(xdg.join("ktstr"));
    }
    match home {
        Some(home) => Ok(home.join(".cache/ktstr")),
        None => bail!("cannot place the cache: set KTSTR_CACHE_DIR or HOME"),
    }
}

#[derive(Debug, Clone)]
pub struct BuildArgs {
    pub source: Option<PathBuf>,
    pub label: Option<String>,
    /// `--kconfig` fragments, in order.
    pub kconfig: Vec<PathBuf>,
    pub jobs: Option<usize>,
    pub allow_dropped: bool,
    pub force: bool,
}

/// Builds (or finds) a kernel; prints its cache directory on stdout.
pub fn build(
    cache: &CacheDir,
    args: &BuildArgs,
    show_progress: bool,
    stop: Arc<AtomicBool>,
) -> Result<String> {
    let source = match &args.source {
        Some(path) => KernelSource::from_path(path)?,
        None => KernelSource::default_source()?,
    };
    let fragments = args
        .kconfig
        .iter()
        .map(|path| UserFragment::read(path))
        .collect::<Result<Vec<_>, _>>()?;
    let request = BuildRequest {
        source,
        label: args.label.clone(),
        fragments,
        jobs: args.jobs.unwrap_or_else(crate::host::host_cpus_usize),
        allow_dropped: args.allow_dropped,
        force: args.force,
    };
    let bar = if show_progress {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed}] {msg}").expect("static template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut report = |stage: BuildStage| {
        let text = stage_text(&stage);
        if show_progress {
            bar.set_message(text);
        } else {
            eprintln!("kernel build: {text}");
        }
    };
    let result = Builder::new(cache.clone(), stop).build(&request, &mut report);
    bar.finish_and_clear();
    let entry = result?;
    let m = &entry.meta;
    let mut out = format!(
        "kernel {} ({}) in {}\n",
        m.label,
        m.key,
        entry.dir.display()
    );
    if !m.sched_ext {
        out.push_str("note: this kernel has no sched_ext; every cell on it fails before booting\n");
    }
    if !m.dropped_options.is_empty() {
        out.push_str(&format!("dropped: {}\n", m.dropped_options.join(", ")));
    }
    Ok(out)
}

fn stage_text(stage: &BuildStage) -> String {
    match stage {
        BuildStage::Fingerprinting => "fingerprinting the source".into(),
        BuildStage::WaitingForLock(lock) => {
            format!(
                "waiting for another build of this kernel ({})",
                lock.display()
            )
        }
        BuildStage::Extracting => "extracting the source".into(),
        BuildStage::Configuring => "configuring (tinyconfig + ktstr.kconfig)".into(),
        BuildStage::Compiling { log } => format!("compiling (log: {})", log.display()),
        BuildStage::Installing => "installing into the cache".into(),
        BuildStage::Cached(key) => format!("already cached as {key}"),
    }
}

/// `ktstr kernel list`: one row per cache entry, corrupt ones included and marked.
pub fn list(cache: &CacheDir, now: SystemTime) -> Result<String> {
    let entries = cache.scan()?;
    if entries.is_empty() {
        return Ok(format!(
            "no kernels cached in {}; build one with `ktstr kernel build`\n",
            cache.root().display()
        ));
    }
    let mut t = Table::new();
    t.load_preset(NOTHING)
        .set_header(vec!["label", "version", "key", "sched_ext", "size", "age"]);
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    for entry in entries {
        match entry {
            Ok(e) => t.add_row(vec![
                e.meta.label.clone(),
                e.meta.version.to_string(),
                e.meta.key.clone(),
                if e.meta.sched_ext { "yes" } else { "NO" }.to_string(),
                format!("{:.1} MiB", e.size() as f64 / (1024.0 * 1024.0)),
                age(now.saturating_sub(e.meta.built_at_unix)),
            ]),
            Err(c) => t.add_row(vec![
                "-".to_string(),
                "-".to_string(),
                c.key.clone(),
                format!("CORRUPT: {}", c.reason),
                "-".to_string(),
                "-".to_string(),
            ]),
        };
    }
    let lines: Vec<String> = t.lines().map(|l| l.trim_end().to_string()).collect();
    Ok(format!(
        "{}\ncache: {}\n",
        lines.join("\n"),
        cache.root().display()
    ))
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn parse_spec(spec: &str) -> Result<KernelSpec> {
    spec.parse::<KernelSpec>()
        .with_context(|| format!("invalid kernel spec `{spec}`"))
}

/// `ktstr kernel path SPEC`: the directory of the kernel a spec resolves to, usable as
/// `--kernel DIR`.
pub fn path(kernels: &FsKernelCache, spec: &str) -> Result<String> {
    let spec = parse_spec(spec)?;
    if let KernelSpec::Path(_) = spec {
        let artifact = kernels
            .resolve_specs(std::slice::from_ref(&spec))?
            .remove(0);
        return Ok(format!("{}\n", artifact.image.display()));
    }
    let entry = kernels.entries(&spec)?.remove(0);
    Ok(format!("{}\n", entry.dir.display()))
}

/// `ktstr kernel rm SPEC`: removes every entry the spec selects, or a corrupt one by key.
pub fn remove(kernels: &FsKernelCache, spec: &str) -> Result<String> {
    let cache = kernels.cache();
    let parsed = parse_spec(spec)?;
    let keys: Vec<String> = match &parsed {
        KernelSpec::Path(_) => bail!("`{spec}` is a path; `kernel rm` removes cache entries only"),
        KernelSpec::CacheKey(key) if cache.entry_dir(key).is_dir() => vec![key.clone()],
        _ => kernels
            .entries(&parsed)?
            .into_iter()
            .map(|e| e.meta.key)
            .collect(),
    };
    let mut out = String::new();
    for key in keys {
        cache.remove(&key)?;
        out.push_str(&format!("removed {key}\n"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_base_follows_the_documented_order() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(
            cache_base(p("/c"), p("/x"), p("/h")).unwrap(),
            PathBuf::from("/c")
        );
        assert_eq!(
            cache_base(None, p("/x"), p("/h")).unwrap(),
            PathBuf::from("/x/ktstr")
        );
        // A relative XDG_CACHE_HOME is invalid per the spec and ignored.
        assert_eq!(
            cache_base(p(""), p("rel"), p("/h")).unwrap(),
            PathBuf::from("/h/.cache/ktstr")
        );
        assert!(cache_base(None, None, None).is_err());
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(3 * 3600), "3h");
        assert_eq!(age(5 * 86400), "5d");
    }
}
