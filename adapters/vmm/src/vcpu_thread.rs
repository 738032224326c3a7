//! A vCPU on its own thread, and the one way to stop it: raise its stop flag and kick it
//! out of the guest with a signal until the thread has ended. Dropping the handle does the
//! same, so no vCPU thread outlives its VM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use vmm_sys_util::signal::{Killable, SIGRTMIN, register_signal_handler};

use crate::accel::Vcpu;
use crate::devices::PortDevices;
use crate::vcpu_loop::{VcpuStop, run_vcpu};

/// How often a stopping vCPU is kicked again: a signal that lands just before the thread
/// enters the guest is lost, the next one is not.
const KICK_PERIOD: Duration = Duration::from_millis(10);

/// The real-time signal that takes a vCPU out of `KVM_RUN` (`EINTR`); its handler does
/// nothing, the interrupted ioctl is the point.
fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

extern "C" fn ignore_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the kick handler once per process (signal dispositions are process-wide);
/// every caller gets the outcome, so no thread is ever kicked without it.
fn install_kick_handler() -> std::io::Result<()> {
    static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| register_signal_handler(kick_signal(), ignore_kick).map_err(|e| e.errno()))
        .map_err(std::io::Error::from_raw_os_error)
}

/// A running vCPU.
#[derive(Debug)]
pub struct VcpuThread {
    handle: Option<JoinHandle<VcpuStop>>,
    stop: Arc<AtomicBool>,
}

impl VcpuThread {
    pub fn spawn(
        id: u32,
        mut vcpu: Box<dyn Vcpu>,
        devices: Arc<Mutex<PortDevices>>,
    ) -> std::io::Result<Self> {
        install_kick_handler()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name(format!("vcpu{id}"))
            .spawn(move || run_vcpu(vcpu.as_mut(), &devices, &flag))?;
        Ok(VcpuThread {
            handle: Some(handle),
            stop,
        })
    }

    /// The vCPU stopped on its own (reset, fault, failure).
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops the vCPU if it still runs, joins its thread and says why it stopped.
    pub fn stop(mut self) -> VcpuStop {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> VcpuStop {
        let Some(handle) = self.handle.take() else {
            return VcpuStop::Stopped;
        };
        self.stop.store(true, Ordering::SeqCst);
        while !handle.is_finished() {
            // A failed kill means the thread is already gone.
            let _ = handle.kill(kick_signal());
            std::thread::sleep(KICK_PERIOD);
        }
        handle
            .join()
            .unwrap_or_else(|_| VcpuStop::Failed("the vCPU thread panicked".into()))
    }
}

impl Drop for VcpuThread {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
