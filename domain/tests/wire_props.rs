//! Properties of the frame wire format and its streaming decoder.

use ktstr_domain::protocol::frame::Frame;
use ktstr_domain::protocol::observation::AttachExpiry;
use ktstr_domain::protocol::observation::KernelRecord;
use ktstr_domain::protocol::observation::ScxSample;
use ktstr_domain::protocol::observation::{ProbeReport, WorkerReport};
use ktstr_domain::protocol::wire::{Decoded, FrameDecoder, MAGIC, decode_all, encode};
use ktstr_domain::shape::observed::ObservedTopology;
use ktstr_domain::verifier_log::prog::ProgStat;
use proptest::collection::vec;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    // Mix plain ASCII (which can contain the magic) with arbitrary Unicode.
    prop_oneof![
        "[A-Z0-9 ]{0,40}",
        any::<String>(),
        Just("KTF1KTF1".to_owned())
    ]
}

fn cpus() -> impl Strategy<Value = Vec<u32>> {
    vec(any::<u32>(), 0..8)
}

fn groups() -> impl Strategy<Value = Vec<Vec<u32>>> {
    vec(cpus(), 0..5)
}

fn prog() -> impl Strategy<Value = ProgStat> {
    (any::<u32>(), any::<u32>(), text(), any::<u32>()).prop_map(
        |(id, prog_type, name, verified_insns)| ProgStat {
            id,
            prog_type,
            name,
            verified_insns,
        },
    )
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        any::<u32>().prop_map(|pid| Frame::SchedulerStarted { pid }),
        text().prop_map(|status| Frame::SchedulerDied { status }),
        Just(Frame::PayloadStarting),
        (any::<u64>(), text(), any::<Option<u64>>(), any::<bool>()).prop_map(
            |(uptime_ms, state, enable_seq, scheduler_alive)| Frame::SchedExtSample {
                sample: ScxSample {
                    uptime_ms,
                    state,
                    // u64::MAX is the wire's "unknown".
                    enable_seq: enable_seq.filter(|&s| s != u64::MAX),
                    scheduler_alive,
                },
            }
        ),
        (
            any::<u64>(),
            vec((any::<bool>(), any::<bool>(), any::<u64>(), text()), 0..6)
        )
            .prop_map(|(bound_ms, workers)| Frame::WorkerProgress {
                probe: ProbeReport {
                    bound_ms,
                    workers: workers
                        .into_iter()
                        .map(|(switched, blocked, iterations, error)| WorkerReport {
                            switched,
                            blocked,
                            iterations,
                            error,
                        })
                        .collect(),
                },
            }),
        vec((any::<u64>(), text()), 0..8).prop_map(|records| Frame::SchedExtLog {
            records: records
                .into_iter()
                .map(|(usec, text)| KernelRecord { usec, text })
                .collect(),
        }),
        text().prop_map(|text| Frame::SchedulerLog { text }),
        vec(prog(), 0..4).prop_map(|progs| Frame::ProgStats { progs }),
        (cpus(), groups(), groups(), groups()).prop_map(
            |(online_cpus, cores, llcs, numa_nodes)| {
                Frame::Topology {
                    topology: ObservedTopology {
                        online_cpus,
                        cores,
                        llcs,
                        numa_nodes,
                    },
                }
            }
        ),
        text().prop_map(|message| Frame::GuestError { message }),
        (text(), any::<u64>()).prop_map(|(phase, uptime_ms)| Frame::Phase { phase, uptime_ms }),
        (
            any::<u64>(),
            text(),
            proptest::option::of(0..u32::MAX),
            proptest::option::of(proptest::char::range('A', 'Z')),
            any::<u64>()
        )
            .prop_map(|(waited_ms, state, programs, process_state, cpu_ms)| {
                Frame::AttachExpired {
                    expiry: AttachExpiry {
                        waited_ms,
                        state,
                        programs,
                        process_state,
                        cpu_ms,
                    },
                }
            }),
        vec((any::<u64>(), text()), 0..8).prop_map(|records| Frame::KernelLog {
            records: records
                .into_iter()
                .map(|(usec, text)| KernelRecord { usec, text })
                .collect(),
        }),
    ]
}

fn garbage() -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop_oneof![any::<u8>(), Just(b'K'), Just(b'T'), Just(b'F'), Just(b'1')],
        0..32,
    )
    .prop_filter("garbage must not contain the magic", |g| {
        !g.windows(MAGIC.len()).any(|w| w == MAGIC)
    })
}

