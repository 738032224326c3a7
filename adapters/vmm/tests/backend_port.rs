//! The hypervisor port on our own VMM, driven by tiny hand-made guests packed as ELF
//! "kernels": the same path a real kernel takes (loader, zero page, ACPI, CPUID, one
//! thread per vCPU, the watchdog), under PVM's emulator here, and on the Microsoft
//! Accelerator where `/dev/mshv` is usable. Each test runs on every hypervisor this host has
//! and says which it skipped and why.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ktstr_domain::judging::evidence::{CellEvidence, HostReading, RunEvidence};
use ktstr_domain::judging::judge::{JudgePolicy, judge};
use ktstr_domain::judging::verdict::Verdict;
use ktstr_domain::plan::cell::CellId;
use ktstr_domain::plan::guest_memory::{GuestMemorySize, MemorySource};
use ktstr_domain::plan::matrix::PlannedCell;
use ktstr_domain::plan::waits::{CellWaits, CpuMode, WaitOverrides};
use ktstr_domain::protocol::frame::Frame;
use ktstr_domain::protocol::observation::ProbeReport;
use ktstr_domain::protocol::observation::ScxSample;
use ktstr_domain::protocol::wire::{decode_all, encode};
use ktstr_domain::shape::observed::ObservedTopology;
use ktstr_domain::shape::preset::find_preset;
use ktstr_domain::verifier_log::prog::ProgStat;
use ktstr_ports::{Hypervisor as _, VmRun, VmSpec};
use ktstr_vmm::accel::kvm::KvmAccel;
use ktstr_vmm::accel::mshv::MshvAccel;
use ktstr_vmm::backend::VmmBackend;
use ktstr_vmm::vcpu_loop::with_sources;
use tokio::sync::{Mutex, MutexGuard};

mod common;
use common::{LOAD, tiny_elf};

/// The tests count this process's vCPU threads, so they run one at a time.
async fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::const_new(());
    LOCK.lock().await
}

/// Sends `data` to COM2 (the frame channel) and resets through the i8042.
fn frames_then_reset(data: &[u8]) -> Vec<u8> {
    let mut code = vec![0x48, 0x8d, 0x35, 20, 0, 0, 0]; // lea rsi, [rip + 20]: the data
    code.extend([0x48, 0xc7, 0xc1]); // mov rcx, len
    code.extend((data.len() as u32).to_le_bytes());
    code.extend([0x66, 0xba, 0xf8, 0x02]); // mov dx, 0x2f8
    code.extend([0xac, 0xee, 0xe2, 0xfc]); // 1: lodsb; out dx, al; loop 1b
    code.extend([0xb0, 0xfe, 0xe6, 0x64, 0xf4]); // mov al, 0xfe; out 0x64, al; hlt
    code.extend(data);
    code
}

/// 32-bit code for the PVH entry: checks the start info's magic at `[ebx]`, prints the
/// command line it points to on COM1, then `1` (`mov al, '0'; inc eax`: a `0` in 64-bit
/// mode, where 0x40 is a prefix), sends `data` to COM2 and resets. A wrong magic resets
/// at once.
fn pvh_frames_then_reset(data: &[u8]) -> Vec<u8> {
    let mut c = vec![0x81, 0x3b]; // cmp dword [ebx], magic
    c.extend(0x336e_c578u32.to_le_bytes());
    let jne = c.len();
    c.extend([0x75, 0]); // jne reset
    c.extend([0x8b, 0x73, 24]); // mov esi, [ebx + 24]: cmdline_paddr
    c.extend([0x66, 0xba, 0xf8, 0x03]); // mov dx, 0x3f8
    let print = c.len();
    c.extend([0xac, 0x84, 0xc0, 0x74, 0x03, 0xee]); // lodsb; test al, al; jz +3; out dx, al
    c.extend([0xeb, (print as i64 - (c.len() as i64 + 2)) as u8]); // jmp print
    c.extend([0xb0, b'0', 0x40, 0xee]); // mov al, '0'; inc eax; out dx, al
    let data_imm = c.len() + 1;
    c.extend([0xbe, 0, 0, 0, 0]); // mov esi, data
    c.push(0xb9); // mov ecx, len
    c.extend((data.len() as u32).to_le_bytes());
    c.extend([0x66, 0xba, 0xf8, 0x02]); // mov dx, 0x2f8
    c.extend([0xac, 0xee, 0xe2, 0xfc]); // 1: lodsb; out dx, al; loop 1b
    c[jne + 1] = (c.len() - (jne + 2)) as u8;
    c.extend([0xb0, 0xfe, 0xe6, 0x64, 0xf4]); // reset: mov al, 0xfe; out 0x64, al; hlt
    let data_at = (LOAD + c.len() as u64) as u32;
    c[data_imm..data_imm + 4].copy_from_slice(&data_at.to_le_bytes());
    c.extend(data);
    c
}

