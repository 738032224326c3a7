//! Realistic cell records shared by the text and JSON tests.

#![allow(dead_code)] // Each test binary uses a different subset.

use ktstr_domain::judging::attach::AttachOutcome;
use ktstr_domain::judging::crosscheck::CrossCheck;
use ktstr_domain::judging::environment::ConsoleFacts;
use ktstr_domain::judging::evidence::{HostReading, VmFacts};
use ktstr_domain::judging::record::{
    Boot, CellRecord, HostFacts, RunJudgment, RunRecord, StatsSource,
};
use ktstr_domain::judging::verdict::{EnvCause, Gate, Verdict};
use ktstr_domain::plan::cell::CellId;
use ktstr_domain::plan::guest_memory::{GuestMemorySize, MemorySource};
use ktstr_domain::protocol::guest_report::GuestReport;
use ktstr_domain::protocol::wire::DecodeStats;
use ktstr_domain::results::report::SweepReport;
use ktstr_domain::shape::observed::ObservedTopology;
use ktstr_domain::shape::preset::find_preset;
use ktstr_domain::verifier_log::prog::ProgStat;
use ktstr_domain::verifier_log::rejection::find_rejection;
use ktstr_domain::verifier_log::vstats::{VerifierStats, parse_verifier_stats};

pub const K12: &str = "kernel_6_12_117";
pub const K16: &str = "kernel_6_16_4";

pub fn prog(id: u32, name: &str, verified_insns: u32) -> ProgStat {
    ProgStat {
        id,
        prog_type: 27,
        name: name.into(),
        verified_insns,
    }
}

/// The programs of scx-ktstr; `grow` shifts the numbers as a larger topology would.
pub fn ktstr_progs(grow: u32) -> Vec<ProgStat> {
    vec![
        prog(41, "ktstr_select_cpu", 39),
        prog(42, "ktstr_enqueue", 412 + grow),
        prog(43, "ktstr_dispatch", 102),
        prog(44, "ktstr_init", 2296 + 2 * grow),
    ]
}

/// An attached, dispatching run with every check clean.
pub fn healthy_run(preset: &str, progs: Vec<ProgStat>) -> RunRecord {
    let topology = find_preset(preset).expect("known preset").topology;
    RunRecord {
        host: HostFacts {
            vm: VmFacts {
                backend: "qemu (kvm)".into(),
                timed_out: false,
                vm_died: None,
                flooded: None,
                peak_rss_kib: Some(310_000),
                init_after_ms: Some(1_650),
            },
            memory: GuestMemorySize {
                mib: 960,
                source: MemorySource::Sized,
            },
            watchdog_ms: 60_000,
            console: ConsoleFacts::default(),
            frame_stats: DecodeStats {
                frames: 14,
                ..DecodeStats::default()
            },
            reading: HostReading::Programs(progs.clone()),
        },
        guest: GuestReport {
            payload_started: true,
            progs: progs.clone(),
            topology: Some(ObservedTopology::ideal(&topology)),
            phases: vec![("init".into(), 1500), ("attached".into(), 2600)],
            ..GuestReport::default()
        },
        judgment: RunJudgment {
            cross_check_asked: true,
            attach: AttachOutcome::Attached,
            liveness: None,
            dispatched: true,
            dispatch_note: Some("4 SCHED_EXT workers made 18342 iterations".into()),
            scx_exit: None,
            rejection: None,
            load_refusal: None,
            verifier_stats: vec![],
            progs,
            progs_source: StatsSource::Host,
            cross_check: Some(CrossCheck::default()),
        },
        legacy: false,
    }
}

pub fn record(
    sched: &str,
    kernel: &str,
    preset: &str,
    run: Option<RunRecord>,
    verdict: Verdict,
) -> CellRecord {
    CellRecord {
        boot: None,
        repro: None,
        cell: CellId::new(sched, kernel, preset).expect("valid cell"),
        topology: find_preset(preset).expect("known preset").topology,
        verdict,
        run,
        wall_ms: 8421,
    }
}

