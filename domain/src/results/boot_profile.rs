//! Where a guest's kernel boot went, from the kernel's own log records and their
//! timestamps: setup up to SMP bring-up, the bring-up itself, the initcalls (one by one
//! when the kernel ran with `initcall_debug`), and the hand-over to the init.

use serde::{Deserialize, Serialize};

use crate::protocol::guest_report::GuestReport;
use crate::protocol::observation::KernelRecord;

/// The kernel's word for the start and end of SMP bring-up, and the exec of the init.
const SMP_START: &str = "smp: Bringing up secondary CPUs";
const SMP_DONE: &str = "smp: Brought up ";
const RUN_INIT: &str = "Run /init as init process";
const INITRD_FREED: &str = "Freeing initrd memory";
/// `initcall_debug`'s line for a finished initcall: `initcall NAME+0x0/0x48 returned 0
/// after 320000 usecs`.
const INITCALL: &str = "initcall ";

/// How many of the slowest initcalls a profile keeps.
pub const SLOWEST_KEPT: usize = 12;

/// Whether the guest should send this record: only the lines a profile is made of.
pub fn is_profile_record(text: &str) -> bool {
    text.starts_with(INITCALL)
        || [SMP_START, SMP_DONE, RUN_INIT, INITRD_FREED]
            .iter()
            .any(|m| text.starts_with(m))
}

/// One initcall and how long it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Initcall {
    pub name: String,
    pub usecs: u64,
}

/// A kernel boot's milestones (µs since the kernel's clock started) and its slowest
/// initcalls. Milestones the log did not show are absent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BootProfile {
    pub smp_start_us: Option<u64>,
    pub smp_done_us: Option<u64>,
    /// When the last initcall before the init returned.
    pub initcalls_done_us: Option<u64>,
    /// When the initramfs was unpacked (it unpacks beside the initcalls).
    pub initramfs_done_us: Option<u64>,
    pub run_init_us: Option<u64>,
    /// How many initcalls reported, and their time added up.
    pub initcall_count: u32,
    pub initcall_total_us: u64,
    /// The slowest initcalls, slowest first (at most [`SLOWEST_KEPT`]).
    pub slowest: Vec<Initcall>,
}

impl BootProfile {
    /// The profile of a run whose guest sent its boot records (the sweep asked for them).
    pub fn of(guest: &GuestReport) -> Option<BootProfile> {
        (!guest.kernel_log.is_empty()).then(|| BootProfile::from_records(&guest.kernel_log))
    }

    pub fn from_records(records: &[KernelRecord]) -> Self {
        let mut profile = BootProfile::default();
        let mut initcalls = Vec::new();
        let first_at = |slot: &mut Option<u64>, at: u64| {
            slot.get_or_insert(at);
        };
        for r in records {
            let text = r.text.as_str();
            if text.starts_with(SMP_START) {
                first_at(&mut profile.smp_start_us, r.usec);
            } else if text.starts_with(SMP_DONE) {
                first_at(&mut profile.smp_done_us, r.usec);
            } else if text.starts_with(RUN_INIT) {
                first_at(&mut profile.run_init_us, r.usec);
            } else if text.starts_with(INITRD_FREED) {
                first_at(&mut profile.initramfs_done_us, r.usec);
            } else if let Some(call) = parse_initcall(text) {
                if profile.run_init_us.is_none() {
                    profile.initcalls_done_us = Some(r.usec);
                }
                initcalls.push(call);
            }
        }
        profile.initcall_count = u32::try_from(initcalls.len()).unwrap_or(u32::MAX);
        profile.initcall_total_us = initcalls.iter().map(|c| c.usecs).sum();
        initcalls.sort_by(|a, b| b.usecs.cmp(&a.usecs).then_with(|| a.name.cmp(&b.name)));
        initcalls.truncate(SLOWEST_KEPT);
        profile.slowest = initcalls;
        profile
    }

    /// Consecutive stretches of the boot in ms, each ending at a milestone the log showed:
    /// `setup` (to SMP bring-up), `smp bring-up`, `initcalls` (to the last one),
    /// `to init` (freeing init memory, exec).
    pub fn segments(&self) -> Vec<(&'static str, u64)> {
        let marks = [
            ("setup", self.smp_start_us),
            ("smp bring-up", self.smp_done_us),
            ("initcalls", self.initcalls_done_us),
            ("to init", self.run_init_us),
        ];
        let mut out = Vec::new();
        let mut previous = 0;
        for (label, at) in marks {
            if let Some(at) = at.filter(|&at| at >= previous) {
                out.push((label, (at - previous) / 1000));
                previous = at;
            }
        }
        out
    }
}

