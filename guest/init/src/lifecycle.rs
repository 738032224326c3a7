//! One cell's life inside the guest, in order: mounts, plan, frame channel, topology,
//! scheduler start, attach, dispatch probe, program list, log, reboot.

use std::path::Path;
use std::time::Duration;

use ktstr_domain::protocol::frame::Frame;
use ktstr_domain::protocol::init_plan::{FRAME_DEVICE, InitPlan, frame_device_in};
use ktstr_domain::protocol::observation::AttachExpiry;
use ktstr_domain::protocol::observation::ScxSample;

use crate::attach_watch::{AttachResult, SchedExtSysfs, wait_for_attach};
use crate::channel::{FrameSink, uptime_ms};
use crate::scheduler::{Scheduler, describe_status};
use crate::{activity, bpf, kmsg, mounts, probe, sys, sysfs_topology};

/// How long a dead scheduler's last output may take to drain from the pipe.
const LOG_DRAIN: Duration = Duration::from_secs(2);
const KMSG: &str = "/dev/kmsg";
const CMDLINE: &str = "/proc/cmdline";
/// How long a scheduler that lost sched_ext may take to be seen exiting.
const EXIT_GRACE: Duration = Duration::from_secs(1);
/// Clock ticks per second in `/proc/<pid>/stat`: fixed at 100 by the x86 Linux ABI.
const USER_HZ: u64 = 100;
/// How long after the probe the end sample is taken.
const SETTLE: Duration = Duration::from_millis(100);
/// Changes of sched_ext's state sent from one probe, at most.
const MAX_PROBE_SAMPLES: usize = 32;
/// The kernel's sched_ext records sent, at most (the last ones).
const MAX_KERNEL_RECORDS: usize = 64;

/// Whether this is the real PID 1 (mount, protect itself, reboot) or a run by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Init,
    Manual,
}

/// Runs everything and, as init, reboots; returns only in manual mode.
pub fn run(plan_path: &str, role: Role) {
    let early_errors = match role {
        Role::Init => mounts::mount_all(),
        Role::Manual => Vec::new(),
    };
    // The host names the frame device and the cell's waits on the kernel command line.
    let cmdline = match role {
        Role::Init => {
            std::fs::read_to_string(CMDLINE).map_err(|e| format!("cannot read {CMDLINE}: {e}"))
        }
        Role::Manual => Ok(String::new()),
    };
    let plan = std::fs::read_to_string(plan_path)
        .map_err(|e| format!("cannot read init plan {plan_path}: {e}"))
        .and_then(|text| InitPlan::from_json(&text))
        .and_then(|mut plan| {
            plan.apply_cmdline(cmdline.as_ref().map_err(Clone::clone)?)?;
            Ok(plan)
        });
    // Without a plan, the command line's device (or the default) is the best guess for
    // reporting that.
    let device = match &plan {
        Ok(plan) => plan.frame_device.clone(),
        Err(_) => cmdline
            .as_deref()
            .ok()
            .and_then(frame_device_in)
            .unwrap_or(FRAME_DEVICE)
            .to_string(),
    };
    let mut sink = FrameSink::open(&device).unwrap_or_else(|e| {
        eprintln!("ktstr-init: {e:#}; frames cannot reach the host");
        FrameSink::console_only()
    });
    for e in early_errors {
        sink.error(e);
    }
    match plan {
        Ok(plan) if sink.is_open() => {
            session(&mut sink, &plan, role);
            if plan.boot_profile {
                sink.send(&Frame::KernelLog {
                    records: kmsg::profile_records(KMSG),
                });
            }
        }
        Ok(_) => {}
        Err(e) => sink.error(e),
    }
    finish(&mut sink, role);
}