/// `jmp .`
const SPIN: [u8; 2] = [0xeb, 0xfe];

/// Our VMM on each hypervisor this host has: KVM (PVM's emulator here) and MSHV.
fn backends() -> Vec<VmmBackend> {
    let mut out = Vec::new();
    match KvmAccel::open() {
        Ok(kvm) => out.push(VmmBackend::new(Arc::new(kvm), CpuMode::Emulated)),
        Err(e) => eprintln!("skipped on KVM: {} (needs /dev/kvm)", with_sources(&e)),
    }
    match MshvAccel::open() {
        Ok(mshv) => out.push(VmmBackend::new(Arc::new(mshv), CpuMode::Hardware)),
        Err(e) => eprintln!(
            "skipped on MSHV: {} (needs /dev/mshv: a Linux root partition of the Microsoft \
             Accelerator)",
            with_sources(&e)
        ),
    }
    out
}

fn spec(dir: &Path, code: &[u8], shape: &str, timeout: Duration) -> VmSpec {
    let kernel = dir.join("tiny.elf");
    std::fs::write(&kernel, tiny_elf(code, None)).unwrap();
    let initramfs = dir.join("initrd");
    std::fs::write(&initramfs, [0u8; 4096]).unwrap();
    VmSpec {
        kernel_image: kernel,
        vmlinux: None,
        initramfs,
        cmdline: "console=ttyS0 ktstr.frames=/dev/ttyS1".into(),
        topology: shape.parse().unwrap(),
        memory_mib: 64,
        timeout,
    }
}

/// Threads of this process whose name starts with `vcpu`.
fn vcpu_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("vcpu"))
        .count()
}

fn healthy(topology: &ktstr_domain::shape::topology::Topology) -> Vec<Frame> {
    vec![
        Frame::Topology {
            topology: ObservedTopology::ideal(topology),
        },
        Frame::SchedulerStarted { pid: 9 },
        Frame::SchedExtSample {
            sample: ScxSample::alive("enabled", 1),
        },
        Frame::PayloadStarting,
        Frame::WorkerProgress {
            probe: ProbeReport::every_worker_ran(topology.cpus(), 1000),
        },
        Frame::SchedExtSample {
            sample: ScxSample::alive("enabled", 1),
        },
        Frame::ProgStats {
            progs: vec![ProgStat {
                id: 7,
                prog_type: 27,
                name: "ktstr_dispatch".into(),
                verified_insns: 104,
            }],
        },
    ]
}

#[tokio::test]
async fn a_tiny_guests_frames_come_back_through_the_port_and_are_judged() {
    let _serial = one_at_a_time().await;
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let preset = find_preset("tiny-1llc").unwrap();
        let sent = healthy(&preset.topology);
        let bytes: Vec<u8> = sent.iter().flat_map(encode).collect();
        let spec = spec(
            dir.path(),
            &frames_then_reset(&bytes),
            "1n1l4c1t",
            Duration::from_secs(30),
        );
        let run: VmRun = backend.run(spec).await.unwrap();
        assert!(
            !run.facts.timed_out && run.facts.vm_died.is_none(),
            "{run:?}"
        );
        assert_eq!(decode_all(&run.frame_bytes).frames, sent);
        assert!(run.memory.is_some(), "guest RAM is handed back");
        // The loader wrote the kernel, the initramfs and the tables: that much is resident.
        assert!(
            run.facts.peak_rss_kib.is_some_and(|kib| kib >= 8),
            "{:?}",
            run.facts.peak_rss_kib
        );
        assert_eq!(vcpu_threads(), 0, "every vCPU thread was joined");

        let cell = PlannedCell {
            id: CellId::new("tiny", "kernel_tiny", preset.name).unwrap(),
            scheduler: 0,
            kernel: 0,
            preset,
        };
        let record = judge(
            &cell,
            CellEvidence::Ran(Box::new(RunEvidence {
                memory: GuestMemorySize {
                    mib: 64,
                    source: MemorySource::CommandLine,
                },
                waits: CellWaits::for_cell(4, CpuMode::Emulated, WaitOverrides::default()),
                vm: run.facts,
                console: run.console,
                frame_bytes: run.frame_bytes,
                host: HostReading::NotRead,
            })),
            JudgePolicy { cross_check: true },
        );
        assert_eq!(record.verdict, Verdict::Pass);
    }
}

