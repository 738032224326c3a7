//! What a scheduler that never attached was doing when the attach wait expired, so a slow
//! environment (still loading) reads differently from a scheduler that loaded its programs
//! and never enabled sched_ext.

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

/// One sentence for the attach-timeout reason. `programs` is how many BPF programs the
/// guest has loaded (only the scheduler loads any), `None` when they could not be listed.
pub fn describe(
    proc_state: Option<ProcState>,
    programs: Option<usize>,
    ticks_per_s: u64,
) -> String {
    let process = match proc_state {
        Some(p) => format!(
            "process state {}, {:.1} s of CPU",
            p.state,
            p.cpu_ticks as f64 / ticks_per_s.max(1) as f64
        ),
        None => "process state unknown".to_string(),
    };
    match programs {
        Some(0) => format!(
            "the scheduler was still loading (alive, no BPF program loaded yet; {process}): \
             a slow guest looks like this, raise --attach-timeout"
        ),
        Some(n) => format!(
            "the scheduler was alive with {n} BPF programs loaded but never enabled sched_ext \
             ({process})"
        ),
        None => format!("the scheduler was alive ({process})"),
    }
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

    #[test]
    fn loading_and_loaded_read_differently() {
        let p = Some(ProcState {
            state: 'R',
            cpu_ticks: 1836,
        });
        let loading = describe(p, Some(0), 100);
        assert!(
            loading.starts_with("the scheduler was still loading"),
            "{loading}"
        );
        assert!(loading.contains("R, 18.4 s of CPU"), "{loading}");
        assert!(loading.contains("raise --attach-timeout"), "{loading}");
        let loaded = describe(p, Some(12), 100);
        assert!(
            loaded.contains("12 BPF programs loaded but never enabled"),
            "{loaded}"
        );
        assert_eq!(
            describe(None, None, 100),
            "the scheduler was alive (process state unknown)"
        );
    }
}
