//! The VMM core (machine, vCPU threads, devices, watchdog, teardown) driven through the
//! hypervisor port by a scripted fake of the hypervisor → VM → vCPU trait family: what any
//! implementation (KVM, MSHV) must be driven to do, checked without either. Runs anywhere.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ktstr_domain::plan::waits::CpuMode;
use ktstr_ports::{Hypervisor as _, VmRun, VmSpec};
use ktstr_vmm::accel::kvm::core_exit;
use ktstr_vmm::accel::mshv::exit_loop::{ExitLoop, IoapicDevice};
use ktstr_vmm::accel::{Accelerator, CpuidEntry, HvError, Vcpu, VcpuExit, Vm};
use ktstr_vmm::backend::VmmBackend;
use ktstr_vmm::devices::{COM1, COM1_IRQ, COM2, COM2_IRQ, I8042_COMMAND, I8042_RESET};
use ktstr_vmm::x86::BootEntry;
use mshv_bindings::{
    StandardRegisters, hv_message, hv_message_type_HVMSG_INVALID_VP_REGISTER_VALUE,
    hv_message_type_HVMSG_UNRECOVERABLE_EXCEPTION,
};
use vmm_sys_util::eventfd::EventFd;

mod common;
use common::mshv::{FakeVp, Routes, RunLog, bare, port};
use common::tiny_elf;

/// One exit of the boot vCPU; the others only ever wait to be kicked.
#[derive(Debug, Clone)]
enum Step {
    Out(u16, u8),
    In(u16),
    Fail(&'static str),
    TripleFault,
}

/// How the fake's exits are made: handed to the core as they are, or each made by a real
/// implementation's own translation from what its hypervisor reports (KVM's exit
/// reasons; MSHV's intercept messages, completed by its exit loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Core,
    Kvm,
    Mshv,
}

/// Where the fake boot vCPU's code starts, and each step's one-byte `in`/`out`.
const ENTRY: u64 = 0x10_0000;

/// The intercept messages the Microsoft Hypervisor sends for `steps`.
fn mshv_messages(steps: &[Step]) -> Vec<Result<hv_message, i32>> {
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let rip = ENTRY + i as u64;
            Ok(match *step {
                Step::Out(at, value) => port(at, true, 1, u64::from(value), rip, 1, false),
                Step::In(at) => port(at, false, 1, 0, rip, 1, false),
                Step::Fail(_) => bare(hv_message_type_HVMSG_INVALID_VP_REGISTER_VALUE),
                Step::TripleFault => bare(hv_message_type_HVMSG_UNRECOVERABLE_EXCEPTION),
            })
        })
        .collect()
}

/// What the core asked of the fake, and how many of its VMs and vCPUs are still alive.
#[derive(Debug, Default)]
struct Calls {
    log: Mutex<Vec<String>>,
    live_vms: AtomicUsize,
    live_vcpus: AtomicUsize,
    /// The MSHV boot vCPU's (RIP, RAX) at each run.
    mshv_runs: Mutex<Option<RunLog>>,
}

impl Calls {
    fn note(&self, what: String) {
        self.log.lock().unwrap().push(what);
    }
    fn saw(&self, what: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| *l == what)
            .count()
    }
}

#[derive(Debug)]
struct ScriptedAccel {
    script: Vec<Step>,
    flavor: Flavor,
    calls: Arc<Calls>,
}

impl Accelerator for ScriptedAccel {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn create_vm(&self) -> Result<Box<dyn Vm>, HvError> {
        self.calls.live_vms.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(ScriptedVm {
            script: self.script.clone(),
            flavor: self.flavor,
            calls: Arc::clone(&self.calls),
        }))
    }
    fn supported_cpuid(&self) -> Result<Vec<CpuidEntry>, HvError> {
        Ok(vec![CpuidEntry {
            function: 0,
            eax: 0xd,
            ..Default::default()
        }])
    }
}

#[derive(Debug)]
struct ScriptedVm {
    script: Vec<Step>,
    flavor: Flavor,
    calls: Arc<Calls>,
}

