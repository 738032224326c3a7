//! The pseudo filesystems the init and the scheduler need.

use std::path::Path;

use crate::sys;

struct MountSpec {
    source: &'static str,
    target: &'static str,
    fstype: &'static str,
    /// Failure is reported to the host; otherwise only to the console.
    required: bool,
}

const MOUNTS: &[MountSpec] = &[
    MountSpec {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        required: true,
    },
    MountSpec {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        required: true,
    },
    MountSpec {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        required: true,
    },
    MountSpec {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        required: true,
    },
    MountSpec {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        required: true,
    },
    MountSpec {
        source: "debugfs",
        target: "/sys/kernel/debug",
        fstype: "debugfs",
        required: false,
    },
];

/// Mounts everything, creating mount points as needed. Returns the failures of required
/// mounts, to be sent once the frame device is open (it lives on /dev itself).
pub fn mount_all() -> Vec<String> {
    let mut errors = Vec::new();
    for m in MOUNTS {
        let target = Path::new(m.target);
        let result = std::fs::create_dir_all(target)
            .map_err(|e| format!("creating {}: {e}", m.target))
            .and_then(|()| match sys::mount(m.source, target, m.fstype) {
                // Already mounted (e.g. devtmpfs automount): fine.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(()),
                other => other.map_err(|e| format!("mounting {} on {}: {e}", m.fstype, m.target)),
            });
        if let Err(msg) = result {
            eprintln!("ktstr-init: {msg}");
            if m.required {
                errors.push(msg);
            }
        }
    }
    errors
}
