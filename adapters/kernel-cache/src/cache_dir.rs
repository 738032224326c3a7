//! The cache on disk: one directory per key holding a complete, verified kernel.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ktstr_domain::kernel::spec::KernelVersion;
use serde::{Deserialize, Serialize};

use crate::CacheError;

pub const IMAGE: &str = "bzImage";
pub const VMLINUX: &str = "vmlinux";
pub const CONFIG: &str = "config";
pub const METADATA: &str = "metadata.json";
pub const BUILD_LOG: &str = "build.log";
/// The user's fragments a variant was built with, concatenated.
pub const VARIANT_FRAGMENT: &str = "variant.kconfig";

/// What a cache entry records about its kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub key: String,
    pub label: String,
    pub version: KernelVersion,
    /// Where the source came from, for humans.
    pub source: String,
    /// The fingerprint of the source the key was derived from.
    pub source_identity: String,
    pub fragment_sha256: String,
    /// The name of the kconfig variant (`--kconfig`), when the kernel is one: selected
    /// only by its label or key, never by a version, a range or the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub arch: String,
    pub built_at_unix: u64,
    pub build_seconds: u64,
    pub sched_ext: bool,
    /// Required options (see `ktstr_domain::kernel::kconfig`) the kernel lacks.
    pub missing_options: Vec<String>,
    /// Fragment options that did not survive `olddefconfig` (only with --allow-dropped).
    pub dropped_options: Vec<String>,
    /// Size of every file of the entry, to catch truncation.
    pub files: BTreeMap<String, u64>,
}

/// A complete cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dir: PathBuf,
    pub meta: Metadata,
}

impl Entry {
    pub fn image(&self) -> PathBuf {
        self.dir.join(IMAGE)
    }
    pub fn vmlinux(&self) -> PathBuf {
        self.dir.join(VMLINUX)
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join(CONFIG)
    }
    /// Bytes on disk of the entry's files.
    pub fn size(&self) -> u64 {
        self.meta.files.values().sum()
    }
}

/// A directory in the cache that is not a usable entry, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt {
    pub key: String,
    pub dir: PathBuf,
    pub reason: String,
}

/// The cache root: `<root>/<key>/` entries, `<root>/<key>.lock` build locks and
/// `<root>/.build-<key>/` scratch space of builds in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheDir {
    root: PathBuf,
}

