//! `--wedge-after-attach`: make the whole guest stop responding, so the host's watchdog
//! (not any guest-side check) is what ends the cell.
//!
//! One SCHED_FIFO priority-99 busy loop pinned to every online CPU starves every
//! normal task, the guest's init included. Two kernel safety nets would otherwise hand
//! normal tasks some CPU time and keep the guest limping along, so both are switched
//! off first: RT throttling (`sched_rt_runtime_us = -1`) and, since 6.12, the per-CPU
//! fair deadline server (its runtime set to 0 through debugfs).

// The scheduling and affinity calls have no safe wrapper in std.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;

use anyhow::{Context, Result};

const RT_RUNTIME: &str = "/proc/sys/kernel/sched_rt_runtime_us";
const DEBUGFS: &str = "/sys/kernel/debug";

/// Never returns on success: the calling thread parks while the hogs spin.
pub fn run(cpus: &[u32]) -> Result<()> {
    fs::write(RT_RUNTIME, "-1").with_context(|| format!("writing -1 to {RT_RUNTIME}"))?;
    if let Err(e) = disable_fair_server(cpus) {
        eprintln!("scx-ktstr: wedge: fair server left on ({e:#}); normal tasks may trickle");
    }

    // Every hog pins itself while still a normal task; only when all are pinned do they
    // turn real-time, so none can starve this thread before it has spawned the rest.
    let ready = Arc::new(Barrier::new(cpus.len() + 1));
    let mut hogs = Vec::with_capacity(cpus.len());
    for &cpu in cpus {
        let ready = Arc::clone(&ready);
        let hog = thread::Builder::new()
            .name(format!("ktstr-hog{cpu}"))
            .spawn(move || hog(cpu, &ready))
            .with_context(|| format!("spawning the hog for CPU {cpu}"))?;
        hogs.push(hog);
    }
    println!(
        "scx-ktstr: wedging {} CPUs with SCHED_FIFO 99 hogs",
        cpus.len()
    );
    ready.wait();
    for h in hogs {
        // A hog returns only if it could not become real-time.
        if let Ok(Err(e)) = h.join() {
            eprintln!("scx-ktstr: wedge: {e:#}");
        }
    }
    anyhow::bail!("every hog gave up; the guest is not wedged")
}

fn hog(cpu: u32, ready: &Barrier) -> Result<()> {
    let pinned = pin_to(cpu);
    ready.wait();
    pinned?;
    make_fifo_99().with_context(|| format!("SCHED_FIFO on CPU {cpu}"))?;
    loop {
        std::hint::spin_loop();
    }
}

fn pin_to(cpu: u32) -> Result<()> {
    // SAFETY: cpu_set_t is plain bits; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET bounds-checks against the set's size.
    unsafe { libc::CPU_SET(cpu as usize, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is this thread.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context(format!("pinning to CPU {cpu}"));
    }
    Ok(())
}

fn make_fifo_99() -> Result<()> {
    let param = libc::sched_param { sched_priority: 99 };
    // SAFETY: `param` is a valid sched_param; pid 0 is this thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

/// 6.12's fair server gives normal tasks 50 ms/s even under RT load; runtime 0 stops it.
fn disable_fair_server(cpus: &[u32]) -> Result<()> {
    let root = Path::new(DEBUGFS).join("sched/fair_server");
    if !root.exists() {
        mount_debugfs()?;
    }
    for cpu in cpus {
        let knob = root.join(format!("cpu{cpu}/runtime"));
        fs::write(&knob, "0").with_context(|| format!("writing 0 to {}", knob.display()))?;
    }
    Ok(())
}

fn mount_debugfs() -> Result<()> {
    let src = CString::new("debugfs")?;
    let target = CString::new(DEBUGFS)?;
    // SAFETY: all pointers are valid NUL-terminated strings; no mount data.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            src.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .context(format!("mounting debugfs on {DEBUGFS}"));
    }
    Ok(())
}
