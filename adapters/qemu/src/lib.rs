//! The QEMU backend: boots one cell's VM (hardware KVM when usable, TCG otherwise) with the
//! preset's topology, a watchdog, the console and frame channel on two serial ports, and
//! guest RAM in shared files the host reads after the VM stops.

pub mod cmdline;
pub mod memory;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use ktstr_domain::waits::CpuMode;
use ktstr_ports::{GuestMemory, Hypervisor, HypervisorError, VmRun, VmSpec};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

pub use cmdline::Accel;
use cmdline::{VmFiles, qemu_args};
use memory::{RamFiles, ShmGuestMemory};

const QEMU: &str = "qemu-system-x86_64";
/// QEMU's own error output kept for a failed launch.
const STDERR_LIMIT: u64 = 64 << 10;

/// Hardware KVM if the host has it and we may open it, otherwise TCG, with the reason.
pub fn detect_accel(sys_module: &Path, dev_kvm: &Path) -> (Accel, String) {
    let hardware = ["kvm_intel", "kvm_amd"]
        .iter()
        .find(|m| sys_module.join(m).exists());
    match hardware {
        Some(module) => match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dev_kvm)
        {
            Ok(_) => (Accel::Kvm, format!("hardware KVM ({module})")),
            Err(e) => (
                Accel::Tcg,
                format!(
                    "{} not usable ({e}); add yourself to the kvm group",
                    dev_kvm.display()
                ),
            ),
        },
        None if sys_module.join("kvm_pvm").exists() => (
            Accel::Tcg,
            "/dev/kvm is PVM (kvm_pvm), which cannot boot an ordinary kernel".to_string(),
        ),
        None => (Accel::Tcg, "no hardware KVM on this host".to_string()),
    }
}

#[derive(Debug)]
pub struct QemuBackend {
    binary: PathBuf,
    accel: Accel,
    accel_reason: String,
    /// Where RAM backing files live: a tmpfs the host can map (`/dev/shm`).
    shm_dir: PathBuf,
    /// Makes each VM's file names unique within this process.
    next_vm: AtomicU64,
}

impl QemuBackend {
    /// Finds QEMU on `path` (a `PATH`-style list) and picks the accelerator.
    pub fn detect(path: &std::ffi::OsStr) -> Result<Self, HypervisorError> {
        let binary = std::env::split_paths(path)
            .map(|dir| dir.join(QEMU))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                HypervisorError::Launch(format!(
                    "{QEMU} not found; install it with: apt-get install qemu-system-x86"
                ))
            })?;
        let (accel, accel_reason) = detect_accel(Path::new("/sys/module"), Path::new("/dev/kvm"));
        Ok(Self::new(
            binary,
            accel,
            accel_reason,
            PathBuf::from("/dev/shm"),
        ))
    }

    pub fn new(binary: PathBuf, accel: Accel, accel_reason: String, shm_dir: PathBuf) -> Self {
        QemuBackend {
            binary,
            accel,
            accel_reason,
            shm_dir,
            next_vm: AtomicU64::new(0),
        }
    }

    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// Why this accelerator was chosen, for the user.
    pub fn accel_reason(&self) -> &str {
        &self.accel_reason
    }
}

#[async_trait]
impl Hypervisor for QemuBackend {
    fn name(&self) -> String {
        format!("qemu ({})", self.accel.name())
    }

    fn cpu_mode(&self) -> CpuMode {
        match self.accel {
            Accel::Kvm => CpuMode::Hardware,
            Accel::Tcg => CpuMode::Emulated,
        }
    }

