//! The typed lifecycle and data frames the guest init sends to the host, and their payload
//! encoding.
//!
//! The payload format is a small hand-written little-endian binary format: integers are
//! `u32`/`u64` LE, strings and vectors are a `u32` LE element count followed by the elements.
//! It is hand-written rather than serde-driven so that the decoder can bound every length by
//! the bytes actually present before it allocates anything.

use serde::{Deserialize, Serialize};

use crate::protocol::observation::AttachExpiry;
use crate::protocol::observation::KernelRecord;
use crate::protocol::observation::ScxSample;
use crate::protocol::observation::{ProbeReport, WorkerReport};
use crate::shape::observed::ObservedTopology;
use crate::verifier_log::prog::ProgStat;

/// One message from the guest init to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// The scheduler process was spawned.
    SchedulerStarted {
        pid: u32,
    },
    /// The scheduler process ended, e.g. `"exit code 1"`, `"killed by signal 9"`.
    SchedulerDied {
        status: String,
    },
    /// sched_ext read `enabled`: the dispatch probe begins.
    PayloadStarting,
    /// A chunk of the scheduler's log; the host concatenates the chunks in order.
    SchedulerLog {
        text: String,
    },
    /// The guest's own `bpf(2)` view of the loaded programs.
    ProgStats {
        progs: Vec<ProgStat>,
    },
    Topology {
        topology: ObservedTopology,
    },
    /// The init itself failed (mount, exec, ...).
    GuestError {
        message: String,
    },
    /// A milestone of the run and the guest's uptime when it was reached, so the host
    /// can tell where a cell's time went.
    Phase {
        phase: String,
        uptime_ms: u64,
    },
    /// The attach wait ran out with the scheduler alive; what the guest saw then. Sent
    /// before the scheduler's program list and log.
    AttachExpired {
        expiry: AttachExpiry,
    },
    /// The kernel's boot records a profile is made of, sent when the host asked for one.
    KernelLog {
        records: Vec<KernelRecord>,
    },
    /// One look at `/sys/kernel/sched_ext` and the scheduler process: before the start,
    /// when attach settled, whenever it changed during the probe, and after it.
    SchedExtSample {
        sample: ScxSample,
    },
    /// What each dispatch probe worker did.
    WorkerProgress {
        probe: ProbeReport,
    },
    /// The kernel's log records that mention sched_ext, at the end of the run.
    SchedExtLog {
        records: Vec<KernelRecord>,
    },
}

/// The wire tag of a [`Frame`] variant. The values are part of the wire format: never
/// renumber, only append. Retired: 3 (the guest's own attach verdict), 5 and 6 (its
/// dispatch verdict); the host decides those now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum FrameKind {
    SchedulerStarted = 1,
    SchedulerDied = 2,
    PayloadStarting = 4,
    SchedulerLog = 7,
    ProgStats = 8,
    Topology = 9,
    GuestError = 10,
    Phase = 11,
    AttachExpired = 12,
    KernelLog = 13,
    SchedExtSample = 14,
    WorkerProgress = 15,
    SchedExtLog = 16,
}

impl FrameKind {
    /// Every kind, in wire-value order.
    pub const ALL: [FrameKind; 13] = [
        FrameKind::SchedulerStarted,
        FrameKind::SchedulerDied,
        FrameKind::PayloadStarting,
        FrameKind::SchedulerLog,
        FrameKind::ProgStats,
        FrameKind::Topology,
        FrameKind::GuestError,
        FrameKind::Phase,
        FrameKind::AttachExpired,
        FrameKind::KernelLog,
        FrameKind::SchedExtSample,
        FrameKind::WorkerProgress,
        FrameKind::SchedExtLog,
    ];
}

impl From<FrameKind> for u8 {
    fn from(kind: FrameKind) -> u8 {
        kind as u8
    }
}

/// A kind byte that names no [`FrameKind`] (e.g. a frame from a newer guest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown frame kind {0}")]
pub struct UnknownFrameKind(pub u8);

impl TryFrom<u8> for FrameKind {
    type Error = UnknownFrameKind;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        FrameKind::ALL
            .into_iter()
            .find(|k| *k as u8 == value)
            .ok_or(UnknownFrameKind(value))
    }
}

