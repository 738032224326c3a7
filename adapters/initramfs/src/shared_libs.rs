//! Which shared objects the guest's dynamic loader will map for a binary, and where it
//! will look for them: resolved recursively from DT_NEEDED the way glibc's ld.so does.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::elf::{self, ElfInfo, ElfKind};
use crate::error::BuildError;
use crate::ldconf;
use crate::paths::normalize;

/// Where libraries are looked for after each object's own RPATH/RUNPATH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibrarySearch {
    /// Read with its `include` lines, like ldconfig does.
    pub ld_so_conf: PathBuf,
    /// Packed when a library came from an ld.so.conf directory the guest loader would
    /// not search by default; the cache is how the loader learns about such directories.
    pub ld_so_cache: PathBuf,
    /// Searched last, in order.
    pub fallback_dirs: Vec<PathBuf>,
}

impl Default for LibrarySearch {
    fn default() -> Self {
        Self {
            ld_so_conf: "/etc/ld.so.conf".into(),
            ld_so_cache: "/etc/ld.so.cache".into(),
            fallback_dirs: [
                "/lib/x86_64-linux-gnu",
                "/usr/lib/x86_64-linux-gnu",
                "/lib64",
                "/usr/lib64",
                "/lib",
                "/usr/lib",
            ]
            .map(PathBuf::from)
            .into(),
        }
    }
}

/// One object to pack: the guest path the loader will open, the host file it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placed {
    pub guest_path: String,
    pub host_path: PathBuf,
}

#[derive(Debug, Default)]
pub(crate) struct Dependencies {
    /// The interpreter first, then libraries in load order.
    pub objects: Vec<Placed>,
    pub needs_ld_cache: bool,
}

/// The system directories, read once per image.
#[derive(Debug)]
pub(crate) struct SystemDirs {
    conf: Vec<PathBuf>,
    fallback: Vec<PathBuf>,
}

impl SystemDirs {
    pub(crate) fn load(search: &LibrarySearch) -> Self {
        Self {
            conf: ldconf::directories(&search.ld_so_conf),
            fallback: search.fallback_dirs.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Rpath,
    Conf,
    Fallback,
}

#[derive(Debug, Clone)]
struct SearchDir {
    host: PathBuf,
    guest: String,
    origin: Origin,
}

#[derive(Debug)]
struct Node {
    host: PathBuf,
    /// Directory `$ORIGIN` means on the host and in the guest.
    origin_host: PathBuf,
    origin_guest: String,
    info: ElfInfo,
    /// RPATH directories of the objects that pulled this one in, nearest first.
    inherited: Rc<Vec<SearchDir>>,
}

/// Everything the loader maps for `binary`, which the guest holds at `guest_path`.
/// A statically linked binary yields nothing.
pub(crate) fn dependencies(
    binary: &Path,
    guest_path: &str,
    dirs: &SystemDirs,
) -> Result<Dependencies, BuildError> {
    let data = read(binary)?;
    let info = elf::parse(&data).map_err(|reason| BuildError::NotElf {
        path: binary.to_owned(),
        reason,
    })?;
    let mut deps = Dependencies::default();
    let mut loaded: HashSet<String> = HashSet::new();
    let mut queue = VecDeque::new();

    if let Some(interp) = info.interpreter.clone() {
        let interp_info = interpreter(&interp, binary, info.kind)?;
        // libc names the loader in DT_NEEDED; it is already mapped, as in a real process.
        loaded.extend(interp_info.soname.clone());
        loaded.extend(
            Path::new(&interp)
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned),
        );
        deps.objects.push(Placed {
            guest_path: normalize(&interp),
            host_path: interp.clone().into(),
        });
    }

    // The kernel reports the executable's canonical path, so that is where $ORIGIN points.
    let canonical = binary.canonicalize().map_err(|source| BuildError::Read {
        path: binary.to_owned(),
        source,
    })?;
    queue.push_back(Node {
        host: binary.to_owned(),
        origin_host: canonical.parent().unwrap_or(Path::new("/")).to_owned(),
        origin_guest: parent(guest_path),
        info,
        inherited: Rc::new(Vec::new()),
    });

    while let Some(node) = queue.pop_front() {
        // An object with DT_RUNPATH ignores every DT_RPATH, its own and its loaders'.
        let runpath = expand_all(&node.info.runpath, &node);
        let rpath: Rc<Vec<SearchDir>> = if node.info.runpath.is_empty() {
            let mut chain = expand_all(&node.info.rpath, &node);
            chain.extend(node.inherited.iter().cloned());
            Rc::new(chain)
        } else {
            Rc::new(Vec::new())
        };
        let mut order: Vec<SearchDir> = Vec::new();
        if runpath.is_empty() {
            order.extend(rpath.iter().cloned());
        }
        order.extend(runpath);
        order.extend(dirs.conf.iter().filter_map(|d| system_dir(d, Origin::Conf)));
        order.extend(
            dirs.fallback
                .iter()
                .filter_map(|d| system_dir(d, Origin::Fallback)),
        );

        for name in &node.info.needed {
            if loaded.contains(name) {
                continue;
            }
            let (found, dir) = find(name, &order, node.info.kind)
                .map_err(|skipped| missing(name, &node, binary, &order, &skipped))?;
            let lib_data = read(&found.host_path)?;
            let lib_info = elf::parse(&lib_data).map_err(|reason| BuildError::NotElf {
                path: found.host_path.clone(),
                reason,
            })?;
            if dir
                .as_ref()
                .is_some_and(|d| d.origin == Origin::Conf && !dirs.fallback.contains(&d.host))
            {
                deps.needs_ld_cache = true;
            }
            loaded.insert(name.clone());
            loaded.extend(lib_info.soname.clone());
            queue.push_back(Node {
                origin_host: found
                    .host_path
                    .parent()
                    .unwrap_or(Path::new("/"))
                    .to_owned(),
                origin_guest: parent(&found.guest_path),
                host: found.host_path.clone(),
                info: lib_info,
                inherited: Rc::clone(&rpath),
            });
            deps.objects.push(found);
        }
    }
    Ok(deps)
}

fn interpreter(interp: &str, binary: &Path, want: ElfKind) -> Result<ElfInfo, BuildError> {
    let fail = |reason: String| BuildError::Interpreter {
        interpreter: interp.to_owned(),
        binary: binary.to_owned(),
        reason,
    };
    let data = std::fs::read(interp).map_err(|e| fail(e.to_string()))?;
    let info = elf::parse(&data).map_err(fail)?;
    if info.kind != want {
        return Err(fail(format!(
            "its ELF class/machine {:?} differs from the binary's {want:?}",
            info.kind
        )));
    }
    Ok(info)
}

/// The first candidate of the right class and machine, or the rejected candidates.
fn find(
    name: &str,
    order: &[SearchDir],
    want: ElfKind,
) -> Result<(Placed, Option<SearchDir>), Vec<PathBuf>> {
    // A name with a slash is a path, opened as is (only absolute ones make sense here).
    if name.contains('/') {
        let path = PathBuf::from(name);
        return match kind_of(&path) {
            Some(kind) if kind == want && path.is_absolute() => Ok((
                Placed {
                    guest_path: normalize(name),
                    host_path: path,
                },
                None,
            )),
            Some(_) => Err(vec![path]),
            None => Err(Vec::new()),
        };
    }
    let mut skipped = Vec::new();
    for dir in order {
        let candidate = dir.host.join(name);
        match kind_of(&candidate) {
            Some(kind) if kind == want => {
                let placed = Placed {
                    guest_path: normalize(&format!("{}/{name}", dir.guest)),
                    host_path: candidate,
                };
                return Ok((placed, Some(dir.clone())));
            }
            Some(_) => skipped.push(candidate),
            None => {}
        }
    }
    Err(skipped)
}

/// The ELF kind of a regular file, or None when it is absent or not ELF.
fn kind_of(path: &Path) -> Option<ElfKind> {
    let mut head = Vec::with_capacity(64);
    File::open(path)
        .ok()?
        .take(64)
        .read_to_end(&mut head)
        .ok()?;
    elf::kind(&head).ok()
}

fn missing(
    name: &str,
    node: &Node,
    root: &Path,
    order: &[SearchDir],
    skipped: &[PathBuf],
) -> BuildError {
    let searched: Vec<String> = order.iter().map(|d| d.host.display().to_string()).collect();
    let skipped = if skipped.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = skipped.iter().map(|p| p.display().to_string()).collect();
        format!(
            "; rejected for the wrong ELF class or machine: {}",
            list.join(", ")
        )
    };
    BuildError::MissingLibrary {
        library: name.to_owned(),
        needed_by: node.host.clone(),
        via: if node.host == root {
            String::new()
        } else {
            format!(", pulled in by `{}`", root.display())
        },
        searched: searched.join(", "),
        skipped,
    }
}