fn session(sink: &mut FrameSink, plan: &InitPlan, role: Role) {
    sink.phase("init");
    let root = Path::new("/");
    let workers = match sysfs_topology::read_topology(root) {
        Ok(topology) => {
            let n = topology.online_cpus.len();
            sink.send(&Frame::Topology { topology });
            n
        }
        Err(e) => {
            sink.error(format!("cannot read the guest topology: {e:#}"));
            std::thread::available_parallelism().map_or(1, usize::from)
        }
    };

    if role == Role::Init {
        // The init observes the scheduler under test and must not be at its mercy: RT tasks
        // are never handed to sched_ext, so a scheduler that stalls everything still lets
        // the init report and reboot. Children are reset to the normal policy at exec.
        if let Err(e) = sys::set_thread_policy(sys::SCHED_FIFO, 1) {
            eprintln!("ktstr-init: cannot make the init SCHED_FIFO: {e}");
        }
    }

    let scx = SchedExtSysfs::new(root);
    let seq_before = scx.enable_seq();
    let limit = usize::try_from(plan.log_limit_bytes).unwrap_or(usize::MAX);
    let mut sched = match Scheduler::spawn(&plan.scheduler, &plan.sched_args, limit) {
        Ok(s) => s,
        Err(e) => {
            sink.error(format!("{e:#}"));
            return;
        }
    };
    sink.send(&Frame::SchedulerStarted { pid: sched.pid() });
    sink.phase("scheduler_started");
    sink.send(&Frame::SchedExtSample {
        sample: ScxSample {
            uptime_ms: uptime_ms().unwrap_or_default(),
            state: scx.state().unwrap_or_default(),
            enable_seq: seq_before,
            scheduler_alive: true,
        },
    });

    // What attach came to decides only what the guest does next; the host judges it from
    // the samples, the exit status and the expiry sent here.
    let timeout = Duration::from_millis(plan.attach_timeout_ms);
    match wait_for_attach(&mut sched, &scx, seq_before, timeout) {
        AttachResult::Attached => {}
        AttachResult::Died(status) => {
            sink.send(&Frame::SchedulerDied { status });
            return report_failure(sink, &sched, true);
        }
        AttachResult::NotAttached(_) => {
            sink.send(&Frame::SchedExtSample {
                sample: take_sample(&scx, &mut sched),
            });
            return report_failure(sink, &sched, false);
        }
        AttachResult::Expired { state } => {
            let proc_state = activity::read_state(Path::new("/proc"), sched.pid());
            let expiry = AttachExpiry {
                waited_ms: plan.attach_timeout_ms,
                state: state.unwrap_or_default(),
                programs: bpf::list_programs()
                    .ok()
                    .map(|(progs, _)| u32::try_from(progs.len()).unwrap_or(u32::MAX - 1)),
                process_state: proc_state.map(|p| p.state),
                cpu_ms: proc_state.map_or(0, |p| p.cpu_ticks * 1000 / USER_HZ),
            };
            sink.send(&Frame::AttachExpired { expiry });
            return report_failure(sink, &sched, false);
        }
    }

    let attached = take_sample(&scx, &mut sched);
    sink.send(&Frame::SchedExtSample {
        sample: attached.clone(),
    });
    sink.send(&Frame::PayloadStarting);
    sink.phase("attached");
    let probe_time = Duration::from_millis(plan.probe_ms);
    let workers = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
    // sched_ext's state through the probe, sent whenever it changed.
    let mut last = (attached.state, attached.enable_seq);
    let mut changes = Vec::new();
    let mut watch = || {
        let now = (scx.state().unwrap_or_default(), scx.enable_seq());
        if now != last && changes.len() < MAX_PROBE_SAMPLES {
            changes.push(ScxSample {
                uptime_ms: uptime_ms().unwrap_or_default(),
                state: now.0.clone(),
                enable_seq: now.1,
                scheduler_alive: true,
            });
            last = now;
        }
    };
    let probe = probe::run_probe(workers, probe_time, probe::switch_to_sched_ext, &mut watch);
    sink.send(&Frame::WorkerProgress { probe });
    for sample in changes {
        sink.send(&Frame::SchedExtSample { sample });
    }
    sink.phase("probe_done");

    // The end sample, after a short settle: an ejection the scheduler caused late in the
    // probe is still being carried out by the kernel when the workers finish.
    std::thread::sleep(SETTLE);
    let mut end = take_sample(&scx, &mut sched);
    if end.state != "enabled" && end.scheduler_alive {
        // The kernel unregisters a dying scheduler before its process can be reaped:
        // give the exit a moment to show, so a death is reported as one.
        wait_exit(&mut sched, EXIT_GRACE);
        end = take_sample(&scx, &mut sched);
    }
    let alive = end.scheduler_alive;
    sink.send(&Frame::SchedExtSample { sample: end });
    if !alive {
        if let Some(status) = sched.poll_exit() {
            sink.send(&Frame::SchedulerDied {
                status: describe_status(status),
            });
        }
        return report_failure(sink, &sched, true);
    }
    send_programs(sink);
    send_kernel_records(sink);
    // The scheduler keeps running: send what it printed so far, without waiting for EOF.
    sink.send_log(&sched.log.snapshot());
}

