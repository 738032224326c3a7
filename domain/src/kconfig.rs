//! Reading a kernel `.config` and the options a sweep cannot run without.

use std::collections::BTreeMap;

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
