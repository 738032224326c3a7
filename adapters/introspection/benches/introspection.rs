//! What introspection costs: the one-time parse of a real vmlinux, and the per-cell
//! read with the layout already cached (target: ≤ 100 ms), on a synthetic guest image
//! laid out by that vmlinux's BTF.
//!
//! The vmlinux is `$KTSTR_VMLINUX`, else the first 6.12 kernel in ktstr's cache
//! (`~/.cache/ktstr/kernels`); without one, the parse is skipped and the walk uses a
//! made-up layout.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use ktstr_domain::kernel::spec::KernelLabel;
use ktstr_introspection::synthetic::{SynthProg, SyntheticGuest, sample_layout};
use ktstr_introspection::{GuestIntrospector, Layout};
use ktstr_ports::{KernelArtifact, KernelIntrospection};

fn find_vmlinux() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KTSTR_VMLINUX") {
        return Some(PathBuf::from(path));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?
        .join("ktstr/kernels");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(cache)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("6.12."))
        })
        .map(|p| p.join("vmlinux"))
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    entries.pop()
}

fn bench(c: &mut Criterion) {
    let vmlinux = find_vmlinux();
    let (layout, ram) = match &vmlinux {
        Some(path) => {
            let mut group = c.benchmark_group("parse");
            group.sample_size(10);
            group.bench_function("vmlinux (symbols + BTF), once per kernel", |b| {
                b.iter(|| Layout::from_vmlinux(black_box(path)).unwrap())
            });
            group.finish();
            // The real image ends near 32 MiB: leave room above it.
            (Layout::from_vmlinux(path).unwrap(), 48 << 20)
        }
        None => {
            eprintln!("no vmlinux found (set KTSTR_VMLINUX): skipping the parse benchmark");
            (sample_layout(), 4 << 20)
        }
    };

    let introspector = GuestIntrospector::new();
    let kernel = KernelArtifact {
        label: KernelLabel::new("bench", None),
        rerun_spec: "unused".into(),
        image: PathBuf::from("unused"),
        vmlinux: vmlinux.clone().unwrap_or_else(|| PathBuf::from("unused")),
        missing_options: vec![],
    };
    let mut group = c.benchmark_group("per cell, warm cache");
    for (count, levels) in [(16u32, 5u8), (16, 4), (256, 5)] {
        let progs: Vec<SynthProg> = (1..=count)
            .map(|id| SynthProg::named(id, 27, &format!("scheduler_prog_{id}_name"), id * 31))
            .collect();
        let mem = SyntheticGuest::with_programs(&layout, ram, levels, &progs).into_memory();
        let name = format!("{count} programs, {levels}-level paging");
        if vmlinux.is_some() {
            // Warm the cache, then measure what every later cell pays.
            introspector.read_programs(&kernel, &mem).unwrap();
            group.bench_function(name, |b| {
                b.iter(|| {
                    introspector
                        .read_programs(&kernel, black_box(&mem))
                        .unwrap()
                })
            });
        } else {
            group.bench_function(name, |b| {
                b.iter(|| ktstr_introspection::walk_programs(&layout, black_box(&mem)).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
