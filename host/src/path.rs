//! Finding executables the way a shell would, from a `PATH`-style list passed in.

use std::ffi::OsStr;
use std::path::PathBuf;

/// The first `name` that is a file in one of `path`'s directories.
pub fn find_executable(path: &OsStr, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_match_in_path_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(b.path().join("tool"), "").unwrap();
        let path = std::env::join_paths([a.path(), b.path()]).unwrap();
        assert_eq!(find_executable(&path, "tool"), Some(b.path().join("tool")));
        std::fs::write(a.path().join("tool"), "").unwrap();
        assert_eq!(find_executable(&path, "tool"), Some(a.path().join("tool")));
        assert_eq!(find_executable(&path, "other"), None);
    }
}
