//! Reading a kernel `.config` and the options a sweep cannot run without.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::kernel::spec::KernelVersion;

/// One `CONFIG_X=value` line of a configuration fragment, with the reason given above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentOption {
    pub name: String,
    pub value: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FragmentError {
    #[error("fragment line {line}: `{text}` is not CONFIG_NAME=value")]
    Syntax { line: usize, text: String },
    #[error("fragment line {line}: {name} has no `# reason` comment above it")]
    NoReason { line: usize, name: String },
    #[error("fragment line {line}: {name} is set twice")]
    Duplicate { line: usize, name: String },
}

/// Parses a fragment in which every option is preceded by a one-line `# reason`.
pub fn parse_fragment(text: &str) -> Result<Vec<FragmentOption>, FragmentError> {
    let mut options: Vec<FragmentOption> = Vec::new();
    let mut reason: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let number = i + 1;
        if line.is_empty() {
            reason = None;
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            reason = Some(comment.trim().to_string());
            continue;
        }
        let Some((name, value)) = line
            .split_once('=')
            .filter(|(n, v)| n.starts_with("CONFIG_") && !v.is_empty())
        else {
            return Err(FragmentError::Syntax {
                line: number,
                text: line.to_string(),
            });
        };
        if options.iter().any(|o| o.name == name) {
            return Err(FragmentError::Duplicate {
                line: number,
                name: name.to_string(),
            });
        }
        let Some(why) = reason.take() else {
            return Err(FragmentError::NoReason {
                line: number,
                name: name.to_string(),
            });
        };
        options.push(FragmentOption {
            name: name.to_string(),
            value: value.to_string(),
            reason: why,
        });
    }
    Ok(options)
}

/// Options whose absence makes every cell on a kernel fail before booting, with the reason.
pub const REQUIRED_OPTIONS: &[(&str, &str)] = &[
    ("CONFIG_SCHED_CLASS_EXT", "sched_ext itself"),
    ("CONFIG_BPF_SYSCALL", "loading BPF programs"),
    (
        "CONFIG_DEBUG_INFO_BTF",
        "CO-RE relocations and struct_ops need kernel BTF",
    ),
];

/// A parsed `.config`: option name → value (`y`, `m`, a number or a quoted string).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelConfig {
    options: BTreeMap<String, String>,
}

