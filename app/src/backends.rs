//! Choosing the hypervisor backend: every backend ktstr has is probed against the host's
//! facts in order of preference, and the choice comes with why the others were passed
//! over. `ktstr backends` prints the same answer without running anything.

use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use ktstr_domain::waits::CpuMode;
use ktstr_host::{KvmAccess, MshvAccess, find_executable};
use ktstr_ports::Hypervisor;
use ktstr_qemu::{QEMU, QemuBackend, SerialLayout, accel_for};
use ktstr_vmm::backend::VmmBackend;
use ktstr_vmm::hypervisor::kvm::KvmHypervisor;
use ktstr_vmm::hypervisor::mshv::MshvHypervisor;
use thiserror::Error;

use crate::error_text::error_chain;

/// `--backend`: let ktstr pick, or name one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BackendChoice {
    /// The first available backend in order of preference.
    #[default]
    Auto,
    /// Our own VMM on hardware KVM.
    Kvm,
    /// Our own VMM on the Microsoft Hypervisor (`/dev/mshv`).
    Mshv,
    /// QEMU: hardware KVM when the host has it, TCG otherwise.
    Qemu,
}

/// The backends ktstr has, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Kvm,
    Mshv,
    Qemu,
}

impl BackendKind {
    /// In order of preference: our own VMM where it can run, QEMU everywhere else.
    pub const ALL: [BackendKind; 3] = [BackendKind::Kvm, BackendKind::Mshv, BackendKind::Qemu];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Kvm => "kvm",
            BackendKind::Mshv => "mshv",
            BackendKind::Qemu => "qemu",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// What the factory knows about the host, gathered once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub kvm: KvmAccess,
    pub mshv: MshvAccess,
    /// `qemu-system-x86_64` on `PATH`.
    pub qemu: Option<PathBuf>,
}

impl HostFacts {
    pub fn probe(path: &OsStr) -> Self {
        HostFacts {
            kvm: KvmAccess::probe_host(),
            mshv: MshvAccess::probe_host(|| {
                MshvHypervisor::open()
                    .map(drop)
                    .map_err(|e| error_chain(&e))
            }),
            qemu: find_executable(path, QEMU),
        }
    }
}

/// How one backend would run on this host, or why it cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub kind: BackendKind,
    /// `Ok(how it would run)` or `Err(why it cannot, with the fix)`.
    pub result: Result<String, String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BackendError {
    #[error("backend {kind} is not available: {reason}")]
    Unavailable { kind: BackendKind, reason: String },
    #[error("no backend is available:\n{0}")]
    NoneAvailable(String),
}

/// The backend a sweep runs on, and the probes that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub kind: BackendKind,
    pub probes: Vec<Probe>,
}

impl Selection {
    /// `backend: qemu (tcg) — why`, then one line per backend passed over.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for probe in &self.probes {
            match &probe.result {
                Ok(how) if probe.kind == self.kind => {
                    out.insert_str(0, &format!("backend: {how}\n"));
                }
                Ok(how) => out.push_str(&format!("  not chosen: {} — {how}\n", probe.kind)),
                Err(why) => out.push_str(&format!("  unavailable: {} — {why}\n", probe.kind)),
            }
        }
        out
    }
}

/// Every backend, in order of preference, against these facts.
pub fn probe_all(facts: &HostFacts) -> Vec<Probe> {
    BackendKind::ALL
        .iter()
        .map(|&kind| Probe {
            kind,
            result: match kind {
                BackendKind::Kvm => probe_kvm(facts),
                BackendKind::Mshv => probe_mshv(facts),
                BackendKind::Qemu => probe_qemu(facts),
            },
        })
        .collect()
}

fn probe_kvm(facts: &HostFacts) -> Result<String, String> {
    match &facts.kvm {
        KvmAccess::Hardware { .. } => Ok(format!("kvm (own VMM) — {}", facts.kvm.describe())),
        other => Err(format!("needs hardware KVM: {}", other.describe())),
    }
}

fn probe_mshv(facts: &HostFacts) -> Result<String, String> {
    match &facts.mshv {
        MshvAccess::Usable => Ok(format!("mshv (own VMM) — {}", facts.mshv.describe())),
        other => Err(format!(
            "needs the Microsoft Hypervisor: {}",
            other.describe()
        )),
    }
}