/// Why a payload could not be decoded. Decoding never panics; every malformed input ends here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload ends early: needed {needed} bytes, {remaining} left")]
    Truncated { needed: usize, remaining: usize },
    #[error("length {len} needs at least {min_bytes} bytes but only {remaining} are left")]
    LengthOutOfBounds {
        len: u32,
        min_bytes: u128,
        remaining: usize,
    },
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("{0} trailing bytes after the payload")]
    TrailingBytes(usize),
}

/// A `u32` field's value for "not known".
const UNKNOWN: u32 = u32::MAX;

/// Smallest encoding of one `ProgStat`: id, prog_type, empty name, verified_insns.
const MIN_PROG_STAT_BYTES: usize = 16;
/// Smallest encoding of one `KernelRecord`: usec, empty text.
const MIN_KERNEL_RECORD_BYTES: usize = 12;
/// Smallest encoding of one `WorkerReport`: flags, iterations, empty error.
const MIN_WORKER_BYTES: usize = 16;
/// A `u64` field's value for "not known".
const UNKNOWN_SEQ: u64 = u64::MAX;

impl Frame {
    pub fn kind(&self) -> FrameKind {
        match self {
            Frame::SchedulerStarted { .. } => FrameKind::SchedulerStarted,
            Frame::SchedulerDied { .. } => FrameKind::SchedulerDied,
            Frame::PayloadStarting => FrameKind::PayloadStarting,
            Frame::SchedulerLog { .. } => FrameKind::SchedulerLog,
            Frame::ProgStats { .. } => FrameKind::ProgStats,
            Frame::Topology { .. } => FrameKind::Topology,
            Frame::GuestError { .. } => FrameKind::GuestError,
            Frame::Phase { .. } => FrameKind::Phase,
            Frame::AttachExpired { .. } => FrameKind::AttachExpired,
            Frame::KernelLog { .. } => FrameKind::KernelLog,
            Frame::SchedExtSample { .. } => FrameKind::SchedExtSample,
            Frame::WorkerProgress { .. } => FrameKind::WorkerProgress,
            Frame::SchedExtLog { .. } => FrameKind::SchedExtLog,
        }
    }

    /// Exact length of [`Frame::encode_payload`]'s output, computed without encoding, so a
    /// sender can check size limits before allocating.
    pub fn payload_len(&self) -> usize {
        fn str_len(s: &str) -> usize {
            4 + s.len()
        }
        fn u32s_len(v: &[u32]) -> usize {
            4 + 4 * v.len()
        }
        fn groups_len(v: &[Vec<u32>]) -> usize {
            4 + v.iter().map(|g| u32s_len(g)).sum::<usize>()
        }
        match self {
            Frame::SchedulerStarted { .. } => 4,
            Frame::PayloadStarting => 0,
            Frame::SchedulerDied { status: s }
            | Frame::SchedulerLog { text: s }
            | Frame::GuestError { message: s } => str_len(s),
            Frame::Phase { phase, .. } => str_len(phase) + 8,
            // waited_ms, state, programs, process state, cpu_ms
            Frame::AttachExpired { expiry } => 8 + str_len(&expiry.state) + 4 + 4 + 8,
            Frame::ProgStats { progs } => {
                4 + progs.iter().map(|p| 12 + str_len(&p.name)).sum::<usize>()
            }
            Frame::KernelLog { records } | Frame::SchedExtLog { records } => {
                4 + records.iter().map(|r| 8 + str_len(&r.text)).sum::<usize>()
            }
            // uptime, state, enable_seq, alive
            Frame::SchedExtSample { sample } => 8 + str_len(&sample.state) + 8 + 4,
            // bound, then per worker: flags, iterations, error
            Frame::WorkerProgress { probe } => {
                8 + 4
                    + probe
                        .workers
                        .iter()
                        .map(|w| 4 + 8 + str_len(&w.error))
                        .sum::<usize>()
            }
            Frame::Topology { topology: t } => {
                u32s_len(&t.online_cpus)
                    + groups_len(&t.cores)
                    + groups_len(&t.llcs)
                    + groups_len(&t.numa_nodes)
            }
        }
    }

