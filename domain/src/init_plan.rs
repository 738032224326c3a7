//! What the guest init is told to do, written into the initramfs as `/ktstr/plan.json`.

use serde::{Deserialize, Serialize};

/// Where the init finds its plan inside the guest.
pub const INIT_PLAN_PATH: &str = "/ktstr/plan.json";
/// Where the initramfs puts the scheduler binary (its file name appended).
pub const GUEST_BIN_DIR: &str = "/ktstr/bin";
/// The serial port lifecycle frames travel on; the console is ttyS0.
pub const FRAME_DEVICE: &str = "/dev/ttyS1";

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
}

impl InitPlan {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plan serializes")
    }

    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("invalid init plan: {e}"))
    }
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
        };
        assert_eq!(InitPlan::from_json(&plan.to_json()), Ok(plan));
        assert!(InitPlan::from_json("{\"scheduler\": \"x\", \"bogus\": 1}").is_err());
    }
}
