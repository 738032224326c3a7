//! The QEMU backend: boots one cell's VM (hardware KVM when usable, TCG otherwise) with the
//! preset's topology, a watchdog, the console and frame channel on two serial ports, and
//! guest RAM in shared files the host reads after the VM stops. None of these has a name on
//! disk (see [`mem_file`]), and QEMU dies with the thread that started it, so nothing of a
//! VM outlives ktstr, however ktstr ends.

pub mod boot_image;
pub mod cmdline;
pub mod guest_ram;
pub mod mem_file;

use std::path::PathBuf;
use std::process::Stdio;

use async_trait::async_trait;
use ktstr_domain::judging::evidence::VmFacts;
use ktstr_domain::plan::waits::CpuMode;
use ktstr_domain::plan::watchdog::FrameWatchdog;
use ktstr_domain::protocol::guest_output::{CONSOLE_LIMIT, FRAME_CHANNEL_LIMIT, flood};
use ktstr_domain::protocol::init_plan::GuestChannels;
use ktstr_domain::shape::ram_map::RamMap;
use ktstr_host::{KvmAccess, vm_hwm_kib};
use ktstr_ports::{GuestMemory, Hypervisor, HypervisorError, VmRun, VmSpec};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

pub use cmdline::{Accel, SerialLayout};
use cmdline::{VmFiles, qemu_args};
use guest_ram::ShmGuestMemory;
use mem_file::MemFile;

/// The QEMU binary the backend runs.
pub const QEMU: &str = "qemu-system-x86_64";
/// QEMU's own error output kept for a failed launch.
const STDERR_LIMIT: u64 = 64 << 10;

/// Hardware KVM when the host has it and we may open it, otherwise TCG, with the reason.
pub fn accel_for(kvm: &KvmAccess) -> (Accel, String) {
    let why = kvm.describe();
    match kvm {
        KvmAccess::Hardware { .. } => (Accel::Kvm, why),
        _ => (Accel::Tcg, why),
    }
}

#[derive(Debug)]
pub struct QemuBackend {
    binary: PathBuf,
    accel: Accel,
    serial: SerialLayout,
}

