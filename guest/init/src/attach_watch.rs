//! Positive attach confirmation: the scheduler process is alive and
//! `/sys/kernel/sched_ext/state` reads `enabled`, with `enable_seq` as a second witness for
//! an enable that came and went between two polls.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::scheduler::{Scheduler, describe_status};

const POLL: Duration = Duration::from_millis(20);
/// How long to keep watching after `enable_seq` moved but the state is not `enabled`: the
/// scheduler usually exits right after being kicked out, and a death is the truer outcome.
const DISABLED_GRACE: Duration = Duration::from_millis(500);

/// The sched_ext sysfs directory below a root (`/` in the guest).
#[derive(Debug, Clone)]
pub struct SchedExtSysfs {
    dir: PathBuf,
}

impl SchedExtSysfs {
    pub fn new(root: &Path) -> Self {
        SchedExtSysfs {
            dir: root.join("sys/kernel/sched_ext"),
        }
    }

    /// `enabling`, `enabled`, `disabling`, `disabled`, or `None` when unreadable.
    pub fn state(&self) -> Option<String> {
        fs::read_to_string(self.dir.join("state"))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    /// Bumped by the kernel after every successful enable.
    pub fn enable_seq(&self) -> Option<u64> {
        fs::read_to_string(self.dir.join("enable_seq"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachResult {
    Attached,
    /// The scheduler process ended; the wait status in words.
    Died(String),
    /// Alive but never enabled; the reason.
    NotAttached(String),
    /// Alive, and the wait ran out; the sched_ext state it stayed in (`None`: unreadable).
    /// Told apart from [`AttachResult::NotAttached`] so the caller can say what the
    /// scheduler was doing.
    Expired {
        state: Option<String>,
    },
}

/// One poll's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub elapsed: Duration,
    /// The described exit status if the process has ended.
    pub exited: Option<String>,
    pub state: Option<String>,
    pub enable_seq: Option<u64>,
}

/// Tells from successive observations what the scheduler's attach came to; the host
/// judges it. Pure, so every path is testable.
#[derive(Debug, Clone)]
pub struct AttachWatch {
    seq_before: Option<u64>,
    timeout: Duration,
    /// When the enable_seq bump was first seen without `enabled`.
    bumped_at: Option<Duration>,
}

impl AttachWatch {
    pub fn new(seq_before: Option<u64>, timeout: Duration) -> Self {
        AttachWatch {
            seq_before,
            timeout,
            bumped_at: None,
        }
    }

    /// What attach came to, or `None` to keep polling.
    pub fn settle(&mut self, obs: &Observation) -> Option<AttachResult> {
        if let Some(status) = &obs.exited {
            return Some(AttachResult::Died(status.clone()));
        }
        if obs.state.as_deref() == Some("enabled") {
            return Some(AttachResult::Attached);
        }
        let bumped = matches!((self.seq_before, obs.enable_seq), (Some(b), Some(now)) if now > b);
        if bumped {
            let since = *self.bumped_at.get_or_insert(obs.elapsed);
            if obs.elapsed.saturating_sub(since) >= DISABLED_GRACE {
                return Some(AttachResult::NotAttached(
                    "sched_ext was enabled then disabled again".into(),
                ));
            }
            // Within the grace period the timeout waits: the outcome is nearly known.
            return None;
        }
        if obs.elapsed >= self.timeout {
            return Some(AttachResult::Expired {
                state: obs.state.clone(),
            });
        }
        None
    }
}

/// Polls every ~20 ms until attach has settled.
pub fn wait_for_attach(
    sched: &mut Scheduler,
    scx: &SchedExtSysfs,
    seq_before: Option<u64>,
    timeout: Duration,
) -> AttachResult {
    let start = Instant::now();
    let mut watch = AttachWatch::new(seq_before, timeout);
    loop {
        // Exit first: a process that died after a brief enable is a death, not an attach.
        let exited = sched.poll_exit().map(describe_status);
        let obs = Observation {
            exited,
            state: scx.state(),
            enable_seq: scx.enable_seq(),
            elapsed: start.elapsed(),
        };
        if let Some(result) = watch.settle(&obs) {
            return result;
        }
        thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(ms: u64, state: &str, seq: u64) -> Observation {
        Observation {
            elapsed: Duration::from_millis(ms),
            exited: None,
            state: Some(state.into()),
            enable_seq: Some(seq),
        }
    }

    fn watch() -> AttachWatch {
        AttachWatch::new(Some(3), Duration::from_millis(1000))
    }

    #[test]
    fn enabled_attaches() {
        let mut j = watch();
        assert_eq!(j.settle(&obs(0, "disabled", 3)), None);
        assert_eq!(j.settle(&obs(20, "enabling", 3)), None);
        assert_eq!(
            j.settle(&obs(40, "enabled", 4)),
            Some(AttachResult::Attached)
        );
    }

    #[test]
    fn exit_wins_over_enabled() {
        let mut o = obs(0, "enabled", 4);
        o.exited = Some("exit code 1".into());
        assert_eq!(
            watch().settle(&o),
            Some(AttachResult::Died("exit code 1".into()))
        );
    }

    #[test]
    fn timeout_reports_the_state_it_stayed_in() {
        let mut j = watch();
        assert_eq!(j.settle(&obs(999, "enabling", 3)), None);
        assert_eq!(
            j.settle(&obs(1013, "enabling", 3)),
            Some(AttachResult::Expired {
                state: Some("enabling".into())
            })
        );
        let mut o = obs(1000, "", 0);
        o.state = None;
        o.enable_seq = None;
        assert_eq!(
            AttachWatch::new(None, Duration::from_millis(1000)).settle(&o),
            Some(AttachResult::Expired { state: None })
        );
    }

    #[test]
    fn missed_enable_then_disable_after_grace() {
        let mut j = watch();
        assert_eq!(j.settle(&obs(900, "disabled", 4)), None);
        // Within the grace period the timeout waits for a possible exit.
        assert_eq!(j.settle(&obs(1350, "disabled", 4)), None);
        assert_eq!(
            j.settle(&obs(1400, "disabled", 4)),
            Some(AttachResult::NotAttached(
                "sched_ext was enabled then disabled again".into()
            ))
        );
    }

    #[test]
    fn missed_enable_then_exit_is_death() {
        let mut j = watch();
        assert_eq!(j.settle(&obs(100, "disabling", 4)), None);
        let mut o = obs(200, "disabled", 4);
        o.exited = Some("exit code 2".into());
        assert_eq!(j.settle(&o), Some(AttachResult::Died("exit code 2".into())));
    }

    #[test]
    fn unknown_baseline_ignores_seq() {
        let mut j = AttachWatch::new(None, Duration::from_millis(100));
        assert_eq!(j.settle(&obs(50, "disabled", 9)), None);
    }

    #[test]
    fn sysfs_reader_trims_and_parses() {
        let dir = tempfile::tempdir().unwrap();
        let scx = SchedExtSysfs::new(dir.path());
        assert_eq!((scx.state(), scx.enable_seq()), (None, None));
        let d = dir.path().join("sys/kernel/sched_ext");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("state"), "enabled\n").unwrap();
        fs::write(d.join("enable_seq"), "12\n").unwrap();
        assert_eq!(scx.state().as_deref(), Some("enabled"));
        assert_eq!(scx.enable_seq(), Some(12));
    }
}