impl Vm for ScriptedVm {
    #[allow(unsafe_code)]
    unsafe fn map_ram(&self, slot: u32, gpa: u64, len: u64, _host: u64) -> Result<(), HvError> {
        self.calls.note(format!("map_ram {slot} {gpa:#x} {len:#x}"));
        Ok(())
    }
    fn create_interrupt_controller(&self) -> Result<(), HvError> {
        self.calls.note("interrupt controller".into());
        Ok(())
    }
    fn create_vcpu(&self, id: u32, apic_id: u32) -> Result<Box<dyn Vcpu>, HvError> {
        self.calls.live_vcpus.fetch_add(1, Ordering::SeqCst);
        self.calls.note(format!("vcpu {id} apic {apic_id}"));
        let mut steps = if id == 0 { self.script.clone() } else { vec![] };
        let mshv = (self.flavor == Flavor::Mshv).then(|| {
            let mut vp = FakeVp::new(
                mshv_messages(&steps),
                StandardRegisters {
                    rip: ENTRY,
                    ..Default::default()
                },
            );
            vp.wait_when_done = true;
            if id == 0 {
                *self.calls.mshv_runs.lock().unwrap() = Some(Arc::clone(&vp.runs));
            }
            let ioapic = Arc::new(IoapicDevice::new(Box::new(Routes::default())));
            ExitLoop::new(vp, ioapic)
        });
        steps.reverse();
        Ok(Box::new(ScriptedVcpu {
            id,
            steps,
            byte: [0],
            read: false,
            flavor: self.flavor,
            mshv,
            calls: Arc::clone(&self.calls),
        }))
    }
    fn register_irqfd(&self, _event: &EventFd, gsi: u32) -> Result<(), HvError> {
        self.calls.note(format!("irqfd {gsi}"));
        Ok(())
    }
}

