//! Kernel labels, versions and the specs that select kernels.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// `kernel_` + the label lowercased, non-alphanumerics turned into `_`, runs of `_` collapsed,
/// no trailing `_`. Idempotent: an already sanitized label is returned unchanged.
pub fn sanitize_label(raw: &str) -> String {
    let lowered: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let prefixed = if lowered.starts_with("kernel_") {
        lowered
    } else {
        format!("kernel_{lowered}")
    };
    let mut out = String::with_capacity(prefixed.len());
    for c in prefixed.chars() {
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// A kernel version as `(major, minor, patch, rc)`; a release sorts above its release
/// candidates (`6.15-rc3 < 6.15`). Serialized as its text, `6.12.117`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    pub rc: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{0}` is not a kernel version (expected MAJOR.MINOR[.PATCH][-rcN], e.g. 6.12.117)")]
pub struct VersionError(pub String);

impl FromStr for KernelVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || VersionError(s.to_string());
        let (numbers, rc) = match s.split_once("-rc") {
            Some((n, rc)) => (n, Some(parse_number(rc).ok_or_else(err)?)),
            None => (s, None),
        };
        let parts: Vec<&str> = numbers.split('.').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(err());
        }
        let num = |i: usize| parts.get(i).map_or(Some(0), |p| parse_number(p));
        Ok(KernelVersion {
            major: num(0).ok_or_else(err)?,
            minor: num(1).ok_or_else(err)?,
            patch: num(2).ok_or_else(err)?,
            rc,
        })
    }
}

impl TryFrom<String> for KernelVersion {
    type Error = VersionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<KernelVersion> for String {
    fn from(v: KernelVersion) -> Self {
        v.to_string()
    }
}

fn parse_number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl Ord for KernelVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then(match (self.rc, other.rc) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(&b),
            })
    }
}

impl PartialOrd for KernelVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(rc) = self.rc {
            write!(f, "-rc{rc}")?;
        }
        Ok(())
    }
}

/// How a user names kernels on the command line or in a scheduler's `kernels` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum KernelSpec {
    /// `START..END` or `START..=END`; both forms include both ends.
    Range {
        start: KernelVersion,
        end: KernelVersion,
        raw: String,
    },
    Version {
        version: KernelVersion,
        raw: String,
    },
    /// A kernel build tree or an image file.
    Path(String),
    CacheKey(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KernelSpecError {
    #[error("empty kernel spec")]
    Empty,
    #[error("kernel range `{spec}`: {source}")]
    RangeEnd {
        spec: String,
        #[source]
        source: VersionError,
    },
    #[error("kernel range `{0}` is empty: its start is above its end")]
    Backwards(String),
}

impl FromStr for KernelSpec {
    type Err = KernelSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(KernelSpecError::Empty);
        }
        if s.contains('/') || s.starts_with('.') || s.starts_with('~') {
            return Ok(KernelSpec::Path(s.to_string()));
        }
        if let Some((a, b)) = s.split_once("..") {
            let b = b.strip_prefix('=').unwrap_or(b);
            let end_of = |v: &str| {
                v.parse::<KernelVersion>()
                    .map_err(|source| KernelSpecError::RangeEnd {
                        spec: s.to_string(),
                        source,
                    })
            };
            let (start, end) = (end_of(a)?, end_of(b)?);
            if start > end {
                return Err(KernelSpecError::Backwards(s.to_string()));
            }
            return Ok(KernelSpec::Range {
                start,
                end,
                raw: s.to_string(),
            });
        }
        if let Ok(version) = s.parse::<KernelVersion>() {
            return Ok(KernelSpec::Version {
                version,
                raw: s.to_string(),
            });
        }
        Ok(KernelSpec::CacheKey(s.to_string()))
    }
}

impl TryFrom<String> for KernelSpec {
    type Error = KernelSpecError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<KernelSpec> for String {
    fn from(spec: KernelSpec) -> Self {
        spec.to_string()
    }
}

impl fmt::Display for KernelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelSpec::Range { raw, .. } | KernelSpec::Version { raw, .. } => f.write_str(raw),
            KernelSpec::Path(p) => f.write_str(p),
            KernelSpec::CacheKey(k) => f.write_str(k),
        }
    }
}

/// A kernel taking part in a sweep: its raw label and, when known, its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelLabel {
    pub raw: String,
    pub version: Option<KernelVersion>,
}

impl KernelLabel {
    pub fn new(raw: impl Into<String>, version: Option<KernelVersion>) -> Self {
        KernelLabel {
            raw: raw.into(),
            version,
        }
    }

    pub fn sanitized(&self) -> String {
        sanitize_label(&self.raw)
    }
}

impl KernelSpec {
    /// Whether this spec selects `kernel`: versions match the raw or sanitized
    /// label, ranges match the version, paths and cache keys match by sanitized label.
    pub fn selects(&self, kernel: &KernelLabel) -> bool {
        match self {
            KernelSpec::Version { raw, .. } => {
                kernel.raw == *raw || sanitize_label(raw) == kernel.sanitized()
            }
            KernelSpec::Range { start, end, .. } => {
                kernel.version.is_some_and(|v| (*start..=*end).contains(&v))
            }
            KernelSpec::Path(s) | KernelSpec::CacheKey(s) => {
                sanitize_label(s) == kernel.sanitized()
            }
        }
    }
}

