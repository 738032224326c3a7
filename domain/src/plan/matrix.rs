//! Expanding declared schedulers × kernels × presets into the cells of a sweep.

use thiserror::Error;

use crate::kernel::spec::{KernelLabel, LabelError, check_unique, find_label, list_selects};
use crate::plan::cell::{CellId, CellNameError};
use crate::plan::manifest::SchedulerDecl;
use crate::shape::constraints::HostBudget;
use crate::shape::preset::{PRESETS, Preset};

/// What the user asked for on top of the manifest.
#[derive(Debug, Clone)]
pub struct MatrixRequest {
    /// `--scheduler NAME`.
    pub scheduler: Option<String>,
    /// Positional filters: a cell is kept when its name contains any of them.
    pub filters: Vec<String>,
    pub host: HostBudget,
}

/// A cell the sweep will run, with indices into the inputs it was expanded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCell {
    pub id: CellId,
    pub scheduler: usize,
    pub kernel: usize,
    pub preset: &'static Preset,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    pub cells: Vec<PlannedCell>,
    /// Things left out that the user should hear about.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MatrixError {
    #[error("no scheduler named `{name}`; declared: {}", declared.join(", "))]
    UnknownScheduler { name: String, declared: Vec<String> },
    #[error(transparent)]
    Label(#[from] LabelError),
    #[error("cell `{cell}`: {source}")]
    Cell {
        cell: String,
        #[source]
        source: LabelError,
    },
    #[error("no kernels to sweep")]
    NoKernels,
    #[error("no cells selected: {0}")]
    NoCells(String),
}

/// Expands the matrix in a stable order: scheduler, kernel, then preset catalogue order.
pub fn expand(
    schedulers: &[SchedulerDecl],
    kernels: &[KernelLabel],
    request: &MatrixRequest,
) -> Result<Matrix, MatrixError> {
    if kernels.is_empty() {
        return Err(MatrixError::NoKernels);
    }
    check_unique(kernels)?;
    check_named_cells(kernels, &request.filters)?;
    let chosen: Vec<(usize, &SchedulerDecl)> = match &request.scheduler {
        Some(name) => {
            let found = schedulers
                .iter()
                .enumerate()
                .filter(|(_, s)| s.name == *name)
                .collect::<Vec<_>>();
            if found.is_empty() {
                return Err(MatrixError::UnknownScheduler {
                    name: name.clone(),
                    declared: schedulers.iter().map(|s| s.name.clone()).collect(),
                });
            }
            found
        }
        None => schedulers.iter().enumerate().collect(),
    };

    let mut cells = Vec::new();
    let mut warnings = Vec::new();
    for (si, sched) in chosen {
        let accepted_kernels: Vec<usize> = (0..kernels.len())
            .filter(|&ki| list_selects(&sched.kernels, &kernels[ki]))
            .collect();
        if accepted_kernels.is_empty() {
            let specs: Vec<String> = sched.kernels.iter().map(ToString::to_string).collect();
            warnings.push(format!(
                "scheduler `{}`: its kernels list [{}] selects none of this sweep's kernels",
                sched.name,
                specs.join(", ")
            ));
        }
        for ki in accepted_kernels {
            for preset in PRESETS {
                if sched
                    .topology
                    .accepts(&preset.topology, request.host)
                    .is_err()
                {
                    continue;
                }
                let id = match CellId::new(&sched.name, &kernels[ki].sanitized(), preset.name) {
                    Ok(id) => id,
                    Err(CellNameError::Slash(part)) => {
                        warnings.push(format!(
                            "refusing cells of `{part}`: a `/` inside a cell name component is ambiguous"
                        ));
                        break;
                    }
                    Err(e) => {
                        warnings.push(format!("refusing a cell of `{}`: {e}", sched.name));
                        break;
                    }
                };
                let name = id.to_string();
                if !request.filters.is_empty()
                    && !request.filters.iter().any(|f| name.contains(f.as_str()))
                {
                    continue;
                }
                cells.push(PlannedCell {
                    id,
                    scheduler: si,
                    kernel: ki,
                    preset,
                });
            }
        }
    }
    warnings.dedup();
    if cells.is_empty() {
        let why = if request.filters.is_empty() {
            "no preset passes the schedulers' topology constraints and the host budget".to_string()
        } else {
            format!(
                "nothing matches the filters {:?}; run `ktstr presets` for preset names",
                request.filters
            )
        };
        return Err(MatrixError::NoCells(why));
    }
    Ok(Matrix { cells, warnings })
}

