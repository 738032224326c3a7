//! Tiny hand-assembled long-mode guests run through the real KVM implementation and the
//! real devices. They need `/dev/kvm` but not hardware virtualisation: under PVM an
//! instruction emulator runs them (slowly, so they stay tiny). Without `/dev/kvm` each
//! test says it was skipped and why.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ktstr_domain::protocol::frame::Frame;
use ktstr_domain::protocol::wire::{decode_all, encode};
use ktstr_domain::shape::ram_map::RamMap;
use ktstr_vmm::accel::kvm::KvmAccel;
use ktstr_vmm::accel::{Accelerator, Vcpu, Vm};
use ktstr_vmm::devices::{Captured, PortDevices};
use ktstr_vmm::process_ram::GuestRam;
use ktstr_vmm::vcpu_loop::{VcpuStop, run_vcpu};
use ktstr_vmm::vcpu_thread::VcpuThread;
use ktstr_vmm::x86::write_boot_tables;
use vm_memory::{Bytes, GuestAddress};

const CODE: u64 = 0x10000;
const DATA: u64 = 0x20000;
const STACK: u64 = 0x8000;

/// `mov rsi, DATA; mov rcx, len; mov dx, port; 1: lodsb; out dx, al; loop 1b;
/// mov al, 0xfe; out 0x64, al; hlt`: sends `len` bytes at DATA to a UART, then resets.
fn send_then_reset(port: u16, len: u64) -> Vec<u8> {
    let mut code = vec![0x48, 0xbe];
    code.extend(DATA.to_le_bytes());
    code.extend([0x48, 0xb9]);
    code.extend(len.to_le_bytes());
    code.extend([0x66, 0xba]);
    code.extend(port.to_le_bytes());
    code.extend([0xac, 0xee, 0xe2, 0xfc]);
    code.extend([0xb0, 0xfe, 0xe6, 0x64, 0xf4]);
    code
}

/// `lidt [empty]; int3`: an exception with no IDT to deliver it through, which escalates
/// to a triple fault.
fn triple_fault() -> Vec<u8> {
    // The 10-byte IDT descriptor (limit 0, base 0) sits at DATA.
    let mut code = vec![0x48, 0xb8];
    code.extend(DATA.to_le_bytes()); // mov rax, DATA
    code.extend([0x0f, 0x01, 0x18]); // lidt [rax]
    code.extend([0xcc, 0xf4]); // int3; hlt
    code
}

/// `jmp .`: a guest that never stops on its own.
const SPIN: [u8; 2] = [0xeb, 0xfe];

struct Run {
    stop: VcpuStop,
    console: Vec<u8>,
    frames: Vec<u8>,
}

/// The VM and its RAM live as long as the vCPU runs.
type TinyVm = (Box<dyn Vm>, GuestRam, Box<dyn Vcpu>);

/// A 2 MiB guest with `code` at CODE and `data` at DATA, its vCPU ready to enter it;
/// `None` without `/dev/kvm`.
fn tiny_vm(code: &[u8], data: &[u8]) -> Option<TinyVm> {
    let hypervisor = match KvmAccel::open() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("skipped: {e} (the tiny guests need /dev/kvm)");
            return None;
        }
    };
    let vm = hypervisor.create_vm().unwrap();
    let ram = GuestRam::new(RamMap::for_size(2 << 20)).unwrap();
    ram.register(vm.as_ref()).unwrap();
    ram.mmap().write_slice(code, GuestAddress(CODE)).unwrap();
    ram.mmap().write_slice(data, GuestAddress(DATA)).unwrap();
    let entry = write_boot_tables(ram.mmap(), CODE, STACK, 0).unwrap();
    let vcpu = vm.create_vcpu(0, 0).unwrap();
    vcpu.set_boot_state(&entry).unwrap();
    Some((vm, ram, vcpu))
}

/// Runs a tiny guest on this thread until its vCPU stops.
fn run_tiny(code: &[u8], data: &[u8]) -> Option<Run> {
    let (_vm, _ram, mut vcpu) = tiny_vm(code, data)?;
    let (console, frames) = (Captured::default(), Captured::default());
    let devices = Mutex::new(PortDevices::new(console.clone(), frames.clone()));
    let stop = run_vcpu(vcpu.as_mut(), &devices, &AtomicBool::new(false));
    Some(Run {
        stop,
        console: console.take(),
        frames: frames.take(),
    })
}

#[test]
fn a_guest_that_writes_frames_to_com2_and_resets_is_heard_and_stops() {
    let sent = [
        Frame::Phase {
            phase: "init".into(),
            uptime_ms: 7,
        },
        Frame::SchedulerStarted { pid: 1 },
    ];
    let bytes: Vec<u8> = sent.iter().flat_map(encode).collect();
    let Some(run) = run_tiny(&send_then_reset(0x2f8, bytes.len() as u64), &bytes) else {
        return;
    };
    assert_eq!(run.stop, VcpuStop::Reset);
    assert!(run.console.is_empty());
    let decoded = decode_all(&run.frames);
    assert_eq!(decoded.frames, sent);
    assert_eq!(decoded.stats.garbage_bytes, 0);
}

#[test]
fn console_bytes_go_to_com1() {
    let Some(run) = run_tiny(&send_then_reset(0x3f8, 6), b"hello\n") else {
        return;
    };
    assert_eq!(run.stop, VcpuStop::Reset);
    assert_eq!(run.console, b"hello\n");
    assert!(run.frames.is_empty());
}

#[test]
fn a_triple_fault_is_named() {
    let Some(run) = run_tiny(&triple_fault(), &[0u8; 10]) else {
        return;
    };
    // Hardware KVM reports the shutdown; PVM's emulator may give up on the exception it
    // cannot deliver. Either way it is a named stop, never a hang or a reset.
    eprintln!("triple fault stopped the vCPU as {:?}", run.stop);
    match &run.stop {
        VcpuStop::TripleFault(_) => {}
        VcpuStop::Failed(why) => assert!(why.contains("KVM"), "{why}"),
        other => panic!("expected a triple fault, got {other:?}"),
    }
}

#[test]
fn a_spinning_guest_is_stopped_from_outside_and_its_thread_joined() {
    let Some((_vm, _ram, vcpu)) = tiny_vm(&SPIN, &[]) else {
        return;
    };
    let devices = Arc::new(Mutex::new(PortDevices::new(
        Captured::default(),
        Captured::default(),
    )));
    let thread = VcpuThread::spawn(0, vcpu, devices).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(!thread.is_finished(), "a spinning guest stopped by itself");
    let started = Instant::now();
    assert_eq!(thread.stop(), VcpuStop::Stopped);
    eprintln!("stopping the spinning vCPU took {:?}", started.elapsed());
    assert_eq!(threads_named("vcpu0"), 0, "a vCPU thread outlived stop()");
}

#[test]
fn dropping_a_running_vcpu_thread_stops_and_joins_it() {
    let Some((_vm, _ram, vcpu)) = tiny_vm(&SPIN, &[]) else {
        return;
    };
    let devices = Arc::new(Mutex::new(PortDevices::new(
        Captured::default(),
        Captured::default(),
    )));
    drop(VcpuThread::spawn(7, vcpu, devices).unwrap());
    assert_eq!(
        threads_named("vcpu7"),
        0,
        "a vCPU thread outlived its handle"
    );
}

/// Threads of this process called `name` (each test uses its own vCPU id, so tests
/// running side by side do not see each other's).
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}