    async fn run(&self, spec: VmSpec) -> Result<VmRun, HypervisorError> {
        let io = |what: &str, e: std::io::Error| HypervisorError::Io(format!("{what}: {e}"));
        // The pid in the names tells whose files these are.
        let work = tempfile::Builder::new()
            .prefix(&format!("ktstr-vm-{}-", std::process::id()))
            .tempdir()
            .map_err(|e| io("creating the VM's work directory", e))?;
        let vm = self.next_vm.fetch_add(1, Ordering::Relaxed);
        // Removed on every path out of here, unless handed to the caller as guest memory.
        let ram = RamFiles {
            paths: (0..spec.topology.numa_nodes)
                .map(|n| {
                    self.shm_dir
                        .join(format!("ktstr-{}-{vm}-ram{n}", std::process::id()))
                })
                .collect(),
        };
        let files = VmFiles {
            console: work.path().join("console.log"),
            frames: work.path().join("frames.bin"),
            ram: ram.paths.clone(),
        };
        let mut child = Command::new(&self.binary)
            .args(qemu_args(&spec, self.accel, &files))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| HypervisorError::Launch(format!("{}: {e}", self.binary.display())))?;
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let stderr_task = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = (&mut stderr).take(STDERR_LIMIT).read_to_end(&mut buf).await;
            String::from_utf8_lossy(&buf).into_owned()
        });

        // Wait for the VM, sampling its peak memory and the frame channel: the watchdog
        // counts from the guest's last word there, so a slow guest that keeps making
        // progress is never cut short, and a silent one is.
        let pid = child.id();
        let mut watchdog = Watchdog::new(spec.timeout, tokio::time::Instant::now());
        let mut sample = tokio::time::interval(std::time::Duration::from_millis(100));
        let mut peak_rss_kib = None;
        let status = loop {
            tokio::select! {
                status = child.wait() => break Some(status.map_err(|e| io("waiting for QEMU", e))?),
                _ = sample.tick() => {
                    if let Some(kib) = pid.and_then(vm_hwm_kib) {
                        peak_rss_kib = Some(kib);
                    }
                    let heard = std::fs::metadata(&files.frames).map_or(0, |m| m.len());
                    if watchdog.expired(heard, tokio::time::Instant::now()) {
                        break None;
                    }
                }
            }
        };
        let timed_out = status.is_none();
        if timed_out {
            // The watchdog: the guest did not stop in time.
            child
                .kill()
                .await
                .map_err(|e| io("killing the timed-out VM", e))?;
        }
        let qemu_stderr = stderr_task.await.unwrap_or_default();
        let console = String::from_utf8_lossy(&std::fs::read(&files.console).unwrap_or_default())
            .into_owned();
        let frame_bytes = std::fs::read(&files.frames).unwrap_or_default();
        // With -no-reboot the guest's reboot or power-off is a clean exit; anything else
        // ended QEMU under the guest.
        let vm_died = match status {
            Some(status) if !status.success() => {
                // A QEMU that cannot start exits with a status and says why; a signal or a
                // guest that already spoke means it ran and died under the guest.
                let started = std::os::unix::process::ExitStatusExt::signal(&status).is_some()
                    || !frame_bytes.is_empty()
                    || !console.is_empty();
                if !started {
                    return Err(HypervisorError::Launch(format!(
                        "QEMU exited with {status} before the guest said anything: {}",
                        qemu_stderr.trim()
                    )));
                }
                Some(describe_exit(status, &qemu_stderr))
            }
            _ => None,
        };
        let memory: Option<Box<dyn GuestMemory>> = if ram.paths.iter().all(|p| p.exists()) {
            Some(Box::new(ShmGuestMemory::open(ram).map_err(|e| {
                HypervisorError::Io(format!("mapping guest memory: {e}"))
            })?))
        } else {
            None
        };
        Ok(VmRun {
            backend: self.name(),
            console,
            frame_bytes,
            timed_out,
            vm_died,
            memory,
            peak_rss_kib,
        })
    }
}

/// However long a guest keeps talking, it is stopped at this many watchdog periods.
const WATCHDOG_CAP: u32 = 4;

/// Fires when the guest has said nothing new on its frame channel for a whole period, or
/// when [`WATCHDOG_CAP`] periods have passed since the start.
#[derive(Debug)]
struct Watchdog {
    period: std::time::Duration,
    cap: tokio::time::Instant,
    heard_bytes: u64,
    last_word: tokio::time::Instant,
}

