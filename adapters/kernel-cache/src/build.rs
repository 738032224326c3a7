//! Building a kernel with ktstr's fragment, out of tree, into the cache.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ktstr_domain::kernel::config_variant::{
    self, check_name, name_from_stems, overlay, variant_label,
};
use ktstr_domain::kernel::kconfig::{FragmentOption, KernelConfig};
use sha2::{Digest, Sha256};

use crate::cache_dir::{
    BUILD_LOG, CONFIG, CacheDir, Entry, IMAGE, METADATA, Metadata, VARIANT_FRAGMENT, VMLINUX,
};
use crate::source::{KernelSource, cache_key, hex};
use crate::step_log::{Log, STOP_POLL};
use crate::{CacheError, FRAGMENT, fragment_options};

/// The packages that provide everything a kernel build runs.
pub const BUILD_PACKAGES: &str =
    "make gcc flex bison bc libelf-dev libssl-dev dwarves cpio zstd lz4 xz-utils binutils";

const TOOLS: &[&str] = &[
    "make", "gcc", "flex", "bison", "bc", "pahole", "tar", "xz", "lz4", "objcopy",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    pub source: KernelSource,
    /// The label sweeps show; the kernel version when absent. With `fragments`, the
    /// variant's name instead: the label is then `<version>+<name>`.
    pub label: Option<String>,
    /// The user's kconfig fragments (`--kconfig`), merged after ktstr's in this order;
    /// any makes the kernel a variant.
    pub fragments: Vec<UserFragment>,
    pub jobs: usize,
    /// Keep a kernel even if some fragment options did not survive (e.g. no sched_ext).
    pub allow_dropped: bool,
    /// Rebuild even when the cache already has this key.
    pub force: bool,
}

/// One of the user's kconfig fragments, read and checked before anything is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFragment {
    pub path: PathBuf,
    pub text: String,
    pub options: Vec<FragmentOption>,
}

impl UserFragment {
    pub fn read(path: &Path) -> Result<Self, CacheError> {
        let text = fs::read_to_string(path).map_err(|e| CacheError::io(path, e))?;
        let options = config_variant::parse_user_fragment(&path.display().to_string(), &text)?;
        Ok(UserFragment {
            path: path.to_path_buf(),
            text,
            options,
        })
    }

    fn stem(&self) -> String {
        self.path
            .file_stem()
            .map_or_else(|| "fragment".into(), |s| s.to_string_lossy().into_owned())
    }
}

impl BuildRequest {
    /// The variant's name: `--label` when given, else derived from the fragments' file
    /// names; `None` for a plain kernel.
    pub fn variant(&self) -> Result<Option<String>, CacheError> {
        if self.fragments.is_empty() {
            return Ok(None);
        }
        let name = match &self.label {
            Some(label) => label.clone(),
            None => {
                let stems: Vec<String> = self.fragments.iter().map(UserFragment::stem).collect();
                name_from_stems(stems.iter().map(String::as_str))
            }
        };
        check_name(&name)?;
        Ok(Some(name))
    }

    /// Everything the fragments add, for the cache key: empty for a plain kernel, so
    /// plain kernels keep the keys they always had.
    fn fragment_inputs(&self) -> String {
        self.fragments
            .iter()
            .map(|f| format!("\0{}", f.text))
            .collect()
    }
}

/// What the build is doing now, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildStage {
    Fingerprinting,
    /// Another process is building the same key; waiting for its lock.
    WaitingForLock(PathBuf),
    Extracting,
    Configuring,
    Compiling {
        log: PathBuf,
    },
    Installing,
    /// Nothing to do: the entry exists.
    Cached(String),
}

#[derive(Debug, Clone)]
pub struct Builder {
    cache: CacheDir,
    /// Set from outside (a signal) to stop the build: its steps are killed, its scratch
    /// space removed and its lock released.
    stop: Arc<AtomicBool>,
}

impl Builder {
    pub fn new(cache: CacheDir, stop: Arc<AtomicBool>) -> Self {
        Builder { cache, stop }
    }

