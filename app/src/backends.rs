//! Choosing the hypervisor backend: every backend ktstr has is probed against the host's
//! facts in order of preference, and the choice comes with why the others were passed
//! over. `auto` only ever picks a backend real cells have passed on; the others run when
//! named. `ktstr backends` prints the same answer without running anything.

use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use ktstr_domain::plan::waits::CpuMode;
use ktstr_host::{KvmAccess, MshvAccess, find_executable};
use ktstr_ports::Hypervisor;
use ktstr_qemu::{QEMU, QemuBackend, SerialLayout, accel_for};
use ktstr_vmm::accel::kvm::KvmAccel;
use ktstr_vmm::accel::mshv::MshvAccel;
use ktstr_vmm::backend::VmmBackend;
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

    /// What real runs have shown of this backend. A default must never choose one no
    /// real cell has passed on, so `auto` skips the unproven.
    pub fn proof(self) -> Proof {
        match self {
            BackendKind::Qemu => Proof::Proven(
                "real cells pass under TCG (fixture, published and kernel example \
                 schedulers) and on nested KVM (AMD)",
            ),
            BackendKind::Kvm => Proof::BeingProven(
                "real cells pass only in the nested-KVM bed (scripts/nested-kvm.sh: AMD SVM \
                 emulated by TCG), with QEMU's verdicts and counts; no Intel or bare-metal \
                 KVM host has run it yet",
            ),
            BackendKind::Mshv => Proof::BeingProven(
                "it has never run on a Microsoft Hypervisor host; no real cell has passed on it",
            ),
        }
    }
}

/// Whether real cells have passed on a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// With what.
    Proven(&'static str),
    /// Why not yet, and where that is being done.
    BeingProven(&'static str),
}

impl Proof {
    pub fn is_proven(self) -> bool {
        matches!(self, Proof::Proven(_))
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
                MshvAccel::open().map(drop).map_err(|e| error_chain(&e))
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
    #[error("no backend `auto` may pick is available:\n{0}")]
    NoneAvailable(String),
}

/// The backend a sweep runs on, and the probes that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub kind: BackendKind,
    pub probes: Vec<Probe>,
}

impl Selection {
    /// `backend: qemu (tcg) — why`, then one line per backend passed over; a chosen
    /// backend that is still being proven says so.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for probe in &self.probes {
            match (&probe.result, probe.kind.proof()) {
                (Ok(how), proof) if probe.kind == self.kind => {
                    let caveat = match proof {
                        Proof::Proven(_) => String::new(),
                        Proof::BeingProven(why) => {
                            format!("  warning: {} is being proven: {why}\n", probe.kind)
                        }
                    };
                    out.insert_str(0, &format!("backend: {how}\n{caveat}"));
                }
                (Ok(how), Proof::BeingProven(why)) => out.push_str(&format!(
                    "  not chosen: {} — {how}; being proven ({why}): name it with --backend {}\n",
                    probe.kind, probe.kind
                )),
                (Ok(how), Proof::Proven(_)) => {
                    out.push_str(&format!("  not chosen: {} — {how}\n", probe.kind))
                }
                (Err(why), _) => out.push_str(&format!("  unavailable: {} — {why}\n", probe.kind)),
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

/// The backend `choice` names, or with `auto` the first available one real cells have
/// passed on.
pub fn select(choice: BackendChoice, facts: &HostFacts) -> Result<Selection, BackendError> {
    let probes = probe_all(facts);
    let wanted = match choice {
        BackendChoice::Auto => None,
        BackendChoice::Kvm => Some(BackendKind::Kvm),
        BackendChoice::Mshv => Some(BackendKind::Mshv),
        BackendChoice::Qemu => Some(BackendKind::Qemu),
    };
    let chosen = probes.iter().find(|p| {
        p.result.is_ok()
            && match wanted {
                Some(kind) => kind == p.kind,
                None => p.kind.proof().is_proven(),
            }
    });
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
                .map(|p| match (&p.result, p.kind.proof()) {
                    (Err(why), _) => format!("  {}: {why}", p.kind),
                    (Ok(_), Proof::BeingProven(why)) => format!(
                        "  {}: available, but being proven ({why}); run it with --backend {}",
                        p.kind, p.kind
                    ),
                    (Ok(how), Proof::Proven(_)) => format!("  {}: {how}", p.kind),
                })
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
            let kvm = KvmAccel::open().map_err(|e| BackendError::Unavailable {
                kind: BackendKind::Kvm,
                reason: e.to_string(),
            })?;
            Arc::new(VmmBackend::new(Arc::new(kvm), CpuMode::Hardware))
        }
        BackendKind::Mshv => {
            let mshv = MshvAccel::open().map_err(|e| BackendError::Unavailable {
                kind: BackendKind::Mshv,
                reason: error_chain(&e),
            })?;
            Arc::new(VmmBackend::new(Arc::new(mshv), CpuMode::Hardware))
        }
        BackendKind::Qemu => {
            let binary = facts.qemu.clone().unwrap_or_else(|| PathBuf::from(QEMU));
            let (accel, _) = accel_for(&facts.kvm);
            Arc::new(QemuBackend::new(binary, accel, SerialLayout::default()))
        }
    })
}