impl Watchdog {
    fn new(period: std::time::Duration, start: tokio::time::Instant) -> Self {
        Watchdog {
            period,
            cap: start + period * WATCHDOG_CAP,
            heard_bytes: 0,
            last_word: start,
        }
    }

    /// `heard_bytes`: how much the frame channel holds now.
    fn expired(&mut self, heard_bytes: u64, now: tokio::time::Instant) -> bool {
        if heard_bytes > self.heard_bytes {
            self.heard_bytes = heard_bytes;
            self.last_word = now;
        }
        now >= self.last_word + self.period || now >= self.cap
    }
}

/// `QEMU killed by signal 9`, with the last line QEMU printed when it said anything.
fn describe_exit(status: std::process::ExitStatus, stderr: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    let how = match (status.code(), status.signal()) {
        (_, Some(signal)) => format!("QEMU killed by signal {signal}"),
        (Some(code), None) => format!("QEMU exited with status {code}"),
        (None, None) => format!("QEMU ended: {status}"),
    };
    match stderr.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(last) => format!("{how}: {}", last.trim()),
        None => how,
    }
}

/// The peak resident set of a running process (`VmHWM`), in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accelerator_detection_tells_pvm_and_hardware_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let modules = tmp.path().join("module");
        std::fs::create_dir_all(modules.join("kvm_pvm")).unwrap();
        let kvm = tmp.path().join("kvm");
        let (accel, why) = detect_accel(&modules, &kvm);
        assert_eq!(accel, Accel::Tcg);
        assert!(why.contains("PVM"), "{why}");

        std::fs::create_dir_all(modules.join("kvm_intel")).unwrap();
        let (accel, why) = detect_accel(&modules, &kvm);
        assert_eq!(accel, Accel::Tcg);
        assert!(why.contains("not usable"), "{why}");
        std::fs::write(&kvm, "").unwrap();
        assert_eq!(detect_accel(&modules, &kvm).0, Accel::Kvm);

        let none = tmp.path().join("none");
        assert_eq!(detect_accel(&none, &kvm).1, "no hardware KVM on this host");
    }

    #[test]
    fn the_watchdog_counts_from_the_guests_last_word_up_to_a_cap() {
        let start = tokio::time::Instant::now();
        let s = std::time::Duration::from_secs;
        let mut dog = Watchdog::new(s(10), start);
        assert!(!dog.expired(0, start + s(9)));
        assert!(dog.expired(0, start + s(10)), "silent for a whole period");

        let mut dog = Watchdog::new(s(10), start);
        assert!(!dog.expired(100, start + s(9)));
        assert!(!dog.expired(100, start + s(18)), "heard at 9 s");
        assert!(dog.expired(100, start + s(19)));

        let mut dog = Watchdog::new(s(10), start);
        for t in 1..40 {
            assert!(!dog.expired(t * 10, start + s(t)), "talking at {t} s");
        }
        assert!(dog.expired(400, start + s(40)), "the cap");
    }

    #[test]
    fn a_dead_vm_is_described_by_signal_or_status_and_qemus_last_words() {
        use std::os::unix::process::ExitStatusExt;
        let killed = std::process::ExitStatus::from_raw(9);
        assert_eq!(describe_exit(killed, ""), "QEMU killed by signal 9");
        let failed = std::process::ExitStatus::from_raw(1 << 8);
        assert_eq!(
            describe_exit(failed, "warning\nqemu: fatal: lost the plot\n\n"),
            "QEMU exited with status 1: qemu: fatal: lost the plot"
        );
    }

    #[test]
    fn reads_the_peak_memory_of_a_live_process() {
        let kib = vm_hwm_kib(std::process::id()).unwrap();
        assert!(kib > 100, "{kib}");
        assert_eq!(vm_hwm_kib(u32::MAX), None);
    }

    #[test]
    fn a_missing_qemu_names_the_package() {
        let err = QemuBackend::detect(std::ffi::OsStr::new("/nonexistent")).unwrap_err();
        assert!(
            err.to_string().contains("apt-get install qemu-system-x86"),
            "{err}"
        );
    }
}