fn probe_qemu(facts: &HostFacts) -> Result<String, String> {
    let binary = facts.qemu.as_ref().ok_or_else(|| {
        format!("{QEMU} not found on PATH; install it with: apt-get install qemu-system-x86")
    })?;
    let (accel, why) = accel_for(&facts.kvm);
    Ok(format!(
        "qemu ({}) — {why}; {}",
        accel.name(),
        binary.display()
    ))
}

/// The backend `choice` names, or with `auto` the first available one.
pub fn select(choice: BackendChoice, facts: &HostFacts) -> Result<Selection, BackendError> {
    let probes = probe_all(facts);
    let wanted = match choice {
        BackendChoice::Auto => None,
        BackendChoice::Kvm => Some(BackendKind::Kvm),
        BackendChoice::Mshv => Some(BackendKind::Mshv),
        BackendChoice::Qemu => Some(BackendKind::Qemu),
    };
    let chosen = probes
        .iter()
        .find(|p| wanted.is_none_or(|w| w == p.kind) && p.result.is_ok());
    match (chosen, wanted) {
        (Some(probe), _) => Ok(Selection {
            kind: probe.kind,
            probes,
        }),
        (None, Some(kind)) => Err(BackendError::Unavailable {
            kind,
            reason: probes
                .iter()
                .find(|p| p.kind == kind)
                .and_then(|p| p.result.clone().err())
                .unwrap_or_default(),
        }),
        (None, None) => Err(BackendError::NoneAvailable(
            probes
                .iter()
                .map(|p| format!("  {}: {}", p.kind, p.result.clone().unwrap_err()))
                .collect::<Vec<_>>()
                .join("\n"),
        )),
    }
}

/// The chosen backend, built.
pub fn build(
    selection: &Selection,
    facts: &HostFacts,
) -> Result<Arc<dyn Hypervisor>, BackendError> {
    Ok(match selection.kind {
        BackendKind::Kvm => {
            let kvm = KvmHypervisor::open().map_err(|e| BackendError::Unavailable {
                kind: BackendKind::Kvm,
                reason: e.to_string(),
            })?;
            Arc::new(VmmBackend::new(Arc::new(kvm), CpuMode::Hardware))
        }
        BackendKind::Mshv => {
            let mshv = MshvHypervisor::open().map_err(|e| BackendError::Unavailable {
                kind: BackendKind::Mshv,
                reason: error_chain(&e),
            })?;
            Arc::new(VmmBackend::new(Arc::new(mshv), CpuMode::Hardware))
        }
        BackendKind::Qemu => {
            let binary = facts.qemu.clone().unwrap_or_else(|| PathBuf::from(QEMU));
            let (accel, _) = accel_for(&facts.kvm);
            Arc::new(QemuBackend::new(
                binary,
                accel,
                SerialLayout::default(),
                PathBuf::from("/dev/shm"),
            ))
        }
    })
}

