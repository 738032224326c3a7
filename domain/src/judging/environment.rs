//! Telling the environment's failures apart from the scheduler's: a guest out of memory or
//! of tmpfs space, a VM process that died, a guest that never finished booting. Read from
//! the guest kernel's console, the scheduler's output and what the backend saw.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::plan::guest_memory::GuestMemorySize;
use crate::protocol::observation::AttachExpiry;

/// What in the environment failed, when a cell could not judge the scheduler. JSON and
/// text name a cause the same way (`guest-oom`), so one token finds it in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnvCause {
    /// The guest kernel's OOM killer fired, or the kernel could not unpack the initramfs.
    #[serde(rename = "guest-oom")]
    GuestOutOfMemory,
    /// The guest's tmpfs (its only filesystem) filled up.
    #[serde(rename = "guest-disk-full")]
    GuestOutOfSpace,
    /// The VM process died under the guest (killed, crashed).
    #[serde(rename = "vm-died")]
    VmDied,
    /// The host could not start the VM.
    #[serde(rename = "vm-start")]
    VmStart,
    /// The guest did not reach its init before the watchdog.
    #[serde(rename = "boot-timeout")]
    BootTimeout,
    /// The attach wait ran out while the scheduler was still loading or being enabled.
    #[serde(rename = "slow-guest")]
    SlowGuest,
    /// The backend did not give the guest the preset's shape (CPUs, SMT, LLCs, NUMA), or
    /// the guest could not report what it saw: nothing it ran says anything about the
    /// preset.
    #[serde(rename = "topology")]
    Topology,
    /// The scheduler binary or the guest image could not be prepared.
    #[serde(rename = "image")]
    Image,
    /// The guest wrote past a serial line's limit and was stopped: nothing it ran was
    /// judged.
    #[serde(rename = "guest-flood")]
    GuestFlood,
    /// The guest's frames broke the protocol's order: ktstr's init or the frame channel
    /// failed, and its report cannot be judged.
    #[serde(rename = "protocol")]
    Protocol,
}

impl fmt::Display for EnvCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EnvCause::GuestOutOfMemory => "guest-oom",
            EnvCause::GuestOutOfSpace => "guest-disk-full",
            EnvCause::VmDied => "vm-died",
            EnvCause::VmStart => "vm-start",
            EnvCause::BootTimeout => "boot-timeout",
            EnvCause::SlowGuest => "slow-guest",
            EnvCause::Topology => "topology",
            EnvCause::Image => "image",
            EnvCause::GuestFlood => "guest-flood",
            EnvCause::Protocol => "protocol",
        })
    }
}

/// What a finished VM left behind that can point at the environment.
#[derive(Debug, Clone, Copy)]
pub struct EnvEvidence<'a> {
    /// What the kernel console showed.
    pub console: &'a ConsoleFacts,
    pub scheduler_log: &'a str,
    pub guest_errors: &'a [String],
    /// How the VM process ended when it was not the guest's own reboot or the watchdog.
    pub vm_died: Option<&'a str>,
    /// Why the host stopped a guest that wrote past a serial line's limit.
    pub flooded: Option<&'a str>,
    pub timed_out: bool,
    pub watchdog: Duration,
    pub memory: GuestMemorySize,
    /// The guest's milestones (`init`, `scheduler_started`, ...) with its uptime in ms.
    pub phases: &'a [(String, u64)],
    /// Frames the guest's init sent that decoded; none means it never spoke.
    pub frames: usize,
    /// The init reported the scheduler's own failure (it died, or never attached).
    pub scheduler_failed: bool,
    /// What the guest saw when its attach wait ran out, when it did.
    pub attach_expiry: Option<&'a AttachExpiry>,
}