    fn check_stop(&self, step: &str) -> Result<(), CacheError> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(CacheError::Stopped {
                step: step.to_string(),
            });
        }
        Ok(())
    }

    /// Builds (or finds) the kernel for `req`. Holds `<key>.lock` throughout, so a second
    /// build of the same inputs waits and then finds the first one's entry.
    pub fn build(
        &self,
        req: &BuildRequest,
        progress: &mut dyn FnMut(BuildStage),
    ) -> Result<Entry, CacheError> {
        check_tools()?;
        // A bad variant name is refused before the source is even fingerprinted.
        req.variant()?;
        let root = self.cache.root();
        fs::create_dir_all(root).map_err(|e| CacheError::io(root, e))?;
        self.reclaim_abandoned();
        progress(BuildStage::Fingerprinting);
        let identity = req.source.identity()?;
        let arch = std::env::consts::ARCH;
        // The version is known only after configuring, so the lock and the lookup use
        // the key's hash part; the entry directory adds the version in front.
        let digest = inputs_digest(&identity, arch, &req.fragment_inputs());
        let lock = self.lock(&digest, progress)?;

        if !req.force
            && let Some(entry) = self.find_digest(&digest)
        {
            drop(lock);
            // A kept kernel that lacks fragment options still needs the user's consent.
            if !entry.meta.dropped_options.is_empty() && !req.allow_dropped {
                return Err(CacheError::Dropped {
                    label: entry.meta.label,
                    dropped: entry.meta.dropped_options,
                });
            }
            progress(BuildStage::Cached(entry.meta.key.clone()));
            return Ok(entry);
        }
        let started = Instant::now();
        let scratch = self.cache.scratch_dir(&digest);
        remove_dir(&scratch)?;
        fs::create_dir_all(&scratch).map_err(|e| CacheError::io(&scratch, e))?;
        let result = self.build_in(req, &identity, &digest, &scratch, started, progress);
        // Scratch space never outlives the build, failed or not.
        let cleanup = remove_dir(&scratch);
        drop(lock);
        let entry = result?;
        cleanup?;
        Ok(entry)
    }

    fn build_in(
        &self,
        req: &BuildRequest,
        identity: &str,
        digest: &str,
        scratch: &Path,
        started: Instant,
        progress: &mut dyn FnMut(BuildStage),
    ) -> Result<Entry, CacheError> {
        let variant = req.variant()?;
        let variant = variant.as_deref();
        let log_path = scratch.join(BUILD_LOG);
        let log = Log::create(&log_path, self.stop.clone())?;
        let src = match &req.source {
            KernelSource::Tree(path) => path.clone(),
            KernelSource::Tarball(tarball) => {
                progress(BuildStage::Extracting);
                let src = scratch.join("src");
                fs::create_dir_all(&src).map_err(|e| CacheError::io(&src, e))?;
                log.run(
                    "extracting the source",
                    Command::new("tar")
                        .arg("-xf")
                        .arg(tarball)
                        .arg("-C")
                        .arg(&src)
                        .arg("--strip-components=1"),
                )?;
                src
            }
        };
        progress(BuildStage::Configuring);
        let obj = scratch.join("obj");
        fs::create_dir_all(&obj).map_err(|e| CacheError::io(&obj, e))?;
        let make = || {
            let mut cmd = Command::new("make");
            cmd.arg("-C").arg(&src).arg(format!("O={}", obj.display()));
            cmd
        };
        log.run("make tinyconfig", make().arg("tinyconfig"))?;
        let fragment = scratch.join("ktstr.kconfig");
        fs::write(&fragment, FRAGMENT).map_err(|e| CacheError::io(&fragment, e))?;
        let mut merge = Command::new(src.join("scripts/kconfig/merge_config.sh"));
        merge
            .arg("-m")
            .arg("-O")
            .arg(&obj)
            .arg(obj.join(".config"))
            .arg(&fragment);
        // The user's fragments come after ktstr's: where both set an option, theirs wins.
        let mut expected = fragment_options();
        for (i, user) in req.fragments.iter().enumerate() {
            let copy = scratch.join(format!("variant-{i}.kconfig"));
            fs::write(&copy, &user.text).map_err(|e| CacheError::io(&copy, e))?;
            merge.arg(&copy);
            expected = overlay(&expected, &user.options);
        }
        log.run(
            "merging ktstr.kconfig and the variant's fragments",
            &mut merge,
        )?;
        log.run("make olddefconfig", make().arg("olddefconfig"))?;
        let config_path = obj.join(".config");
        let config_text =
            fs::read_to_string(&config_path).map_err(|e| CacheError::io(&config_path, e))?;
        let config = KernelConfig::parse(&config_text);
        let version =
            KernelConfig::version_in_header(&config_text).ok_or_else(|| CacheError::BadSource {
                path: req.source.path().display().to_string(),
                reason: "the generated .config names no kernel version".into(),
            })?;
        let label = match variant {
            Some(name) => variant_label(&version.to_string(), name),
            None => req.label.clone().unwrap_or_else(|| version.to_string()),
        };
        let dropped = config.dropped(&expected);
        if !dropped.is_empty() && !req.allow_dropped {
            return Err(CacheError::Dropped { label, dropped });
        }

        progress(BuildStage::Compiling {
            log: log_path.clone(),
        });
        log.run(
            "make bzImage",
            make().arg(format!("-j{}", req.jobs.max(1))).arg("bzImage"),
        )?;

        progress(BuildStage::Installing);
        let key = match variant {
            Some(name) => format!("{}-{digest}", variant_label(&version.to_string(), name)),
            None => format!("{version}-{digest}"),
        };
        let staged = scratch.join("entry");
        fs::create_dir_all(&staged).map_err(|e| CacheError::io(&staged, e))?;
        copy(&obj.join("arch/x86/boot/bzImage"), &staged.join(IMAGE))?;
        // DWARF is only needed to generate BTF; symbols and .BTF stay.
        log.run(
            "stripping DWARF from vmlinux",
            Command::new("objcopy")
                .arg("--strip-debug")
                .arg(obj.join("vmlinux"))
                .arg(staged.join(VMLINUX)),
        )?;
        copy(&config_path, &staged.join(CONFIG))?;
        drop(log);
        copy(&log_path, &staged.join(BUILD_LOG))?;
        let mut names = vec![IMAGE, VMLINUX, CONFIG, BUILD_LOG];
        if variant.is_some() {
            // The variant's own fragments stay with it, for whoever asks what it is.
            let kept: String = req
                .fragments
                .iter()
                .map(|f| format!("# --kconfig {}\n{}\n", f.path.display(), f.text))
                .collect();
            let path = staged.join(VARIANT_FRAGMENT);
            fs::write(&path, kept).map_err(|e| CacheError::io(&path, e))?;
            names.push(VARIANT_FRAGMENT);
        }
        let mut files = BTreeMap::new();
        for name in names {
            let path = staged.join(name);
            let size = fs::metadata(&path)
                .map_err(|e| CacheError::io(&path, e))?
                .len();
            files.insert(name.to_string(), size);
        }
        let missing = config.missing_required();
        let meta = Metadata {
            key: key.clone(),
            label,
            version,
            source: req.source.path().display().to_string(),
            source_identity: identity.to_string(),
            fragment_sha256: hex(&Sha256::digest(FRAGMENT.as_bytes())),
            variant: variant.map(str::to_string),
            arch: std::env::consts::ARCH.to_string(),
            built_at_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            build_seconds: started.elapsed().as_secs(),
            sched_ext: config.is_builtin("CONFIG_SCHED_CLASS_EXT"),
            missing_options: missing,
            dropped_options: dropped,
            files,
        };
        let meta_path = staged.join(METADATA);
        let json = serde_json::to_string_pretty(&meta).expect("metadata serializes");
        fs::write(&meta_path, json).map_err(|e| CacheError::io(&meta_path, e))?;
        // The rename is the commit point: before it there is no entry, after it a whole one.
        let dest = self.cache.entry_dir(&key);
        remove_dir(&dest)?;
        fs::rename(&staged, &dest).map_err(|e| CacheError::io(&dest, e))?;
        self.cache.load(&key).map_err(|c| CacheError::BadSource {
            path: c.dir.display().to_string(),
            reason: format!("freshly installed entry is unusable: {}", c.reason),
        })
    }

    fn lock(&self, digest: &str, progress: &mut dyn FnMut(BuildStage)) -> Result<File, CacheError> {
        let path = self.cache.lock_path(digest);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| CacheError::io(&path, e))?;
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(fs::TryLockError::WouldBlock) => {
                    if !told {
                        progress(BuildStage::WaitingForLock(path.clone()));
                        told = true;
                    }
                    self.check_stop("waiting for another build's lock")?;
                    std::thread::sleep(STOP_POLL);
                }
                Err(fs::TryLockError::Error(e)) => return Err(CacheError::io(&path, e)),
            }
        }
    }

    /// Removes what builds killed outright (SIGKILL, a crash) left: a `.build-<digest>`
    /// scratch directory whose lock nobody holds, and a `.removing-<key>` of a stopped
    /// `kernel rm`. Best effort: what cannot be removed now is tried again next build.
    fn reclaim_abandoned(&self) {
        let Ok(read) = fs::read_dir(self.cache.root()) else {
            return;
        };
        for entry in read.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(digest) = name.strip_prefix(".build-") {
                let lock = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(self.cache.lock_path(digest));
                // Held while the scratch goes: no build of that digest starts meanwhile.
                if let Ok(lock) = lock
                    && lock.try_lock().is_ok()
                {
                    let _ = fs::remove_dir_all(entry.path());
                }
            } else if name.starts_with(".removing-") {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    /// A complete entry built from the same inputs, whatever its version prefix.
    fn find_digest(&self, digest: &str) -> Option<Entry> {
        let suffix = format!("-{digest}");
        self.cache
            .scan()
            .ok()?
            .into_iter()
            .filter_map(Result::ok)
            .find(|e| e.meta.key.ends_with(&suffix))
    }
}

/// The part of the cache key that does not need the version: `<arch>-<hash>`.
fn inputs_digest(identity: &str, arch: &str, user_fragments: &str) -> String {
    cache_key("", identity, &format!("{FRAGMENT}{user_fragments}"), arch)
        .trim_start_matches('-')
        .to_string()
}

fn check_tools() -> Result<(), CacheError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in TOOLS {
        if !std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()) {
            return Err(CacheError::Tool {
                tool: (*tool).to_string(),
                hint: format!("apt-get install {BUILD_PACKAGES}"),
            });
        }
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<(), CacheError> {
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| CacheError::io(from, e))
}

