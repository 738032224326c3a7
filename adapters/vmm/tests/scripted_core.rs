//! The VMM core (machine, vCPU threads, devices, watchdog, teardown) driven through the
//! hypervisor port by a scripted fake of the hypervisor → VM → vCPU trait family: what any
//! implementation (KVM, MSHV) must be driven to do, checked without either. Runs anywhere.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ktstr_domain::waits::CpuMode;
use ktstr_ports::{Hypervisor as _, VmRun, VmSpec};
use ktstr_vmm::backend::VmmBackend;
use ktstr_vmm::devices::{COM1, COM1_IRQ, COM2, COM2_IRQ, I8042_COMMAND, I8042_RESET};
use ktstr_vmm::hypervisor::{CpuidEntry, HvError, Hypervisor, Vcpu, VcpuExit, Vm};
use ktstr_vmm::x86::BootEntry;
use vmm_sys_util::eventfd::EventFd;

mod common;
use common::tiny_elf;

/// One exit of the boot vCPU; the others only ever wait to be kicked.
#[derive(Debug, Clone)]
enum Step {
    Out(u16, u8),
    Fail(&'static str),
    TripleFault,
}

/// What the core asked of the fake, and how many of its VMs and vCPUs are still alive.
#[derive(Debug, Default)]
struct Calls {
    log: Mutex<Vec<String>>,
    live_vms: AtomicUsize,
    live_vcpus: AtomicUsize,
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
struct ScriptedHypervisor {
    script: Vec<Step>,
    calls: Arc<Calls>,
}

impl Hypervisor for ScriptedHypervisor {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn create_vm(&self) -> Result<Box<dyn Vm>, HvError> {
        self.calls.live_vms.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(ScriptedVm {
            script: self.script.clone(),
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
    fn create_vcpu(&self, id: u32) -> Result<Box<dyn Vcpu>, HvError> {
        self.calls.live_vcpus.fetch_add(1, Ordering::SeqCst);
        let mut steps = if id == 0 { self.script.clone() } else { vec![] };
        steps.reverse();
        Ok(Box::new(ScriptedVcpu {
            id,
            steps,
            byte: [0],
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
    calls: Arc<Calls>,
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
        match self.steps.pop() {
            Some(Step::Out(port, value)) => {
                self.byte = [value];
                Ok(VcpuExit::IoOut {
                    port,
                    data: &self.byte,
                })
            }
            Some(Step::Fail(why)) => Ok(VcpuExit::Failed(why.into())),
            Some(Step::TripleFault) => Ok(VcpuExit::TripleFault),
            // Like a vCPU in the guest: only the core's kick (a signal) brings it out.
            None => {
                let long = libc::timespec {
                    tv_sec: 3600,
                    tv_nsec: 0,
                };
                #[allow(unsafe_code)]
                // SAFETY: a plain sleep; a null remainder is allowed.
                let _ = unsafe { libc::nanosleep(&long, std::ptr::null_mut()) };
                Ok(VcpuExit::Interrupted)
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
    let hypervisor = ScriptedHypervisor {
        script,
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
    assert!(!vm.timed_out);
    assert_eq!(vm.vm_died, None);
    assert_eq!(vm.backend, "scripted (own VMM)");
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
    assert!(vm.timed_out);
    assert_eq!(vm.vm_died, None);
    assert!(vm.frame_bytes.is_empty());
    assert_eq!(vm.init_after, None);
    assert_eq!(calls.live_vcpus.load(Ordering::SeqCst), 0);
    assert_eq!(calls.live_vms.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_hypervisor_failure_or_a_triple_fault_is_the_vms_death() {
    let mut script = out(COM1, b"x");
    script.push(Step::Fail("the partition was deleted"));
    let (vm, calls) = run(script, "1n1l2c1t", Duration::from_secs(30)).await;
    assert!(!vm.timed_out);
    assert_eq!(
        vm.vm_died.as_deref(),
        Some("the hypervisor stopped the guest: the partition was deleted")
    );
    assert_eq!(vm.console, "x");
    assert_eq!(calls.live_vcpus.load(Ordering::SeqCst), 0);

    let (vm, _) = run(vec![Step::TripleFault], "1n1l1c1t", Duration::from_secs(30)).await;
    assert_eq!(vm.vm_died.as_deref(), Some("the guest CPU triple-faulted"));
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
    assert_eq!(vm.vm_died, None);
    assert_eq!(calls.saw("x2apic 0"), 1);
    assert_eq!(calls.saw("x2apic 251"), 1);
    assert_eq!(calls.live_vcpus.load(Ordering::SeqCst), 0);
}
