//! Kernel-config variants: a kernel built with the user's own kconfig fragments applied
//! after ktstr's. A variant is named, and its label is `<version>+<name>`, so it never
//! passes for the plain kernel of the same version.

use thiserror::Error;

use crate::kernel::kconfig::FragmentOption;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VariantError {
    #[error("{file} line {line}: `{text}` is not CONFIG_NAME=value or `# CONFIG_NAME is not set`")]
    Syntax {
        file: String,
        line: usize,
        text: String,
    },
    #[error("{file} sets no option; a variant needs at least one CONFIG_NAME=value line")]
    Empty { file: String },
    #[error(
        "variant name `{0}` must be letters, digits, `_`, `-` or `.` (pass --label NAME to choose one)"
    )]
    BadName(String),
}

/// Parses a user's fragment as `merge_config.sh` reads it: `CONFIG_X=value` and
/// `# CONFIG_X is not set` (kept as `=n`); other comments and blank lines are ignored,
/// and a later line for the same option wins.
pub fn parse_user_fragment(file: &str, text: &str) -> Result<Vec<FragmentOption>, VariantError> {
    let mut options: Vec<FragmentOption> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let (name, value) = if let Some(comment) = line.strip_prefix('#') {
            match comment.trim().strip_suffix(" is not set") {
                Some(name) if name.starts_with("CONFIG_") => (name.to_string(), "n".to_string()),
                _ => continue,
            }
        } else if line.is_empty() {
            continue;
        } else {
            match line.split_once('=') {
                Some((n, v)) if n.starts_with("CONFIG_") && !v.is_empty() => {
                    (n.to_string(), v.to_string())
                }
                _ => {
                    return Err(VariantError::Syntax {
                        file: file.to_string(),
                        line: i + 1,
                        text: line.to_string(),
                    });
                }
            }
        };
        options.retain(|o| o.name != name);
        options.push(FragmentOption {
            name,
            value,
            reason: format!("from {file}"),
        });
    }
    if options.is_empty() {
        return Err(VariantError::Empty {
            file: file.to_string(),
        });
    }
    Ok(options)
}

/// What the finished `.config` must hold: `base` with every option `overlay` sets
/// replaced by the overlay's value, as merging the overlay after the base does.
pub fn overlay(base: &[FragmentOption], overlay: &[FragmentOption]) -> Vec<FragmentOption> {
    let mut merged: Vec<FragmentOption> = base
        .iter()
        .filter(|b| !overlay.iter().any(|o| o.name == b.name))
        .cloned()
        .collect();
    merged.extend(overlay.iter().cloned());
    merged
}

/// The variant's name from its fragments' file stems (`kvm-host.kconfig` → `kvm_host`),
/// joined with `+` when there are several.
pub fn name_from_stems<'a>(stems: impl IntoIterator<Item = &'a str>) -> String {
    stems
        .into_iter()
        .map(|stem| {
            stem.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("+")
}

/// A name the user chose must survive in labels, cache keys and directory names.
pub fn check_name(name: &str) -> Result<(), VariantError> {
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+');
    if name.is_empty() || !name.chars().all(fine) || name.starts_with(['.', '-', '+']) {
        return Err(VariantError::BadName(name.to_string()));
    }
    Ok(())
}

/// `6.12.118+kvm_host`: the version, then the variant's name.
pub fn variant_label(version: &str, name: &str) -> String {
    format!("{version}+{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::kconfig::parse_fragment;

    #[test]
    fn user_fragments_read_as_merge_config_reads_them() {
        let opts = parse_user_fragment(
            "kvm.kconfig",
            "# host side\nCONFIG_KVM=y\n\n# CONFIG_VT is not set\nCONFIG_NR_CPUS=64\nCONFIG_NR_CPUS=1024\n",
        )
        .unwrap();
        let pairs: Vec<(&str, &str)> = opts
            .iter()
            .map(|o| (o.name.as_str(), o.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("CONFIG_KVM", "y"),
                ("CONFIG_VT", "n"),
                ("CONFIG_NR_CPUS", "1024")
            ]
        );
        assert_eq!(opts[0].reason, "from kvm.kconfig");
        assert_eq!(
            parse_user_fragment("f", "CONFIG_A=y\nKVM=y\n")
                .unwrap_err()
                .to_string(),
            "f line 2: `KVM=y` is not CONFIG_NAME=value or `# CONFIG_NAME is not set`"
        );
        assert_eq!(
            parse_user_fragment("f", "# nothing\n"),
            Err(VariantError::Empty { file: "f".into() })
        );
    }

    #[test]
    fn the_overlay_wins_where_both_set_an_option() {
        let base = parse_fragment("# a\nCONFIG_NR_CPUS=512\n# b\nCONFIG_SMP=y\n").unwrap();
        let extra = parse_user_fragment("x", "CONFIG_NR_CPUS=1024\nCONFIG_KVM=y\n").unwrap();
        let merged = overlay(&base, &extra);
        let pairs: Vec<String> = merged
            .iter()
            .map(|o| format!("{}={}", o.name, o.value))
            .collect();
        assert_eq!(
            pairs,
            ["CONFIG_SMP=y", "CONFIG_NR_CPUS=1024", "CONFIG_KVM=y"]
        );
    }

    #[test]
    fn names_and_labels() {
        assert_eq!(name_from_stems(["kvm-host"]), "kvm_host");
        assert_eq!(
            name_from_stems(["NR_CPUS-1024", "kasan"]),
            "nr_cpus_1024+kasan"
        );
        assert_eq!(variant_label("6.12.118", "kvm_host"), "6.12.118+kvm_host");
        assert!(check_name("kvm_host").is_ok());
        assert!(check_name("l1.v2-x").is_ok());
        for bad in ["", "a/b", "a b", ".hidden", "-x", "+x"] {
            assert_eq!(check_name(bad), Err(VariantError::BadName(bad.into())));
        }
    }
}
