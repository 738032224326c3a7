//! Liveness to the end: a cell passes only if the scheduler that attached is the one
//! still enabled when the dispatch probe ends. Decided from the guest's samples of
//! `/sys/kernel/sched_ext`, the scheduler's exit and the kernel's own exit record.

use crate::judging::scx_exit::ScxExit;
use crate::protocol::observation::ScxSample;

/// What the guest saw from attach to the end of the probe.
#[derive(Debug, Clone, Copy)]
pub struct LivenessFacts<'a> {
    /// The sample taken before the scheduler started: its `enable_seq` plus one is the
    /// scheduler's own enable. (The sample that confirmed attach cannot say: the kernel
    /// shows `enabled` a moment before it bumps `enable_seq`.)
    pub before_start: Option<&'a ScxSample>,
    /// The last sample, taken after the probe.
    pub end: Option<&'a ScxSample>,
    /// How the scheduler process ended during the probe, when it did.
    pub died: Option<&'a str>,
    /// The kernel's last sched_ext exit record.
    pub exit: Option<&'a ScxExit>,
    /// Whether that exit comes after the kernel's last "enabled" line.
    pub exit_after_last_enable: bool,
}

/// `Err(why)` when the scheduler that attached was not the one enabled at the end.
pub fn judge_liveness(facts: LivenessFacts<'_>) -> Result<(), String> {
    let kernel = |e: &ScxExit| format!("sched_ext {e}");
    if let Some(status) = facts.died {
        return Err(match facts.exit {
            Some(e) if e.is_error() => {
                format!(
                    "{}; the scheduler process then exited ({status})",
                    kernel(e)
                )
            }
            Some(e) => format!(
                "scheduler process exited during the dispatch probe ({status}); {}",
                kernel(e)
            ),
            None => format!("scheduler process exited during the dispatch probe ({status})"),
        });
    }
    let Some(end) = facts.end else {
        return Err("the guest took no sched_ext sample after the dispatch probe".into());
    };
    if end.state != "enabled" {
        return Err(match facts.exit {
            Some(e) => format!("{} during the dispatch probe", kernel(e)),
            None => format!(
                "sched_ext was {} when the dispatch probe ended",
                if end.state.is_empty() {
                    "unreadable"
                } else {
                    &end.state
                }
            ),
        });
    }
    if let (Some(before), Some(b)) = (
        facts.before_start.and_then(|s| s.enable_seq),
        end.enable_seq,
    ) && b > before + 1
    {
        let a = before + 1;
        let after = facts
            .exit
            .map(|e| format!(" after {}", kernel(e)))
            .unwrap_or_default();
        return Err(format!(
            "the scheduler was re-attached during the dispatch probe (enable_seq {a} → {b}){after}: \
             its own restart loop brought it back"
        ));
    }
    if let Some(e) = facts.exit.filter(|_| facts.exit_after_last_enable) {
        return Err(format!("{} as the dispatch probe ended", kernel(e)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judging::scx_exit::ScxExitKind;

    fn sample(state: &str, seq: u64) -> ScxSample {
        ScxSample::alive(state, seq)
    }

    fn error_exit() -> ScxExit {
        ScxExit {
            scheduler: "ktstr".into(),
            kind: ScxExitKind::Error,
            reason: "scx_bpf_error".into(),
            message: Some("ktstr: 2 dispatches".into()),
        }
    }

    fn facts<'a>(before_start: &'a ScxSample, end: &'a ScxSample) -> LivenessFacts<'a> {
        LivenessFacts {
            before_start: Some(before_start),
            end: Some(end),
            died: None,
            exit: None,
            exit_after_last_enable: false,
        }
    }

    #[test]
    fn the_same_enable_still_on_is_alive() {
        let (a, b) = (sample("disabled", 3), sample("enabled", 4));
        assert_eq!(judge_liveness(facts(&a, &b)), Ok(()));
    }

    #[test]
    fn an_ejection_names_the_kernels_reason() {
        let (a, b) = (sample("disabled", 3), sample("disabled", 4));
        let on = sample("enabled", 4);
        let exit = error_exit();
        let ejected = LivenessFacts {
            exit: Some(&exit),
            ..facts(&a, &b)
        };
        assert_eq!(
            judge_liveness(ejected),
            Err(
                "sched_ext disabled (scx_bpf_error): ktstr: 2 dispatches during the dispatch probe"
                    .into()
            )
        );
        let died = LivenessFacts {
            died: Some("exit code 2"),
            ..ejected
        };
        assert_eq!(
            judge_liveness(died),
            Err(
                "sched_ext disabled (scx_bpf_error): ktstr: 2 dispatches; the scheduler process \
                 then exited (exit code 2)"
                    .into()
            )
        );
        // The kernel logged the exit after the end sample still read enabled.
        let late = LivenessFacts {
            exit: Some(&exit),
            exit_after_last_enable: true,
            ..facts(&a, &on)
        };
        assert!(
            judge_liveness(late)
                .unwrap_err()
                .ends_with("as the dispatch probe ended")
        );
        // An exit from before this enable says nothing about it.
        let earlier = LivenessFacts {
            exit: Some(&exit),
            ..facts(&a, &on)
        };
        assert_eq!(judge_liveness(earlier), Ok(()));
    }

    #[test]
    fn a_restart_is_named_as_one() {
        let (a, b) = (sample("disabled", 3), sample("enabled", 5));
        let exit = error_exit();
        assert_eq!(
            judge_liveness(LivenessFacts {
                exit: Some(&exit),
                ..facts(&a, &b)
            }),
            Err(
                "the scheduler was re-attached during the dispatch probe (enable_seq 4 → 5) \
                 after sched_ext disabled (scx_bpf_error): ktstr: 2 dispatches: its own restart \
                 loop brought it back"
                    .into()
            )
        );
    }

    #[test]
    fn a_death_or_a_missing_sample_fails() {
        let a = sample("enabled", 4);
        assert_eq!(
            judge_liveness(LivenessFacts {
                died: Some("exit code 3"),
                end: None,
                ..facts(&a, &a)
            }),
            Err("scheduler process exited during the dispatch probe (exit code 3)".into())
        );
        assert!(
            judge_liveness(LivenessFacts {
                end: None,
                ..facts(&a, &a)
            })
            .is_err()
        );
        let gone = sample("disabled", 4);
        assert_eq!(
            judge_liveness(facts(&a, &gone)),
            Err("sched_ext was disabled when the dispatch probe ended".into())
        );
    }
}