/// Byte streams that exercise the decoder's paths: noise, magics with random headers,
/// valid frames, and damaged frames.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        vec(any::<u8>(), 0..64),
        (any::<u8>(), any::<u32>(), vec(any::<u8>(), 0..16)).prop_map(|(kind, len, rest)| {
            let mut v = MAGIC.to_vec();
            v.push(kind);
            v.extend(len.to_le_bytes());
            v.extend(rest);
            v
        }),
        frame().prop_map(|f| encode(&f)),
        (frame(), any::<prop::sample::Index>(), 0u8..8).prop_map(|(f, at, bit)| {
            let mut v = encode(&f);
            let i = at.index(v.len());
            v[i] ^= 1 << bit;
            v
        }),
        (frame(), any::<prop::sample::Index>()).prop_map(|(f, at)| {
            let mut v = encode(&f);
            v.truncate(at.index(v.len()));
            v
        }),
    ];
    vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

/// Feeds `bytes` in chunks of the given sizes (cycled), draining frames after every push.
fn decode_chunked(bytes: &[u8], sizes: &[usize]) -> Decoded {
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    let mut rest = bytes;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*size).clamp(1, rest.len()));
        rest = tail;
        decoder.push(chunk);
        frames.extend(std::iter::from_fn(|| decoder.next_frame()));
        assert_eq!(decoder.stats().frames, frames.len() as u64);
    }
    let tail = decoder.finish_decoded();
    frames.extend(tail.frames);
    Decoded {
        frames,
        stats: tail.stats,
    }
}

/// Every input byte is either in a returned frame or counted as garbage.
fn assert_bytes_accounted(bytes: &[u8], decoded: &Decoded) {
    let in_frames: usize = decoded.frames.iter().map(|f| encode(f).len()).sum();
    assert_eq!(
        in_frames as u64 + decoded.stats.garbage_bytes,
        bytes.len() as u64
    );
    assert_eq!(decoded.stats.frames, decoded.frames.len() as u64);
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(
        bytes in vec(any::<u8>(), 0..512),
        sizes in vec(1usize..64, 1..8),
    ) {
        let whole = decode_all(&bytes);
        assert_bytes_accounted(&bytes, &whole);
        prop_assert_eq!(decode_chunked(&bytes, &sizes), whole);
    }

    #[test]
    fn never_panics_on_frame_like_streams(
        bytes in stream(),
        sizes in vec(1usize..64, 1..8),
    ) {
        let whole = decode_all(&bytes);
        assert_bytes_accounted(&bytes, &whole);
        prop_assert!(whole.stats.truncated <= 1);
        prop_assert_eq!(decode_chunked(&bytes, &sizes), whole);
    }

    #[test]
    fn every_frame_round_trips(frame in frame()) {
        let bytes = encode(&frame);
        let decoded = decode_all(&bytes);
        prop_assert_eq!(decoded.stats.frames, 1);
        prop_assert_eq!(decoded.stats.garbage_bytes, 0);
        prop_assert_eq!(decoded.frames, vec![frame]);
    }

    #[test]
    fn frames_survive_interleaved_garbage(
        items in vec((garbage(), frame()), 0..8),
        tail in garbage(),
    ) {
        let mut bytes = Vec::new();
        for (g, f) in &items {
            bytes.extend(g);
            bytes.extend(encode(f));
        }
        bytes.extend(&tail);
        let decoded = decode_all(&bytes);
        let expected: Vec<Frame> = items.into_iter().map(|(_, f)| f).collect();
        prop_assert_eq!(&decoded.frames, &expected);
        prop_assert_eq!(decoded.stats.corrupt, 0);
        prop_assert_eq!(decoded.stats.truncated, 0);
        assert_bytes_accounted(&bytes, &decoded);
    }

    #[test]
    fn chunking_does_not_change_the_result(
        items in vec((garbage(), frame()), 0..6),
        sizes in vec(1usize..100, 1..10),
    ) {
        let bytes: Vec<u8> = items
            .iter()
            .flat_map(|(g, f)| g.iter().copied().chain(encode(f)))
            .collect();
        let whole = decode_all(&bytes);
        prop_assert_eq!(decode_chunked(&bytes, &sizes), whole);
    }
}
