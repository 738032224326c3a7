//! scx-ktstr: ktstr's fixture sched_ext scheduler. Loads an LLC-aware BPF scheduler
//! specialised for this machine's topology, attaches it, and waits for a signal; knobs
//! make each of ktstr's verdict gates fail for real.

mod cpu_topology;
mod exit_info;
mod wedge;

#[allow(
    unsafe_code,
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations,
    unused_imports,
    unused_qualifications
)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/scx_ktstr.skel.rs"));
}

use std::io::Write;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, PrintLevel};

use cpu_topology::Topology;
use exit_info::ExitInfo;
use skel::{OpenScxKtstrSkel, ScxKtstrSkel, ScxKtstrSkelBuilder};

/// How long `--die-after-attach` and `--wedge-after-attach` wait for a task to park
/// before acting anyway.
const DIE_WAIT: Duration = Duration::from_secs(30);

/// Exit status of `--die-after-attach`.
const DIED_AFTER_ATTACH: u8 = 3;
/// Exit status when the kernel ejected the scheduler.
const EJECTED: u8 = 2;

/// ktstr's fixture sched_ext scheduler (Linux 6.12+).
///
/// Loads a small LLC-aware scheduler with one dispatch queue per last-level cache,
/// its BPF specialised (via .rodata) to the CPUs and L3 groups this machine reports,
/// attaches it with SCX_OPS_SWITCH_PARTIAL (only SCHED_EXT tasks are scheduled by it),
/// prints `scx-ktstr: attached (nr_cpus=N nr_llcs=M)` and runs until SIGINT/SIGTERM.
/// On exit it prints sched_ext's exit record and exits 2 if the kernel ejected it.
///
/// Each knob makes one of ktstr's verdict gates fail for real.
#[derive(Debug, Parser)]
#[command(name = "scx-ktstr", version)]
struct Args {
    /// Verify gate: add a store through a NULL pointer to the dispatch path. The
    /// verifier rejects the program, libbpf prints its log to stderr between
    /// `-- BEGIN PROG LOAD LOG --` and `-- END PROG LOAD LOG --`, exit status 1.
    #[arg(long)]
    fail_verify: bool,

    /// Verify gate, quiet loader: the same rejection with libbpf's messages silenced, so
    /// the only word of it is the loader's own `Failed to load BPF program: Permission
    /// denied (os error 13)`, as some published loaders print it.
    #[arg(long)]
    fail_verify_quiet: bool,

    /// Liveness gate: attach normally, then report an error through `scx_bpf_error` when
    /// the Nth task has been dispatched; the kernel ejects the scheduler and the loader
    /// exits 2.
    #[arg(long, value_name = "N")]
    error_after_dispatches: Option<u64>,

    /// Verify gate, long log: the same rejection, preceded by an unrolled 8-iteration
    /// loop so the verifier log repeats one block 8 times (exercises cycle collapse).
    #[arg(long)]
    verify_loop: bool,

    /// Dispatch gate: attach normally (sched_ext state reaches `enabled`) but park every
    /// task in a queue nothing consumes, so SCHED_EXT tasks never run. The sched_ext
    /// watchdog ejects the scheduler after 30 s (the longest timeout it allows).
    #[arg(long)]
    no_dispatch: bool,

    /// Attach gate: attach parking every task as --no-dispatch does, then exit with
    /// status 3 without detaching as soon as it holds one. The dispatch probe's workers
    /// are the only SCHED_EXT tasks, so the death falls inside the dispatch phase however
    /// fast or slow the guest is; the kernel unregisters when the link closes and the
    /// parked tasks go back to the fair class.
    #[arg(long, conflicts_with = "wedge_after_attach")]
    die_after_attach: bool,

    /// Host watchdog: attach parking every task as --no-dispatch does, and once it holds
    /// one (the dispatch probe has begun) hog every online CPU with a pinned SCHED_FIFO
    /// 99 busy loop (RT throttling and 6.12's fair server switched off first), so the
    /// whole guest stops responding before the probe can end.
    #[arg(long)]
    wedge_after_attach: bool,