/// A filter that is a full cell name must name a kernel of this sweep: never fall back.
fn check_named_cells(kernels: &[KernelLabel], filters: &[String]) -> Result<(), MatrixError> {
    for filter in filters {
        if let Ok(cell) = filter.parse::<CellId>() {
            find_label(&cell.kernel, kernels).map_err(|source| MatrixError::Cell {
                cell: filter.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::manifest::SchedulerBinary;
    use crate::shape::constraints::TopologyConstraints;

    fn sched(name: &str, kernels: &[&str], topology: TopologyConstraints) -> SchedulerDecl {
        SchedulerDecl {
            memory_mib: None,
            name: name.into(),
            binary: SchedulerBinary::Path("x".into()),
            sched_args: vec![],
            kernels: kernels.iter().map(|k| k.parse().unwrap()).collect(),
            topology,
        }
    }

    fn kernel(v: &str) -> KernelLabel {
        KernelLabel::new(v, v.parse().ok())
    }

    fn request(filters: &[&str]) -> MatrixRequest {
        MatrixRequest {
            scheduler: None,
            filters: filters.iter().map(|f| f.to_string()).collect(),
            host: HostBudget { max_vcpus: 16 },
        }
    }

    fn names(m: &Matrix) -> Vec<String> {
        m.cells.iter().map(|c| c.id.to_string()).collect()
    }

    #[test]
    fn expands_schedulers_kernels_and_accepted_presets() {
        let scheds = [
            sched("a", &[], TopologyConstraints::default()),
            sched(
                "b",
                &["6.12..6.13"],
                TopologyConstraints {
                    requires_smt: true,
                    ..Default::default()
                },
            ),
        ];
        let kernels = [kernel("6.12.117"), kernel("6.1.158")];
        let m = expand(&scheds, &kernels, &request(&[])).unwrap();
        let names = names(&m);
        // host budget 16 keeps the presets up to 16 vCPUs; NUMA presets are off by default.
        assert!(names.contains(&"verifier/a/kernel_6_12_117/tiny-1llc".to_string()));
        assert!(names.contains(&"verifier/a/kernel_6_1_158/odd-5llc".to_string()));
        assert!(!names.iter().any(|n| n.contains("numa")));
        assert!(!names.iter().any(|n| n.contains("medium-")));
        assert!(names.contains(&"verifier/b/kernel_6_12_117/smt-2llc".to_string()));
        assert!(!names.contains(&"verifier/b/kernel_6_1_158/smt-2llc".to_string()));
        assert!(!names.contains(&"verifier/b/kernel_6_12_117/tiny-1llc".to_string()));
        assert!(m.warnings.is_empty());
    }

    #[test]
    fn positional_filters_and_scheduler_flag_narrow_the_matrix() {
        let scheds = [
            sched("a", &[], Default::default()),
            sched("b", &[], Default::default()),
        ];
        let kernels = [kernel("6.12.117")];
        let m = expand(&scheds, &kernels, &request(&["tiny-1llc", "odd-3llc"])).unwrap();
        assert_eq!(
            names(&m),
            [
                "verifier/a/kernel_6_12_117/tiny-1llc",
                "verifier/a/kernel_6_12_117/odd-3llc",
                "verifier/b/kernel_6_12_117/tiny-1llc",
                "verifier/b/kernel_6_12_117/odd-3llc",
            ]
        );
        let mut req = request(&["tiny-1llc"]);
        req.scheduler = Some("b".into());
        let m = expand(&scheds, &kernels, &req).unwrap();
        assert_eq!(names(&m), ["verifier/b/kernel_6_12_117/tiny-1llc"]);
        req.scheduler = Some("c".into());
        let err = expand(&scheds, &kernels, &req).unwrap_err().to_string();
        assert_eq!(err, "no scheduler named `c`; declared: a, b");
    }

    #[test]
    fn a_named_cell_with_an_unknown_kernel_fails_naming_present_labels() {
        let scheds = [sched("a", &[], Default::default())];
        let kernels = [kernel("6.12.117")];
        let err = expand(
            &scheds,
            &kernels,
            &request(&["verifier/a/kernel_6_13/tiny-1llc"]),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "cell `verifier/a/kernel_6_13/tiny-1llc`: no kernel labelled `kernel_6_13` in this sweep; present: kernel_6_12_117"
        );
    }

    #[test]
    fn empty_selections_and_duplicate_labels_are_errors() {
        let scheds = [sched("a", &[], Default::default())];
        let kernels = [kernel("6.12.117")];
        let err = expand(&scheds, &kernels, &request(&["nope"])).unwrap_err();
        assert!(matches!(err, MatrixError::NoCells(_)));
        assert_eq!(
            expand(&scheds, &[], &request(&[])),
            Err(MatrixError::NoKernels)
        );
        let dup = [kernel("6.12"), KernelLabel::new("6_12", None)];
        assert!(matches!(
            expand(&scheds, &dup, &request(&[])),
            Err(MatrixError::Label(LabelError::Duplicate(_)))
        ));
    }

    #[test]
    fn slashes_and_unselected_kernels_become_warnings() {
        let scheds = [
            sched("a/b", &[], Default::default()),
            sched("c", &["7.0"], Default::default()),
            sched("d", &[], Default::default()),
        ];
        let m = expand(&scheds, &[kernel("6.12.117")], &request(&[])).unwrap();
        assert!(m.cells.iter().all(|c| c.id.scheduler == "d"));
        assert_eq!(m.warnings.len(), 2, "{:?}", m.warnings);
        assert!(m.warnings[0].contains("`a/b`"));
        assert!(m.warnings[1].contains("selects none"));
    }
}
