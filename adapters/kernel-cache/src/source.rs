//! Where a kernel is built from, and the fingerprint its cache key is derived from.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::CacheError;

/// Debian's sched_ext-capable kernel source, installed by `apt-get install linux-source-6.12`.
pub const DEFAULT_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// A `.tar.xz`/`.tar.gz`/`.tar` of a kernel tree.
    Tarball(PathBuf),
    /// An unpacked, clean kernel tree (built out of tree, never written to).
    Tree(PathBuf),
}

impl KernelSource {
    /// The default source, or an error with the `apt-get` line that installs it.
    pub fn default_source() -> Result<Self, CacheError> {
        Self::from_path(Path::new(DEFAULT_TARBALL))
    }

    pub fn from_path(path: &Path) -> Result<Self, CacheError> {
        if path.is_dir() {
            if !path.join("Makefile").is_file() || !path.join("Kconfig").is_file() {
                return Err(CacheError::BadSource {
                    path: path.display().to_string(),
                    reason: "not a kernel tree (no Makefile and Kconfig)".into(),
                });
            }
            Ok(KernelSource::Tree(path.to_path_buf()))
        } else if path.is_file() {
            Ok(KernelSource::Tarball(path.to_path_buf()))
        } else if path == Path::new(DEFAULT_TARBALL) {
            Err(CacheError::SourceMissing(path.display().to_string()))
        } else {
            Err(CacheError::BadSource {
                path: path.display().to_string(),
                reason: "no such file or directory".into(),
            })
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            KernelSource::Tarball(p) | KernelSource::Tree(p) => p,
        }
    }

    /// A fingerprint of the source's content: the tarball's SHA-256, or for a tree its
    /// top Makefile (the version) plus the tree's path and the newest mtime of its
    /// top-level entries (a cheap stand-in for hashing a whole tree).
    pub fn identity(&self) -> Result<String, CacheError> {
        match self {
            KernelSource::Tarball(path) => {
                let mut file = fs::File::open(path).map_err(|e| CacheError::io(path, e))?;
                let mut hasher = Sha256::new();
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = file.read(&mut buf).map_err(|e| CacheError::io(path, e))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                }
                Ok(format!("tarball-sha256:{}", hex(&hasher.finalize())))
            }
            KernelSource::Tree(path) => {
                let makefile = fs::read(path.join("Makefile"))
                    .map_err(|e| CacheError::io(&path.join("Makefile"), e))?;
                let newest = fs::read_dir(path)
                    .map_err(|e| CacheError::io(path, e))?
                    .filter_map(|e| e.ok()?.metadata().ok()?.modified().ok())
                    .max()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                let mut hasher = Sha256::new();
                hasher.update(&makefile);
                hasher.update(path.to_string_lossy().as_bytes());
                hasher.update(newest.to_le_bytes());
                Ok(format!("tree-sha256:{}", hex(&hasher.finalize())))
            }
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The cache key: the version, then a hash of everything that changes the built kernel.
pub fn cache_key(version: &str, identity: &str, fragment: &str, arch: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [identity, fragment, arch] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hex(&hasher.finalize());
    format!("{version}-{arch}-{}", &digest[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_with_every_input() {
        let base = cache_key("6.12.117", "id", "frag", "x86_64");
        assert!(base.starts_with("6.12.117-x86_64-"));
        assert_eq!(base, cache_key("6.12.117", "id", "frag", "x86_64"));
        assert_ne!(base, cache_key("6.12.117", "id2", "frag", "x86_64"));
        assert_ne!(base, cache_key("6.12.117", "id", "frag2", "x86_64"));
        assert_ne!(base, cache_key("6.12.117", "id", "frag", "aarch64"));
    }

    #[test]
    fn sources_are_checked_and_fingerprinted() {
        let tmp = tempfile::tempdir().unwrap();
        let tarball = tmp.path().join("linux.tar.xz");
        fs::write(&tarball, b"not really xz").unwrap();
        let src = KernelSource::from_path(&tarball).unwrap();
        let id = src.identity().unwrap();
        assert!(id.starts_with("tarball-sha256:"));
        fs::write(&tarball, b"other content").unwrap();
        assert_ne!(id, src.identity().unwrap());

        let err = KernelSource::from_path(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("not a kernel tree"), "{err}");
        fs::write(tmp.path().join("Makefile"), "VERSION = 6\n").unwrap();
        fs::write(tmp.path().join("Kconfig"), "").unwrap();
        let tree = KernelSource::from_path(tmp.path()).unwrap();
        assert!(tree.identity().unwrap().starts_with("tree-sha256:"));

        let err = KernelSource::from_path(&tmp.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such file"), "{err}");
    }

    #[test]
    fn the_missing_default_source_names_the_apt_line() {
        let err = CacheError::SourceMissing(DEFAULT_TARBALL.into()).to_string();
        assert!(err.contains("apt-get install linux-source-6.12"), "{err}");
    }
}