pub fn passing() -> CellRecord {
    let mut run = healthy_run("tiny-2llc", ktstr_progs(0));
    run.judgment.verifier_stats = vec![
        VerifierStats {
            processed_insns: 39,
            peak_states: 3,
            total_states: 3,
        },
        VerifierStats {
            processed_insns: 2296,
            peak_states: 61,
            total_states: 148,
        },
    ];
    run.guest.scheduler_log = "scx_ktstr: attached, 4 CPUs in 2 LLCs\n".into();
    record("scx-ktstr", K12, "tiny-2llc", Some(run), Verdict::Pass)
}

/// A verifier log whose rejected program contains a loop unrolled 8 times.
pub fn rejection_log() -> String {
    let mut log = String::from(
        "libbpf: prog 'ktstr_enqueue': BPF program load failed: Permission denied\n\
         libbpf: prog 'ktstr_enqueue': -- BEGIN PROG LOAD LOG --\n\
         0: R1=ctx() R10=fp0\n\
         ; u32 i, load = 0; @ main.bpf.c:201\n\
         0: (b7) r6 = 0                        ; R6_w=0\n\
         1: (b7) r7 = 0                        ; R7_w=0\n",
    );
    for i in 0..8u32 {
        let pc = 2 + 5 * i;
        log.push_str(&format!(
            "; load += weights[i & 7]; @ main.bpf.c:204\n\
             {}: (bf) r1 = r7                       ; R1_w=scalar(id={}) R7_w={i}\n\
             {}: (57) r1 &= 7                       ; R1_w=scalar(smin=0,smax=7)\n\
             {}: (0f) r6 += r1                      ; R6_w=scalar(smin=0,smax={})\n\
             {}: (07) r7 += 1                       ; R7_w={}\n\
             {}: (bf) r2 = r6                       ; R2_w=scalar(id={})\n",
            pc,
            i + 1,
            pc + 1,
            pc + 2,
            7 * (i + 1),
            pc + 3,
            i + 1,
            pc + 4,
            i + 10,
        ));
    }
    log.push_str(
        "; return *(u64 *)(long)load; @ main.bpf.c:209\n\
         42: (79) r0 = *(u64 *)(r6 +0)\n\
         R6 invalid mem access 'scalar'\n\
         processed 48 insns (limit 1000000) max_states_per_insn 0 total_states 4 peak_states 4 mark_read 1\n\
         -- END PROG LOAD LOG --\n\
         libbpf: prog 'ktstr_enqueue': failed to load: -13\n\
         libbpf: failed to load object 'scx_ktstr'\n",
    );
    log
}

/// A run on tiny-1llc whose scheduler died while loading: no programs, no dispatch.
fn died_loading() -> RunRecord {
    let mut run = healthy_run("tiny-1llc", vec![]);
    run.judgment.attach = AttachOutcome::Died;
    run.judgment.dispatched = false;
    run.judgment.dispatch_note = None;
    run.judgment.scx_exit = None;
    run.judgment.progs = vec![];
    run.judgment.progs_source = StatsSource::Guest;
    run.judgment.cross_check = None;
    run
}

pub fn rejected() -> CellRecord {
    let log = rejection_log();
    let mut run = died_loading();
    run.judgment.verifier_stats = parse_verifier_stats(&log);
    run.judgment.rejection = find_rejection(&log);
    run.guest.scheduler_log = log;
    run.guest.guest_errors = vec!["scheduler exited with status 1".into()];
    let reason = run
        .judgment
        .rejection
        .as_ref()
        .expect("a rejection")
        .to_string();
    record(
        "scx-ktstr",
        K16,
        "tiny-1llc",
        Some(run),
        Verdict::fail(Gate::Verify, reason),
    )
}

pub fn not_attached() -> CellRecord {
    let mut run = healthy_run("smt-2llc", vec![]);
    run.judgment.attach =
        AttachOutcome::NotAttached("/sys/kernel/sched_ext/state stayed `disabled` for 5 s".into());
    run.judgment.dispatched = false;
    run.judgment.dispatch_note = Some("scheduler never attached; workload skipped".into());
    run.judgment.scx_exit = None;
    run.judgment.progs = vec![prog(7, "simple_enqueue", 24), prog(8, "simple_init", 310)];
    run.judgment.progs_source = StatsSource::Guest;
    run.judgment.cross_check = None;
    let reason = run.judgment.attach.failure_reason().expect("a failure");
    record(
        "scx-simple",
        K12,
        "smt-2llc",
        Some(run),
        Verdict::fail(Gate::Attach, reason),
    )
}

