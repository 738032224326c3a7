//! Cell names: `verifier/<scheduler>/<kernel_label>/<preset>`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One (scheduler × kernel × topology preset) cell of a sweep.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CellId {
    pub scheduler: String,
    /// The sanitized kernel label (`kernel_6_12_117`).
    pub kernel: String,
    pub preset: String,
}

pub const CELL_PREFIX: &str = "verifier";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CellNameError {
    #[error("cell component `{0}` contains `/`")]
    Slash(String),
    #[error("cell component is empty")]
    Empty,
    #[error("`{0}` is not a cell name (verifier/<scheduler>/<kernel>/<preset>)")]
    Syntax(String),
}

impl CellId {
    /// Builds a cell id, refusing components that would make the name ambiguous.
    pub fn new(scheduler: &str, kernel: &str, preset: &str) -> Result<Self, CellNameError> {
        for part in [scheduler, kernel, preset] {
            if part.is_empty() {
                return Err(CellNameError::Empty);
            }
            if part.contains('/') {
                return Err(CellNameError::Slash(part.to_string()));
            }
        }
        Ok(CellId {
            scheduler: scheduler.to_string(),
            kernel: kernel.to_string(),
            preset: preset.to_string(),
        })
    }
}

impl fmt::Display for CellId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{CELL_PREFIX}/{}/{}/{}",
            self.scheduler, self.kernel, self.preset
        )
    }
}

impl FromStr for CellId {
    type Err = CellNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [CELL_PREFIX, sched, kernel, preset] => CellId::new(sched, kernel, preset),
            _ => Err(CellNameError::Syntax(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        let id = CellId::new("scx-ktstr", "kernel_6_12_117", "tiny-1llc").unwrap();
        assert_eq!(
            id.to_string(),
            "verifier/scx-ktstr/kernel_6_12_117/tiny-1llc"
        );
        assert_eq!(id.to_string().parse::<CellId>(), Ok(id));
    }

    #[test]
    fn refuses_slashes_and_malformed_names() {
        assert_eq!(
            CellId::new("a/b", "k", "p"),
            Err(CellNameError::Slash("a/b".into()))
        );
        assert_eq!(CellId::new("", "k", "p"), Err(CellNameError::Empty));
        for bad in [
            "verifier/a/b",
            "verifier/a/b/c/d",
            "other/a/b/c",
            "verifier//b/c",
        ] {
            assert!(bad.parse::<CellId>().is_err(), "{bad}");
        }
    }
}
