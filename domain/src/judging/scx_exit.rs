//! The kernel's own record of why sched_ext stopped a scheduler, read from its log:
//! `sched_ext: BPF scheduler "NAME" disabled (REASON)`, followed for errors by
//! `sched_ext: NAME: MESSAGE`. Linux 6.12 puts it nowhere in sysfs.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::protocol::observation::KernelRecord;

/// The kind of exit, from the reason words the kernel prints for each `scx_exit_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScxExitKind {
    /// `normal`, `unregistered from user space`, `unregistered from BPF`, ...: the
    /// scheduler (or someone) asked for it.
    Unregistered,
    /// `runtime error`, `scx_bpf_error`, `runnable task stall`: the kernel ejected it.
    Error,
    /// A reason this table does not know (a newer kernel).
    Unknown,
}

/// One sched_ext exit as the kernel logged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScxExit {
    /// The `ops.name` the kernel printed.
    pub scheduler: String,
    pub kind: ScxExitKind,
    /// The kernel's reason words, e.g. `scx_bpf_error`.
    pub reason: String,
    /// The message the error carried (`scx_bpf_error`'s text), when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

const PREFIX: &str = "sched_ext: BPF scheduler \"";

impl ScxExit {
    /// Whether the kernel ejected the scheduler (rather than it leaving on request).
    pub fn is_error(&self) -> bool {
        self.kind != ScxExitKind::Unregistered
    }

    /// The last exit in the kernel's sched_ext records, with its message.
    pub fn last_in(records: &[KernelRecord]) -> Option<ScxExit> {
        let at = records.iter().rposition(|r| disabled(&r.text).is_some())?;
        let (scheduler, reason) = disabled(&records[at].text)?;
        let message_prefix = format!("sched_ext: {scheduler}: ");
        let message = records[at + 1..]
            .iter()
            .find_map(|r| r.text.strip_prefix(&message_prefix))
            .map(|m| m.trim().to_owned());
        Some(ScxExit {
            kind: kind_of(reason),
            scheduler: scheduler.to_owned(),
            reason: reason.to_owned(),
            message,
        })
    }

    /// How many times the kernel enabled a BPF scheduler, by its log.
    pub fn enables_in(records: &[KernelRecord]) -> usize {
        records.iter().filter(|r| enabled(&r.text)).count()
    }

    /// Whether the log's last exit comes after its last enable: the scheduler enabled
    /// last is gone.
    pub fn follows_last_enable(records: &[KernelRecord]) -> bool {
        let last_exit = records.iter().rposition(|r| disabled(&r.text).is_some());
        let last_enable = records.iter().rposition(|r| enabled(&r.text));
        match (last_exit, last_enable) {
            (Some(exit), Some(enable)) => exit > enable,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// `... "NAME" enabled`, or `enabled (partial)` for a scheduler that takes only
/// `SCHED_EXT` tasks.
fn enabled(text: &str) -> bool {
    text.strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once("\" enabled"))
        .is_some_and(|(_, after)| after.is_empty() || after.starts_with(" ("))
}

/// `disabled (scx_bpf_error): init from non-central CPU`: the kernel's words.
impl fmt::Display for ScxExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "disabled ({})", self.reason)?;
        match &self.message {
            Some(m) if !m.is_empty() => write!(f, ": {m}"),
            _ => Ok(()),
        }
    }
}

/// `(name, reason)` of a `... "NAME" disabled (REASON)` line.
fn disabled(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(PREFIX)?;
    let (name, rest) = rest.split_once("\" disabled (")?;
    let reason = rest.strip_suffix(')')?;
    Some((name, reason))
}

fn kind_of(reason: &str) -> ScxExitKind {
    match reason {
        "runtime error" | "scx_bpf_error" | "runnable task stall" => ScxExitKind::Error,
        "none"
        | "normal"
        | "unregistered from user space"
        | "unregistered from BPF"
        | "unregistered from the main kernel"
        | "disabled by sysrq-S" => ScxExitKind::Unregistered,
        _ => ScxExitKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(lines: &[&str]) -> Vec<KernelRecord> {
        lines
            .iter()
            .enumerate()
            .map(|(i, t)| KernelRecord {
                usec: i as u64,
                text: (*t).into(),
            })
            .collect()
    }

    #[test]
    fn an_error_exit_carries_the_kernels_reason_and_message() {
        let log = records(&[
            "sched_ext: BPF scheduler \"central\" enabled (partial)",
            "sched_ext: BPF scheduler \"central\" disabled (scx_bpf_error)",
            "sched_ext: central: init from non-central CPU",
            "   bpf__sched_ext_ops_init+0x40/0xa4",
        ]);
        let exit = ScxExit::last_in(&log).unwrap();
        assert_eq!(exit.kind, ScxExitKind::Error);
        assert!(exit.is_error());
        assert_eq!(
            exit.to_string(),
            "disabled (scx_bpf_error): init from non-central CPU"
        );
        assert_eq!(ScxExit::enables_in(&log), 1);
        assert!(ScxExit::follows_last_enable(&log));
        assert!(!ScxExit::follows_last_enable(&log[..1]));
    }

    #[test]
    fn an_unregister_has_no_message_and_is_no_error() {
        let log = records(&[
            "sched_ext: BPF scheduler \"ktstr\" disabled (unregistered from user space)",
        ]);
        let exit = ScxExit::last_in(&log).unwrap();
        assert_eq!(exit.kind, ScxExitKind::Unregistered);
        assert!(!exit.is_error());
        assert_eq!(exit.to_string(), "disabled (unregistered from user space)");
    }

    #[test]
    fn the_last_exit_counts_and_unknown_reasons_are_kept() {
        let log = records(&[
            "sched_ext: BPF scheduler \"a\" disabled (runnable task stall)",
            "sched_ext: a: ktstr[80] failed to run for 30.1s",
            "sched_ext: BPF scheduler \"a\" enabled",
            "sched_ext: BPF scheduler \"a\" disabled (a new reason)",
        ]);
        let exit = ScxExit::last_in(&log).unwrap();
        assert_eq!(exit.kind, ScxExitKind::Unknown);
        assert_eq!(exit.message, None);
        assert!(ScxExit::follows_last_enable(&log));
        assert!(!ScxExit::follows_last_enable(&log[..3]));
        assert!(ScxExit::last_in(&records(&["sched_ext: BPF scheduler \"a\" enabled"])).is_none());
    }
}