fn remove_dir(dir: &Path) -> Result<(), CacheError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CacheError::io(dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_second_build_of_the_same_inputs_waits_for_the_first_and_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let (cache, source, digest) = bogus_tarball(tmp.path());
        // Another build of the same inputs holds the lock.
        let held = File::create(cache.lock_path(&digest)).unwrap();
        held.lock().unwrap();

        let stages = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&stages);
        let builder = Builder::new(cache.clone(), Arc::default());
        let request = request(source);
        let waiter = std::thread::spawn(move || {
            builder.build(&request, &mut |stage| seen.lock().unwrap().push(stage))
        });
        std::thread::sleep(Duration::from_millis(500));
        {
            let now = stages.lock().unwrap();
            assert!(
                matches!(now.last(), Some(BuildStage::WaitingForLock(_))),
                "{now:?}"
            );
        }
        drop(held);
        let err = waiter.join().unwrap().unwrap_err().to_string();
        // Once the lock was free it went on, and the bogus tarball stopped it.
        assert!(err.starts_with("extracting the source failed"), "{err}");
        assert!(stages.lock().unwrap().contains(&BuildStage::Extracting));
        assert!(!cache.scratch_dir(&digest).exists());
        assert!(cache.scan().unwrap().is_empty());
    }

    /// A cache under `dir` and a source that is no tarball (its build fails at
    /// extraction), with the digest its lock is named by.
    fn bogus_tarball(dir: &Path) -> (CacheDir, KernelSource, String) {
        let cache = CacheDir::new(dir.join("cache"));
        fs::create_dir_all(cache.root()).unwrap();
        let tarball = dir.join("linux.tar.xz");
        fs::write(&tarball, b"not a tarball").unwrap();
        let source = KernelSource::from_path(&tarball).unwrap();
        let digest = inputs_digest(&source.identity().unwrap(), std::env::consts::ARCH, "");
        (cache, source, digest)
    }

    fn request(source: KernelSource) -> BuildRequest {
        BuildRequest {
            source,
            label: None,
            fragments: vec![],
            jobs: 1,
            allow_dropped: false,
            force: false,
        }
    }

    /// Whether any process's command line is exactly `words` (NUL-separated in /proc).
    fn running(words: &[&str]) -> bool {
        let wanted: Vec<u8> = words
            .iter()
            .flat_map(|w| [w.as_bytes(), b"\0"].concat())
            .collect();
        fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .any(|e| fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted))
    }

    #[test]
    fn a_stopped_build_kills_its_step_whole_removes_its_scratch_and_releases_its_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CacheDir::new(tmp.path().join("cache"));
        // A source tree whose first step never ends, in a child of make's shell too.
        let tree = tmp.path().join("linux");
        fs::create_dir_all(&tree).unwrap();
        let nap = format!("600.{}", std::process::id());
        fs::write(
            tree.join("Makefile"),
            format!("tinyconfig:\n\tsleep {nap} & sleep {nap}; wait\n"),
        )
        .unwrap();
        fs::write(tree.join("Kconfig"), "").unwrap();
        let source = KernelSource::from_path(&tree).unwrap();
        let digest = inputs_digest(&source.identity().unwrap(), std::env::consts::ARCH, "");
        let stop = Arc::new(AtomicBool::new(false));
        let builder = Builder::new(cache.clone(), stop.clone());
        let build = std::thread::spawn(move || builder.build(&request(source), &mut |_| {}));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !running(&["sleep", &nap]) {
            assert!(Instant::now() < deadline, "make never started its step");
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::SeqCst);
        let err = build.join().unwrap().unwrap_err();
        assert!(
            matches!(&err, CacheError::Stopped { step } if step == "make tinyconfig"),
            "{err}"
        );
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !running(&["sleep", &nap]),
            "a step's process outlived the stop"
        );
        assert!(!cache.scratch_dir(&digest).exists());
        assert!(cache.scan().unwrap().is_empty());
        let lock = File::open(cache.lock_path(&digest)).unwrap();
        assert!(lock.try_lock().is_ok(), "the lock is still held");
    }

    #[test]
    fn a_build_waiting_for_a_lock_stops_when_told() {
        let tmp = tempfile::tempdir().unwrap();
        let (cache, source, digest) = bogus_tarball(tmp.path());
        let held = File::create(cache.lock_path(&digest)).unwrap();
        held.lock().unwrap();
        let stop = Arc::new(AtomicBool::new(true));
        let err = Builder::new(cache, stop)
            .build(&request(source), &mut |_| {})
            .unwrap_err();
        assert!(matches!(err, CacheError::Stopped { .. }), "{err}");
    }

    #[test]
    fn scratch_space_of_builds_killed_outright_is_reclaimed_by_the_next_build() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CacheDir::new(tmp.path().join("cache"));
        let root = cache.root().to_path_buf();
        for dir in [".build-dead", ".build-live", ".removing-6.12.1-x"] {
            fs::create_dir_all(root.join(dir).join("obj")).unwrap();
        }
        // A build in progress holds its lock: its scratch stays.
        let live = File::create(cache.lock_path("live")).unwrap();
        live.lock().unwrap();
        let tarball = tmp.path().join("linux.tar.xz");
        fs::write(&tarball, b"not a tarball").unwrap();
        let source = KernelSource::from_path(&tarball).unwrap();
        let _ = Builder::new(cache, Arc::default()).build(&request(source), &mut |_| {});
        assert!(!root.join(".build-dead").exists());
        assert!(!root.join(".removing-6.12.1-x").exists());
        assert!(root.join(".build-live").exists());
    }
}
