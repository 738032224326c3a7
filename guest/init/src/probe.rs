//! The dispatch probe: spinning workers that switched themselves to `SCHED_EXT`, blocked
//! once, and count their iterations after. The guest reports what each did; the host
//! decides whether that proves dispatch (`ktstr_domain::judging::dispatch`).
//!
//! Workers are never joined: under a scheduler that never dispatches, a worker stays
//! runnable-but-unscheduled forever, and that is the outcome being measured.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ktstr_domain::protocol::observation::{ProbeReport, WorkerReport};

use crate::sys;

/// The sleep that makes each worker's next run a dispatch by the BPF scheduler.
const WAKE_UP: Duration = Duration::from_millis(2);
/// Sleeps a worker tries before giving up on ever blocking.
const MAX_SLEEPS: u32 = 1000;

/// How long to wait, after the stop flag, for workers to notice it.
const STOP_WAIT: Duration = Duration::from_secs(1);
/// How often the probe looks whether every worker has had its say.
const POLL: Duration = Duration::from_millis(2);

// A slot starts at 0: pending, not yet switched.
const SWITCHED: u8 = 1;
const FAILED: u8 = 2;
const BLOCKED: u8 = 3;

/// Per-worker state on its own cache line, so spinning workers do not slow each other.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot {
    iterations: AtomicU64,
    status: AtomicU8,
    error: Mutex<Option<String>>,
}

/// Switches the calling thread to `SCHED_EXT` and checks that the kernel says so: a silent
/// fair-class fallback must not count as dispatch.
pub fn switch_to_sched_ext() -> Result<(), String> {
    sys::set_thread_policy(sys::SCHED_EXT, 0)
        .map_err(|e| format!("sched_setattr(SCHED_EXT) failed: {e}"))?;
    let policy = sys::thread_policy().map_err(|e| format!("sched_getattr failed: {e}"))?;
    if policy != sys::SCHED_EXT {
        return Err(format!(
            "policy is {policy} after sched_setattr, not SCHED_EXT ({})",
            sys::SCHED_EXT
        ));
    }
    Ok(())
}

/// Runs `workers` spinning threads, each of which first calls `switch`, until every one
/// has either failed or made progress after its wake-up, or `bound` has passed; `on_poll`
/// runs at each look meanwhile.
pub fn run_probe(
    workers: u32,
    bound: Duration,
    switch: fn() -> Result<(), String>,
    on_poll: &mut dyn FnMut(),
) -> ProbeReport {
    let stop = Arc::new(AtomicBool::new(false));
    let slots: Vec<Arc<Slot>> = (0..workers).map(|_| Arc::new(Slot::default())).collect();
    let mut handles = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        let (slot, stop) = (Arc::clone(slot), Arc::clone(&stop));
        let spawned = thread::Builder::new()
            .name(format!("probe-{i}"))
            .spawn(move || worker(&slot, &stop, switch));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                *lock(&slots[i].error) = Some(format!("cannot start thread: {e}"));
                slots[i].status.store(FAILED, Ordering::Release);
            }
        }
    }
    // Done as soon as each worker has an answer: waiting longer proves nothing more, and
    // a scheduler that never dispatches still takes the whole bound to show it.
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline && !slots.iter().all(|s| s.answered()) {
        on_poll();
        thread::sleep(POLL);
    }
    stop.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + STOP_WAIT;
    while Instant::now() < deadline && !handles.iter().all(|h| h.is_finished()) {
        thread::sleep(Duration::from_millis(10));
    }
    // Dropping the handles detaches any worker still stuck.
    drop(handles);
    collect(&slots, bound)
}

