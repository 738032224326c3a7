//! Whether this host can run guests on the Microsoft Hypervisor: Linux as its root
//! partition exposes `/dev/mshv`, and its driver must speak the ioctl API we do.

use std::path::Path;

/// The MSHV device.
pub const DEV_MSHV: &str = "/dev/mshv";

/// What the host's `/dev/mshv` can do for a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MshvAccess {
    /// `/dev/mshv` opens and its driver answered the API check.
    Usable,
    /// `/dev/mshv` opens but the API check failed, in its words.
    Unusable { reason: String },
    /// `/dev/mshv` exists but cannot be opened read-write.
    Denied { error: String },
    /// No `/dev/mshv`: not the root partition of the Microsoft Hypervisor.
    Absent,
}

impl MshvAccess {
    /// This host's `/dev/mshv`; `api_check` opens it and asks its driver something only
    /// the API we speak answers.
    pub fn probe_host(api_check: impl FnOnce() -> Result<(), String>) -> Self {
        probe_mshv(Path::new(DEV_MSHV), api_check)
    }

    /// One line for the user: what this host's MSHV is and, when unusable, the fix.
    pub fn describe(&self) -> String {
        match self {
            MshvAccess::Usable => format!("Microsoft Hypervisor ({DEV_MSHV})"),
            MshvAccess::Unusable { reason } => {
                format!("{DEV_MSHV} is there but unusable: {reason}")
            }
            MshvAccess::Denied { error } => format!(
                "{DEV_MSHV} is not usable ({error}); run as a user who may open it read-write"
            ),
            MshvAccess::Absent => format!(
                "no {DEV_MSHV}: this host is not the root partition of the Microsoft Hypervisor"
            ),
        }
    }
}

/// Tries to open `dev_mshv` read-write, then runs `api_check`.
pub fn probe_mshv(dev_mshv: &Path, api_check: impl FnOnce() -> Result<(), String>) -> MshvAccess {
    if !dev_mshv.exists() {
        return MshvAccess::Absent;
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev_mshv)
    {
        Err(e) => MshvAccess::Denied {
            error: e.to_string(),
        },
        Ok(_) => match api_check() {
            Ok(()) => MshvAccess::Usable,
            Err(reason) => MshvAccess::Unusable { reason },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_absent_denied_unusable_and_usable_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let dev = tmp.path().join("mshv");
        let never = || -> Result<(), String> { panic!("no device, no API check") };
        assert_eq!(probe_mshv(&dev, never), MshvAccess::Absent);
        assert!(
            MshvAccess::Absent
                .describe()
                .contains("not the root partition")
        );

        // A directory cannot be opened for writing.
        std::fs::create_dir(&dev).unwrap();
        let denied = probe_mshv(&dev, never);
        assert!(matches!(denied, MshvAccess::Denied { .. }), "{denied:?}");
        assert!(denied.describe().contains("read-write"));
        std::fs::remove_dir(&dev).unwrap();

        std::fs::write(&dev, "").unwrap();
        let old = probe_mshv(&dev, || Err("MSHV_ROOT_HVCALL: Inappropriate ioctl".into()));
        assert_eq!(
            old.describe(),
            format!("{DEV_MSHV} is there but unusable: MSHV_ROOT_HVCALL: Inappropriate ioctl")
        );
        assert_eq!(probe_mshv(&dev, || Ok(())), MshvAccess::Usable);
    }
}