impl CacheDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CacheDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn entry_dir(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    pub fn lock_path(&self, key: &str) -> PathBuf {
        self.root.join(format!("{key}.lock"))
    }

    pub fn scratch_dir(&self, key: &str) -> PathBuf {
        self.root.join(format!(".build-{key}"))
    }

    /// Every entry directory, complete or not, sorted by key. A missing root is empty.
    pub fn scan(&self) -> Result<Vec<Result<Entry, Corrupt>>, CacheError> {
        let read = match fs::read_dir(&self.root) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(CacheError::io(&self.root, e)),
        };
        let mut keys = Vec::new();
        for item in read {
            let item = item.map_err(|e| CacheError::io(&self.root, e))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && item.path().is_dir() {
                keys.push(name);
            }
        }
        keys.sort();
        Ok(keys.into_iter().map(|k| self.load(&k)).collect())
    }

    /// Removes an entry, complete or corrupt. It disappears at once (a rename), so no
    /// reader ever sees half an entry.
    pub fn remove(&self, key: &str) -> Result<(), CacheError> {
        let dir = self.entry_dir(key);
        let doomed = self.root.join(format!(".removing-{key}"));
        fs::rename(&dir, &doomed).map_err(|e| CacheError::io(&dir, e))?;
        fs::remove_dir_all(&doomed).map_err(|e| CacheError::io(&doomed, e))
    }

    /// Loads and verifies one entry.
    pub fn load(&self, key: &str) -> Result<Entry, Corrupt> {
        let dir = self.entry_dir(key);
        let corrupt = |reason: String| Corrupt {
            key: key.to_string(),
            dir: dir.clone(),
            reason,
        };
        let text = fs::read_to_string(dir.join(METADATA))
            .map_err(|e| corrupt(format!("{METADATA} unreadable: {e}")))?;
        let meta: Metadata =
            serde_json::from_str(&text).map_err(|e| corrupt(format!("{METADATA} invalid: {e}")))?;
        if meta.key != key {
            return Err(corrupt(format!(
                "{METADATA} names key `{}`, not its directory",
                meta.key
            )));
        }
        for required in [IMAGE, VMLINUX, CONFIG] {
            if !meta.files.contains_key(required) {
                return Err(corrupt(format!("{METADATA} does not list {required}")));
            }
        }
        for (file, size) in &meta.files {
            match fs::metadata(dir.join(file)) {
                Ok(m) if m.len() == *size => {}
                Ok(m) => {
                    return Err(corrupt(format!(
                        "{file} is {} bytes, {size} expected (truncated?)",
                        m.len()
                    )));
                }
                Err(e) => return Err(corrupt(format!("{file} missing: {e}"))),
            }
        }
        Ok(Entry { dir, meta })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a complete entry with small fake files; tests corrupt it as they need.
    pub fn write_entry(cache: &CacheDir, key: &str, version: &str, label: &str) -> Entry {
        let dir = cache.entry_dir(key);
        fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "# Linux/x86 {version} Kernel Configuration\nCONFIG_SCHED_CLASS_EXT=y\nCONFIG_BPF_SYSCALL=y\nCONFIG_DEBUG_INFO_BTF=y\n"
        );
        let mut files = BTreeMap::new();
        for (name, body) in [
            (IMAGE, "image"),
            (VMLINUX, "elf"),
            (CONFIG, config.as_str()),
        ] {
            fs::write(dir.join(name), body).unwrap();
            files.insert(name.to_string(), body.len() as u64);
        }
        let meta = Metadata {
            key: key.into(),
            label: label.into(),
            version: version.parse().unwrap(),
            source: "test".into(),
            source_identity: "id".into(),
            fragment_sha256: "f".into(),
            variant: None,
            arch: "x86_64".into(),
            built_at_unix: 1_700_000_000 + fs::read_dir(cache.root()).unwrap().count() as u64,
            build_seconds: 1,
            sched_ext: true,
            missing_options: vec![],
            dropped_options: vec![],
            files,
        };
        fs::write(dir.join(METADATA), serde_json::to_string(&meta).unwrap()).unwrap();
        Entry { dir, meta }
    }

    #[test]
    fn complete_entries_load_and_damaged_ones_are_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CacheDir::new(tmp.path());
        let good = write_entry(&cache, "6.12.117-aaaa", "6.12.117", "6.12.117");
        assert_eq!(cache.load("6.12.117-aaaa"), Ok(good.clone()));

        write_entry(&cache, "trunc", "6.12.117", "t");
        fs::write(cache.entry_dir("trunc").join(IMAGE), "im").unwrap();
        let err = cache.load("trunc").unwrap_err();
        assert!(
            err.reason.contains("bzImage is 2 bytes, 5 expected"),
            "{err:?}"
        );

        write_entry(&cache, "novmlinux", "6.12.117", "n");
        fs::remove_file(cache.entry_dir("novmlinux").join(VMLINUX)).unwrap();
        assert!(
            cache
                .load("novmlinux")
                .unwrap_err()
                .reason
                .contains("vmlinux missing")
        );

        fs::create_dir_all(cache.entry_dir("nometa")).unwrap();
        assert!(
            cache
                .load("nometa")
                .unwrap_err()
                .reason
                .contains("metadata.json unreadable")
        );

        write_entry(&cache, "moved", "6.12.117", "m");
        fs::rename(cache.entry_dir("moved"), cache.entry_dir("renamed")).unwrap();
        assert!(
            cache
                .load("renamed")
                .unwrap_err()
                .reason
                .contains("names key `moved`")
        );

        // Scratch directories of builds in progress are not entries.
        fs::create_dir_all(cache.scratch_dir("x")).unwrap();
        let scanned = cache.scan().unwrap();
        let keys: Vec<String> = scanned
            .iter()
            .map(|r| match r {
                Ok(e) => e.meta.key.clone(),
                Err(c) => c.key.clone(),
            })
            .collect();
        assert_eq!(
            keys,
            ["6.12.117-aaaa", "nometa", "novmlinux", "renamed", "trunc"]
        );
        assert_eq!(scanned.iter().filter(|r| r.is_ok()).count(), 1);
    }

    #[test]
    fn removal_takes_complete_and_corrupt_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CacheDir::new(tmp.path());
        write_entry(&cache, "a", "6.12.117", "a");
        fs::create_dir_all(cache.entry_dir("broken")).unwrap();
        cache.remove("a").unwrap();
        cache.remove("broken").unwrap();
        assert!(cache.scan().unwrap().is_empty());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
        assert!(cache.remove("a").is_err());
    }

    #[test]
    fn a_missing_root_is_an_empty_cache() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(
            CacheDir::new(tmp.path().join("none"))
                .scan()
                .unwrap()
                .is_empty()
        );
    }
}