impl Slot {
    /// The worker failed, or ran again after its wake-up through the BPF scheduler.
    fn answered(&self) -> bool {
        self.status.load(Ordering::Acquire) == FAILED || self.iterations.load(Ordering::Relaxed) > 0
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn worker(slot: &Slot, stop: &AtomicBool, switch: fn() -> Result<(), String>) {
    if let Err(e) = switch() {
        *lock(&slot.error) = Some(e);
        slot.status.store(FAILED, Ordering::Release);
        return;
    }
    slot.status.store(SWITCHED, Ordering::Release);
    // Counting starts after a sleep: the wake-up goes through the BPF scheduler, so any
    // progress afterwards proves it dispatched this task. A task switched while running
    // would otherwise keep its CPU for a whole slice without ever being dispatched.
    if let Err(e) = block_once() {
        *lock(&slot.error) = Some(e);
        slot.status.store(FAILED, Ordering::Release);
        return;
    }
    slot.status.store(BLOCKED, Ordering::Release);
    // A plain store of a local count avoids a locked read-modify-write per iteration.
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        slot.iterations.store(n, Ordering::Relaxed);
    }
}

/// Sleeps until this thread has really blocked. A short sleep whose timer expires before
/// the thread reaches the scheduler (a slow or descheduled vCPU) returns without blocking,
/// and the task would then count without ever having been dispatched.
fn block_once() -> Result<(), String> {
    let switches =
        || sys::voluntary_switches().map_err(|e| format!("cannot read the thread's switches: {e}"));
    let before = switches()?;
    for _ in 0..MAX_SLEEPS {
        thread::sleep(WAKE_UP);
        if switches()? > before {
            return Ok(());
        }
    }
    Err(format!("{MAX_SLEEPS} sleeps never blocked the thread"))
}

/// Each worker as it stands. A worker that never reported is one the scheduler never ran
/// again after its policy switch: zero iterations.
fn collect(slots: &[Arc<Slot>], bound: Duration) -> ProbeReport {
    let workers = slots
        .iter()
        .map(|slot| {
            let status = slot.status.load(Ordering::Acquire);
            WorkerReport {
                switched: matches!(status, SWITCHED | BLOCKED),
                blocked: status == BLOCKED,
                iterations: slot.iterations.load(Ordering::Relaxed),
                error: lock(&slot.error).clone().unwrap_or_default(),
            }
        })
        .collect();
    ProbeReport {
        bound_ms: u64::try_from(bound.as_millis()).unwrap_or(u64::MAX),
        workers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktstr_domain::judging::dispatch::judge_dispatch;

    fn ok() -> Result<(), String> {
        Ok(())
    }

    fn refuse() -> Result<(), String> {
        Err("sched_setattr(SCHED_EXT) failed: Invalid argument (os error 22)".into())
    }

    fn never_returns() -> Result<(), String> {
        // Stands in for a worker the scheduler never runs after its switch.
        loop {
            thread::park();
        }
    }

    #[test]
    fn a_worker_counts_only_after_it_really_blocked() {
        let before = sys::voluntary_switches().unwrap();
        block_once().unwrap();
        assert!(sys::voluntary_switches().unwrap() > before);
    }

    fn probe(workers: u32, bound: Duration, switch: fn() -> Result<(), String>) -> ProbeReport {
        let mut polls = 0;
        let report = run_probe(workers, bound, switch, &mut || polls += 1);
        assert!(polls > 0 || report.workers.iter().all(|w| !w.error.is_empty()));
        report
    }

    #[test]
    fn the_probe_ends_once_every_worker_progressed() {
        let start = Instant::now();
        let out = probe(3, Duration::from_secs(20), ok);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(out.workers.len(), 3);
        assert!(
            out.workers
                .iter()
                .all(|w| w.switched && w.blocked && w.iterations > 0)
        );
        assert_eq!(judge_dispatch(&out).map(|_| ()), Ok(()));
        let out = probe(2, Duration::from_secs(20), refuse);
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(
            out.workers
                .iter()
                .all(|w| !w.switched && !w.error.is_empty())
        );
    }

    #[test]
    fn switch_failure_is_reported_per_worker() {
        let out = probe(3, Duration::from_millis(10), refuse);
        let reason = judge_dispatch(&out).unwrap_err();
        assert!(reason.starts_with("3 of 3 workers could not run under SCHED_EXT; worker 0"));
        assert!(reason.contains("Invalid argument"), "{reason}");
    }

    #[test]
    fn stuck_workers_do_not_block_and_count_zero() {
        let start = Instant::now();
        let out = probe(2, Duration::from_millis(300), never_returns);
        // Workers that never answer keep the probe to its whole bound, and no longer.
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert!(start.elapsed() < Duration::from_secs(3));
        assert_eq!(
            judge_dispatch(&out),
            Err("0 iterations from 2 SCHED_EXT workers in 300 ms".into())
        );
    }

    #[test]
    fn real_switch_fails_cleanly_without_sched_ext() {
        // Without sched_ext in the running kernel the switch must fail with a named error
        // (on a sched_ext kernel it succeeds, having checked the policy itself).
        if let Err(e) = thread::spawn(switch_to_sched_ext).join().unwrap() {
            assert!(e.contains("SCHED_EXT"), "{e}");
        }
    }
}