pub fn timed_out() -> CellRecord {
    let mut run = healthy_run("odd-3llc", vec![]);
    run.judgment.attach = AttachOutcome::Unconfirmed;
    run.judgment.dispatched = false;
    run.judgment.dispatch_note = None;
    run.judgment.scx_exit = None;
    run.host.vm.timed_out = true;
    run.host.vm.vm_died = None;
    run.host.memory.mib = 960;
    run.judgment.progs = vec![];
    run.judgment.cross_check = None;
    run.guest.topology = None;
    run.guest.scheduler_log = "scx_ktstr: loading BPF skeleton\n".into();
    run.host.console.tail =
        "rcu: INFO: rcu_preempt self-detected stall on CPU\nrcu: \t1-....: (20999 ticks this GP)\n"
            .into();
    run.host.frame_stats = DecodeStats {
        frames: 3,
        truncated: 1,
        garbage_bytes: 17,
        ..DecodeStats::default()
    };
    record(
        "scx-ktstr",
        K12,
        "odd-3llc",
        Some(run),
        Verdict::fail(
            Gate::TimedOut,
            "host watchdog fired: the VM did not exit before its deadline",
        ),
    )
}

pub fn not_dispatched() -> CellRecord {
    let mut run = healthy_run("tiny-1llc", ktstr_progs(0));
    run.judgment.dispatched = false;
    run.judgment.dispatch_note = Some("0 iterations in 2 s".into());
    run.judgment.scx_exit = None;
    run.judgment.progs_source = StatsSource::Guest;
    run.judgment.cross_check = None;
    record(
        "scx-ktstr",
        K12,
        "tiny-1llc",
        Some(run),
        Verdict::fail(
            Gate::Dispatch,
            "workload never made progress under SCHED_EXT: 0 iterations in 2 s",
        ),
    )
}

/// Attached and dispatching, but the guest's view disagrees with the preset (the backend's
/// failure) and with the host.
pub fn mismatched() -> CellRecord {
    let mut run = healthy_run("tiny-2llc", ktstr_progs(0));
    if let Some(seen) = &mut run.guest.topology {
        seen.llcs = vec![vec![0, 1, 2, 3]];
    }
    run.judgment.cross_check = Some(CrossCheck {
        mismatches: vec![
            "program 42 `ktstr_enqueue`: verified_insns host 412 != guest 410".into(),
            "program 45 `ktstr_exit` read by the host, not reported by the guest".into(),
        ],
    });
    record(
        "scx-ktstr",
        K12,
        "tiny-2llc",
        Some(run),
        Verdict::env_error(
            EnvCause::Topology,
            "backend qemu (tcg) did not present preset tiny-2llc: guest sees 1n1l4c1t, preset \
             is 1n2l2c1t",
        ),
    )
}

pub fn setup_failure() -> CellRecord {
    record(
        "scx-ktstr",
        "kernel_6_1_158",
        "tiny-1llc",
        None,
        Verdict::fail(
            Gate::Setup,
            "kernel kernel_6_1_158 lacks CONFIG_SCHED_CLASS_EXT; rebuild it with sched_ext enabled or drop it from the sweep",
        ),
    )
}

fn pass(sched: &str, kernel: &str, preset: &str, progs: Vec<ProgStat>) -> CellRecord {
    record(
        sched,
        kernel,
        preset,
        Some(healthy_run(preset, progs)),
        Verdict::Pass,
    )
}

fn dispatch_fail(sched: &str, kernel: &str, preset: &str, progs: Vec<ProgStat>) -> CellRecord {
    let mut run = healthy_run(preset, progs);
    run.judgment.dispatched = false;
    run.judgment.dispatch_note = Some("0 iterations in 2 s".into());
    run.judgment.scx_exit = None;
    record(
        sched,
        kernel,
        preset,
        Some(run),
        Verdict::fail(
            Gate::Dispatch,
            "workload never made progress under SCHED_EXT: 0 iterations in 2 s",
        ),
    )
}

fn simple_progs(enqueue: u32) -> Vec<ProgStat> {
    vec![
        prog(7, "simple_enqueue", enqueue),
        prog(8, "simple_init", 310),
    ]
}