    /// The payload bytes of this frame (without the wire header and CRC).
    pub fn encode_payload(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(self.payload_len()));
        match self {
            Frame::SchedulerStarted { pid } => w.u32(*pid),
            Frame::PayloadStarting => {}
            Frame::SchedulerDied { status: s }
            | Frame::SchedulerLog { text: s }
            | Frame::GuestError { message: s } => w.str(s),
            Frame::Phase { phase, uptime_ms } => {
                w.str(phase);
                w.u64(*uptime_ms);
            }
            Frame::AttachExpired { expiry } => {
                w.u64(expiry.waited_ms);
                w.str(&expiry.state);
                w.u32(expiry.programs.unwrap_or(UNKNOWN));
                w.u32(expiry.process_state.map_or(UNKNOWN, u32::from));
                w.u64(expiry.cpu_ms);
            }
            Frame::ProgStats { progs } => {
                w.len(progs.len());
                for p in progs {
                    w.u32(p.id);
                    w.u32(p.prog_type);
                    w.str(&p.name);
                    w.u32(p.verified_insns);
                }
            }
            Frame::KernelLog { records } | Frame::SchedExtLog { records } => {
                w.len(records.len());
                for r in records {
                    w.u64(r.usec);
                    w.str(&r.text);
                }
            }
            Frame::SchedExtSample { sample } => {
                w.u64(sample.uptime_ms);
                w.str(&sample.state);
                w.u64(sample.enable_seq.unwrap_or(UNKNOWN_SEQ));
                w.u32(u32::from(sample.scheduler_alive));
            }
            Frame::WorkerProgress { probe } => {
                w.u64(probe.bound_ms);
                w.len(probe.workers.len());
                for worker in &probe.workers {
                    w.u32(u32::from(worker.switched) | u32::from(worker.blocked) << 1);
                    w.u64(worker.iterations);
                    w.str(&worker.error);
                }
            }
            Frame::Topology { topology: t } => {
                w.u32s(&t.online_cpus);
                w.groups(&t.cores);
                w.groups(&t.llcs);
                w.groups(&t.numa_nodes);
            }
        }
        w.0
    }

    /// Decodes a payload of the given kind. The whole payload must be consumed.
    pub fn decode_payload(kind: FrameKind, payload: &[u8]) -> Result<Frame, PayloadError> {
        let mut r = Reader { rest: payload };
        let frame = match kind {
            FrameKind::SchedulerStarted => Frame::SchedulerStarted { pid: r.u32()? },
            FrameKind::SchedulerDied => Frame::SchedulerDied {
                status: r.string()?,
            },
            FrameKind::PayloadStarting => Frame::PayloadStarting,
            FrameKind::SchedulerLog => Frame::SchedulerLog { text: r.string()? },
            FrameKind::ProgStats => {
                let n = r.len(MIN_PROG_STAT_BYTES)?;
                let mut progs = Vec::with_capacity(n);
                for _ in 0..n {
                    progs.push(ProgStat {
                        id: r.u32()?,
                        prog_type: r.u32()?,
                        name: r.string()?,
                        verified_insns: r.u32()?,
                    });
                }
                Frame::ProgStats { progs }
            }
            FrameKind::KernelLog => Frame::KernelLog {
                records: r.kernel_records()?,
            },
            FrameKind::SchedExtLog => Frame::SchedExtLog {
                records: r.kernel_records()?,
            },
            FrameKind::SchedExtSample => Frame::SchedExtSample {
                sample: ScxSample {
                    uptime_ms: r.u64()?,
                    state: r.string()?,
                    enable_seq: Some(r.u64()?).filter(|&s| s != UNKNOWN_SEQ),
                    scheduler_alive: r.u32()? != 0,
                },
            },
            FrameKind::WorkerProgress => {
                let bound_ms = r.u64()?;
                let n = r.len(MIN_WORKER_BYTES)?;
                let mut workers = Vec::with_capacity(n);
                for _ in 0..n {
                    let flags = r.u32()?;
                    workers.push(WorkerReport {
                        switched: flags & 1 != 0,
                        blocked: flags & 2 != 0,
                        iterations: r.u64()?,
                        error: r.string()?,
                    });
                }
                Frame::WorkerProgress {
                    probe: ProbeReport { bound_ms, workers },
                }
            }
            FrameKind::Topology => Frame::Topology {
                topology: ObservedTopology {
                    online_cpus: r.u32s()?,
                    cores: r.groups()?,
                    llcs: r.groups()?,
                    numa_nodes: r.groups()?,
                },
            },
            FrameKind::GuestError => Frame::GuestError {
                message: r.string()?,
            },
            FrameKind::Phase => Frame::Phase {
                phase: r.string()?,
                uptime_ms: r.u64()?,
            },
            FrameKind::AttachExpired => Frame::AttachExpired {
                expiry: AttachExpiry {
                    waited_ms: r.u64()?,
                    state: r.string()?,
                    programs: Some(r.u32()?).filter(|&n| n != UNKNOWN),
                    process_state: Some(r.u32()?)
                        .filter(|&c| c != UNKNOWN)
                        .and_then(char::from_u32),
                    cpu_ms: r.u64()?,
                },
            },
        };
        if !r.rest.is_empty() {
            return Err(PayloadError::TrailingBytes(r.rest.len()));
        }
        Ok(frame)
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    /// Counts above `u32::MAX` saturate: the resulting payload fails to decode instead of
    /// panicking here, and the wire layer rejects such sizes (> `MAX_PAYLOAD`) before encoding.
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn u32s(&mut self, v: &[u32]) {
        self.len(v.len());
        for x in v {
            self.u32(*x);
        }
    }

    fn groups(&mut self, v: &[Vec<u32>]) {
        self.len(v.len());
        for g in v {
            self.u32s(g);
        }
    }
}

