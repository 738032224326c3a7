//! Running a kernel build's steps: each one's output appended to the build log, each in a
//! process group of its own so that a stop (a signal) kills it whole.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::CacheError;
use crate::build::BUILD_PACKAGES;

/// How often a running step, or a build waiting for a lock, looks at the stop flag.
pub const STOP_POLL: Duration = Duration::from_millis(100);

/// Appends every step's output to one log file, and runs each step so that a stop kills
/// it whole.
pub struct Log {
    path: PathBuf,
    file: File,
    stop: Arc<AtomicBool>,
}

impl Log {
    pub fn create(path: &Path, stop: Arc<AtomicBool>) -> Result<Self, CacheError> {
        let file = File::create(path).map_err(|e| CacheError::io(path, e))?;
        Ok(Log {
            path: path.to_path_buf(),
            file,
            stop,
        })
    }

    pub fn run(&self, step: &str, cmd: &mut Command) -> Result<(), CacheError> {
        let stopped = || CacheError::Stopped {
            step: step.to_string(),
        };
        if self.stop.load(Ordering::SeqCst) {
            return Err(stopped());
        }
        let mut header = &self.file;
        writeln!(header, "### {step}: {cmd:?}").map_err(|e| CacheError::io(&self.path, e))?;
        let out = self
            .file
            .try_clone()
            .map_err(|e| CacheError::io(&self.path, e))?;
        let err = self
            .file
            .try_clone()
            .map_err(|e| CacheError::io(&self.path, e))?;
        // A group of its own: a stop kills make and every compiler it started, and a
        // terminal's Ctrl-C reaches ktstr alone, which then does that.
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        ktstr_host::die_with_parent(cmd);
        let mut child = cmd.spawn().map_err(|e| CacheError::Tool {
            tool: format!("{:?}", cmd.get_program()),
            hint: format!("{e}; apt-get install {BUILD_PACKAGES}"),
        })?;
        let status = loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| CacheError::io(&self.path, e))?
            {
                break status;
            }
            if self.stop.load(Ordering::SeqCst) {
                if let Some(group) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ =
                        rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                }
                let _ = child.wait();
                return Err(stopped());
            }
            std::thread::sleep(STOP_POLL);
        };
        if status.success() {
            return Ok(());
        }
        let text = fs::read_to_string(&self.path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        Err(CacheError::Step {
            step: step.to_string(),
            code: status
                .code()
                .map_or_else(|| "by signal".to_string(), |c| c.to_string()),
            log: self.path.display().to_string(),
            tail,
        })
    }
}
