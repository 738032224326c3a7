//! The dispatch gate: what the guest's probe workers did, as the guest saw it, and whether
//! that proves the BPF scheduler dispatched them. The guest only counts; this decides.

use crate::protocol::observation::{ProbeReport, WorkerReport};

/// What the probe proves about dispatch: `Ok(note)` with how much work ran, or `Err(why)`.
pub fn judge_dispatch(probe: &ProbeReport) -> Result<String, String> {
    let total = probe.workers.len();
    let failed: Vec<(usize, &WorkerReport)> = probe
        .workers
        .iter()
        .enumerate()
        .filter(|(_, w)| !w.error.is_empty())
        .collect();
    if let Some((i, first)) = failed.first() {
        return Err(format!(
            "{} of {total} workers could not run under SCHED_EXT; worker {i}: {}",
            failed.len(),
            first.error
        ));
    }
    let iterations: u64 = probe.workers.iter().map(|w| w.iterations).sum();
    if iterations == 0 {
        return Err(format!(
            "0 iterations from {total} SCHED_EXT workers in {} ms",
            probe.bound_ms
        ));
    }
    let progressed = probe
        .workers
        .iter()
        .filter(|w| w.blocked && w.iterations > 0)
        .count();
    Ok(format!(
        "{progressed} SCHED_EXT workers made {iterations} iterations"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(iterations: u64) -> WorkerReport {
        WorkerReport {
            switched: true,
            blocked: iterations > 0,
            iterations,
            error: String::new(),
        }
    }

    #[test]
    fn progress_after_a_block_is_dispatch() {
        let probe = ProbeReport {
            bound_ms: 2000,
            workers: vec![worker(600), worker(400), worker(0)],
        };
        assert_eq!(
            judge_dispatch(&probe),
            Ok("2 SCHED_EXT workers made 1000 iterations".into())
        );
    }

    #[test]
    fn no_progress_or_a_failed_worker_is_named() {
        let idle = ProbeReport {
            bound_ms: 300,
            workers: vec![worker(0), worker(0)],
        };
        assert_eq!(
            judge_dispatch(&idle),
            Err("0 iterations from 2 SCHED_EXT workers in 300 ms".into())
        );
        let refused = ProbeReport {
            bound_ms: 300,
            workers: vec![
                worker(5),
                WorkerReport {
                    error: "sched_setattr(SCHED_EXT) failed: Invalid argument".into(),
                    ..WorkerReport::default()
                },
            ],
        };
        assert_eq!(
            judge_dispatch(&refused),
            Err("1 of 2 workers could not run under SCHED_EXT; worker 1: \
                 sched_setattr(SCHED_EXT) failed: Invalid argument"
                .into())
        );
    }
}