impl QemuBackend {
    pub fn new(binary: PathBuf, accel: Accel, serial: SerialLayout) -> Self {
        QemuBackend {
            binary,
            accel,
            serial,
        }
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

    fn guest_channels(&self) -> GuestChannels {
        self.serial.channels()
    }

    async fn run(&self, spec: VmSpec) -> Result<VmRun, HypervisorError> {
        let io = |what: &str, source| HypervisorError::Io {
            what: what.to_string(),
            source,
        };
        let mem_file = |name: String| {
            MemFile::create(&name).map_err(|e| io(&format!("creating the VM's {name}"), e))
        };
        let console = mem_file("console".into())?;
        let frames = mem_file("frames".into())?;
        // QEMU grows each to its node's size.
        let ram = (0..spec.topology.numa_nodes)
            .map(|node| mem_file(format!("ram{node}")))
            .collect::<Result<Vec<_>, _>>()?;
        let files = VmFiles {
            kernel: boot_image::boot_image(&spec.kernel_image, spec.vmlinux.as_deref())
                .to_path_buf(),
            console: console.path().to_path_buf(),
            frames: frames.path().to_path_buf(),
            ram: ram.iter().map(|f| f.path().to_path_buf()).collect(),
        };
        let args = qemu_args(&spec, self.accel, self.serial, &files);
        tracing::info!(
            command = %format!("{} {}", self.binary.display(), args.join(" ")),
            "launching QEMU"
        );
        let mut command = Command::new(&self.binary);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        ktstr_host::die_with_parent(command.as_std_mut());
        let mut child = command.spawn().map_err(|source| HypervisorError::Spawn {
            what: self.binary.display().to_string(),
            source,
        })?;
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
        let started = tokio::time::Instant::now();
        let mut watchdog = FrameWatchdog::new(spec.timeout);
        // Sampled often enough to time the guest's first frame (VM start to init) usefully.
        let mut sample = tokio::time::interval(std::time::Duration::from_millis(20));
        let mut peak_rss_kib = None;
        let mut flooded = None;
        let status = loop {
            tokio::select! {
                status = child.wait() => break Some(status.map_err(|e| io("waiting for QEMU", e))?),
                _ = sample.tick() => {
                    if let Some(kib) = pid.and_then(vm_hwm_kib) {
                        peak_rss_kib = Some(kib);
                    }
                    let heard = frames.len();
                    flooded = flood(console.len(), heard);
                    if flooded.is_some() || watchdog.expired(heard, started.elapsed()) {
                        break None;
                    }
                }
            }
        };
        let timed_out = status.is_none() && flooded.is_none();
        if status.is_none() {
            // The watchdog, or a flood: the guest did not stop in time.
            child.kill().await.map_err(|e| io("stopping the VM", e))?;
        }
        let qemu_stderr = stderr_task.await.unwrap_or_default();
        let console = String::from_utf8_lossy(&console.read_tail(CONSOLE_LIMIT)).into_owned();
        let frame_bytes = frames.read_to_limit(FRAME_CHANNEL_LIMIT);
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
                    return Err(HypervisorError::Refused(format!(
                        "QEMU exited with {status} before the guest said anything: {}",
                        qemu_stderr.trim()
                    )));
                }
                Some(describe_exit(status, &qemu_stderr))
            }
            _ => None,
        };
        // QEMU grows each RAM file to its node's size as it starts; a VM that died before
        // that left files with nothing to read, which is no guest memory, not an error.
        let map = RamMap::for_size(u64::from(spec.memory_mib) << 20);
        let backed: u64 = ram.iter().map(MemFile::len).sum();
        let memory: Option<Box<dyn GuestMemory>> = if backed == map.size() {
            Some(Box::new(
                ShmGuestMemory::open(ram, map).map_err(HypervisorError::Memory)?,
            ))
        } else {
            None
        };
        Ok(VmRun {
            facts: VmFacts {
                backend: self.name(),
                timed_out,
                vm_died,
                flooded,
                peak_rss_kib,
                init_after_ms: watchdog.first_word_ms(),
            },
            console,
            frame_bytes,
            memory,
        })
    }
}

/// `QEMU killed by signal 9`, with the last line QEMU printed when it said anything.
fn describe_exit(status: std::process::ExitStatus, stderr: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    let how = match (status.code(), status.signal()) {
        // The usual sender of a SIGKILL nobody asked for: the host's or a cgroup's OOM killer.
        (_, Some(9)) => "QEMU killed by signal 9, SIGKILL: the host's OOM killer if it ran out of memory (see dmesg)".to_string(),
        (_, Some(signal)) => format!("QEMU killed by signal {signal}"),
        (Some(code), None) => format!("QEMU exited with status {code}"),
        (None, None) => format!("QEMU ended: {status}"),
    };
    match stderr.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(last) => format!("{how}: {}", last.trim()),
        None => how,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_vm_is_described_by_signal_or_status_and_qemus_last_words() {
        use std::os::unix::process::ExitStatusExt;
        let killed = std::process::ExitStatus::from_raw(9);
        assert_eq!(
            describe_exit(killed, ""),
            "QEMU killed by signal 9, SIGKILL: the host's OOM killer if it ran out of memory (see dmesg)"
        );
        let segv = std::process::ExitStatus::from_raw(11);
        assert_eq!(describe_exit(segv, ""), "QEMU killed by signal 11");
        let failed = std::process::ExitStatus::from_raw(1 << 8);
        assert_eq!(
            describe_exit(failed, "warning\nqemu: fatal: lost the plot\n\n"),
            "QEMU exited with status 1: qemu: fatal: lost the plot"
        );
    }
}