/// A scheduler's `kernels` list: empty accepts every kernel.
pub fn list_selects(specs: &[KernelSpec], kernel: &KernelLabel) -> bool {
    specs.is_empty() || specs.iter().any(|s| s.selects(kernel))
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LabelError {
    #[error("no kernel labelled `{label}` in this sweep; present: {}", present.join(", "))]
    Unknown { label: String, present: Vec<String> },
    #[error("two kernels share the label `{0}`; give one a distinct label")]
    Duplicate(String),
}

/// Finds the kernel whose sanitized label is `label`, or names the ones present.
pub fn find_label<'a>(
    label: &str,
    kernels: &'a [KernelLabel],
) -> Result<&'a KernelLabel, LabelError> {
    let wanted = sanitize_label(label);
    kernels
        .iter()
        .find(|k| k.sanitized() == wanted)
        .ok_or_else(|| LabelError::Unknown {
            label: label.to_string(),
            present: kernels.iter().map(KernelLabel::sanitized).collect(),
        })
}

/// Labels must be unique within a sweep once sanitized.
pub fn check_unique(kernels: &[KernelLabel]) -> Result<(), LabelError> {
    let mut seen = std::collections::HashSet::new();
    for k in kernels {
        if !seen.insert(k.sanitized()) {
            return Err(LabelError::Duplicate(k.sanitized()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> KernelVersion {
        s.parse().unwrap()
    }

    #[test]
    fn sanitizes_labels_as_specified() {
        assert_eq!(sanitize_label("6.15-rc3"), "kernel_6_15_rc3");
        assert_eq!(sanitize_label("6.12.117"), "kernel_6_12_117");
        assert_eq!(sanitize_label("My--Kernel!!"), "kernel_my_kernel");
        assert_eq!(sanitize_label("__x__"), "kernel_x");
        assert_eq!(sanitize_label("kernel_6_15_rc3"), "kernel_6_15_rc3");
        assert_eq!(sanitize_label("../linux"), "kernel_linux");
    }

    #[test]
    fn versions_order_releases_above_their_rcs() {
        assert!(v("6.15-rc3") < v("6.15"));
        assert!(v("6.15-rc3") < v("6.15-rc4"));
        assert!(v("6.14.9") < v("6.15-rc1"));
        assert_eq!(v("6.12"), v("6.12.0"));
        assert_eq!(v("6.12.117").to_string(), "6.12.117");
        for bad in ["6", "6.x", "6.12.1.2", "6.12-rc", "v6.12", "6.12-rcx", ""] {
            assert!(bad.parse::<KernelVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_every_spec_kind() {
        assert!(matches!("6.14..6.16".parse(), Ok(KernelSpec::Range { .. })));
        assert!(matches!(
            "6.14..=6.16".parse(),
            Ok(KernelSpec::Range { .. })
        ));
        assert!(matches!("6.12.117".parse(), Ok(KernelSpec::Version { .. })));
        assert_eq!("../linux".parse(), Ok(KernelSpec::Path("../linux".into())));
        assert_eq!(
            "/boot/vmlinuz".parse(),
            Ok(KernelSpec::Path("/boot/vmlinuz".into()))
        );
        assert_eq!("~/linux".parse(), Ok(KernelSpec::Path("~/linux".into())));
        assert_eq!(
            "a1b2c3-x86_64".parse(),
            Ok(KernelSpec::CacheKey("a1b2c3-x86_64".into()))
        );
        assert_eq!("".parse::<KernelSpec>(), Err(KernelSpecError::Empty));
        assert!(matches!(
            "6.14..banana".parse::<KernelSpec>(),
            Err(KernelSpecError::RangeEnd { .. })
        ));
        assert_eq!(
            "6.16..6.14".parse::<KernelSpec>(),
            Err(KernelSpecError::Backwards("6.16..6.14".into()))
        );
    }

    #[test]
    fn ranges_include_both_ends_in_both_forms() {
        let k = |s: &str| KernelLabel::new(s, Some(v(s)));
        for spec in ["6.14..6.16", "6.14..=6.16"] {
            let spec: KernelSpec = spec.parse().unwrap();
            assert!(spec.selects(&k("6.14")));
            assert!(spec.selects(&k("6.16")));
            assert!(spec.selects(&k("6.15.3")));
            assert!(!spec.selects(&k("6.17")));
            assert!(!spec.selects(&k("6.14-rc7")));
            assert!(!spec.selects(&KernelLabel::new("mystery", None)));
        }
    }

    #[test]
    fn versions_match_raw_or_sanitized_labels_and_keys_match_sanitized() {
        let spec: KernelSpec = "6.14.2".parse().unwrap();
        assert!(spec.selects(&KernelLabel::new("6.14.2", None)));
        assert!(spec.selects(&KernelLabel::new("kernel_6_14_2", None)));
        assert!(!spec.selects(&KernelLabel::new("6.14.20", None)));
        let key: KernelSpec = "MyKey".parse().unwrap();
        assert!(key.selects(&KernelLabel::new("mykey", None)));
        assert!(list_selects(&[], &KernelLabel::new("anything", None)));
        assert!(!list_selects(&[spec], &KernelLabel::new("anything", None)));
    }

    #[test]
    fn unknown_label_names_the_present_ones() {
        let ks = [
            KernelLabel::new("6.12.117", None),
            KernelLabel::new("6.1.158", None),
        ];
        assert_eq!(find_label("kernel_6_12_117", &ks).unwrap().raw, "6.12.117");
        let err = find_label("6.13", &ks).unwrap_err().to_string();
        assert_eq!(
            err,
            "no kernel labelled `6.13` in this sweep; present: kernel_6_12_117, kernel_6_1_158"
        );
        assert!(check_unique(&ks).is_ok());
        let dup = [
            KernelLabel::new("6.12", None),
            KernelLabel::new("6_12", None),
        ];
        assert_eq!(
            check_unique(&dup),
            Err(LabelError::Duplicate("kernel_6_12".into()))
        );
    }
}