/// The environment failure this evidence shows, with a reason naming the cause and the
/// fix; `None` when nothing points away from the scheduler.
pub fn diagnose(e: &EnvEvidence<'_>) -> Option<(EnvCause, String)> {
    if let Some(why) = e.flooded {
        return Some((EnvCause::GuestFlood, why.to_string()));
    }
    if let Some(what) = e
        .console
        .out_of_memory
        .clone()
        .or_else(|| scheduler_out_of_memory(e.scheduler_log))
    {
        return Some((
            EnvCause::GuestOutOfMemory,
            format!(
                "guest ran out of memory ({} MiB): {what}; {}",
                e.memory.mib,
                e.memory.how_to_raise()
            ),
        ));
    }
    let texts = std::iter::once(e.scheduler_log).chain(e.guest_errors.iter().map(String::as_str));
    if let Some(line) = texts
        .flat_map(str::lines)
        .find(|l| l.contains(NO_SPACE))
        .or(e.console.no_space.as_deref())
    {
        return Some((
            EnvCause::GuestOutOfSpace,
            format!(
                "guest ran out of tmpfs space ({} MiB of RAM, half of it tmpfs): `{}`; {}",
                e.memory.mib,
                line.trim(),
                e.memory.how_to_raise()
            ),
        ));
    }
    if let Some(expiry) = e.attach_expiry.filter(|x| x.still_working()) {
        return Some((
            EnvCause::SlowGuest,
            format!(
                "the {} s attach wait ran out while {}: the guest is too slow for this \
                 cell, not the scheduler broken; raise --attach-timeout",
                expiry.waited_ms / 1000,
                expiry.activity()
            ),
        ));
    }
    if let Some(how) = e.vm_died {
        return Some((
            EnvCause::VmDied,
            format!(
                "the VM process died ({how}) {}; not a scheduler failure, rerun the cell",
                doing(e.phases)
            ),
        ));
    }
    // Every milestone comes from the init, so none at all means it never ran.
    if e.timed_out && e.phases.is_empty() {
        return Some((
            EnvCause::BootTimeout,
            format!(
                "the guest did not finish booting within the {} s watchdog; raise --timeout",
                e.watchdog.as_secs()
            ),
        ));
    }
    if let Some(reason) = stopped_on_its_own(e) {
        return Some((EnvCause::VmDied, reason));
    }
    None
}

/// A guest that ended by itself, not by the watchdog, yet never reached its init's last
/// milestone (`reboot`, always sent before the init reboots): the machine reset under it.
/// Before the init said anything, the scheduler never started, whatever the console
/// says; after its milestones began, only a reset without a kernel panic and without a
/// word of the scheduler failing is the machine's (QEMU exits the same way on a
/// triple fault as on the init's reboot, so only the milestones tell them apart).
fn stopped_on_its_own(e: &EnvEvidence<'_>) -> Option<String> {
    if e.timed_out || e.phases.iter().any(|(phase, _)| phase == "reboot") {
        return None;
    }
    let last_console_line = e
        .console
        .last_line
        .as_ref()
        .map_or("nothing".to_string(), |l| format!("`{l}`"));
    if e.frames == 0 {
        return Some(format!(
            "the guest stopped on its own before its init ran (the kernel reset or \
             triple-faulted while booting; its console's last line: {last_console_line}); \
             the scheduler never started, rerun the cell"
        ));
    }
    let kernel_died = e.console.kernel_died;
    (!e.phases.is_empty() && !e.scheduler_failed && !kernel_died).then(|| {
        format!(
            "the guest reset on its own {} with no kernel panic on its console (a triple \
             fault or the hypervisor's doing); not a scheduler failure, rerun the cell",
            doing(e.phases)
        )
    })
}

/// What the guest was doing when it stopped, from its last milestone.
pub fn doing(phases: &[(String, u64)]) -> String {
    let Some((phase, uptime)) = phases.last() else {
        return "before the guest reached its init (booting)".to_string();
    };
    let activity = match phase.as_str() {
        "init" => "starting the scheduler",
        "scheduler_started" => "waiting for the scheduler to load and attach",
        "attached" => "running the dispatch probe",
        "probe_done" => "collecting program statistics",
        "reboot" => "shutting down",
        _ => "running",
    };
    format!(
        "while the guest was {activity} (last milestone `{phase}` at {}.{} s)",
        uptime / 1000,
        uptime % 1000 / 100
    )
}

/// The OOM killer's victim, a kernel that could not unpack its initramfs or had nothing
/// left to kill, or a load that failed with ENOMEM.
/// What the kernel console showed that tells the environment's failures apart: read once
/// when the run is judged and kept in its record, so a stored run can be judged again.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsoleFacts {
    /// What the kernel said of memory: the OOM killer's victim, nothing left to kill, an
    /// initramfs it could not unpack.
    pub out_of_memory: Option<String>,
    /// The first `No space left on device` line.
    pub no_space: Option<String>,
    /// The last non-empty line.
    pub last_line: Option<String>,
    /// A kernel panic, oops or BUG was printed.
    pub kernel_died: bool,
    /// The console's last [`CONSOLE_TAIL_LINES`] lines: what a panic or a hang left.
    pub tail: String,
}

/// Lines of the kernel console kept in a record.
pub const CONSOLE_TAIL_LINES: usize = 40;
const NO_SPACE: &str = "No space left on device";

