//! A file with no name on disk: a memfd that QEMU opens through `/proc/<our pid>/fd/<n>`.
//! Guest RAM, the console and the frame channel live in these, so a run that ends any
//! way at all (SIGKILL included) leaves nothing in `/dev/shm` or `/tmp`: the kernel frees
//! a memfd with its last descriptor.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::{MemfdFlags, memfd_create};

#[derive(Debug)]
pub struct MemFile {
    file: File,
    path: PathBuf,
}

impl MemFile {
    /// An empty file; `name` only labels it in `/proc/<pid>/fd` listings.
    pub fn create(name: &str) -> io::Result<Self> {
        let file = File::from(memfd_create(name, MemfdFlags::CLOEXEC)?);
        // Our pid, not `self`: the path is opened by QEMU, whose /proc/self is its own.
        let path = PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            file.as_raw_fd()
        ));
        Ok(MemFile { file, path })
    }

    /// Where another process opens this file (the same file, not a copy).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Its size now; 0 when it cannot be read.
    pub fn len(&self) -> u64 {
        self.file.metadata().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its first `limit` bytes at most.
    pub fn read_to_limit(&self, limit: u64) -> Vec<u8> {
        self.read_from(0, self.len().min(limit))
    }

    /// Its last `limit` bytes at most.
    pub fn read_tail(&self, limit: u64) -> Vec<u8> {
        let len = self.len();
        self.read_from(len.saturating_sub(limit), len.min(limit))
    }

    fn read_from(&self, at: u64, len: u64) -> Vec<u8> {
        let mut buf = vec![0u8; len as usize];
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], at + done as u64) {
                Ok(0) | Err(_) => break,
                Ok(n) => done += n,
            }
        }
        buf.truncate(done);
        buf
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write;

    use super::*;

    #[test]
    fn another_opener_writes_the_same_file_and_nothing_is_named_on_disk() {
        let mem = MemFile::create("test").unwrap();
        // What QEMU does with a `file:` chardev path: open it for writing, truncating.
        let mut other = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(mem.path())
            .unwrap();
        other.write_all(b"hello, host").unwrap();
        assert_eq!(mem.len(), 11);
        assert_eq!(mem.read_to_limit(5), b"hello");
        assert_eq!(mem.read_to_limit(100), b"hello, host");
        assert_eq!(mem.read_tail(4), b"host");
        assert_eq!(mem.read_tail(100), b"hello, host");
        let target = std::fs::read_link(mem.path()).unwrap();
        assert!(
            target.to_string_lossy().starts_with("/memfd:test"),
            "{target:?}"
        );
    }
}
