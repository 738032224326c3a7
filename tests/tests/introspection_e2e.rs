//! Host-side introspection against the real default kernel: its BTF lays out synthetic
//! guest images, and real guests booted under QEMU are read after they stop and compared
//! with what the guest itself reported through `bpf(2)` (SPEC §1.1, §8).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bin_dir, ktstr_in, stderr, stdout};
use ktstr_domain::frame::Frame;
use ktstr_domain::kernel::KernelLabel;
use ktstr_domain::prog::ProgStat;
use ktstr_domain::topology::Topology;
use ktstr_domain::wire::decode_all;
use ktstr_initramfs::InitramfsBuilder;
use ktstr_introspection::synthetic::{SynthProg, SyntheticGuest};
use ktstr_introspection::{AddressSpace, GuestIntrospector, Layout, walk_programs};
use ktstr_ports::{GuestPlan, Hypervisor, KernelArtifact, KernelIntrospection, VmSpec};
use ktstr_qemu::QemuBackend;

/// The default kernel's cache entry, built (or found) through `ktstr kernel build`.
fn default_kernel_dir() -> PathBuf {
    let out = ktstr_in(&std::env::temp_dir(), &["kernel", "build"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("kernel "))
        .expect("build names the kernel");
    PathBuf::from(line.rsplit(" in ").next().unwrap())
}

fn artifact(dir: &Path) -> KernelArtifact {
    KernelArtifact {
        label: KernelLabel::new("default", None),
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
}

fn run_cell(dir: &Path, topology: &str, introspector: &GuestIntrospector) -> CellPrograms {
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
    let spec = VmSpec {
        kernel_image: kernel.image.clone(),
        initramfs,
        cmdline: "panic=-1 nokaslr quiet loglevel=4".into(),
        topology,
        memory_mib: 512 + 8 * topology.cpus(),
        timeout: Duration::from_secs(120),
    };
    let qemu = QemuBackend::detect(&std::env::var_os("PATH").unwrap()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let run = rt.block_on(qemu.run(spec)).unwrap();
    assert!(!run.timed_out, "{topology}: timed out\n{}", run.console);
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
    let start = Instant::now();
    let host = introspector
        .read_programs(&kernel, memory.as_ref())
        .unwrap();
    let elapsed = start.elapsed();
    let layout = introspector.layout(&kernel.vmlinux).unwrap();
    let levels = AddressSpace::new(&layout, memory.as_ref())
        .unwrap()
        .levels();
    eprintln!(
        "{topology}: host read {} programs in {elapsed:?} ({levels}-level paging)\n  \
         guest: {guest:?}\n  host:  {host:?}",
        host.len(),
    );
    CellPrograms { guest, host }
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

#[test]
fn host_reads_of_real_guest_memory_match_the_guest_on_two_topologies() {
    let dir = default_kernel_dir();
    let introspector = GuestIntrospector::new();
    let small = run_cell(&dir, "1n1l4c1t", &introspector);
    assert_host_matches_guest(&small, "1n1l4c1t");
    let large = run_cell(&dir, "1n2l2c2t", &introspector);
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