/// `ktstr backends`: each backend, whether it can run here, and what `auto` picks.
pub fn report(facts: &HostFacts) -> String {
    let mut out = String::new();
    for probe in probe_all(facts) {
        match probe.result {
            Ok(how) => out.push_str(&format!("{:<6} available    {how}\n", probe.kind)),
            Err(why) => out.push_str(&format!("{:<6} unavailable  {why}\n", probe.kind)),
        }
    }
    match select(BackendChoice::Auto, facts) {
        Ok(selection) => out.push_str(&format!("auto picks: {}\n", selection.kind)),
        Err(_) => out.push_str("auto picks: nothing; install one of the above\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(kvm: KvmAccess, qemu: bool) -> HostFacts {
        HostFacts {
            kvm,
            mshv: MshvAccess::Absent,
            qemu: qemu.then(|| PathBuf::from("/usr/bin/qemu-system-x86_64")),
        }
    }

    const NO_MSHV: &str = "  unavailable: mshv — needs the Microsoft Hypervisor: no /dev/mshv: \
                           this host is not the root partition of the Microsoft Hypervisor\n";

    #[test]
    fn auto_picks_qemu_and_says_why_it_emulates() {
        let facts = facts(KvmAccess::Pvm, true);
        let selection = select(BackendChoice::Auto, &facts).unwrap();
        assert_eq!(selection.kind, BackendKind::Qemu);
        assert_eq!(
            selection.explain(),
            format!(
                "backend: qemu (tcg) — /dev/kvm is PVM (kvm_pvm), which cannot boot an \
                 ordinary kernel; /usr/bin/qemu-system-x86_64\n  unavailable: kvm — needs \
                 hardware KVM: /dev/kvm is PVM (kvm_pvm), which cannot boot an ordinary \
                 kernel\n{NO_MSHV}"
            )
        );
        assert_eq!(build(&selection, &facts).unwrap().name(), "qemu (tcg)");
        let err = select(BackendChoice::Kvm, &facts).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("backend kvm is not available: needs hardware KVM"),
            "{err}"
        );
    }

    #[test]
    fn hardware_kvm_makes_auto_pick_our_vmm_and_qemu_use_kvm() {
        let facts = facts(KvmAccess::Hardware { module: "kvm_amd" }, true);
        let auto = select(BackendChoice::Auto, &facts).unwrap();
        assert_eq!(auto.kind, BackendKind::Kvm);
        assert_eq!(
            auto.explain(),
            format!(
                "backend: kvm (own VMM) — hardware KVM (kvm_amd)\n{NO_MSHV}  not chosen: qemu \
                 — qemu (kvm) — hardware KVM (kvm_amd); /usr/bin/qemu-system-x86_64\n"
            )
        );
        let selection = select(BackendChoice::Qemu, &facts).unwrap();
        assert!(
            selection
                .explain()
                .starts_with("backend: qemu (kvm) — hardware KVM (kvm_amd)")
        );
        assert_eq!(build(&selection, &facts).unwrap().name(), "qemu (kvm)");
    }

    #[test]
    fn without_qemu_nothing_runs_and_the_error_names_the_package() {
        let facts = facts(KvmAccess::Absent, false);
        let err = select(BackendChoice::Qemu, &facts).unwrap_err();
        assert_eq!(
            err.to_string(),
            "backend qemu is not available: qemu-system-x86_64 not found on PATH; install it \
             with: apt-get install qemu-system-x86"
        );
        let err = select(BackendChoice::Auto, &facts).unwrap_err();
        assert!(matches!(err, BackendError::NoneAvailable(_)));
        assert!(
            err.to_string().contains("apt-get install qemu-system-x86"),
            "{err}"
        );
        let text = report(&facts);
        assert!(
            text.contains("\nqemu   unavailable  qemu-system-x86_64 not found"),
            "{text}"
        );
        assert!(text.ends_with("auto picks: nothing; install one of the above\n"));
    }

    #[test]
    fn the_report_lists_each_backend_and_the_pick() {
        let text = report(&facts(KvmAccess::Absent, true));
        assert_eq!(
            text,
            "kvm    unavailable  needs hardware KVM: no hardware KVM on this host\n\
             mshv   unavailable  needs the Microsoft Hypervisor: no /dev/mshv: this host is \
             not the root partition of the Microsoft Hypervisor\n\
             qemu   available    qemu (tcg) — no hardware KVM on this host; \
             /usr/bin/qemu-system-x86_64\nauto picks: qemu\n"
        );
    }

    /// On the root partition of the Microsoft Hypervisor (no KVM), `auto` takes our VMM on
    /// MSHV; a driver that fails the API check is explained, and QEMU runs instead.
    #[test]
    fn an_mshv_root_partition_makes_auto_pick_our_vmm_on_mshv() {
        let mut host = facts(KvmAccess::Absent, true);
        host.mshv = MshvAccess::Usable;
        let auto = select(BackendChoice::Auto, &host).unwrap();
        assert_eq!(auto.kind, BackendKind::Mshv);
        assert!(
            auto.explain()
                .starts_with("backend: mshv (own VMM) — Microsoft Hypervisor (/dev/mshv)\n"),
            "{}",
            auto.explain()
        );
        host.mshv = MshvAccess::Unusable {
            reason: "asking /dev/mshv for the host's processor features: Inappropriate ioctl"
                .into(),
        };
        assert_eq!(
            select(BackendChoice::Auto, &host).unwrap().kind,
            BackendKind::Qemu
        );
        let err = select(BackendChoice::Mshv, &host).unwrap_err();
        assert_eq!(
            err.to_string(),
            "backend mshv is not available: needs the Microsoft Hypervisor: /dev/mshv is there \
             but unusable: asking /dev/mshv for the host's processor features: Inappropriate ioctl"
        );
        assert!(
            report(&host).contains(
                "\nmshv   unavailable  needs the Microsoft Hypervisor: /dev/mshv is there but"
            ),
            "{}",
            report(&host)
        );
    }
}