/// `initcall pty_init+0x0/0x300 returned 0 after 287512 usecs` → `pty_init`, 287512.
fn parse_initcall(text: &str) -> Option<Initcall> {
    let rest = text.strip_prefix(INITCALL)?;
    let (symbol, rest) = rest.split_once(" returned ")?;
    let usecs = rest
        .split_once(" after ")?
        .1
        .strip_suffix(" usecs")?
        .parse()
        .ok()?;
    let name = symbol.split('+').next().unwrap_or(symbol).to_string();
    Some(Initcall { name, usecs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(usec: u64, text: &str) -> KernelRecord {
        KernelRecord {
            usec,
            text: text.into(),
        }
    }

    fn boot() -> Vec<KernelRecord> {
        vec![
            rec(
                120_000,
                "initcall init_hw_perf_events+0x0/0x69f returned 0 after 1200 usecs",
            ),
            rec(860_000, "smp: Bringing up secondary CPUs ..."),
            rec(968_000, "smp: Brought up 1 node, 4 CPUs"),
            rec(
                1_400_000,
                "initcall acpi_init+0x0/0x48e returned 0 after 320000 usecs",
            ),
            rec(1_900_000, "Freeing initrd memory: 2616K"),
            rec(
                2_380_000,
                "initcall pty_init+0x0/0x300 returned 0 after 287512 usecs",
            ),
            rec(
                2_519_000,
                "initcall late_trace_init+0x0/0x79 returned 0 after 80 usecs",
            ),
            rec(2_652_000, "Run /init as init process"),
            rec(
                9_000_000,
                "initcall late_module+0x0/0x10 returned 0 after 5 usecs",
            ),
        ]
    }

    #[test]
    fn the_milestones_and_the_slowest_initcalls_come_from_the_records() {
        let p = BootProfile::from_records(&boot());
        assert_eq!(p.smp_start_us, Some(860_000));
        assert_eq!(p.smp_done_us, Some(968_000));
        assert_eq!(p.initramfs_done_us, Some(1_900_000));
        // Initcalls after the init started do not move the end of the boot's initcalls.
        assert_eq!(p.initcalls_done_us, Some(2_519_000));
        assert_eq!(p.run_init_us, Some(2_652_000));
        assert_eq!(p.initcall_count, 5);
        assert_eq!(p.initcall_total_us, 1200 + 320_000 + 287_512 + 80 + 5);
        let names: Vec<&str> = p.slowest.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names[..3], ["acpi_init", "pty_init", "init_hw_perf_events"]);
        assert_eq!(
            p.segments(),
            [
                ("setup", 860),
                ("smp bring-up", 108),
                ("initcalls", 1551),
                ("to init", 133)
            ]
        );
    }

    #[test]
    fn without_initcall_debug_only_the_milestones_remain() {
        let records: Vec<KernelRecord> = boot()
            .into_iter()
            .filter(|r| !r.text.starts_with("initcall "))
            .collect();
        let p = BootProfile::from_records(&records);
        assert_eq!((p.initcall_count, p.initcall_total_us), (0, 0));
        assert!(p.slowest.is_empty());
        assert_eq!(
            p.segments(),
            [("setup", 860), ("smp bring-up", 108), ("to init", 1684)]
        );
        assert!(BootProfile::from_records(&[]).segments().is_empty());
    }

    #[test]
    fn only_profile_lines_are_worth_sending() {
        assert!(is_profile_record(
            "initcall pty_init+0x0/0x300 returned 0 after 287512 usecs"
        ));
        assert!(is_profile_record("Run /init as init process"));
        assert!(is_profile_record("smp: Brought up 1 node, 4 CPUs"));
        assert!(!is_profile_record("calling  pty_init+0x0/0x300 @ 1"));
        assert!(!is_profile_record("sched_ext: BPF scheduler \"x\" enabled"));
        assert_eq!(parse_initcall("initcall broken returned"), None);
    }
}
