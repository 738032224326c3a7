//! The scheduler process as the kernel sees it, for what it was doing when the attach wait
//! expired.

use std::path::Path;

/// The scheduler process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcState {
    /// `R` running, `S` sleeping, `D` in uninterruptible I/O, ...
    pub state: char,
    /// User plus system time, in clock ticks.
    pub cpu_ticks: u64,
}

/// Parses `/proc/<pid>/stat`; the command name may contain spaces and parentheses, so the
/// fields are counted from the last `)`.
pub fn parse_stat(stat: &str) -> Option<ProcState> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (3), ..., utime (14), stime (15), counted from 1 for pid.
    let state = fields.first()?.chars().next()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(ProcState {
        state,
        cpu_ticks: utime + stime,
    })
}

pub fn read_state(proc_root: &Path, pid: u32) -> Option<ProcState> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    parse_stat(&stat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let stat = "57 (scx (odd) name) R 1 57 57 0 -1 4194560 900 0 0 0 1524 312 0 0 20 0 \
                    3 0 160 272952 1 18446744073709551615";
        assert_eq!(
            parse_stat(stat),
            Some(ProcState {
                state: 'R',
                cpu_ticks: 1836
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }
}
