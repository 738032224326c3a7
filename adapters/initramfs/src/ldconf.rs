//! Library directories named by `/etc/ld.so.conf` and the files it includes.

use std::fs;
use std::path::{Path, PathBuf};

/// Includes nested deeper than this are assumed to be a loop.
const MAX_INCLUDE_DEPTH: usize = 8;

/// The directories in the order ldconfig would scan them. A missing file yields none:
/// hosts without ld.so.conf still have the built-in fallback directories.
pub(crate) fn directories(conf: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    read_into(conf, 0, &mut dirs);
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs
}

fn read_into(conf: &Path, depth: usize, dirs: &mut Vec<PathBuf>) {
    if depth > MAX_INCLUDE_DEPTH {
        return;
    }
    let Ok(text) = fs::read_to_string(conf) else {
        return;
    };
    let base = conf.parent().unwrap_or(Path::new("/"));
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        match words.next() {
            Some("include") => {
                for pattern in words {
                    // ldconfig resolves relative include patterns against the including file.
                    let pattern = base.join(pattern);
                    let Some(pattern) = pattern.to_str() else {
                        continue;
                    };
                    let Ok(matches) = glob::glob(pattern) else {
                        continue;
                    };
                    let mut files: Vec<PathBuf> = matches.filter_map(Result::ok).collect();
                    files.sort();
                    for file in files {
                        read_into(&file, depth + 1, dirs);
                    }
                }
            }
            Some("hwcap") => {}
            _ => {
                // Old syntax allows several directories per line and a "=TYPE" suffix.
                for entry in line.split(|c: char| c.is_whitespace() || c == ':' || c == ',') {
                    let dir = entry.split('=').next().unwrap_or("").trim_end_matches('/');
                    if dir.starts_with('/') {
                        dirs.push(PathBuf::from(dir));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_includes_in_order_and_skips_comments() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("ld.so.conf.d");
        fs::create_dir(&d).unwrap();
        fs::write(d.join("b.conf"), "/opt/b/lib\n").unwrap();
        fs::write(
            d.join("a.conf"),
            "# comment\n/opt/a/lib/ # trailing\n\n/opt/a/lib2=libc5\n",
        )
        .unwrap();
        fs::write(d.join("ignored.txt"), "/opt/ignored\n").unwrap();
        let conf = tmp.path().join("ld.so.conf");
        fs::write(
            &conf,
            "/first\ninclude ld.so.conf.d/*.conf\nhwcap 0 nosegneg\n/last /opt/a/lib\n",
        )
        .unwrap();
        let dirs = directories(&conf);
        let want: Vec<PathBuf> = ["/first", "/opt/a/lib", "/opt/a/lib2", "/opt/b/lib", "/last"]
            .map(PathBuf::from)
            .into();
        assert_eq!(dirs, want);
    }

    #[test]
    fn missing_and_self_including_files_terminate() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(directories(&tmp.path().join("absent.conf")).is_empty());
        let conf = tmp.path().join("loop.conf");
        fs::write(&conf, "/x\ninclude loop.conf\n").unwrap();
        assert_eq!(directories(&conf), vec![PathBuf::from("/x")]);
    }
}
