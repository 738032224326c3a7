//! Host-side introspection against the real default kernel: its BTF lays out synthetic
//! guest images, and real guests booted under QEMU are read after they stop and compared
//! with what the guest itself reported through `bpf(2)`.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{bin_dir, default_kernel_dir};
use ktstr_domain::kernel::spec::KernelLabel;
use ktstr_domain::protocol::frame::Frame;
use ktstr_domain::protocol::init_plan::cell_cmdline;
use ktstr_domain::protocol::wire::decode_all;
use ktstr_domain::shape::ram_map::{GuestPhysAddr, HIGH_RAM_START, RamMap};
use ktstr_domain::shape::topology::Topology;
use ktstr_domain::verifier_log::prog::ProgStat;
use ktstr_host::{KvmAccess, find_executable};
use ktstr_initramfs::InitramfsBuilder;
use ktstr_introspection::synthetic::{SynthProg, SyntheticGuest};
use ktstr_introspection::{AddressSpace, GuestIntrospector, Layout, walk_programs};
use ktstr_ports::{
    GuestMemory, GuestPlan, Hypervisor, KernelArtifact, KernelIntrospection, MemoryError, VmSpec,
};
use ktstr_qemu::{QEMU, QemuBackend, SerialLayout, accel_for};

fn artifact(dir: &Path) -> KernelArtifact {
    KernelArtifact {
        label: KernelLabel::new("default", None),
        rerun_spec: dir.display().to_string(),
        image: dir.join("bzImage"),
        vmlinux: dir.join("vmlinux"),
        missing_options: vec![],
    }
}

#[test]
fn the_real_kernels_btf_lays_out_images_the_walker_reads_back() {
    let dir = default_kernel_dir();
    let vmlinux = dir.join("vmlinux");
    let layout = Layout::from_vmlinux(&vmlinux).unwrap();
    // Shapes the 6.12 kernel is known to have; the offsets themselves come from BTF.
    assert_eq!(layout.slots_per_node(), 64);
    assert_eq!(layout.offsets.prog_type.size, 4);
    assert_eq!(layout.offsets.aux_name.size, 16);
    assert_eq!(layout.offsets.aux_ksym_name.size, 512);
    assert!(layout.symbols.pgtable_l5_enabled.is_some());

    let progs = vec![
        SynthProg::named(2, 27, "ktstr_select_cpu", 1234),
        SynthProg::named(3, 27, "ktstr_enqueue", 99),
        SynthProg::named(9, 27, "ktstr_dispatch", 4321),
        SynthProg::named(200, 26, "tracing_prog_with_long_name", 17),
    ];
    for levels in [4, 5] {
        let mem = SyntheticGuest::with_programs(&layout, 48 << 20, levels, &progs).into_memory();
        let got = walk_programs(&layout, &mem).unwrap();
        let want: Vec<ProgStat> = progs
            .iter()
            .map(|p| ProgStat {
                id: p.id,
                prog_type: p.prog_type,
                name: p.ksym_name[26..].to_string(),
                verified_insns: p.verified_insns,
            })
            .collect();
        assert_eq!(got, want, "{levels}-level paging");
    }

    // Parsed once per vmlinux: the second lookup is the same layout, and cheap.
    let introspector = GuestIntrospector::new();
    let first = introspector.layout(&vmlinux).unwrap();
    let second = introspector.layout(&vmlinux).unwrap();
    // The same parsed layout, not a second parse (its cost is the benchmark's business).
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(introspector.cached(), 1);
    let mem = SyntheticGuest::with_programs(&layout, 48 << 20, 5, &progs).into_memory();
    assert_eq!(
        introspector
            .read_programs(&artifact(&dir), &mem)
            .unwrap()
            .len(),
        4
    );
    let missing = artifact(Path::new("/nonexistent"));
    let err = introspector.read_programs(&missing, &mem).unwrap_err();
    assert!(err.to_string().contains("/nonexistent"), "{err}");
}

/// What one real cell left: the guest's own program list and the host's read of its RAM.
struct CellPrograms {
    guest: Vec<ProgStat>,
    host: Vec<ProgStat>,
    /// The highest guest-physical byte the host read touched.
    highest_read: GuestPhysAddr,
}

/// Guest memory that remembers the highest address read from it.
struct Recording<'a> {
    inner: &'a dyn GuestMemory,
    highest: Mutex<GuestPhysAddr>,
}

impl GuestMemory for Recording<'_> {
    fn ram_map(&self) -> &RamMap {
        self.inner.ram_map()
    }

    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), MemoryError> {
        let mut highest = self.highest.lock().unwrap();
        *highest = (*highest).max(gpa);
        self.inner.read(gpa, buf)
    }
}