/// sched_ext's state and whether the scheduler process still runs, now.
fn take_sample(scx: &SchedExtSysfs, sched: &mut Scheduler) -> ScxSample {
    ScxSample {
        uptime_ms: uptime_ms().unwrap_or_default(),
        state: scx.state().unwrap_or_default(),
        enable_seq: scx.enable_seq(),
        scheduler_alive: sched.poll_exit().is_none(),
    }
}

/// Polls for the scheduler's exit for up to `grace`.
fn wait_exit(sched: &mut Scheduler, grace: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + grace;
    loop {
        if let Some(status) = sched.poll_exit() {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// After a failed attach or a scheduler lost during the probe: programs, then the log with
/// the kernel's sched_ext messages appended.
fn report_failure(sink: &mut FrameSink, sched: &Scheduler, died: bool) {
    if died && !sched.log.wait_eof(LOG_DRAIN) {
        eprintln!("ktstr-init: scheduler output still open after it exited");
    }
    send_programs(sink);
    send_kernel_records(sink);
    let log = with_kernel_lines(sched.log.snapshot(), &kmsg::sched_ext_lines(KMSG));
    sink.send_log(&log);
}

fn with_kernel_lines(mut log: String, kernel: &str) -> String {
    if !kernel.is_empty() {
        if !log.is_empty() && !log.ends_with('\n') {
            log.push('\n');
        }
        log.push_str(kernel);
    }
    log
}

/// The kernel's sched_ext records, the last [`MAX_KERNEL_RECORDS`] of them.
fn send_kernel_records(sink: &mut FrameSink) {
    let mut records = kmsg::sched_ext_records(KMSG);
    let cut = records.len().saturating_sub(MAX_KERNEL_RECORDS);
    records.drain(..cut);
    sink.send(&Frame::SchedExtLog { records });
}

fn send_programs(sink: &mut FrameSink) {
    match bpf::list_programs() {
        Ok((progs, notes)) => {
            sink.send(&Frame::ProgStats { progs });
            for note in notes {
                sink.error(note);
            }
        }
        Err(e) => sink.error(format!("cannot list BPF programs: {e:#}")),
    }
}

/// Flushes every frame out of the UART and, as init, reboots with the scheduler still
/// loaded (QEMU runs with -no-reboot, so the VM exits).
fn finish(sink: &mut FrameSink, role: Role) {
    if sink.is_open() {
        sink.phase("reboot");
    }
    sys::sync();
    sink.drain();
    if role == Role::Manual {
        return;
    }
    let e = sys::reboot(libc::RB_AUTOBOOT);
    eprintln!("ktstr-init: reboot failed: {e}; powering off");
    let e = sys::reboot(libc::RB_POWER_OFF);
    eprintln!("ktstr-init: power off failed: {e}; exiting (the kernel panics and reboots)");
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_lines_follow_the_log_on_their_own_line() {
        assert_eq!(with_kernel_lines("a".into(), ""), "a");
        assert_eq!(
            with_kernel_lines("a".into(), "[kernel] k\n"),
            "a\n[kernel] k\n"
        );
        assert_eq!(
            with_kernel_lines("a\n".into(), "[kernel] k\n"),
            "a\n[kernel] k\n"
        );
        assert_eq!(
            with_kernel_lines(String::new(), "[kernel] k\n"),
            "[kernel] k\n"
        );
    }
}