    /// Environment drill: before loading, allocate and touch this many MiB and keep them,
    /// as a large loader would. In a guest too small for it, the kernel's OOM killer kills
    /// the scheduler, which ktstr must report as the environment's failure.
    #[arg(long, value_name = "MIB")]
    alloc_mib: Option<usize>,

    /// Environment drill: before loading, write a file to the guest's root filesystem (a
    /// tmpfs in guest RAM) until it is full, then exit with the write error, as a loader
    /// that unpacks its assets there would. ktstr must report the full tmpfs, not a
    /// scheduler failure.
    #[arg(long)]
    fill_disk: bool,

    /// Environment drill: spin on the CPU for this many seconds before loading, as a
    /// loader would on a slow guest. With a shorter attach wait, ktstr must report a slow
    /// guest, not a broken scheduler.
    #[arg(long, value_name = "SECONDS")]
    spin_before_load: Option<u64>,

    /// Hostile-guest drill: before loading, write garbage to this device (the frame
    /// channel, `/dev/ttyS1`) without end: bytes that mostly are no frame, with now and
    /// then a frame header claiming a huge payload. The host must stop the VM once the
    /// channel passes its limit and say so, holding no more than the limit.
    #[arg(long, value_name = "DEVICE")]
    flood_frames: Option<PathBuf>,

    /// Baseline drill: bound the idle-CPU scan N CPUs past the largest LLC, as a loader
    /// that over-sizes a loop bound would. The scan still stops at each LLC's end, so the
    /// scheduler behaves the same, but the verifier walks N more iterations and
    /// `ktstr_select_cpu`'s verified_insns grows (what a baseline comparison must catch).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pad_span: u32,

    /// Attach gate: load and verify the BPF programs, then never attach them; sleep until
    /// signalled. sched_ext stays `disabled` with the programs loaded.
    #[arg(long, conflicts_with_all = ["die_after_attach", "wedge_after_attach"])]
    load_only: bool,