/// This process's descriptors of VMs and vCPUs (`anon_inode:kvm-vm`, `kvm-vcpu:N`, MSHV's
/// alike). Other tests' runtimes open and close descriptors meanwhile, so only these count.
fn vm_fds() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .map(|target| target.display().to_string())
        .filter(|t| t.starts_with("anon_inode:") && (t.contains("kvm-") || t.contains("mshv")))
        .collect()
}

#[tokio::test]
async fn a_silent_guest_is_stopped_by_the_watchdog_and_nothing_is_left() {
    let _serial = one_at_a_time().await;
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path(), &SPIN, "1n2l2c2t", Duration::from_millis(300));
        let run = backend.run(spec).await.unwrap();
        assert!(run.facts.timed_out, "{run:?}");
        assert!(run.frame_bytes.is_empty());
        assert_eq!(vcpu_threads(), 0, "a vCPU thread outlived the run");
        assert_eq!(
            vm_fds(),
            Vec::<String>::new(),
            "a VM descriptor outlived the run"
        );
    }
}

#[tokio::test]
async fn dropping_a_running_vm_joins_every_vcpu() {
    let _serial = one_at_a_time().await;
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path(), &SPIN, "1n1l4c1t", Duration::from_secs(60));
        let run = tokio::time::timeout(Duration::from_millis(300), backend.run(spec)).await;
        assert!(run.is_err(), "a spinning guest finished");
        assert_eq!(vcpu_threads(), 0, "a vCPU thread outlived the dropped run");
    }
}

#[tokio::test]
async fn a_file_that_is_no_kernel_is_refused_with_its_name() {
    let _serial = one_at_a_time().await;
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec(dir.path(), &SPIN, "1n1l4c1t", Duration::from_secs(5));
        std::fs::write(&spec.kernel_image, b"not a kernel").unwrap();
        spec.vmlinux = None;
        let err = backend.run(spec).await.unwrap_err();
        assert!(err.to_string().contains("tiny.elf"), "{err}");
        assert_eq!(vcpu_threads(), 0);
    }
}

#[tokio::test]
async fn an_acpi_power_off_ends_the_run_cleanly() {
    let _serial = one_at_a_time().await;
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        // mov al, S5 << 2 | SLP_EN; mov dx, 0x600 (the FADT's sleep control); out dx, al; hlt
        let code = [
            0xb0,
            (5 << 2) | (1 << 5),
            0x66,
            0xba,
            0x00,
            0x06,
            0xee,
            0xf4,
        ];
        let spec = spec(dir.path(), &code, "1n1l4c1t", Duration::from_secs(30));
        let run = backend.run(spec).await.unwrap();
        assert!(
            !run.facts.timed_out && run.facts.vm_died.is_none(),
            "{run:?}"
        );
        assert_eq!(vcpu_threads(), 0);
    }
}

/// A kernel with a PVH note is entered in 32-bit mode at the note's entry with the start
/// info in `ebx`: magic, command line and all, through the real loader and port.
#[tokio::test]
async fn a_pvh_kernel_is_entered_in_32_bit_mode_with_its_start_info() {
    let _serial = one_at_a_time().await;
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let sent = [Frame::SchedulerStarted { pid: 3 }];
        let bytes: Vec<u8> = sent.iter().flat_map(encode).collect();
        let mut spec = spec(dir.path(), &SPIN, "1n1l2c1t", Duration::from_secs(30));
        // Entered in 64-bit mode instead, the same code would find no magic at `[rbx]`.
        let code = pvh_frames_then_reset(&bytes);
        std::fs::write(&spec.kernel_image, tiny_elf(&code, Some(LOAD as u32))).unwrap();
        spec.cmdline = "console=ttyS0 ktstr.marker=pvh".into();
        let run = backend.run(spec).await.unwrap();
        assert!(
            !run.facts.timed_out && run.facts.vm_died.is_none(),
            "{run:?}"
        );
        assert_eq!(run.console, "console=ttyS0 ktstr.marker=pvh1");
        assert_eq!(decode_all(&run.frame_bytes).frames, sent);
        assert_eq!(vcpu_threads(), 0);
    }
}
