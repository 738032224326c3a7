//! What the guest init is told to do, written into the initramfs as `/ktstr/plan.json`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the init finds its plan inside the guest.
pub const INIT_PLAN_PATH: &str = "/ktstr/plan.json";
/// Where the initramfs puts the scheduler binary (its file name appended).
pub const GUEST_BIN_DIR: &str = "/ktstr/bin";
/// The device frames travel on when the kernel command line names none.
pub const FRAME_DEVICE: &str = GuestChannels::CONSOLE_FIRST.frames;
/// Kernel command-line parameters that carry one cell's frame device and waits to the
/// init, so that one image serves every backend and every cell whatever its vCPU count.
pub const FRAMES_PARAM: &str = "ktstr.frames";
pub const ATTACH_PARAM: &str = "ktstr.attach_ms";
pub const PROBE_PARAM: &str = "ktstr.probe_ms";
/// `ktstr.boot_profile=1`: send the kernel's boot records before rebooting.
pub const BOOT_PROFILE_PARAM: &str = "ktstr.boot_profile";
/// The waits an image's plan holds, used when the command line carries none (a manual run).
pub const DEFAULT_ATTACH_MS: u64 = 20_000;
pub const DEFAULT_PROBE_MS: u64 = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitPlan {
    /// Absolute path of the scheduler binary inside the guest.
    pub scheduler: String,
    pub sched_args: Vec<String>,
    /// How long to wait for `/sys/kernel/sched_ext/state` to read `enabled`.
    pub attach_timeout_ms: u64,
    /// How long the dispatch probe's workers run after attach.
    pub probe_ms: u64,
    /// The device frames are written to, in raw mode.
    pub frame_device: String,
    /// Bytes of scheduler output kept (the tail) for the log frame.
    pub log_limit_bytes: u64,
    /// Send the kernel's boot records (a `KernelLog` frame) before rebooting.
    #[serde(default)]
    pub boot_profile: bool,
}

impl InitPlan {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plan serializes")
    }

    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("invalid init plan: {e}"))
    }

    /// Takes the cell's frame device and waits from the kernel command line where it
    /// carries them. A value that does not parse is an error, never silently replaced by
    /// the image's default.
    pub fn apply_cmdline(&mut self, cmdline: &str) -> Result<(), String> {
        for word in cmdline.split_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            if key == FRAMES_PARAM {
                if !value.starts_with("/dev/") {
                    return Err(format!(
                        "kernel command line `{word}`: the frame device must be under /dev"
                    ));
                }
                self.frame_device = value.to_string();
                continue;
            }
            if key == BOOT_PROFILE_PARAM {
                self.boot_profile = match value {
                    "1" => true,
                    "0" => false,
                    _ => return Err(format!("kernel command line `{word}`: expected 0 or 1")),
                };
                continue;
            }
            let target = match key {
                ATTACH_PARAM => &mut self.attach_timeout_ms,
                PROBE_PARAM => &mut self.probe_ms,
                _ => continue,
            };
            *target = value
                .parse()
                .map_err(|e| format!("kernel command line `{word}`: {e}"))?;
        }
        Ok(())
    }
}

/// The frame device a kernel command line names, if any.
pub fn frame_device_in(cmdline: &str) -> Option<&str> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix(FRAMES_PARAM)?.strip_prefix('='))
}

/// The guest devices a backend gives the console and the frame channel, as the guest
/// kernel names them: two 16550 serial ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestChannels {
    /// As `console=` takes it (`ttyS0`).
    pub console: &'static str,
    /// A device path, written raw (`/dev/ttyS1`).
    pub frames: &'static str,
}

impl GuestChannels {
    /// The console on the first serial port, frames on the second: every backend's own.
    pub const CONSOLE_FIRST: GuestChannels = GuestChannels {
        console: "ttyS0",
        frames: "/dev/ttyS1",
    };
    /// Swapped, to prove the guest follows the command line rather than a habit.
    pub const FRAMES_FIRST: GuestChannels = GuestChannels {
        console: "ttyS1",
        frames: "/dev/ttyS0",
    };
}

/// The command-line words that give a cell its console, frame device and waits.
pub fn cell_cmdline(channels: GuestChannels, attach: Duration, probe: Duration) -> String {
    format!(
        "console={} {FRAMES_PARAM}={} {ATTACH_PARAM}={} {PROBE_PARAM}={}",
        channels.console,
        channels.frames,
        attach.as_millis(),
        probe.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_unknown_fields() {
        let plan = InitPlan {
            scheduler: "/ktstr/bin/scx-ktstr".into(),
            sched_args: vec!["--verify-loop".into()],
            attach_timeout_ms: 10_000,
            probe_ms: 300,
            frame_device: FRAME_DEVICE.into(),
            log_limit_bytes: 16 << 20,
            boot_profile: false,
        };
        assert_eq!(InitPlan::from_json(&plan.to_json()), Ok(plan));
        assert!(InitPlan::from_json("{\"scheduler\": \"x\", \"bogus\": 1}").is_err());
    }

    #[test]
    fn the_command_line_carries_the_cells_waits() {
        let mut plan = InitPlan {
            scheduler: "/ktstr/bin/s".into(),
            sched_args: vec![],
            attach_timeout_ms: DEFAULT_ATTACH_MS,
            probe_ms: DEFAULT_PROBE_MS,
            frame_device: FRAME_DEVICE.into(),
            log_limit_bytes: 1,
            boot_profile: false,
        };
        let channels = GuestChannels {
            console: "hvc0",
            frames: "/dev/hvc1",
        };
        let words = cell_cmdline(
            channels,
            Duration::from_secs(52),
            Duration::from_millis(1012),
        );
        assert_eq!(
            words,
            "console=hvc0 ktstr.frames=/dev/hvc1 ktstr.attach_ms=52000 ktstr.probe_ms=1012"
        );
        plan.apply_cmdline(&format!("quiet {words} panic=-1"))
            .unwrap();
        assert_eq!((plan.attach_timeout_ms, plan.probe_ms), (52_000, 1012));
        assert_eq!(plan.frame_device, "/dev/hvc1");
        assert_eq!(frame_device_in(&words), Some("/dev/hvc1"));
        assert_eq!(frame_device_in("console=ttyS0"), None);
        plan.apply_cmdline("console=ttyS0").unwrap();
        assert_eq!(plan.attach_timeout_ms, 52_000);
        let err = plan.apply_cmdline("ktstr.probe_ms=fast").unwrap_err();
        assert!(err.contains("ktstr.probe_ms=fast"), "{err}");
        let err = plan.apply_cmdline("ktstr.frames=ttyS2").unwrap_err();
        assert!(err.contains("must be under /dev"), "{err}");
        assert!(!plan.boot_profile);
        plan.apply_cmdline("initcall_debug ktstr.boot_profile=1")
            .unwrap();
        assert!(plan.boot_profile);
        let err = plan.apply_cmdline("ktstr.boot_profile=yes").unwrap_err();
        assert!(err.contains("expected 0 or 1"), "{err}");
    }
}