    /// More of libbpf's messages on stderr: -v info, -vv debug. Warnings (the
    /// verifier log among them) are always shown.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("scx-ktstr: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `mib` MiB in 1 MiB pieces, each written so it is resident. Piece by piece, as a loader
/// grows, so the kernel's overcommit check never refuses it up front: a guest too small
/// for it meets the OOM killer.
fn ballast(mib: usize) -> Vec<Vec<u8>> {
    eprintln!("scx-ktstr: allocating {mib} MiB before loading");
    (0..mib).map(|_| vec![0xa5; 1 << 20]).collect()
}

/// Keeps one CPU busy for `time`.
fn spin(time: Duration) {
    eprintln!("scx-ktstr: spinning {} s before loading", time.as_secs());
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < time {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Appends 1 MiB blocks to `path` until a write fails, and returns that failure.
fn fill_disk(path: &Path) -> Result<()> {
    let mut file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let block = vec![0x5a; 1 << 20];
    loop {
        file.write_all(&block)
            .with_context(|| format!("writing {}", path.display()))?;
    }
}

fn libbpf_to_stderr(_level: PrintLevel, msg: String) {
    // One write per message keeps the verifier log's lines together.
    let _ = std::io::stderr().lock().write_all(msg.as_bytes());
}

fn run(args: &Args) -> Result<ExitCode> {
    // libbpf prints the verifier log of a failed load as a warning.
    let level = match args.verbose {
        0 => PrintLevel::Warn,
        1 => PrintLevel::Info,
        _ => PrintLevel::Debug,
    };
    libbpf_rs::set_print(if args.fail_verify_quiet {
        None
    } else {
        Some((level, libbpf_to_stderr))
    });

    // Held until exit: the memory stays resident for the scheduler's whole life.
    let _ballast = args.alloc_mib.map(ballast);
    if args.fill_disk {
        fill_disk(Path::new("/ktstr-fill"))?;
    }

    if let Some(device) = &args.flood_frames {
        flood(device)?;
    }

    if let Some(seconds) = args.spin_before_load {
        spin(Duration::from_secs(seconds));
    }

    let topo = cpu_topology::read_sysfs(Path::new("/sys/devices/system/cpu"))?;

    let mut object = MaybeUninit::uninit();
    let mut open = ScxKtstrSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    let rodata = open
        .maps
        .rodata_data
        .as_deref_mut()
        .context("BPF object has no .rodata")?;
    rodata.nr_llcs = topo.nr_llcs;
    for (&cpu, &llc) in &topo.cpu_llc {
        rodata.cpu_llc[cpu as usize] = llc;
    }
    let layout = topo.llc_layout();
    rodata.llc_cpus[..layout.cpus.len()].copy_from_slice(&layout.cpus);
    rodata.llc_first[..layout.first.len()].copy_from_slice(&layout.first);
    rodata.llc_size[..layout.size.len()].copy_from_slice(&layout.size);
    rodata.llc_span = (layout.span + args.pad_span).min(cpu_topology::MAX_CPUS as u32);
    rodata.fail_verify = args.fail_verify || args.fail_verify_quiet;
    rodata.error_after_dispatches = args.error_after_dispatches.unwrap_or(0);
    rodata.verify_loop = args.verify_loop;
    rodata.no_dispatch = args.no_dispatch || args.die_after_attach || args.wedge_after_attach;
    use_erring_programs(&mut open, args.error_after_dispatches.is_some());

    let loaded = open.load();
    if args.fail_verify_quiet {
        // Only the loader's words, without libbpf's log or the error's context chain.
        let e = loaded.err().context("the quiet rejection loaded anyway")?;
        let root = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .last()
            .map(ToString::to_string)
            .unwrap_or_default();
        eprintln!("Failed to load BPF program: {root}");
        return Ok(ExitCode::FAILURE);
    }
    let mut skel =
        loaded.context("loading the BPF programs failed (libbpf's log above says why)")?;
    print_verified_insns();

    if args.load_only {
        println!("scx-ktstr: loaded, not attaching (--load-only)");
        loop {
            sleep(Duration::from_secs(3600));
        }
    }

    let link = skel
        .maps
        .ktstr_ops
        .attach_struct_ops()
        .context("attaching the sched_ext ops")?;
    println!(
        "scx-ktstr: attached (nr_cpus={} nr_llcs={})",
        topo.nr_cpus, topo.nr_llcs
    );

    if args.die_after_attach || args.wedge_after_attach {
        wait_for_a_parked_task(&skel)?;
    }
    if args.die_after_attach {
        println!("scx-ktstr: dying without detaching (--die-after-attach)");
        // No destructors: the link goes away only because the process does.
        std::process::exit(i32::from(DIED_AFTER_ATTACH));
    }
    if args.wedge_after_attach {
        wedge::run(&topo.online)?;
    }

    let code = wait_for_exit(&skel, &topo)?;
    drop(link);
    if let Some(code) = code {
        return Ok(code);
    }
    // Detaching makes the kernel run ops.exit; report what it recorded.
    let info = poll_exit(&skel, Duration::from_secs(2))?;
    Ok(report(info.as_ref()))
}

/// Puts the dispatch-counting `*_erring` programs into the ops for
/// `--error-after-dispatches`, and loads only the programs the ops use: without the knob
/// the fixture loads exactly the programs it always did.
fn use_erring_programs(open: &mut OpenScxKtstrSkel<'_>, erring: bool) {
    use libbpf_rs::AsRawLibbpf as _;
    let progs = &mut open.progs;
    progs.ktstr_select_cpu.set_autoload(!erring);
    progs.ktstr_dispatch.set_autoload(!erring);
    progs.ktstr_select_cpu_erring.set_autoload(erring);
    progs.ktstr_dispatch_erring.set_autoload(erring);
    if erring {
        let ops = open.struct_ops.ktstr_ops_mut();
        ops.select_cpu = open
            .progs
            .ktstr_select_cpu_erring
            .as_libbpf_object()
            .as_ptr();
        ops.dispatch = open.progs.ktstr_dispatch_erring.as_libbpf_object().as_ptr();
    }
}

/// Runs until a signal (None) or until sched_ext drops the scheduler (its exit code).
fn wait_for_exit(skel: &ScxKtstrSkel<'_>, topo: &Topology) -> Result<Option<ExitCode>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    while !stop.load(Ordering::Relaxed) {
        if let Some(info) = read_exit(skel)? {
            // ops.exit writes kind last; give the rest of the record a moment.
            sleep(Duration::from_millis(20));
            let info = read_exit(skel)?.unwrap_or(info);
            eprintln!(
                "scx-ktstr: scheduler stopped while running (nr_cpus={} nr_llcs={})",
                topo.nr_cpus, topo.nr_llcs
            );
            return Ok(Some(report(Some(&info))));
        }
        sleep(Duration::from_millis(100));
    }
    Ok(None)
}

/// Waits (up to `DIE_WAIT`) until the BPF side holds a task: the dispatch probe has begun,
/// so what the knob does next falls inside it whatever the guest's speed.
fn wait_for_a_parked_task(skel: &ScxKtstrSkel<'_>) -> Result<()> {
    let deadline = Instant::now() + DIE_WAIT;
    while parked(skel)? == 0 && Instant::now() < deadline {
        sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Tasks the BPF side has parked so far (its `.bss`, read through the map: a plain read
/// of the mapped section could be hoisted out of the polling loop).
fn parked(skel: &ScxKtstrSkel<'_>) -> Result<u64> {
    let bss = skel
        .maps
        .bss
        .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
        .context("reading the BPF .bss")?
        .context("the BPF .bss is empty")?;
    let at = std::mem::offset_of!(skel::types::bss, nr_parked);
    let bytes = bss
        .get(at..at + 8)
        .context("the BPF .bss is shorter than its layout")?;
    Ok(u64::from_ne_bytes(bytes.try_into()?))
}

fn read_exit(skel: &ScxKtstrSkel<'_>) -> Result<Option<ExitInfo>> {
    let rec = skel
        .maps
        .exit_rec
        .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
        .context("reading the exit record")?;
    Ok(rec.as_deref().and_then(ExitInfo::parse))
}

fn poll_exit(skel: &ScxKtstrSkel<'_>, timeout: Duration) -> Result<Option<ExitInfo>> {
    let start = Instant::now();
    loop {
        if let Some(info) = read_exit(skel)? {
            return Ok(Some(info));
        }
        if start.elapsed() >= timeout {
            return Ok(None);
        }
        sleep(Duration::from_millis(20));
    }
}

fn report(info: Option<&ExitInfo>) -> ExitCode {
    match info {
        Some(info) => {
            println!("scx-ktstr: EXIT: {info}");
            if info.ejected() {
                eprintln!("scx-ktstr: the kernel ejected the scheduler");
                ExitCode::from(EJECTED)
            } else {
                ExitCode::SUCCESS
            }
        }
        None => {
            println!("scx-ktstr: EXIT: no exit record (ops.exit did not run)");
            ExitCode::SUCCESS
        }
    }
}

/// Informational: the host reads verified_insns from guest memory itself.
fn print_verified_insns() {
    // Kernel program names are cut to 15 characters; ours all start with "ktstr_".
    for info in libbpf_rs::query::ProgInfoIter::default() {
        let name = info.name.to_string_lossy();
        if name.starts_with("ktstr_") {
            println!(
                "scx-ktstr: prog {name} verified_insns={}",
                info.verified_insns
            );
        }
    }
}

/// Writes garbage to `device` until the write fails (the VM is stopped long before).
fn flood(device: &Path) -> Result<()> {
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .open(device)
        .with_context(|| format!("opening {}", device.display()))?;
    // xorshift: cheap bytes no decoder can find structure in, except the planted header
    // (the wire's magic, a log frame's kind and a length just under the 1 MiB maximum).
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        for byte in chunk.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        chunk[..9].copy_from_slice(b"KTF1\x07\xff\xff\x0f\x00");
        out.write_all(&chunk)
            .with_context(|| format!("flooding {}", device.display()))?;
    }
}