fn run_cell(
    dir: &Path,
    topology: &str,
    memory_mib: u32,
    serial: SerialLayout,
    introspector: &GuestIntrospector,
) -> CellPrograms {
    let bins = bin_dir();
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("introspection-e2e");
    std::fs::create_dir_all(&work).unwrap();
    let plan = GuestPlan {
        scheduler: bins.join("scx-ktstr"),
        sched_args: vec![],
    };
    let initramfs =
        InitramfsBuilder::new(bins.join("ktstr-init"), work.join("initramfs"), 32 << 20)
            .build_blocking(&plan)
            .unwrap()
            .path;
    let topology: Topology = topology.parse().unwrap();
    let kernel = artifact(dir);
    let qemu = qemu(serial);
    let channels = qemu.guest_channels();
    let waits = cell_cmdline(
        channels,
        Duration::from_secs(60),
        Duration::from_millis(500),
    );
    let spec = VmSpec {
        kernel_image: kernel.image.clone(),
        vmlinux: None,
        initramfs,
        cmdline: format!("panic=-1 nokaslr quiet loglevel=4 {waits}"),
        topology,
        memory_mib,
        timeout: Duration::from_secs(120),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let run = rt.block_on(qemu.run(spec)).unwrap();
    assert!(
        !run.facts.timed_out,
        "{topology}: timed out\n{}",
        run.console
    );
    let frames = decode_all(&run.frame_bytes).frames;
    let guest = frames
        .iter()
        .find_map(|f| match f {
            Frame::ProgStats { progs } => Some(progs.clone()),
            _ => None,
        })
        .unwrap_or_else(|| {
            panic!(
                "{topology}: no ProgStats frame in {frames:#?}\n{}",
                run.console
            )
        });
    let memory = run.memory.expect("the QEMU backend exposes guest RAM");
    let recording = Recording {
        inner: memory.as_ref(),
        highest: Mutex::new(GuestPhysAddr(0)),
    };
    let start = Instant::now();
    let host = introspector.read_programs(&kernel, &recording).unwrap();
    let elapsed = start.elapsed();
    let highest_read = *recording.highest.lock().unwrap();
    let layout = introspector.layout(&kernel.vmlinux).unwrap();
    let levels = AddressSpace::new(&layout, memory.as_ref())
        .unwrap()
        .levels();
    eprintln!(
        "{topology}, {memory_mib} MiB: host read {} programs in {elapsed:?} ({levels}-level \
         paging, highest byte read {highest_read})\n  guest: {guest:?}\n  host:  {host:?}",
        host.len(),
    );
    CellPrograms {
        guest,
        host,
        highest_read,
    }
}

fn assert_host_matches_guest(cell: &CellPrograms, topology: &str) {
    assert!(
        !cell.guest.is_empty(),
        "{topology}: the guest saw no programs"
    );
    let key = |p: &ProgStat| (p.id, p.prog_type, p.verified_insns);
    assert_eq!(
        cell.host.iter().map(key).collect::<Vec<_>>(),
        cell.guest.iter().map(key).collect::<Vec<_>>(),
        "{topology}: host {:#?}\nguest {:#?}",
        cell.host,
        cell.guest
    );
    for (h, g) in cell.host.iter().zip(&cell.guest) {
        assert!(
            h.name.starts_with(&g.name),
            "{topology}: host name `{}` vs guest `{}`",
            h.name,
            g.name
        );
    }
}

/// The QEMU backend as the factory builds it on this host, with the given serial layout.
fn qemu(serial: SerialLayout) -> QemuBackend {
    let path = std::env::var_os("PATH").unwrap();
    let binary = find_executable(&path, QEMU).expect("QEMU is installed");
    QemuBackend::new(binary, accel_for(&KvmAccess::probe_host()).0, serial)
}

#[test]
fn host_reads_of_real_guest_memory_match_the_guest_on_two_topologies() {
    let dir = default_kernel_dir();
    let introspector = GuestIntrospector::new();
    let small = run_cell(
        &dir,
        "1n1l4c1t",
        544,
        SerialLayout::ConsoleFirst,
        &introspector,
    );
    assert_host_matches_guest(&small, "1n1l4c1t");
    let large = run_cell(
        &dir,
        "1n2l2c2t",
        576,
        SerialLayout::ConsoleFirst,
        &introspector,
    );
    assert_host_matches_guest(&large, "1n2l2c2t");
    assert_eq!(introspector.cached(), 1);

    // The fixture bakes nr_cpus into .rodata: some program verifies differently.
    let by_name = |progs: &[ProgStat]| -> Vec<(String, u32)> {
        progs
            .iter()
            .map(|p| (p.name.clone(), p.verified_insns))
            .collect()
    };
    let (a, b) = (by_name(&small.host), by_name(&large.host));
    let differs = a
        .iter()
        .any(|(name, n)| b.iter().any(|(m, k)| m == name && k != n));
    assert!(
        differs,
        "verified_insns identical across topologies:\n{a:?}\n{b:?}"
    );
}

/// A guest with more RAM than fits below the PCI hole keeps kernel allocations above
/// 4 GiB (its ZONE_NORMAL is there), so the host must read them at their real addresses.
/// The serial ports are swapped too: frames reach the host only if the guest writes them
/// to the device the kernel command line names.
#[test]
fn a_guest_larger_than_the_space_below_the_pci_hole_is_read_above_4_gib() {
    let dir = default_kernel_dir();
    let introspector = GuestIntrospector::new();
    let big = run_cell(
        &dir,
        "1n1l4c1t",
        4608,
        SerialLayout::FramesFirst,
        &introspector,
    );
    assert_host_matches_guest(&big, "4608 MiB");
    assert!(
        big.highest_read >= GuestPhysAddr(HIGH_RAM_START),
        "no read above 4 GiB (highest {})",
        big.highest_read
    );
}
