//! `ktstr-init`: PID 1 of a ktstr verifier VM. Starts the scheduler under test, confirms
//! attach and dispatch, and reports typed frames to the host on a raw serial port.
//!
//! Run by hand (not PID 1) it refuses unless given `--plan PATH`; then it skips mounting and
//! rebooting, which makes it usable as a test harness with a plain file as frame device.

mod activity;
mod attach_watch;
mod bpf;
mod btf;
mod channel;
mod cpulist;
mod kmsg;
mod lifecycle;
mod logtail;
mod mounts;
mod probe;
mod scheduler;
mod sys;
mod sysfs_topology;

use ktstr_domain::protocol::init_plan::INIT_PLAN_PATH;

use lifecycle::Role;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if std::process::id() == 1 {
        // The kernel may pass stray command-line words to init; ignore them.
        lifecycle::run(INIT_PLAN_PATH, Role::Init);
        return;
    }
    match plan_arg(&args) {
        Some(path) => lifecycle::run(path, Role::Manual),
        None => {
            eprintln!(
                "ktstr-init is the init of a ktstr VM and refuses to run as PID {} \
                 (it mounts filesystems and reboots).\n\
                 For testing: ktstr-init --plan PATH  (no mounts, no reboot)",
                std::process::id()
            );
            std::process::exit(2);
        }
    }
}

/// The path after `--plan` (or in `--plan=PATH`).
fn plan_arg(args: &[String]) -> Option<&str> {
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--plan" {
            return it.next().map(String::as_str);
        }
        if let Some(path) = arg.strip_prefix("--plan=") {
            return Some(path);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_argument_forms() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(plan_arg(&v(&["--plan", "/p.json"])), Some("/p.json"));
        assert_eq!(plan_arg(&v(&["--plan=/q.json"])), Some("/q.json"));
        assert_eq!(plan_arg(&v(&["--plan"])), None);
        assert_eq!(plan_arg(&v(&[])), None);
    }
}
