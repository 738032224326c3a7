//! The `GuestImageBuilder` adapter: a content-addressed cache of initramfs images.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use ktstr_domain::plan::guest_memory::ImageFootprint;
use ktstr_ports::{GuestImage, GuestImageBuilder, GuestImageError, GuestPlan};

use crate::archive;
use crate::contents::{self, ImageEntry};
use crate::error::BuildError;
use crate::shared_libs::LibrarySearch;

/// Builds `<cache_dir>/<sha256>.cpio.gz` images holding the init, the plan's scheduler,
/// the init plan and every shared object the two need.
#[derive(Debug, Clone)]
pub struct InitramfsBuilder {
    /// Host path of the guest init (`ktstr-init`), packed as `/init`.
    pub init_binary: PathBuf,
    pub cache_dir: PathBuf,
    /// Written into the init plan: how much scheduler output the init keeps.
    pub log_limit_bytes: u64,
    pub search: LibrarySearch,
}

impl InitramfsBuilder {
    /// A builder searching the host's library directories.
    pub fn new(
        init_binary: impl Into<PathBuf>,
        cache_dir: impl Into<PathBuf>,
        log_limit_bytes: u64,
    ) -> Self {
        Self {
            init_binary: init_binary.into(),
            cache_dir: cache_dir.into(),
            log_limit_bytes,
            search: LibrarySearch::default(),
        }
    }

    pub fn with_library_search(mut self, search: LibrarySearch) -> Self {
        self.search = search;
        self
    }

    /// Everything the image for `plan` would hold, in archive order. Reads ELF headers
    /// to resolve libraries but writes nothing.
    pub fn manifest(&self, plan: &GuestPlan) -> Result<Vec<ImageEntry>, BuildError> {
        contents::assemble(&self.init_binary, plan, self.log_limit_bytes, &self.search)
    }

    /// [`GuestImageBuilder::build`] without the runtime: blocking file IO and hashing.
    pub fn build_blocking(&self, plan: &GuestPlan) -> Result<GuestImage, BuildError> {
        let loaded = archive::load(self.manifest(plan)?)?;
        let path = self
            .cache_dir
            .join(format!("{}.cpio.gz", archive::cache_key(&loaded)));
        let unpacked_bytes = loaded.iter().map(|l| l.data.len() as u64).sum();
        let image = |path: PathBuf| -> Result<GuestImage, BuildError> {
            let compressed_bytes = fs::metadata(&path)
                .map_err(|source| BuildError::Read {
                    path: path.clone(),
                    source,
                })?
                .len();
            Ok(GuestImage {
                path,
                footprint: ImageFootprint {
                    compressed_bytes,
                    unpacked_bytes,
                },
            })
        };
        if path.is_file() {
            return image(path);
        }
        let fail = |source| BuildError::Write {
            dir: self.cache_dir.clone(),
            source,
        };
        fs::create_dir_all(&self.cache_dir).map_err(fail)?;
        // Written beside the final name and renamed, so a crash leaves no partial image there.
        let tmp = tempfile::Builder::new()
            .prefix(".partial-")
            .suffix(".cpio.gz")
            .tempfile_in(&self.cache_dir)
            .map_err(fail)?;
        let mut out = archive::write(&loaded, BufWriter::new(tmp.as_file())).map_err(fail)?;
        out.flush().map_err(fail)?;
        drop(out);
        tmp.as_file().sync_all().map_err(fail)?;
        tmp.persist(&path).map_err(|e| fail(e.error))?;
        prune(&self.cache_dir, KEEP_IMAGES, PRUNE_AGE);
        image(path)
    }
}

/// Images kept however old; past these, images older than [`PRUNE_AGE`] are removed.
const KEEP_IMAGES: usize = 32;
const PRUNE_AGE: Duration = Duration::from_secs(24 * 3600);

/// A partial image this old was left by a process killed outright (one is written in
/// seconds).
const ABANDONED_AGE: Duration = Duration::from_secs(3600);

/// Bounds the cache: every new scheduler build makes a new image; partial images of
/// killed processes go too. Best effort: a file that cannot be listed or removed is left
/// alone.
fn prune(dir: &Path, keep: usize, min_age: Duration) {
    let Ok(read) = fs::read_dir(dir) else { return };
    let now = SystemTime::now();
    let age = |modified: SystemTime| now.duration_since(modified).unwrap_or_default();
    let mut images: Vec<(SystemTime, PathBuf)> = read
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let modified = e.metadata().ok()?.modified().ok()?;
            if name.starts_with(".partial-") && age(modified) > ABANDONED_AGE {
                let _ = fs::remove_file(e.path());
            }
            if !name.ends_with(".cpio.gz") || name.starts_with('.') {
                return None;
            }
            Some((modified, e.path()))
        })
        .collect();
    images.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (modified, path) in images.into_iter().skip(keep) {
        if age(modified) > min_age {
            let _ = fs::remove_file(path);
        }
    }
}

#[async_trait]
impl GuestImageBuilder for InitramfsBuilder {
    async fn build(&self, plan: &GuestPlan) -> Result<GuestImage, GuestImageError> {
        let builder = self.clone();
        let plan = plan.clone();
        tokio::task::spawn_blocking(move || builder.build_blocking(&plan))
            .await
            .map_err(|e| BuildError::Task(e.to_string()))?
            .map_err(GuestImageError::from)
    }
}

#[cfg(test)]
mod prune_tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_the_recent_images() {
        let dir = tempfile::tempdir().unwrap();
        let day = Duration::from_secs(24 * 3600);
        let now = SystemTime::now();
        for (i, age) in [0u64, 1, 2, 3].iter().enumerate() {
            let path = dir.path().join(format!("{i}.cpio.gz"));
            let file = fs::File::create(&path).unwrap();
            file.set_modified(now - day * (*age as u32 * 2)).unwrap();
        }
        fs::write(dir.path().join("notes.txt"), "").unwrap();
        // A killed process's partial image goes once it is old; one being written stays.
        let abandoned = dir.path().join(".partial-abc.cpio.gz");
        fs::File::create(&abandoned)
            .unwrap()
            .set_modified(now - ABANDONED_AGE * 2)
            .unwrap();
        fs::write(dir.path().join(".partial-new.cpio.gz"), "").unwrap();
        prune(dir.path(), 1, day);
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        // The newest is kept by count; the others are over a day old and go.
        assert_eq!(left, [".partial-new.cpio.gz", "0.cpio.gz", "notes.txt"]);
    }
}
