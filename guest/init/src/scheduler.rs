//! The scheduler process under test: spawned with stdout and stderr into one pipe whose
//! tail is kept, and watched without ever blocking on it.

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};

use anyhow::{Context, Result};

use crate::logtail::LogCapture;
use crate::sys;

#[derive(Debug)]
pub struct Scheduler {
    child: Child,
    pub log: LogCapture,
    /// Set once the exit has been reaped; later polls return it again.
    exited: Option<ExitStatus>,
}

impl Scheduler {
    pub fn spawn(path: &str, args: &[String], log_limit: usize) -> Result<Self> {
        let (reader, writer) = std::io::pipe().context("creating the log pipe")?;
        let mut cmd = Command::new(path);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(writer.try_clone().context("duplicating the log pipe")?)
            .stderr(writer)
            // Rust's own loaders print backtraces on panic when asked; help the log.
            .env("RUST_BACKTRACE", "1");
        sys::exec_with_normal_policy(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start scheduler {path}"))?;
        // `cmd` holds the parent's write ends; dropping it lets the reader see EOF when the
        // scheduler (and whatever it forked) closes its copies.
        drop(cmd);
        let log = LogCapture::start(reader, log_limit);
        Ok(Scheduler {
            child,
            log,
            exited: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended; never blocks.
    pub fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            match self.child.try_wait() {
                Ok(status) => self.exited = status,
                Err(e) => eprintln!("ktstr-init: waitpid on the scheduler: {e}"),
            }
        }
        self.exited
    }
}

/// `"exit code N"` or `"killed by signal N"` (with `(core dumped)` when it did).
pub fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exit code {code}")
    } else if let Some(sig) = status.signal() {
        let core = if status.core_dumped() {
            " (core dumped)"
        } else {
            ""
        };
        format!("killed by signal {sig}{core}")
    } else {
        format!("ended with wait status {:#x}", status.into_raw())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn wait_status_formatting() {
        assert_eq!(describe_status(ExitStatus::from_raw(0)), "exit code 0");
        assert_eq!(describe_status(ExitStatus::from_raw(1 << 8)), "exit code 1");
        assert_eq!(
            describe_status(ExitStatus::from_raw(9)),
            "killed by signal 9"
        );
        assert_eq!(
            describe_status(ExitStatus::from_raw(11 | 0x80)),
            "killed by signal 11 (core dumped)"
        );
    }

    #[test]
    fn captures_both_streams_and_reports_exit() {
        let args = ["-c", "echo out; echo err >&2; exit 3"].map(String::from);
        let mut s = Scheduler::spawn("/bin/sh", &args, 1024).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(st) = s.poll_exit() {
                break st;
            }
            assert!(Instant::now() < deadline, "child never exited");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(describe_status(status), "exit code 3");
        // Polling again after reaping still answers.
        assert_eq!(s.poll_exit(), Some(status));
        assert!(s.log.wait_eof(Duration::from_secs(5)));
        let log = s.log.snapshot();
        assert!(log.contains("out\n") && log.contains("err\n"), "{log:?}");
    }

    #[test]
    fn missing_binary_is_an_error() {
        let err = Scheduler::spawn("/nonexistent/sched", &[], 16).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/sched"));
    }
}
