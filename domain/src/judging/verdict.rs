//! The cell verdict: gates in order, the first failing one named.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::judging::attach::AttachOutcome;
use crate::judging::crosscheck::CrossCheck;
/// Part of a verdict: an environment error names its cause.
pub use crate::judging::environment::EnvCause;
use crate::judging::scx_exit::ScxExit;
use crate::verifier_log::rejection::VerifierRejection;

/// The gates a cell passes through, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// The cell could not be booted at all (bad kernel, missing binary, VM failed to start).
    Setup,
    TimedOut,
    /// The kernel's verifier rejected one of the scheduler's programs.
    Verify,
    Attach,
    /// The scheduler that attached was not the one enabled when the probe ended.
    Liveness,
    Dispatch,
    CrossCheck,
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Gate::Setup => "setup",
            Gate::TimedOut => "timed_out",
            Gate::Verify => "verify",
            Gate::Attach => "attach",
            Gate::Liveness => "liveness",
            Gate::Dispatch => "dispatch",
            Gate::CrossCheck => "cross-check",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    /// The scheduler failed a gate.
    Fail {
        gate: Gate,
        reason: String,
    },
    /// ktstr or its environment failed (the guest ran out of memory, the VM died, the VM
    /// could not start): the cell says nothing about the scheduler.
    Error {
        cause: EnvCause,
        reason: String,
    },
}

impl Verdict {
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Pass)
    }

    /// A gate the scheduler failed; an environment error is not one.
    pub fn failed(&self) -> bool {
        matches!(self, Verdict::Fail { .. })
    }

    pub fn is_env_error(&self) -> bool {
        matches!(self, Verdict::Error { .. })
    }

    pub fn env_error(cause: EnvCause, reason: impl Into<String>) -> Self {
        Verdict::Error {
            cause,
            reason: reason.into(),
        }
    }

    pub fn fail(gate: Gate, reason: impl Into<String>) -> Self {
        Verdict::Fail {
            gate,
            reason: reason.into(),
        }
    }
}

/// `PASS`, `FAIL [gate] reason` or `ERROR [environment: cause] reason`, the reason's first
/// line only.
impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = |r: &str| r.lines().next().unwrap_or_default().to_string();
        match self {
            Verdict::Pass => f.write_str("PASS"),
            Verdict::Fail { gate, reason } => write!(f, "FAIL [{gate}] {}", first(reason)),
            Verdict::Error { cause, reason } => {
                write!(f, "ERROR [environment: {cause}] {}", first(reason))
            }
        }
    }
}

/// The facts of one booted cell the verdict is computed from. The guest's exit code is not
/// among them: it is never consulted.
#[derive(Debug, Clone, Copy)]
pub struct RunFacts<'a> {
    pub timed_out: bool,
    /// The watchdog the VM ran under, for the timed-out reason.
    pub watchdog: std::time::Duration,
    /// The guest's milestones, to say what it was doing when the watchdog fired.
    pub phases: &'a [(String, u64)],
    pub attach: &'a AttachOutcome,
    /// Why the scheduler that attached was not the one enabled at the end, when it was not.
    pub liveness: Option<&'a str>,
    /// How much work the probe saw, or why it proves no dispatch.
    pub dispatch: Result<&'a str, &'a str>,
    /// How the scheduler process ended during its load, when it did (`exit code 1`).
    pub died_status: Option<&'a str>,
    /// The kernel's record of why sched_ext stopped the scheduler, when it did.
    pub scx_exit: Option<&'a ScxExit>,
    /// `None` when the cross-check was not run.
    pub cross_check: Option<&'a CrossCheck>,
    /// The program the verifier rejected, when the scheduler's log names one.
    pub rejection: Option<&'a VerifierRejection>,
    /// The loader's own words for a refused program load, when it printed no libbpf log.
    pub load_refusal: Option<&'a str>,
}

