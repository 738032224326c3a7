//! Writes the frame channel's seed corpus: the frames one cell's guest sends, each kind
//! alone and all in a row, as the guest's init encodes them.
//! `cargo +nightly run --example seeds -- corpus/frames` (from fuzz/).

use ktstr_domain::protocol::observation::KernelRecord;
use ktstr_domain::protocol::observation::{ProbeReport, WorkerReport};
use ktstr_domain::protocol::frame::Frame;
use ktstr_domain::protocol::observation::ScxSample;
use ktstr_domain::shape::observed::ObservedTopology;
use ktstr_domain::verifier_log::prog::ProgStat;
use ktstr_domain::protocol::wire::{encode, encode_log};

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("a corpus directory"));
    std::fs::create_dir_all(&dir).unwrap();
    let log = "libbpf: prog 'ktstr_dispatch': BPF program load failed: -EACCES\n\
               80: (7b) *(u64 *)(r7 +0) = r1\nR7 invalid mem access 'scalar'\n\
               processed 11 insns (limit 1000000) max_states_per_insn 0 total_states 1\n";
    let frames = [
        Frame::SchedulerStarted { pid: 97 },
        Frame::Phase {
            phase: "scheduler-started".into(),
            uptime_ms: 1561,
        },
        Frame::Topology {
            topology: ObservedTopology {
                online_cpus: vec![0, 1, 2, 3],
                cores: vec![vec![0, 1], vec![2, 3]],
                llcs: vec![vec![0, 1], vec![2, 3]],
                numa_nodes: vec![vec![0, 1, 2, 3]],
            },
        },
        Frame::ProgStats {
            progs: vec![ProgStat {
                id: 7,
                prog_type: 27,
                name: "ktstr_enqueue".into(),
                verified_insns: 189,
            }],
        },
        Frame::SchedExtSample {
            sample: ScxSample {
                uptime_ms: 2410,
                state: "enabled".into(),
                enable_seq: Some(1),
                scheduler_alive: true,
            },
        },
        Frame::PayloadStarting,
        Frame::WorkerProgress {
            probe: ProbeReport {
                bound_ms: 516,
                workers: vec![
                    WorkerReport {
                        switched: true,
                        blocked: true,
                        iterations: 181455,
                        error: String::new(),
                    },
                    WorkerReport {
                        switched: false,
                        blocked: false,
                        iterations: 0,
                        error: "sched_setattr(SCHED_EXT) failed: Invalid argument (os error 22)"
                            .into(),
                    },
                ],
            },
        },
        Frame::SchedExtLog {
            records: vec![KernelRecord {
                usec: 2_652_000,
                text: "sched_ext: BPF scheduler \"ktstr\" disabled (scx_bpf_error)".into(),
            }],
        },
        Frame::SchedulerDied {
            status: "exit code 1".into(),
        },
        Frame::GuestError {
            message: "mounting /proc: EBUSY".into(),
        },
    ];
    let mut all = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let bytes = encode(frame);
        std::fs::write(dir.join(format!("seed-{i:02}")), &bytes).unwrap();
        all.extend(bytes);
    }
    all.extend(encode_log(log));
    std::fs::write(dir.join("seed-log"), encode_log(log)).unwrap();
    std::fs::write(dir.join("seed-session"), all).unwrap();
}