impl KernelConfig {
    /// Parses `.config` text; `# CONFIG_X is not set` lines and comments are left out.
    pub fn parse(text: &str) -> Self {
        let options = text
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                let (name, value) = line.split_once('=')?;
                name.starts_with("CONFIG_")
                    .then(|| (name.to_string(), value.to_string()))
            })
            .collect();
        KernelConfig { options }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.options.get(name).map(String::as_str)
    }

    /// Built in (`=y`).
    pub fn is_builtin(&self, name: &str) -> bool {
        self.get(name) == Some("y")
    }

    /// The kernel version from the header `make` writes
    /// (`# Linux/x86 6.12.117 Kernel Configuration`).
    pub fn version_in_header(text: &str) -> Option<KernelVersion> {
        text.lines().take(8).find_map(|line| {
            let rest = line.strip_prefix("# Linux/")?;
            let (_arch, rest) = rest.split_once(' ')?;
            let version = rest.strip_suffix(" Kernel Configuration")?;
            // Local suffixes such as `6.12.117-ktstr` keep their numeric part.
            let numeric = version.split(['-', '+']).next()?;
            let rc = version
                .split_once("-rc")
                .and_then(|(_, rc)| rc.split(|c: char| !c.is_ascii_digit()).next())
                .map(|rc| format!("-rc{rc}"))
                .unwrap_or_default();
            format!("{numeric}{rc}").parse().ok()
        })
    }

    /// The fragment options that did not end up with the fragment's value; `=n` is kept
    /// when the option is absent, as `.config` writes it (`# CONFIG_X is not set`).
    pub fn dropped(&self, fragment: &[FragmentOption]) -> Vec<String> {
        fragment
            .iter()
            .filter(|opt| match (opt.value.as_str(), self.get(&opt.name)) {
                ("n", None) => false,
                (wanted, got) => got != Some(wanted),
            })
            .map(|opt| format!("{}={}", opt.name, opt.value))
            .collect()
    }

    /// The required options this kernel lacks, in `REQUIRED_OPTIONS` order.
    pub fn missing_required(&self) -> Vec<String> {
        REQUIRED_OPTIONS
            .iter()
            .filter(|(name, _)| !self.is_builtin(name))
            .map(|(name, _)| (*name).to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_and_ignores_unset_lines() {
        let cfg = KernelConfig::parse(
            "# comment\nCONFIG_SMP=y\n# CONFIG_NUMA is not set\nCONFIG_NR_CPUS=512\nCONFIG_LOCALVERSION=\"\"\n",
        );
        assert!(cfg.is_builtin("CONFIG_SMP"));
        assert_eq!(cfg.get("CONFIG_NR_CPUS"), Some("512"));
        assert_eq!(cfg.get("CONFIG_LOCALVERSION"), Some("\"\""));
        assert_eq!(cfg.get("CONFIG_NUMA"), None);
    }

    #[test]
    fn fragments_need_a_reason_per_option() {
        let opts = parse_fragment(
            "# header\n\n# sched_ext\nCONFIG_SCHED_CLASS_EXT=y\n# cpus\nCONFIG_NR_CPUS=512\n",
        )
        .unwrap();
        assert_eq!(opts.len(), 2);
        assert_eq!(opts[1].name, "CONFIG_NR_CPUS");
        assert_eq!(opts[1].value, "512");
        assert_eq!(opts[0].reason, "sched_ext");
        assert_eq!(
            parse_fragment("CONFIG_A=y\n"),
            Err(FragmentError::NoReason {
                line: 1,
                name: "CONFIG_A".into()
            })
        );
        assert!(matches!(
            parse_fragment("# x\nA=y\n"),
            Err(FragmentError::Syntax { line: 2, .. })
        ));
        assert!(matches!(
            parse_fragment("# x\nCONFIG_A=y\n# y\nCONFIG_A=n\n"),
            Err(FragmentError::Duplicate { line: 4, .. })
        ));
    }

    #[test]
    fn dropped_lists_options_that_did_not_survive() {
        let frag = parse_fragment("# a\nCONFIG_A=y\n# b\nCONFIG_B=512\n# c\nCONFIG_C=y\n").unwrap();
        let cfg = KernelConfig::parse("CONFIG_A=y\nCONFIG_B=64\n# CONFIG_C is not set\n");
        assert_eq!(cfg.dropped(&frag), ["CONFIG_B=512", "CONFIG_C=y"]);
        // Turning an option off survives as its absence, and only as that.
        let off = parse_fragment("# a\nCONFIG_A=n\n# c\nCONFIG_C=n\n").unwrap();
        assert_eq!(cfg.dropped(&off), ["CONFIG_A=n"]);
    }

    #[test]
    fn reads_the_version_from_the_config_header() {
        let v = |t: &str| KernelConfig::version_in_header(t).map(|v| v.to_string());
        assert_eq!(
            v(
                "#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86 6.12.117 Kernel Configuration\n#\n"
            ),
            Some("6.12.117".into())
        );
        assert_eq!(
            v("# Linux/x86_64 6.15.0-rc3 Kernel Configuration\n"),
            Some("6.15.0-rc3".into())
        );
        assert_eq!(
            v("# Linux/x86 6.1.158-ktstr Kernel Configuration\n"),
            Some("6.1.158".into())
        );
        assert_eq!(v("CONFIG_A=y\n"), None);
    }

    #[test]
    fn names_each_missing_required_option() {
        let full = KernelConfig::parse(
            "CONFIG_SCHED_CLASS_EXT=y\nCONFIG_BPF_SYSCALL=y\nCONFIG_DEBUG_INFO_BTF=y\n",
        );
        assert!(full.missing_required().is_empty());
        let old = KernelConfig::parse(
            "CONFIG_BPF_SYSCALL=y\nCONFIG_DEBUG_INFO_BTF=y\n# CONFIG_SCHED_CLASS_EXT is not set\n",
        );
        assert_eq!(old.missing_required(), ["CONFIG_SCHED_CLASS_EXT"]);
        assert_eq!(KernelConfig::parse("").missing_required().len(), 3);
    }
}
