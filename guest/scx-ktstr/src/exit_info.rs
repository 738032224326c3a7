//! The record ops.exit leaves in the `exit_rec` map: why sched_ext stopped the scheduler.

use std::fmt;

/// Offsets of `struct ktstr_exit_rec` (src/bpf/intf.h; asserted in main.bpf.c).
const KIND: usize = 0;
const EXIT_CODE: usize = 8;
const REASON: usize = 16;
const REASON_LEN: usize = 128;
const MSG: usize = 144;
const MSG_LEN: usize = 1024;
pub const REC_SIZE: usize = MSG + MSG_LEN;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// `enum scx_exit_kind`.
    pub kind: i32,
    pub exit_code: i64,
    pub reason: String,
    pub msg: String,
}

impl ExitInfo {
    /// None while ops.exit has not run (kind still 0).
    pub fn parse(rec: &[u8]) -> Option<Self> {
        if rec.len() < REC_SIZE {
            return None;
        }
        let kind = i32::from_ne_bytes(rec[KIND..KIND + 4].try_into().ok()?);
        if kind == 0 {
            return None;
        }
        Some(Self {
            kind,
            exit_code: i64::from_ne_bytes(rec[EXIT_CODE..EXIT_CODE + 8].try_into().ok()?),
            reason: c_string(&rec[REASON..REASON + REASON_LEN]),
            msg: c_string(&rec[MSG..MSG + MSG_LEN]),
        })
    }

    /// True unless the scheduler went away because user space (or the BPF side, with a
    /// zero code) asked it to: errors, stalls, sysrq and kernel unregistration count.
    pub fn ejected(&self) -> bool {
        match self.kind {
            // NONE, DONE, UNREG
            0 | 1 | 64 => false,
            // UNREG_BPF: scx_bpf_exit() with its own code
            65 => self.exit_code != 0,
            _ => true,
        }
    }
}

/// Names of `enum scx_exit_kind` as of 6.12.
pub fn kind_name(kind: i32) -> &'static str {
    match kind {
        0 => "NONE",
        1 => "DONE",
        64 => "UNREG",
        65 => "UNREG_BPF",
        66 => "UNREG_KERN",
        67 => "SYSRQ",
        1024 => "ERROR",
        1025 => "ERROR_BPF",
        1026 => "ERROR_STALL",
        _ => "UNKNOWN",
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kind={}({}) exit_code={} reason={:?}",
            kind_name(self.kind),
            self.kind,
            self.exit_code,
            self.reason
        )?;
        if !self.msg.is_empty() {
            write!(f, " msg={:?}", self.msg)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: i32, code: i64, reason: &str, msg: &str) -> Vec<u8> {
        let mut r = vec![0u8; REC_SIZE];
        r[KIND..KIND + 4].copy_from_slice(&kind.to_ne_bytes());
        r[EXIT_CODE..EXIT_CODE + 8].copy_from_slice(&code.to_ne_bytes());
        r[REASON..REASON + reason.len()].copy_from_slice(reason.as_bytes());
        r[MSG..MSG + msg.len()].copy_from_slice(msg.as_bytes());
        r
    }

    #[test]
    fn zero_kind_means_not_exited() {
        assert_eq!(ExitInfo::parse(&vec![0u8; REC_SIZE]), None);
        assert_eq!(ExitInfo::parse(&[1u8; 8]), None);
    }

    #[test]
    fn parses_a_stall() {
        let info = ExitInfo::parse(&rec(
            1026,
            0,
            "runnable task stall",
            "kworker[12] failed to run for 30s",
        ))
        .unwrap();
        assert_eq!(info.reason, "runnable task stall");
        assert!(info.ejected());
        let shown = info.to_string();
        assert!(
            shown.starts_with("kind=ERROR_STALL(1026) exit_code=0"),
            "{shown}"
        );
        assert!(shown.contains("msg=\"kworker[12] failed to run for 30s\""));
    }

    #[test]
    fn user_unregistration_is_clean() {
        let info =
            ExitInfo::parse(&rec(64, 0, "Scheduler unregistered from user space", "")).unwrap();
        assert!(!info.ejected());
        assert!(!info.to_string().contains("msg="));
    }

    #[test]
    fn bpf_exit_uses_its_code() {
        assert!(!ExitInfo::parse(&rec(65, 0, "r", "")).unwrap().ejected());
        assert!(ExitInfo::parse(&rec(65, 3, "r", "")).unwrap().ejected());
        assert!(ExitInfo::parse(&rec(66, 0, "r", "")).unwrap().ejected());
    }
}
