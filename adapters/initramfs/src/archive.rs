//! Loading entry contents, keying them, and writing them as gzip-compressed newc cpio.

use std::io::{self, Write};

use cpio::newc::{Builder, ModeFileType, trailer};
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::contents::{EntrySource, ImageEntry};
use crate::error::BuildError;

/// Bumped whenever the archive layout changes, so old cache entries are not reused.
const FORMAT: &[u8] = b"ktstr-initramfs/1\0";

/// An entry with its bytes in memory (empty for directories and devices).
#[derive(Debug)]
pub(crate) struct Loaded {
    pub entry: ImageEntry,
    pub data: Vec<u8>,
}

pub(crate) fn load(entries: Vec<ImageEntry>) -> Result<Vec<Loaded>, BuildError> {
    entries
        .into_iter()
        .map(|entry| {
            let data = match &entry.source {
                EntrySource::HostFile(path) => {
                    std::fs::read(path).map_err(|source| BuildError::Read {
                        path: path.clone(),
                        source,
                    })?
                }
                EntrySource::Generated(bytes) => bytes.clone(),
                EntrySource::Directory | EntrySource::CharDevice { .. } => Vec::new(),
            };
            if u32::try_from(data.len()).is_err() {
                return Err(BuildError::TooLarge {
                    path: entry.guest_path,
                    size: data.len(),
                });
            }
            Ok(Loaded { entry, data })
        })
        .collect()
}

/// SHA-256 over every member's path, type, mode and bytes: two images share a key
/// exactly when their archives would be identical.
pub(crate) fn cache_key(loaded: &[Loaded]) -> String {
    let mut hash = Sha256::new();
    hash.update(FORMAT);
    for Loaded { entry, data } in loaded {
        hash.update(entry.guest_path.as_bytes());
        hash.update([0]);
        hash.update(full_mode(entry).to_le_bytes());
        if let EntrySource::CharDevice { major, minor } = entry.source {
            hash.update(major.to_le_bytes());
            hash.update(minor.to_le_bytes());
        }
        hash.update((data.len() as u64).to_le_bytes());
        hash.update(data);
    }
    format!("{:x}", hash.finalize())
}

/// Writes the archive; owner root, mtime 0, so equal inputs give equal bytes.
pub(crate) fn write<W: Write>(loaded: &[Loaded], out: W) -> io::Result<W> {
    // Level 1: images are rebuilt rarely but waited on; size barely matters for a VM.
    let mut gz = GzEncoder::new(out, Compression::fast());
    for (ino, Loaded { entry, data }) in (1u32..).zip(loaded) {
        // The kernel unpacker wants names relative to the root.
        let name = entry.guest_path.trim_start_matches('/');
        let mut header = Builder::new(name)
            .ino(ino)
            .mode(full_mode(entry))
            .uid(0)
            .gid(0)
            .mtime(0)
            .nlink(if matches!(entry.source, EntrySource::Directory) {
                2
            } else {
                1
            });
        if let EntrySource::CharDevice { major, minor } = entry.source {
            header = header.rdev_major(major).rdev_minor(minor);
        }
        let size = u32::try_from(data.len()).map_err(io::Error::other)?;
        let mut member = header.write(&mut gz, size);
        member.write_all(data)?;
        member.finish()?;
    }
    trailer(&mut gz)?;
    gz.finish()
}

fn full_mode(entry: &ImageEntry) -> u32 {
    let kind = match entry.source {
        EntrySource::Directory => ModeFileType::Directory,
        EntrySource::CharDevice { .. } => ModeFileType::Char,
        EntrySource::HostFile(_) | EntrySource::Generated(_) => ModeFileType::Regular,
    };
    u32::from(kind) | (entry.mode & 0o7777)
}
