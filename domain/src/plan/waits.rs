//! How long a cell may take: the host watchdog, the guest's attach wait and the dispatch
//! probe, scaled with the cell's vCPUs and with whether the CPUs are emulated.
//!
//! Measured under QEMU TCG on 2 host cores: boot to init takes 3.5 s at 16 vCPUs, 11 s at
//! 64 and 41–49 s at 128, and a scheduler's start-up slows with it; hardware KVM boots in
//! about a second whatever the count. A fixed wait makes a slow environment look like a
//! broken scheduler, so every wait grows with the work the guest has to do.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the backend runs guest CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuMode {
    /// Hardware virtualisation (KVM, MSHV): guest code runs natively.
    Hardware,
    /// Every guest instruction is emulated (QEMU TCG): everything is many times slower.
    Emulated,
}

/// The three waits of one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellWaits {
    /// The host watchdog: how long the guest may go without a word on its frame channel
    /// (it talks at every milestone) before the VM is killed.
    pub watchdog: Duration,
    /// How long the guest waits for sched_ext to reach `enabled`.
    pub attach: Duration,
    /// How long the dispatch probe's workers run.
    pub probe: Duration,
}

/// The user's overrides; `None` keeps the scaled default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitOverrides {
    pub watchdog: Option<Duration>,
    pub attach: Option<Duration>,
    pub probe: Option<Duration>,
}

/// Base and per-vCPU cost of one wait, in milliseconds.
struct Scale {
    base_ms: u64,
    per_cpu_ms: u64,
}

impl Scale {
    fn at(&self, cpus: u32) -> Duration {
        Duration::from_millis(self.base_ms + self.per_cpu_ms * u64::from(cpus))
    }
}

/// Emulated: boot alone grows past 0.3 s per vCPU at 128 vCPUs, and `scx_layered`'s
/// 221,000-instruction program took 16.5 s from start to attach alone on 4 vCPUs and 21 s
/// with a second cell beside it. A long wait costs nothing when the scheduler attaches.
const EMULATED_ATTACH: Scale = Scale {
    base_ms: 60_000,
    per_cpu_ms: 250,
};
const EMULATED_PROBE: Scale = Scale {
    base_ms: 500,
    per_cpu_ms: 4,
};
/// The longest silence: boot (the first word comes from the init) or the attach wait, with
/// room to spare for a host busy with other cells.
const EMULATED_WATCHDOG: Scale = Scale {
    base_ms: 120_000,
    per_cpu_ms: 1_000,
};
const HARDWARE_ATTACH: Scale = Scale {
    base_ms: 30_000,
    per_cpu_ms: 25,
};
const HARDWARE_PROBE: Scale = Scale {
    base_ms: 500,
    per_cpu_ms: 0,
};
const HARDWARE_WATCHDOG: Scale = Scale {
    base_ms: 60_000,
    per_cpu_ms: 100,
};

impl CellWaits {
    /// The waits for a guest of `cpus` vCPUs, with the user's overrides applied. The
    /// watchdog is never shorter than the attach wait and the probe plus
    /// [`WATCHDOG_SLACK`]: the guest is silent while it waits, and a watchdog that fired
    /// first would blame the scheduler for the wait.
    pub fn for_cell(cpus: u32, mode: CpuMode, overrides: WaitOverrides) -> Self {
        let (attach, probe, watchdog) = match mode {
            CpuMode::Emulated => (EMULATED_ATTACH, EMULATED_PROBE, EMULATED_WATCHDOG),
            CpuMode::Hardware => (HARDWARE_ATTACH, HARDWARE_PROBE, HARDWARE_WATCHDOG),
        };
        let attach = overrides.attach.unwrap_or_else(|| attach.at(cpus));
        let probe = overrides.probe.unwrap_or_else(|| probe.at(cpus));
        let watchdog = overrides
            .watchdog
            .unwrap_or_else(|| watchdog.at(cpus))
            .max(attach + probe + WATCHDOG_SLACK);
        CellWaits {
            watchdog,
            attach,
            probe,
        }
    }
}

/// What the watchdog allows beyond the attach wait and the probe: listing programs,
/// sending the log, rebooting.
pub const WATCHDOG_SLACK: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: WaitOverrides = WaitOverrides {
        watchdog: None,
        attach: None,
        probe: None,
    };

    #[test]
    fn emulated_waits_grow_with_vcpus() {
        let tiny = CellWaits::for_cell(4, CpuMode::Emulated, NONE);
        let large = CellWaits::for_cell(128, CpuMode::Emulated, NONE);
        assert_eq!(tiny.attach, Duration::from_secs(61));
        assert_eq!(tiny.probe, Duration::from_millis(516));
        assert_eq!(tiny.watchdog, Duration::from_secs(124));
        // The 128-vCPU cell that booted in 49 s had 20 s to attach: now 92 s, and the
        // watchdog covers boot, attach and probe.
        assert_eq!(large.attach, Duration::from_secs(92));
        assert_eq!(large.watchdog, Duration::from_secs(248));
        assert!(large.probe > tiny.probe);
    }

    #[test]
    fn hardware_waits_are_shorter() {
        let hw = CellWaits::for_cell(128, CpuMode::Hardware, NONE);
        let tcg = CellWaits::for_cell(128, CpuMode::Emulated, NONE);
        assert!(hw.attach < tcg.attach && hw.watchdog < tcg.watchdog);
        assert_eq!(hw.probe, Duration::from_millis(500));
    }

    #[test]
    fn overrides_win_but_the_watchdog_always_outlasts_the_attach_wait() {
        let w = CellWaits::for_cell(
            4,
            CpuMode::Emulated,
            WaitOverrides {
                attach: Some(Duration::from_secs(300)),
                ..NONE
            },
        );
        assert_eq!(w.attach, Duration::from_secs(300));
        assert_eq!(w.watchdog, Duration::from_millis(310_516));
        let fixed = CellWaits::for_cell(
            4,
            CpuMode::Emulated,
            WaitOverrides {
                watchdog: Some(Duration::from_secs(40)),
                attach: Some(Duration::from_secs(15)),
                probe: Some(Duration::from_millis(100)),
            },
        );
        assert_eq!(fixed.watchdog, Duration::from_secs(40));
        assert_eq!(fixed.probe, Duration::from_millis(100));
        // A watchdog shorter than the default attach wait is raised past it.
        let short = CellWaits::for_cell(
            4,
            CpuMode::Emulated,
            WaitOverrides {
                watchdog: Some(Duration::from_secs(40)),
                ..NONE
            },
        );
        assert_eq!(short.watchdog, Duration::from_millis(71_516));
    }
}