impl ConsoleFacts {
    pub fn read(console: &str) -> Self {
        ConsoleFacts {
            out_of_memory: console_out_of_memory(console),
            no_space: console
                .lines()
                .find(|l| l.contains(NO_SPACE))
                .map(|l| l.trim().to_string()),
            last_line: console
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string()),
            kernel_died: ["Kernel panic", "Oops", "BUG:"]
                .iter()
                .any(|mark| console.contains(mark)),
            tail: tail_lines(console, CONSOLE_TAIL_LINES),
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut tail = lines[lines.len().saturating_sub(n)..].join("\n");
    if !tail.is_empty() {
        tail.push('\n');
    }
    tail
}

fn console_out_of_memory(console: &str) -> Option<String> {
    for line in console.lines() {
        if let Some(rest) = line.split("Out of memory: Killed process ").nth(1) {
            let victim = rest
                .split_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .map_or("a process", |(name, _)| name);
            return Some(format!("the kernel's OOM killer killed {victim}"));
        }
        if line.contains("Out of memory and no killable processes")
            || line.contains("System is deadlocked on memory")
        {
            return Some("the kernel ran out of memory with nothing left to kill".to_string());
        }
        if line.contains("Initramfs unpacking failed") {
            return Some("the kernel could not unpack the initramfs".to_string());
        }
    }
    None
}

fn scheduler_out_of_memory(scheduler_log: &str) -> Option<String> {
    scheduler_log.lines().find_map(|l| {
        let l = l.trim();
        if l.contains("Cannot allocate memory") {
            Some(format!("the scheduler's load failed with ENOMEM (`{l}`)"))
        } else if l.starts_with("memory allocation of") && l.ends_with("failed") {
            // Rust's allocation-failure abort.
            Some(format!("the scheduler could not allocate memory (`{l}`)"))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::guest_memory::MemorySource;

    /// A console that showed nothing of note.
    static QUIET: ConsoleFacts = ConsoleFacts {
        out_of_memory: None,
        no_space: None,
        last_line: None,
        kernel_died: false,
        tail: String::new(),
    };
    static PANICKED: ConsoleFacts = ConsoleFacts {
        kernel_died: true,
        last_line: None,
        out_of_memory: None,
        no_space: None,
        tail: String::new(),
    };

    fn evidence<'a>(console: &'a ConsoleFacts, log: &'a str) -> EnvEvidence<'a> {
        EnvEvidence {
            console,
            scheduler_log: log,
            guest_errors: &[],
            vm_died: None,
            flooded: None,
            timed_out: false,
            watchdog: Duration::from_secs(94),
            memory: GuestMemorySize {
                mib: 544,
                source: MemorySource::Sized,
            },
            phases: &[],
            frames: 3,
            scheduler_failed: false,
            attach_expiry: None,
        }
    }

    #[test]
    fn the_oom_killer_names_its_victim_and_the_fix() {
        let console = "[    9.1] Out of memory: Killed process 50 (scx_layered) total-vm:272952kB, \
                       anon-rss:1kB\n";
        let (cause, reason) = diagnose(&evidence(&ConsoleFacts::read(console), "")).unwrap();
        assert_eq!(cause, EnvCause::GuestOutOfMemory);
        assert_eq!(
            reason,
            "guest ran out of memory (544 MiB): the kernel's OOM killer killed scx_layered; \
             raise --memory"
        );
        let panicked = "Kernel panic - not syncing: System is deadlocked on memory\n";
        assert_eq!(
            diagnose(&evidence(&ConsoleFacts::read(panicked), ""))
                .unwrap()
                .0,
            EnvCause::GuestOutOfMemory
        );
        let enomem = "libbpf: map 'big': failed to create: Cannot allocate memory(-12)\n";
        assert!(
            diagnose(&evidence(&ConsoleFacts::read(""), enomem))
                .unwrap()
                .1
                .contains("ENOMEM")
        );
        let rust_abort = "memory allocation of 536870912 bytes failed\nstack backtrace:\n";
        assert_eq!(
            diagnose(&evidence(&ConsoleFacts::read(""), rust_abort))
                .unwrap()
                .1,
            "guest ran out of memory (544 MiB): the scheduler could not allocate memory \
             (`memory allocation of 536870912 bytes failed`); raise --memory"
        );
    }

    #[test]
    fn a_full_tmpfs_is_the_environment() {
        let log = "Error: write /tmp/x: No space left on device (os error 28)\n";
        let (cause, reason) = diagnose(&evidence(&ConsoleFacts::read(""), log)).unwrap();
        assert_eq!(cause, EnvCause::GuestOutOfSpace);
        assert!(reason.contains("tmpfs") && reason.contains("raise --memory"));
    }

    #[test]
    fn an_attach_wait_that_ran_out_on_a_working_scheduler_is_a_slow_guest() {
        let mut expiry = AttachExpiry {
            waited_ms: 61_000,
            state: "disabled".into(),
            programs: Some(0),
            process_state: Some('R'),
            cpu_ms: 58_000,
        };
        let e = EnvEvidence {
            attach_expiry: Some(&expiry),
            ..evidence(&QUIET, "")
        };
        let (cause, reason) = diagnose(&e).unwrap();
        assert_eq!(cause, EnvCause::SlowGuest);
        assert_eq!(
            reason,
            "the 61 s attach wait ran out while the scheduler was still loading: alive, no BPF \
             program loaded yet (process state R, 58.0 s of CPU): the guest is too slow for \
             this cell, not the scheduler broken; raise --attach-timeout"
        );
        // Loaded and idle, it is the scheduler's own failure to enable.
        expiry.programs = Some(9);
        expiry.process_state = Some('S');
        let e = EnvEvidence {
            attach_expiry: Some(&expiry),
            ..evidence(&QUIET, "")
        };
        assert_eq!(diagnose(&e), None);
    }

    #[test]
    fn a_dead_vm_says_what_the_guest_was_doing() {
        let phases = [
            ("init".to_string(), 1500),
            ("scheduler_started".into(), 1620),
        ];
        let e = EnvEvidence {
            vm_died: Some("killed by signal 9"),
            flooded: None,
            phases: &phases,
            ..evidence(&QUIET, "")
        };
        let (cause, reason) = diagnose(&e).unwrap();
        assert_eq!(cause, EnvCause::VmDied);
        assert_eq!(
            reason,
            "the VM process died (killed by signal 9) while the guest was waiting for the \
             scheduler to load and attach (last milestone `scheduler_started` at 1.6 s); not a \
             scheduler failure, rerun the cell"
        );
    }

    /// A guest that stopped by itself short of its init's `reboot` milestone was reset
    /// under it: before the init, always the machine's; after, unless the kernel panicked.
    #[test]
    fn a_guest_that_stopped_short_of_its_inits_reboot_was_reset_under_it() {
        let booting = diagnose(&EnvEvidence {
            frames: 0,
            ..evidence(
                &ConsoleFacts::read("smpboot: Booting SMP configuration:\n"),
                "",
            )
        });
        let (cause, reason) = booting.unwrap();
        assert_eq!(cause, EnvCause::VmDied);
        assert_eq!(
            reason,
            "the guest stopped on its own before its init ran (the kernel reset or \
             triple-faulted while booting; its console's last line: `smpboot: Booting SMP \
             configuration:`); the scheduler never started, rerun the cell"
        );
        let started = [
            ("init".to_string(), 2200),
            ("scheduler_started".to_string(), 2300),
        ];
        let (cause, reason) = diagnose(&EnvEvidence {
            phases: &started,
            ..evidence(&QUIET, "")
        })
        .unwrap();
        assert_eq!(cause, EnvCause::VmDied);
        assert!(
            reason.starts_with(
                "the guest reset on its own while the guest was waiting for the scheduler to \
                 load and attach (last milestone `scheduler_started` at 2.3 s) with no kernel \
                 panic"
            ),
            "{reason}"
        );
        // A kernel that panicked with the scheduler running is judged by the gates.
        let panicked = EnvEvidence {
            phases: &started,
            ..evidence(&PANICKED, "")
        };
        assert_eq!(diagnose(&panicked), None);
        // So is one whose init said the scheduler died before the reset.
        let died = EnvEvidence {
            phases: &started,
            scheduler_failed: true,
            ..evidence(&QUIET, "")
        };
        assert_eq!(diagnose(&died), None);
        // The init's own reboot ends a healthy run.
        let finished = [("init".to_string(), 2200), ("reboot".to_string(), 3300)];
        let done = EnvEvidence {
            phases: &finished,
            ..evidence(&QUIET, "")
        };
        assert_eq!(diagnose(&done), None);
    }

    #[test]
    fn a_watchdog_before_init_is_a_slow_boot_but_after_it_is_not_judged_here() {
        let booting = EnvEvidence {
            timed_out: true,
            ..evidence(&QUIET, "")
        };
        assert_eq!(diagnose(&booting).unwrap().0, EnvCause::BootTimeout);
        let phases = [("init".to_string(), 1500), ("attached".into(), 2000)];
        let wedged = EnvEvidence {
            timed_out: true,
            phases: &phases,
            ..evidence(&QUIET, "")
        };
        assert_eq!(diagnose(&wedged), None);
        assert_eq!(
            diagnose(&evidence(
                &ConsoleFacts::read("all fine\n"),
                "scheduler log\n"
            )),
            None
        );
    }

    #[test]
    fn the_console_tail_keeps_the_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail_lines("", 2), "");
    }
}
