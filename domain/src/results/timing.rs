//! Where a cell's time went, from the guest's milestones and the host's wall time.

/// What the time up to each milestone was spent on.
fn segment_of(phase: &str) -> Option<&'static str> {
    Some(match phase {
        "init" => "boot",
        "scheduler_started" => "start",
        "attached" => "load+verify+attach",
        "probe_done" => "probe",
        "reboot" => "report",
        _ => return None,
    })
}

/// Consecutive segments in ms: boot (to the init), start, load+verify+attach, probe,
/// report, then `vm overhead` (QEMU start and exit: wall time past the guest's last
/// milestone). Milestones a failed run never reached are simply absent.
pub fn breakdown(phases: &[(String, u64)], wall_ms: u64) -> Vec<(&'static str, u64)> {
    let mut out = Vec::new();
    let mut previous = 0u64;
    for (phase, uptime) in phases {
        if let Some(label) = segment_of(phase) {
            out.push((label, uptime.saturating_sub(previous)));
            previous = previous.max(*uptime);
        }
    }
    if previous > 0 && wall_ms >= previous {
        out.push(("vm overhead", wall_ms - previous));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phases(list: &[(&str, u64)]) -> Vec<(String, u64)> {
        list.iter().map(|(p, t)| (p.to_string(), *t)).collect()
    }

    #[test]
    fn a_full_run_splits_into_every_segment() {
        let p = phases(&[
            ("init", 1500),
            ("scheduler_started", 1520),
            ("attached", 2600),
            ("probe_done", 3110),
            ("reboot", 3150),
        ]);
        assert_eq!(
            breakdown(&p, 4000),
            [
                ("boot", 1500),
                ("start", 20),
                ("load+verify+attach", 1080),
                ("probe", 510),
                ("report", 40),
                ("vm overhead", 850)
            ]
        );
    }

    #[test]
    fn a_failed_run_has_only_what_it_reached() {
        let p = phases(&[
            ("init", 1500),
            ("scheduler_started", 1520),
            ("reboot", 2000),
        ]);
        assert_eq!(
            breakdown(&p, 1000),
            [("boot", 1500), ("start", 20), ("report", 480)]
        );
        assert!(breakdown(&[], 1000).is_empty());
    }
}
