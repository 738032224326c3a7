//! The payload encoding of each [`Frame`]: a small hand-written little-endian binary
//! format. Integers are `u32`/`u64` LE, strings and vectors a `u32` LE element count
//! followed by the elements. It is hand-written rather than serde-driven so that the
//! decoder can bound every length by the bytes actually present before it allocates
//! anything.

use crate::protocol::frame::{Frame, FrameKind};
use crate::protocol::observation::{
    AttachExpiry, KernelRecord, ProbeReport, ScxSample, WorkerReport,
};
use crate::shape::observed::ObservedTopology;
use crate::verifier_log::prog::ProgStat;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::test_samples;

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