fn expand_all(entries: &[String], node: &Node) -> Vec<SearchDir> {
    entries
        .iter()
        .filter_map(|e| expand(e, &node.origin_host, &node.origin_guest))
        .collect()
}

/// Substitutes `$ORIGIN`; entries with other tokens ($LIB, $PLATFORM) or relative
/// paths depend on things the guest does not share with the host, so they are skipped.
fn expand(entry: &str, origin_host: &Path, origin_guest: &str) -> Option<SearchDir> {
    let origin_host = origin_host.to_str()?;
    let sub = |origin: &str| {
        entry
            .replace("${ORIGIN}", origin)
            .replace("$ORIGIN", origin)
    };
    let host = sub(origin_host);
    if host.contains('$') || !host.starts_with('/') {
        return None;
    }
    Some(SearchDir {
        host: host.into(),
        guest: normalize(&sub(origin_guest)),
        origin: Origin::Rpath,
    })
}

fn system_dir(dir: &Path, origin: Origin) -> Option<SearchDir> {
    Some(SearchDir {
        host: dir.to_owned(),
        guest: normalize(dir.to_str()?),
        origin,
    })
}

fn parent(guest_path: &str) -> String {
    let normal = normalize(guest_path);
    match normal.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => normal[..i].to_owned(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, BuildError> {
    std::fs::read(path).map_err(|source| BuildError::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_expands_separately_for_host_and_guest() {
        let dir = expand("$ORIGIN/../lib", Path::new("/home/u/target"), "/ktstr/bin").unwrap();
        assert_eq!(dir.host, PathBuf::from("/home/u/target/../lib"));
        assert_eq!(dir.guest, "/ktstr/lib");
        let dir = expand("${ORIGIN}", Path::new("/h"), "/").unwrap();
        assert_eq!((dir.host, dir.guest), (PathBuf::from("/h"), "/".to_owned()));
        assert!(expand("/opt/$LIB", Path::new("/h"), "/").is_none());
        assert!(expand("relative/dir", Path::new("/h"), "/").is_none());
    }

    #[test]
    fn parent_of_guest_paths() {
        assert_eq!(parent("/init"), "/");
        assert_eq!(parent("/ktstr/bin/sched"), "/ktstr/bin");
    }
}
