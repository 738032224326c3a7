//! Finding and reading the scheduler manifest.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ktstr_domain::plan::manifest::{SchedulerBinary, SchedulerDecl, parse_manifest};

pub const DEFAULT_MANIFEST: &str = "ktstr.toml";

/// Reads `path`, or `ktstr.toml` in `cwd` when no path is given. Relative binary paths
/// become relative to the manifest's directory.
pub fn load_manifest(path: Option<&Path>, cwd: &Path) -> Result<(PathBuf, Vec<SchedulerDecl>)> {
    let path = match path {
        Some(p) => cwd.join(p),
        None => {
            let default = cwd.join(DEFAULT_MANIFEST);
            if !default.exists() {
                bail!(
                    "no {DEFAULT_MANIFEST} in {}; create one with [[scheduler]] tables or pass --manifest PATH",
                    cwd.display()
                );
            }
            default
        }
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading manifest {}", path.display()))?;
    let mut decls =
        parse_manifest(&text).with_context(|| format!("invalid manifest {}", path.display()))?;
    let base = path.parent().unwrap_or(cwd).to_path_buf();
    for decl in &mut decls {
        if let SchedulerBinary::Path(p) = &mut decl.binary {
            let joined = base.join(&*p);
            *p = joined.to_string_lossy().into_owned();
        }
    }
    Ok((path, decls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_binaries_against_the_manifest_dir() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("conf");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(
            sub.join("m.toml"),
            "[[scheduler]]\nname = \"s\"\nbinary = \"bin/s\"\n",
        )
        .unwrap();
        let (path, decls) = load_manifest(Some(Path::new("conf/m.toml")), dir.path()).unwrap();
        assert_eq!(path, sub.join("m.toml"));
        assert_eq!(
            decls[0].binary,
            SchedulerBinary::Path(sub.join("bin/s").to_string_lossy().into_owned())
        );
    }

    #[test]
    fn missing_and_invalid_manifests_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_manifest(None, dir.path()).unwrap_err().to_string();
        assert!(err.contains("pass --manifest PATH"), "{err}");
        let err = format!(
            "{:#}",
            load_manifest(Some(Path::new("nope.toml")), dir.path()).unwrap_err()
        );
        assert!(
            err.contains("reading manifest") && err.contains("nope.toml"),
            "{err}"
        );
        std::fs::write(
            dir.path().join(DEFAULT_MANIFEST),
            "[[scheduler]]\nname = 1\n",
        )
        .unwrap();
        let err = format!("{:#}", load_manifest(None, dir.path()).unwrap_err());
        assert!(err.contains("invalid manifest"), "{err}");
    }
}