/// Gates in order: watchdog, verify (an attach failure the verifier's rejection explains),
/// attach, liveness (an ejection voids what the probe saw), dispatch, then the host/guest
/// cross-check. Whether the guest saw the preset is
/// the environment's question, settled by the judge.
pub fn cell_verdict(facts: RunFacts<'_>) -> Verdict {
    if facts.timed_out {
        return Verdict::fail(
            Gate::TimedOut,
            format!(
                "host watchdog fired: no word from the guest for {} s, {}",
                facts.watchdog.as_secs(),
                crate::judging::environment::doing(facts.phases)
            ),
        );
    }
    if let Some(reason) = facts.attach.failure_reason() {
        // A scheduler that failed to attach because a program was refused failed here,
        // and "where" is the answer the user needs first. One that attached anyway
        // (a fallback program) is judged by the gates after.
        if let Some(rejection) = facts.rejection {
            return Verdict::fail(Gate::Verify, rejection.to_string());
        }
        if let Some(words) = facts.load_refusal {
            return Verdict::fail(
                Gate::Verify,
                format!(
                    "the kernel refused a BPF program load (EACCES: the verifier's refusal); \
                     the loader printed no verifier log, only: {words}"
                ),
            );
        }
        // The kernel's own reason first, when it ejected the scheduler.
        let reason = match (facts.scx_exit.filter(|e| e.is_error()), facts.died_status) {
            (Some(exit), Some(status)) => {
                format!("sched_ext {exit}; the scheduler process then exited ({status})")
            }
            (Some(exit), None) => format!("sched_ext {exit}"),
            (None, Some(status)) => format!("{reason} ({status})"),
            (None, None) => reason,
        };
        return Verdict::fail(Gate::Attach, reason);
    }
    if let Some(why) = facts.liveness {
        return Verdict::fail(Gate::Liveness, why);
    }
    if let Err(why) = facts.dispatch {
        return Verdict::fail(
            Gate::Dispatch,
            format!("workload never made progress under SCHED_EXT: {why}"),
        );
    }
    if let Some(check) = facts.cross_check.filter(|c| !c.agrees()) {
        return Verdict::fail(
            Gate::CrossCheck,
            format!(
                "host and guest disagree on BPF programs: {}",
                check.mismatches.join("; ")
            ),
        );
    }
    Verdict::Pass
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judging::scx_exit::ScxExitKind;

    fn facts(attach: &AttachOutcome) -> RunFacts<'_> {
        RunFacts {
            timed_out: false,
            watchdog: std::time::Duration::from_secs(60),
            phases: &[],
            attach,
            liveness: None,
            dispatch: Ok("4 SCHED_EXT workers made 100 iterations"),
            died_status: None,
            scx_exit: None,
            cross_check: None,
            rejection: None,
            load_refusal: None,
        }
    }

    #[test]
    fn a_rejection_that_kept_the_scheduler_from_attaching_fails_the_verify_gate() {
        let rejection = VerifierRejection {
            program: "ktstr_dispatch".into(),
            error: "R7 invalid mem access 'scalar'".into(),
            processed_insns: Some(11),
        };
        let died = AttachOutcome::Died;
        let rejected = RunFacts {
            dispatch: Err("none"),
            died_status: Some("exit code 1"),
            rejection: Some(&rejection),
            ..facts(&died)
        };
        assert_eq!(
            cell_verdict(rejected),
            Verdict::fail(
                Gate::Verify,
                "the verifier rejected ktstr_dispatch: R7 invalid mem access 'scalar' \
                 (processed 11 insns)"
            )
        );
        // Attached anyway (a fallback program loaded): the rejection decides nothing.
        let attached = AttachOutcome::Attached;
        let fallback = RunFacts {
            rejection: Some(&rejection),
            ..facts(&attached)
        };
        assert_eq!(cell_verdict(fallback), Verdict::Pass);
        // The watchdog comes first: a verifier that never finished is a timeout.
        let slow = RunFacts {
            timed_out: true,
            rejection: Some(&rejection),
            ..facts(&died)
        };
        assert!(matches!(
            cell_verdict(slow),
            Verdict::Fail {
                gate: Gate::TimedOut,
                ..
            }
        ));
    }

    #[test]
    fn passes_only_when_every_gate_passes() {
        assert_eq!(cell_verdict(facts(&AttachOutcome::Attached)), Verdict::Pass);
    }

    #[test]
    fn an_environment_cause_has_one_name_in_json_and_text() {
        let v = Verdict::env_error(EnvCause::GuestOutOfMemory, "guest ran out of memory");
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["verdict"], "error");
        assert_eq!(json["cause"], EnvCause::GuestOutOfMemory.to_string());
        assert_eq!(json["cause"], "guest-oom");
        assert!(v.is_env_error() && !v.failed() && !v.passed());
    }

    #[test]
    fn names_the_first_failing_gate() {
        let attached = AttachOutcome::Attached;
        let died = AttachOutcome::Died;
        let gate = |v: Verdict| match v {
            Verdict::Fail { gate, .. } => gate,
            other => panic!("expected a failure, got {other:?}"),
        };
        let timed_out = RunFacts {
            timed_out: true,
            dispatch: Err("none"),
            ..facts(&died)
        };
        assert_eq!(
            cell_verdict(timed_out),
            Verdict::fail(
                Gate::TimedOut,
                "host watchdog fired: no word from the guest for 60 s, before the guest reached its \
                 init (booting)"
            )
        );
        let dead = RunFacts {
            dispatch: Err("none"),
            ..facts(&died)
        };
        assert_eq!(gate(cell_verdict(dead)), Gate::Attach);
        let rejected = RunFacts {
            dispatch: Err("none"),
            died_status: Some("exit code 1"),
            ..facts(&died)
        };
        assert_eq!(
            cell_verdict(rejected),
            Verdict::fail(
                Gate::Attach,
                "scheduler process exited during BPF load/startup (exit code 1)"
            )
        );
        let ejected = ScxExit {
            scheduler: "central".into(),
            kind: ScxExitKind::Error,
            reason: "scx_bpf_error".into(),
            message: Some("init from non-central CPU".into()),
        };
        let central = RunFacts {
            died_status: Some("exit code 0"),
            scx_exit: Some(&ejected),
            ..facts(&died)
        };
        assert_eq!(
            cell_verdict(central),
            Verdict::fail(
                Gate::Attach,
                "sched_ext disabled (scx_bpf_error): init from non-central CPU; the scheduler \
                 process then exited (exit code 0)"
            )
        );
        let quiet = RunFacts {
            died_status: Some("exit code 1"),
            load_refusal: Some("Failed to load BPF program: Permission denied (os error 13)"),
            ..facts(&died)
        };
        assert_eq!(
            cell_verdict(quiet),
            Verdict::fail(
                Gate::Verify,
                "the kernel refused a BPF program load (EACCES: the verifier's refusal); the \
                 loader printed no verifier log, only: Failed to load BPF program: Permission \
                 denied (os error 13)"
            )
        );
        // An ejection voids what the probe saw: liveness comes before dispatch.
        let gone = RunFacts {
            liveness: Some("sched_ext disabled (scx_bpf_error): boom during the dispatch probe"),
            dispatch: Err("none"),
            ..facts(&attached)
        };
        assert_eq!(
            cell_verdict(gone),
            Verdict::fail(
                Gate::Liveness,
                "sched_ext disabled (scx_bpf_error): boom during the dispatch probe"
            )
        );
        let idle = RunFacts {
            dispatch: Err("0 iterations in 2 s"),
            ..facts(&attached)
        };
        let v = cell_verdict(idle);
        assert_eq!(
            v,
            Verdict::fail(
                Gate::Dispatch,
                "workload never made progress under SCHED_EXT: 0 iterations in 2 s"
            )
        );
        let disagree = CrossCheck {
            mismatches: vec!["program 1".into()],
        };
        let cc = RunFacts {
            cross_check: Some(&disagree),
            ..facts(&attached)
        };
        assert_eq!(gate(cell_verdict(cc)), Gate::CrossCheck);
    }
}
