//! Children that cannot outlive ktstr: a VM or a build step whose parent is gone has
//! nobody to stop it, read its results or remove its files.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::process::{Signal, getpid, getppid, set_parent_process_death_signal};

/// The child gets SIGKILL when the thread that spawned it ends, which covers every way
/// ktstr itself can end (SIGKILL included). Spawn from a thread that lives as long as the
/// child: an async runtime's worker, or the thread that waits for it.
pub fn die_with_parent(command: &mut Command) {
    let parent = getpid();
    #[allow(unsafe_code)]
    // SAFETY: the hook runs in the child between fork and exec, and makes only
    // async-signal-safe system calls (prctl, getppid); it allocates nothing on success.
    unsafe {
        command.pre_exec(move || {
            set_parent_process_death_signal(Some(Signal::KILL))?;
            // ktstr may have ended before the line above took effect.
            if getppid() != Some(parent) {
                return Err(io::Error::from(io::ErrorKind::Interrupted));
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use rustix::process::{Pid, WaitOptions, waitpid};

    use super::*;

    /// A child started this way from a thread dies when the thread ends.
    #[test]
    fn the_child_dies_with_the_thread_that_spawned_it() {
        let pid = std::thread::spawn(|| {
            let mut sleeper = Command::new("sleep");
            sleeper.arg("600");
            die_with_parent(&mut sleeper);
            // Not waited for here: reaped below, after the thread is gone.
            sleeper.spawn().unwrap().id()
        })
        .join()
        .unwrap();
        let pid = Pid::from_raw(pid as i32).unwrap();
        let (_, status) = waitpid(Some(pid), WaitOptions::empty()).unwrap().unwrap();
        assert_eq!(status.terminating_signal(), Some(9), "{status:?}");
    }
}