/// Cursor over an untrusted payload; every read is bounds-checked.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PayloadError> {
        if n > self.rest.len() {
            return Err(PayloadError::Truncated {
                needed: n,
                remaining: self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PayloadError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, PayloadError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, PayloadError> {
        self.array().map(u64::from_le_bytes)
    }

    /// Reads an element count and checks that `count * min_item` bytes are still present, so a
    /// hostile count is rejected before any allocation sized by it.
    fn len(&mut self, min_item: usize) -> Result<usize, PayloadError> {
        let len = self.u32()?;
        let min_bytes = u128::from(len) * min_item as u128;
        if min_bytes > self.rest.len() as u128 {
            return Err(PayloadError::LengthOutOfBounds {
                len,
                min_bytes,
                remaining: self.rest.len(),
            });
        }
        // Bounded by the payload length, so it fits in usize.
        Ok(len as usize)
    }

    fn string(&mut self) -> Result<String, PayloadError> {
        let n = self.len(1)?;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| PayloadError::InvalidUtf8)
    }

    fn kernel_records(&mut self) -> Result<Vec<KernelRecord>, PayloadError> {
        let n = self.len(MIN_KERNEL_RECORD_BYTES)?;
        let mut records = Vec::with_capacity(n);
        for _ in 0..n {
            records.push(KernelRecord {
                usec: self.u64()?,
                text: self.string()?,
            });
        }
        Ok(records)
    }

    fn u32s(&mut self) -> Result<Vec<u32>, PayloadError> {
        let n = self.len(4)?;
        (0..n).map(|_| self.u32()).collect()
    }

    fn groups(&mut self) -> Result<Vec<Vec<u32>>, PayloadError> {
        let n = self.len(4)?;
        (0..n).map(|_| self.u32s()).collect()
    }
}

/// One frame of every variant, in `FrameKind::ALL` order.
#[cfg(test)]
pub(crate) fn test_samples() -> Vec<Frame> {
    vec![
        Frame::SchedulerStarted { pid: 4242 },
        Frame::SchedulerDied {
            status: "killed by signal 9".into(),
        },
        Frame::PayloadStarting,
        Frame::SchedulerLog {
            text: "line 1\nline 2\n".into(),
        },
        Frame::ProgStats {
            progs: vec![
                ProgStat {
                    id: 17,
                    prog_type: 27,
                    name: "rusty_enqueue".into(),
                    verified_insns: 12345,
                },
                ProgStat {
                    id: 18,
                    prog_type: 27,
                    name: String::new(),
                    verified_insns: 0,
                },
            ],
        },
        Frame::Topology {
            topology: ObservedTopology {
                online_cpus: vec![0, 1, 2, 3],
                cores: vec![vec![0, 1], vec![2, 3]],
                llcs: vec![vec![0, 1, 2, 3]],
                numa_nodes: vec![vec![0, 1, 2, 3], vec![]],
            },
        },
        Frame::GuestError {
            message: "mount /sys: EPERM".into(),
        },
        Frame::Phase {
            phase: "attached".into(),
            uptime_ms: 2345,
        },
        Frame::AttachExpired {
            expiry: AttachExpiry {
                waited_ms: 61_000,
                state: "enabling".into(),
                programs: None,
                process_state: Some('R'),
                cpu_ms: 12_345,
            },
        },
        Frame::KernelLog {
            records: vec![
                KernelRecord {
                    usec: 2_652_000,
                    text: "Run /init as init process".into(),
                },
                KernelRecord {
                    usec: 0,
                    text: String::new(),
                },
            ],
        },
        Frame::SchedExtSample {
            sample: ScxSample {
                uptime_ms: 3456,
                state: "enabled".into(),
                enable_seq: None,
                scheduler_alive: true,
            },
        },
        Frame::WorkerProgress {
            probe: ProbeReport {
                bound_ms: 2000,
                workers: vec![
                    WorkerReport {
                        switched: true,
                        blocked: true,
                        iterations: u64::MAX - 1,
                        error: String::new(),
                    },
                    WorkerReport {
                        switched: false,
                        blocked: false,
                        iterations: 0,
                        error: "sched_setattr failed — ünïcödé".into(),
                    },
                ],
            },
        },
        Frame::SchedExtLog {
            records: vec![KernelRecord {
                usec: 7,
                text: "sched_ext: BPF scheduler \"ktstr\" enabled".into(),
            }],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_values_are_stable_and_round_trip() {
        let values: Vec<u8> = FrameKind::ALL.into_iter().map(u8::from).collect();
        assert_eq!(values, [1, 2, 4, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
        for kind in FrameKind::ALL {
            assert_eq!(FrameKind::try_from(u8::from(kind)), Ok(kind));
        }
        // Retired kinds and unknown ones are named as unknown.
        for retired in [0, 3, 5, 6, 17] {
            assert_eq!(FrameKind::try_from(retired), Err(UnknownFrameKind(retired)));
        }
    }

    #[test]
    fn every_variant_round_trips() {
        let samples = test_samples();
        let kinds: Vec<_> = samples.iter().map(Frame::kind).collect();
        assert_eq!(kinds, FrameKind::ALL);
        for frame in samples {
            let payload = frame.encode_payload();
            assert_eq!(payload.len(), frame.payload_len(), "{frame:?}");
            assert_eq!(Frame::decode_payload(frame.kind(), &payload), Ok(frame));
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for frame in test_samples() {
            let payload = frame.encode_payload();
            for cut in 0..payload.len() {
                assert!(Frame::decode_payload(frame.kind(), &payload[..cut]).is_err());
            }
        }
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut payload = Frame::SchedulerStarted { pid: 1 }.encode_payload();
        payload.push(0);
        assert_eq!(
            Frame::decode_payload(FrameKind::SchedulerStarted, &payload),
            Err(PayloadError::TrailingBytes(1))
        );
        assert_eq!(
            Frame::decode_payload(FrameKind::PayloadStarting, &[0]),
            Err(PayloadError::TrailingBytes(1))
        );
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let payload = [2, 0, 0, 0, 0xc3, 0x28];
        assert_eq!(
            Frame::decode_payload(FrameKind::GuestError, &payload),
            Err(PayloadError::InvalidUtf8)
        );
    }

    #[test]
    fn hostile_lengths_are_rejected_before_allocating() {
        // A count of u32::MAX with 4 bytes left: must fail without reserving 16 GiB.
        let payload = [0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4];
        for kind in [
            FrameKind::ProgStats,
            FrameKind::Topology,
            FrameKind::SchedulerLog,
        ] {
            assert!(matches!(
                Frame::decode_payload(kind, &payload),
                Err(PayloadError::LengthOutOfBounds { len: u32::MAX, .. })
            ));
        }
        // Nested: one group whose inner count is hostile.
        let payload = [0, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f];
        assert!(matches!(
            Frame::decode_payload(FrameKind::Topology, &payload),
            Err(PayloadError::LengthOutOfBounds { .. })
        ));
    }
}