/// Two schedulers over two kernels and three topologies: scx-ktstr on tiny-2llc passes on
/// one kernel only (mixed), scx-simple fails smt-2llc on both.
pub fn two_kernel_report() -> SweepReport {
    let mut records = Vec::new();
    for kernel in [K12, K16] {
        records.push(pass("scx-ktstr", kernel, "tiny-1llc", ktstr_progs(0)));
        if kernel == K12 {
            records.push(pass("scx-ktstr", kernel, "tiny-2llc", ktstr_progs(6)));
        } else {
            records.push(dispatch_fail(
                "scx-ktstr",
                kernel,
                "tiny-2llc",
                ktstr_progs(9),
            ));
        }
        records.push(pass("scx-ktstr", kernel, "smt-2llc", ktstr_progs(14)));
        records.push(pass("scx-simple", kernel, "tiny-1llc", simple_progs(24)));
        records.push(pass("scx-simple", kernel, "tiny-2llc", simple_progs(24)));
        records.push(dispatch_fail(
            "scx-simple",
            kernel,
            "smt-2llc",
            simple_progs(26),
        ));
    }
    // A program only the newer kernel loads: `-` in the older kernel's row.
    for r in records.iter_mut() {
        let newer_ktstr = r.cell.kernel == K16 && r.cell.scheduler == "scx-ktstr";
        if let (Some(run), true) = (&mut r.run, newer_ktstr) {
            run.judgment.progs.push(prog(46, "ktstr_running", 18));
        }
    }
    let planned = records.len();
    SweepReport {
        records,
        planned,
        complete: true,
    }
}

/// The first five cells of the two-kernel sweep, interrupted.
pub fn incomplete_report() -> SweepReport {
    let full = two_kernel_report();
    SweepReport {
        records: full.records[..5].to_vec(),
        planned: full.planned,
        complete: false,
    }
}

pub fn all_passing_report() -> SweepReport {
    SweepReport {
        records: vec![
            pass("scx-ktstr", K12, "tiny-1llc", ktstr_progs(0)),
            passing(),
        ],
        planned: 2,
        complete: true,
    }
}

/// scx_layered OOM-killed while loading: the environment's failure, not the scheduler's.
pub fn guest_oom() -> CellRecord {
    let mut run = died_loading();
    run.host.memory.mib = 544;
    run.guest.scheduler_log = "\x1b[32mINFO\x1b[0m Running scx_layered (build ID: 1.1.4)\n".into();
    run.host.console.tail =
        "Out of memory: Killed process 50 (scx_layered) total-vm:272952kB\n".into();
    record(
        "scx_layered",
        K12,
        "tiny-1llc",
        Some(run),
        Verdict::env_error(
            EnvCause::GuestOutOfMemory,
            "guest ran out of memory (544 MiB): the kernel's OOM killer killed scx_layered; \
             raise --memory",
        ),
    )
}

/// scx_layered passes on one kernel and runs out of guest memory on the other.
pub fn env_error_report() -> SweepReport {
    let mut oom = guest_oom();
    oom.cell = CellId::new("scx_layered", K16, "tiny-1llc").expect("valid cell");
    SweepReport {
        records: vec![
            pass("scx_layered", K12, "tiny-1llc", simple_progs(24)),
            oom,
            pass("scx_layered", K12, "smt-2llc", simple_progs(24)),
            pass("scx_layered", K16, "smt-2llc", simple_progs(24)),
        ],
        planned: 4,
        complete: true,
    }
}

/// Every single-cell fixture, for properties that must hold for all of them.
pub fn every_cell() -> Vec<CellRecord> {
    vec![
        passing(),
        rejected(),
        not_attached(),
        timed_out(),
        not_dispatched(),
        guest_oom(),
        mismatched(),
        setup_failure(),
    ]
}

/// Three boots of two cells; `ktstr_enqueue` on tiny-2llc counted differently in boot 2.
pub fn repeated_report() -> SweepReport {
    let mut records = Vec::new();
    for preset in ["tiny-2llc", "smt-2llc"] {
        for index in 1..=3 {
            let grow = if preset == "tiny-2llc" && index == 2 {
                6
            } else {
                0
            };
            let mut record = pass("scx-ktstr", K12, preset, ktstr_progs(grow));
            record.boot = Some(Boot { index, of: 3 });
            records.push(record);
        }
    }
    SweepReport {
        planned: records.len(),
        records,
        complete: true,
    }
}
