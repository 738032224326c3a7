//! What `/dev/kvm` is on this host, told from the loaded modules and whether we may open
//! it.

use std::path::Path;

/// Where the host lists its loaded kernel modules.
pub const SYS_MODULE: &str = "/sys/module";
/// The KVM device.
pub const DEV_KVM: &str = "/dev/kvm";

/// What the host's KVM can do for a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvmAccess {
    /// Hardware virtualisation (VMX or SVM) through `/dev/kvm`, usable by us.
    Hardware { module: &'static str },
    /// Hardware KVM is loaded but `/dev/kvm` cannot be opened read-write.
    Denied { module: &'static str, error: String },
    /// `/dev/kvm` is PVM (`kvm_pvm`): it runs paravirtualised guests, not an ordinary
    /// kernel.
    Pvm,
    /// No KVM module at all.
    Absent,
}

impl KvmAccess {
    /// What this host's KVM is.
    pub fn probe_host() -> Self {
        probe_kvm(Path::new(SYS_MODULE), Path::new(DEV_KVM))
    }

    /// One line for the user: what KVM this host has and, when unusable, the fix.
    pub fn describe(&self) -> String {
        match self {
            KvmAccess::Hardware { module } => format!("hardware KVM ({module})"),
            KvmAccess::Denied { module, error } => format!(
                "hardware KVM ({module}) but {DEV_KVM} is not usable ({error}); add yourself to \
                 the kvm group"
            ),
            KvmAccess::Pvm => {
                "/dev/kvm is PVM (kvm_pvm), which cannot boot an ordinary kernel".to_string()
            }
            KvmAccess::Absent => "no hardware KVM on this host".to_string(),
        }
    }
}

/// Reads `sys_module` (`/sys/module`) and tries to open `dev_kvm` (`/dev/kvm`).
pub fn probe_kvm(sys_module: &Path, dev_kvm: &Path) -> KvmAccess {
    let hardware = ["kvm_intel", "kvm_amd"]
        .into_iter()
        .find(|m| sys_module.join(m).exists());
    match hardware {
        Some(module) => match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dev_kvm)
        {
            Ok(_) => KvmAccess::Hardware { module },
            Err(e) => KvmAccess::Denied {
                module,
                error: e.to_string(),
            },
        },
        None if sys_module.join("kvm_pvm").exists() => KvmAccess::Pvm,
        None => KvmAccess::Absent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_pvm_denied_and_hardware_kvm_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let modules = tmp.path().join("module");
        std::fs::create_dir_all(modules.join("kvm_pvm")).unwrap();
        let kvm = tmp.path().join("kvm");
        assert_eq!(probe_kvm(&modules, &kvm), KvmAccess::Pvm);
        assert!(KvmAccess::Pvm.describe().contains("PVM"));

        std::fs::create_dir_all(modules.join("kvm_intel")).unwrap();
        let denied = probe_kvm(&modules, &kvm);
        assert!(
            matches!(
                denied,
                KvmAccess::Denied {
                    module: "kvm_intel",
                    ..
                }
            ),
            "{denied:?}"
        );
        assert!(denied.describe().contains("kvm group"));
        std::fs::write(&kvm, "").unwrap();
        assert_eq!(
            probe_kvm(&modules, &kvm),
            KvmAccess::Hardware {
                module: "kvm_intel"
            }
        );

        let none = tmp.path().join("none");
        assert_eq!(probe_kvm(&none, &kvm), KvmAccess::Absent);
        assert_eq!(KvmAccess::Absent.describe(), "no hardware KVM on this host");
    }
}