impl Drop for ScriptedVm {
    fn drop(&mut self) {
        self.calls.live_vms.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct ScriptedVcpu {
    id: u32,
    /// What is left of the script, last step first.
    steps: Vec<Step>,
    byte: [u8; 1],
    /// The last exit was a read the core has answered in `byte`.
    read: bool,
    flavor: Flavor,
    mshv: Option<ExitLoop<FakeVp>>,
    calls: Arc<Calls>,
}

/// Like a vCPU in the guest: only the core's kick (a signal) brings it out.
fn wait_for_kick() {
    let long = libc::timespec {
        tv_sec: 3600,
        tv_nsec: 0,
    };
    #[allow(unsafe_code)]
    // SAFETY: a plain sleep; a null remainder is allowed.
    let _ = unsafe { libc::nanosleep(&long, std::ptr::null_mut()) };
}

impl Vcpu for ScriptedVcpu {
    fn set_cpuid(&self, entries: &[CpuidEntry]) -> Result<(), HvError> {
        // Every vCPU gets its own topology leaf (0x1F) from the core.
        let topology = entries.iter().any(|e| e.function == 0x1f);
        self.calls.note(format!("cpuid {} {topology}", self.id));
        Ok(())
    }
    fn enable_x2apic(&self, _bsp: bool) -> Result<(), HvError> {
        self.calls.note(format!("x2apic {}", self.id));
        Ok(())
    }
    fn wire_legacy_interrupts(&self) -> Result<(), HvError> {
        self.calls.note(format!("lint {}", self.id));
        Ok(())
    }
    fn set_boot_state(&self, _entry: &BootEntry) -> Result<(), HvError> {
        self.calls.note(format!("boot state {}", self.id));
        Ok(())
    }
    fn run(&mut self) -> Result<VcpuExit<'_>, HvError> {
        if self.flavor == Flavor::Mshv {
            return self.mshv.as_mut().expect("an MSHV exit loop").run();
        }
        if std::mem::take(&mut self.read) {
            self.calls.note(format!("read {:#x}", self.byte[0]));
        }
        let kvm = self.flavor == Flavor::Kvm;
        use kvm_ioctls::VcpuExit as K;
        match self.steps.pop() {
            Some(Step::Out(port, value)) => {
                self.byte = [value];
                Ok(if kvm {
                    core_exit(K::IoOut(port, &self.byte))
                } else {
                    VcpuExit::IoOut {
                        port,
                        data: &self.byte,
                    }
                })
            }
            Some(Step::In(port)) => {
                self.read = true;
                Ok(if kvm {
                    core_exit(K::IoIn(port, &mut self.byte))
                } else {
                    VcpuExit::IoIn {
                        port,
                        data: &mut self.byte,
                    }
                })
            }
            Some(Step::Fail(_)) if kvm => Ok(core_exit(K::InternalError)),
            Some(Step::Fail(why)) => Ok(VcpuExit::Failed(why.into())),
            Some(Step::TripleFault) if kvm => Ok(core_exit(K::Shutdown)),
            Some(Step::TripleFault) => Ok(VcpuExit::TripleFault),
            None => {
                wait_for_kick();
                Ok(if kvm {
                    core_exit(K::Intr)
                } else {
                    VcpuExit::Interrupted
                })
            }
        }
    }
}

impl Drop for ScriptedVcpu {
    fn drop(&mut self) {
        self.calls.live_vcpus.fetch_sub(1, Ordering::SeqCst);
    }
}

fn out(port: u16, bytes: &[u8]) -> Vec<Step> {
    bytes.iter().map(|&b| Step::Out(port, b)).collect()
}

async fn run(script: Vec<Step>, shape: &str, timeout: Duration) -> (VmRun, Arc<Calls>) {
    run_as(Flavor::Core, script, shape, timeout).await
}

async fn run_as(
    flavor: Flavor,
    script: Vec<Step>,
    shape: &str,
    timeout: Duration,
) -> (VmRun, Arc<Calls>) {
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("tiny.elf");
    std::fs::write(&kernel, tiny_elf(&[0xf4], None)).unwrap();
    let initramfs = dir.path().join("initrd");
    std::fs::write(&initramfs, [0u8; 4096]).unwrap();
    let spec = VmSpec {
        kernel_image: kernel,
        vmlinux: None,
        initramfs,
        cmdline: "console=ttyS0".into(),
        topology: shape.parse().unwrap(),
        memory_mib: 64,
        timeout,
    };
    let calls = Arc::new(Calls::default());
    let hypervisor = ScriptedAccel {
        script,
        flavor,
        calls: Arc::clone(&calls),
    };
    let backend = VmmBackend::new(Arc::new(hypervisor), CpuMode::Hardware);
    let vm = backend.run(spec).await.unwrap();
    (vm, calls)
}

#[tokio::test]
async fn the_core_turns_a_guests_exits_into_console_frames_and_a_clean_end() {
    let mut script = out(COM1, b"hello");
    script.extend(out(COM2, b"KTF1 frame"));
    script.extend(out(I8042_COMMAND, &[I8042_RESET]));
    let (vm, calls) = run(script, "1n2l2c1t", Duration::from_secs(30)).await;
    assert_eq!(vm.console, "hello");
    assert_eq!(vm.frame_bytes, b"KTF1 frame");
    assert!(!vm.facts.timed_out);
    assert_eq!(vm.facts.vm_died, None);
    assert_eq!(vm.facts.backend, "scripted (own VMM)");
    // What every implementation is asked for: RAM, the interrupt controller, a UART line
    // each, and per vCPU its CPUID (with a topology leaf) and local APIC wiring; only the
    // boot CPU gets an entry state.
    assert!(calls.log.lock().unwrap()[0].starts_with("map_ram 0 0x0"));
    assert_eq!(calls.saw("interrupt controller"), 1);
    assert_eq!(calls.saw(&format!("irqfd {COM1_IRQ}")), 1);
    assert_eq!(calls.saw(&format!("irqfd {COM2_IRQ}")), 1);
    for id in 0..4 {
        assert_eq!(calls.saw(&format!("cpuid {id} true")), 1, "vCPU {id}");
        assert_eq!(calls.saw(&format!("lint {id}")), 1, "vCPU {id}");
    }
    assert_eq!(calls.saw("boot state 0"), 1);
    assert_eq!(calls.saw("boot state 1"), 0);
    assert_eq!(calls.saw("x2apic 0"), 0, "small guests keep the xAPIC");
    // Teardown: every vCPU (three of them still in the guest) and the VM are gone.
    assert_eq!(calls.live_vcpus.load(Ordering::SeqCst), 0);
    assert_eq!(calls.live_vms.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_silent_guest_is_stopped_by_the_watchdog_and_torn_down() {
    let (vm, calls) = run(vec![], "1n1l2c1t", Duration::from_millis(300)).await;
    assert!(vm.facts.timed_out);
    assert_eq!(vm.facts.vm_died, None);
    assert!(vm.frame_bytes.is_empty());
    assert_eq!(vm.facts.init_after_ms, None);
    assert_eq!(calls.live_vcpus.load(Ordering::SeqCst), 0);
    assert_eq!(calls.live_vms.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_hypervisor_failure_or_a_triple_fault_is_the_vms_death() {
    let mut script = out(COM1, b"x");
    script.push(Step::Fail("the partition was deleted"));
    let (vm, calls) = run(script, "1n1l2c1t", Duration::from_secs(30)).await;
    assert!(!vm.facts.timed_out);
    assert_eq!(
        vm.facts.vm_died.as_deref(),
        Some("the hypervisor stopped the guest: the partition was deleted")
    );
    assert_eq!(vm.console, "x");
    assert_eq!(calls.live_vcpus.load(Ordering::SeqCst), 0);

    let (vm, _) = run(vec![Step::TripleFault], "1n1l1c1t", Duration::from_secs(30)).await;
    assert_eq!(vm.facts.vm_died.as_deref(), Some("vCPU 0 triple-faulted"));
}

#[tokio::test]
async fn big_guests_get_x2apic_on_every_vcpu() {
    // 252 vCPUs: APIC IDs past 255, so every vCPU's APIC starts in x2APIC mode.
    let (vm, calls) = run(
        out(I8042_COMMAND, &[I8042_RESET]),
        "1n14l9c2t",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(vm.facts.vm_died, None);
    assert_eq!(calls.saw("x2apic 0"), 1);
    assert_eq!(calls.saw("x2apic 251"), 1);
    // Nine cores take four bits of the APIC ID: the second LLC's first vCPU is APIC 32,
    // and that is the ID each implementation is asked to give it.
    assert_eq!(calls.saw("vcpu 17 apic 17"), 1);
    assert_eq!(calls.saw("vcpu 18 apic 32"), 1);
    assert_eq!(calls.live_vcpus.load(Ordering::SeqCst), 0);
}

/// The same guest behaviour, as KVM reports it and as the Microsoft Hypervisor does, ends
/// the same way in the core: the console, the frames, the clean end or the VM's death, the
/// calls made, and everything torn down. The MSHV loop completes the read itself: the value
/// the core answered is in RAX when the vCPU runs on, past the instruction.
#[tokio::test]
async fn kvm_and_mshv_exits_drive_the_core_alike() {
    let mut script = vec![Step::In(COM1 + 5)];
    script.extend(out(COM1, b"boot"));
    script.extend(out(COM2, b"KTF1 frame"));
    script.extend(out(I8042_COMMAND, &[I8042_RESET]));
    let mut outcomes = Vec::new();
    for flavor in [Flavor::Core, Flavor::Kvm, Flavor::Mshv] {
        let (vm, calls) = run_as(flavor, script.clone(), "1n1l2c1t", Duration::from_secs(30)).await;
        assert_eq!(calls.live_vcpus.load(Ordering::SeqCst), 0, "{flavor:?}");
        assert_eq!(calls.live_vms.load(Ordering::SeqCst), 0, "{flavor:?}");
        let mut log = calls.log.lock().unwrap().clone();
        if flavor == Flavor::Mshv {
            let runs = calls.mshv_runs.lock().unwrap().clone().unwrap();
            let (rip, rax) = runs.lock().unwrap()[1];
            assert_eq!(rip, ENTRY + 1, "past the in");
            log.push(format!("read {:#x}", rax & 0xff));
            assert_eq!(runs.lock().unwrap().len(), script.len(), "one run per exit");
        }
        log.sort();
        outcomes.push((
            flavor,
            vm.console,
            vm.frame_bytes,
            vm.facts.timed_out,
            vm.facts.vm_died,
            log,
        ));
    }
    let (_, console, frames, timed_out, died, log) = &outcomes[0];
    assert_eq!(
        (console.as_str(), &frames[..]),
        ("boot", &b"KTF1 frame"[..])
    );
    assert!(!timed_out);
    assert_eq!(died, &None);
    assert!(log.iter().any(|l| l.starts_with("read 0x")), "{log:?}");
    for (flavor, c, f, t, d, l) in &outcomes[1..] {
        assert_eq!(
            (c, f, t, d, l),
            (console, frames, timed_out, died, log),
            "{flavor:?}"
        );
    }

    for end in [Step::Fail("gone"), Step::TripleFault] {
        for flavor in [Flavor::Core, Flavor::Kvm, Flavor::Mshv] {
            let script = vec![Step::Out(COM1, b'x'), end.clone()];
            let (vm, calls) = run_as(flavor, script, "1n1l2c1t", Duration::from_secs(30)).await;
            assert_eq!(vm.console, "x", "{flavor:?}");
            assert!(!vm.facts.timed_out, "{flavor:?}");
            assert!(
                vm.facts.vm_died.is_some(),
                "{flavor:?} {end:?}: the VM's death, not a clean end"
            );
            assert_eq!(calls.live_vcpus.load(Ordering::SeqCst), 0, "{flavor:?}");
        }
    }
}
