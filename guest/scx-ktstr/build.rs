//! Compiles `src/bpf/main.bpf.c` with clang-19 and generates its libbpf-rs skeleton.
//!
//! The only thing taken from `scx_cargo` is the `vmlinux.h` it ships (a recent kernel's
//! BTF dump, sched_ext types included), so the build needs no sched_ext kernel. Every
//! sched_ext declaration the program uses is in our own `src/bpf/ktstr.bpf.h`, written
//! against 6.12 and relying on CO-RE for field offsets.

use std::env;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "src/bpf/main.bpf.c";
const DEFAULT_CLANG: &str = "/usr/bin/clang-19";

fn main() -> Result<()> {
    println!("cargo:rerun-if-changed=src/bpf");
    println!("cargo:rerun-if-env-changed=BPF_CLANG");

    let clang = env::var("BPF_CLANG").unwrap_or_else(|_| DEFAULT_CLANG.to_owned());
    let out_dir = PathBuf::from(env::var("OUT_DIR").context("OUT_DIR unset")?);
    let vmlinux_dir = install_scx_headers(&clang, &out_dir)?;

    SkeletonBuilder::new()
        .source(SRC)
        .obj(out_dir.join("scx_ktstr.bpf.o"))
        .clang(&clang)
        .clang_args([
            format!("-I{}", vmlinux_dir.display()),
            "-Isrc/bpf".to_owned(),
            // v3 = bounded loops and 32-bit jumps, which 6.12 fully supports.
            "-mcpu=v3".to_owned(),
            "-Wall".to_owned(),
            "-Wno-compare-distinct-pointer-types".to_owned(),
        ])
        .build_and_generate(out_dir.join("scx_ktstr.skel.rs"))
        .context("compiling the BPF program / generating its skeleton")?;
    Ok(())
}

/// Lets `scx_cargo` unpack its bundled headers into `OUT_DIR` and returns the directory
/// holding `vmlinux.h`.
fn install_scx_headers(clang: &str, out_dir: &std::path::Path) -> Result<PathBuf> {
    // scx_cargo finds clang only through $BPF_CLANG (no plain `clang` on PATH here).
    if env::var_os("BPF_CLANG").is_none() {
        // SAFETY: the build script is single-threaded at this point; nothing else reads
        // or writes the environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            env::set_var("BPF_CLANG", clang);
        }
    }
    scx_cargo::BpfBuilder::new().context("scx_cargo: unpacking bundled BPF headers")?;

    let dir = out_dir
        .join("scx_utils-bpf_h")
        .join("arch")
        .join(kernel_arch()?);
    if !dir.join("vmlinux.h").exists() {
        bail!("scx_cargo did not install vmlinux.h at {}", dir.display());
    }
    Ok(dir)
}

/// The kernel's name for the target architecture (the `arch/` directory of vmlinux.h).
fn kernel_arch() -> Result<&'static str> {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").context("CARGO_CFG_TARGET_ARCH unset")?;
    Ok(match arch.as_str() {
        "x86_64" => "x86",
        "aarch64" => "arm64",
        "riscv64" => "riscv",
        "s390x" => "s390",
        other => bail!("no vmlinux.h for target arch {other}"),
    })
}