/// `ktstr backends`: each backend, whether it can run here, what real runs have proven of
/// it, and what `auto` picks and why.
pub fn report(facts: &HostFacts) -> String {
    let mut out = String::new();
    for probe in probe_all(facts) {
        match probe.result {
            Ok(how) => out.push_str(&format!("{:<6} available    {how}\n", probe.kind)),
            Err(why) => out.push_str(&format!("{:<6} unavailable  {why}\n", probe.kind)),
        }
        match probe.kind.proof() {
            Proof::Proven(with) => out.push_str(&format!("       proven: {with}\n")),
            Proof::BeingProven(why) => out.push_str(&format!("       being proven: {why}\n")),
        }
    }
    match select(BackendChoice::Auto, facts) {
        Ok(selection) => out.push_str(&format!(
            "auto picks: {} (the first available proven backend)\n",
            selection.kind
        )),
        Err(_) => out.push_str(
            "auto picks: no proven backend is available; install QEMU (apt-get install \
             qemu-system-x86), or name an available backend with --backend\n",
        ),
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

    /// Until real cells pass on the own VMM, hardware KVM makes `auto` pick QEMU on KVM;
    /// the own VMM runs only when named, and says it is being proven.
    #[test]
    fn hardware_kvm_makes_auto_pick_qemu_on_kvm_until_the_own_vmm_is_proven() {
        let facts = facts(KvmAccess::Hardware { module: "kvm_amd" }, true);
        let auto = select(BackendChoice::Auto, &facts).unwrap();
        assert_eq!(auto.kind, BackendKind::Qemu);
        assert_eq!(build(&auto, &facts).unwrap().name(), "qemu (kvm)");
        assert_eq!(
            auto.explain(),
            format!(
                "backend: qemu (kvm) — hardware KVM (kvm_amd); /usr/bin/qemu-system-x86_64\n  \
                 not chosen: kvm — kvm (own VMM) — hardware KVM (kvm_amd); being proven (real \
                 cells pass only in the nested-KVM bed (scripts/nested-kvm.sh: AMD SVM emulated \
                 by TCG), with QEMU's verdicts and counts; no Intel or bare-metal KVM host has \
                 run it yet): name it with --backend kvm\n{NO_MSHV}"
            )
        );
        let named = select(BackendChoice::Kvm, &facts).unwrap();
        assert_eq!(named.kind, BackendKind::Kvm);
        assert!(
            named.explain().starts_with(
                "backend: kvm (own VMM) — hardware KVM (kvm_amd)\n  warning: kvm is being \
                 proven: real cells pass only in the nested-KVM bed"
            ),
            "{}",
            named.explain()
        );
        let text = report(&facts);
        assert!(
            text.contains(
                "kvm    available    kvm (own VMM) — hardware KVM (kvm_amd)\n       being \
                 proven: real cells pass only in the nested-KVM bed"
            ),
            "{text}"
        );
        assert!(text.contains("qemu   available    qemu (kvm)"), "{text}");
        assert!(
            text.ends_with("auto picks: qemu (the first available proven backend)\n"),
            "{text}"
        );
    }

    /// Hardware KVM but no QEMU: `auto` refuses rather than fall back on an unproven
    /// backend, and says how to run it anyway.
    #[test]
    fn auto_never_falls_back_on_an_unproven_backend() {
        let facts = facts(
            KvmAccess::Hardware {
                module: "kvm_intel",
            },
            false,
        );
        let err = select(BackendChoice::Auto, &facts).unwrap_err().to_string();
        assert!(
            err.contains(
                "  kvm: available, but being proven (real cells pass only in the nested-KVM \
                 bed (scripts/nested-kvm.sh: AMD SVM emulated by TCG), with QEMU's verdicts and \
                 counts; no Intel or bare-metal KVM host has run it yet); run it with \
                 --backend kvm"
            ),
            "{err}"
        );
        assert!(err.contains("apt-get install qemu-system-x86"), "{err}");
        assert_eq!(
            select(BackendChoice::Kvm, &facts).unwrap().kind,
            BackendKind::Kvm
        );
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
        assert!(
            text.ends_with(
                "auto picks: no proven backend is available; install QEMU (apt-get install \
                 qemu-system-x86), or name an available backend with --backend\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_report_lists_each_backend_and_the_pick() {
        let text = report(&facts(KvmAccess::Absent, true));
        assert_eq!(
            text,
            "kvm    unavailable  needs hardware KVM: no hardware KVM on this host\n       \
             being proven: real cells pass only in the nested-KVM bed \
             (scripts/nested-kvm.sh: AMD SVM emulated by TCG), with QEMU's verdicts and \
             counts; no Intel or bare-metal KVM host has run it yet\n\
             mshv   unavailable  needs the Microsoft Hypervisor: no /dev/mshv: this host is \
             not the root partition of the Microsoft Hypervisor\n       being proven: it has \
             never run on a Microsoft Hypervisor host; no real cell has passed on it\n\
             qemu   available    qemu (tcg) — no hardware KVM on this host; \
             /usr/bin/qemu-system-x86_64\n       proven: real cells pass under TCG (fixture, \
             published and kernel example schedulers) and on nested KVM (AMD)\n\
             auto picks: qemu (the first available proven backend)\n"
        );
    }

    /// On the root partition of the Microsoft Hypervisor (no KVM), the own VMM on MSHV
    /// runs when named; `auto` keeps to QEMU until it is proven. A driver that fails the
    /// API check is explained.
    #[test]
    fn an_mshv_root_partition_runs_our_vmm_on_mshv_when_named() {
        let mut host = facts(KvmAccess::Absent, true);
        host.mshv = MshvAccess::Usable;
        assert_eq!(
            select(BackendChoice::Auto, &host).unwrap().kind,
            BackendKind::Qemu
        );
        let named = select(BackendChoice::Mshv, &host).unwrap();
        assert_eq!(named.kind, BackendKind::Mshv);
        assert!(
            named.explain().starts_with(
                "backend: mshv (own VMM) — Microsoft Hypervisor (/dev/mshv)\n  warning: mshv \
                 is being proven"
            ),
            "{}",
            named.explain()
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
