//! Thin safe wrappers over the few libc calls the init needs that std does not offer.
//!
//! All FFI except `bpf(2)` lives here so that every other module stays free of `unsafe`.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in string"))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `mount(2)` without flags or data.
pub fn mount(source: &str, target: &Path, fstype: &str) -> io::Result<()> {
    let source = cstring(source)?;
    let fstype = cstring(fstype)?;
    let target = cstring(
        target
            .to_str()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "non-UTF-8 path"))?,
    )?;
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call;
    // a null data pointer is allowed.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    })
}

/// Puts a terminal into raw mode (`cfmakeraw`) so frame bytes pass unchanged, ignoring
/// modem lines (CLOCAL) and at the 16550's top standard speed.
/// Returns `Ok(false)` when `fd` is not a terminal (e.g. a plain file in `--plan` tests).
pub fn make_raw(fd: &impl AsRawFd) -> io::Result<bool> {
    let fd = fd.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it completely on success.
    let mut tio: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `tio` is a valid, writable termios.
    if unsafe { libc::tcgetattr(fd, &mut tio) } < 0 {
        let err = io::Error::last_os_error();
        return if err.raw_os_error() == Some(libc::ENOTTY) {
            Ok(false)
        } else {
            Err(err)
        };
    }
    // SAFETY: `tio` is a valid termios obtained above.
    unsafe { libc::cfmakeraw(&mut tio) };
    tio.c_cflag |= libc::CLOCAL | libc::CREAD;
    // SAFETY: as above; B115200 is a valid speed constant.
    check(unsafe { libc::cfsetspeed(&mut tio, libc::B115200) })?;
    // SAFETY: `tio` is valid; fd is an open descriptor.
    check(unsafe { libc::tcsetattr(fd, libc::TCSANOW, &tio) })?;
    Ok(true)
}

/// Makes writes on `fd` block again after an `O_NONBLOCK` open.
pub fn clear_nonblock(fd: &impl AsRawFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on an open descriptor take and return plain integers.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    check(flags)?;
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) })
}

/// Waits until everything written to the terminal has been transmitted.
pub fn tcdrain(fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: plain syscall on an open descriptor.
    check(unsafe { libc::tcdrain(fd.as_raw_fd()) })
}

pub fn sync() {
    // SAFETY: sync has no arguments and cannot fail.
    unsafe { libc::sync() }
}

/// `reboot(2)`; returns only on failure.
pub fn reboot(cmd: libc::c_int) -> io::Error {
    // SAFETY: plain syscall; on success it does not return.
    unsafe { libc::reboot(cmd) };
    io::Error::last_os_error()
}

/// `struct sched_attr` from include/uapi/linux/sched/types.h (`SCHED_ATTR_SIZE_VER1`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SchedAttr {
    pub size: u32,
    pub sched_policy: u32,
    pub sched_flags: u64,
    pub sched_nice: i32,
    pub sched_priority: u32,
    pub sched_runtime: u64,
    pub sched_deadline: u64,
    pub sched_period: u64,
    pub sched_util_min: u32,
    pub sched_util_max: u32,
}

pub const SCHED_ATTR_SIZE: u32 = 56;
/// `SCHED_EXT` from include/uapi/linux/sched.h.
pub const SCHED_EXT: u32 = 7;
pub const SCHED_FIFO: u32 = 1;

/// Sets the calling thread's scheduling policy (`sched_setattr(0, attr, 0)`).
pub fn set_thread_policy(policy: u32, priority: u32) -> io::Result<()> {
    let attr = SchedAttr {
        size: SCHED_ATTR_SIZE,
        sched_policy: policy,
        sched_priority: priority,
        ..SchedAttr::default()
    };
    // SAFETY: `attr` is a valid sched_attr of the size it declares; pid 0 is this thread.
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The calling thread's scheduling policy as the kernel reports it.
pub fn thread_policy() -> io::Result<u32> {
    let mut attr = SchedAttr::default();
    // SAFETY: `attr` is writable and SCHED_ATTR_SIZE bytes long; pid 0 is this thread.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0,
            &mut attr as *mut SchedAttr,
            SCHED_ATTR_SIZE,
            0,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(attr.sched_policy)
    }
}

/// How many times the calling thread has given up its CPU voluntarily (blocked), from
/// `getrusage(RUSAGE_THREAD)`.
pub fn voluntary_switches() -> io::Result<u64> {
    // SAFETY: an all-zero rusage is valid, and getrusage only writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usage.ru_nvcsw as u64)
}

/// Makes `cmd`'s child start with the normal (fair) policy even when the spawning thread runs
/// SCHED_FIFO: the scheduler under test must run as it would on a normal system.
pub fn exec_with_normal_policy(cmd: &mut Command) {
    // SAFETY: the hook runs between fork and exec and only issues one raw syscall on stack
    // data, which is async-signal-safe; its failure is ignored on purpose.
    unsafe {
        cmd.pre_exec(|| {
            let attr = SchedAttr {
                size: SCHED_ATTR_SIZE,
                ..SchedAttr::default()
            };
            libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0);
            Ok(())
        });
    }
}

/// A pseudo-terminal pair for tests: the master end and the slave's path.
#[cfg(test)]
pub fn open_pty() -> io::Result<(std::fs::File, String)> {
    use std::os::fd::FromRawFd;
    // SAFETY: posix_openpt returns a new descriptor or -1.
    let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) };
    check(fd)?;
    // SAFETY: `fd` is a fresh descriptor we own from here on.
    let master = unsafe { std::fs::File::from_raw_fd(fd) };
    // SAFETY: plain calls on the open master.
    check(unsafe { libc::grantpt(fd) })?;
    // SAFETY: as above.
    check(unsafe { libc::unlockpt(fd) })?;
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: `name` is writable for its full length.
    let ret = unsafe { libc::ptsname_r(fd, name.as_mut_ptr(), name.len()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    // SAFETY: ptsname_r NUL-terminated the buffer on success.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    Ok((master, path.to_string_lossy().into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn sched_attr_matches_uapi() {
        assert_eq!(size_of::<SchedAttr>(), SCHED_ATTR_SIZE as usize);
        assert_eq!(offset_of!(SchedAttr, sched_flags), 8);
        assert_eq!(offset_of!(SchedAttr, sched_nice), 16);
        assert_eq!(offset_of!(SchedAttr, sched_runtime), 24);
        assert_eq!(offset_of!(SchedAttr, sched_util_min), 48);
    }

    #[test]
    fn getattr_reads_own_policy() {
        // Runs on any Linux: a normal test thread is SCHED_OTHER (0) or SCHED_BATCH/IDLE.
        let policy = thread_policy().expect("sched_getattr works");
        assert_ne!(policy, SCHED_EXT);
    }
}
