//! Framing of [`Frame`]s on the guest→host serial channel, and a streaming decoder that
//! survives garbage, corruption and truncation.
//!
//! Wire format of one frame:
//!
//! | bytes | field                                                  |
//! |-------|--------------------------------------------------------|
//! | 4     | [`MAGIC`] `b"KTF1"`                                    |
//! | 1     | kind ([`FrameKind`] as `u8`)                           |
//! | 4     | payload length, `u32` LE, at most [`MAX_PAYLOAD`]      |
//! | n     | payload ([`Frame::encode_payload`])                    |
//! | 4     | CRC32 (IEEE, `crc32fast`) LE over kind, length, payload |
//!
//! The serial console is shared with kernel and program output, so the decoder treats
//! anything that is not a CRC-valid frame as noise and resynchronises on the next magic.

use serde::{Deserialize, Serialize};

use crate::protocol::frame::{Frame, FrameKind};

pub const MAGIC: [u8; 4] = *b"KTF1";
/// Largest payload a frame may carry; a larger claimed length is treated as garbage.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Bytes before the payload: magic, kind, length.
pub const HEADER_LEN: usize = 9;
/// Bytes after the payload: the CRC.
pub const TRAILER_LEN: usize = 4;
/// Most text bytes one `SchedulerLog` frame carries (payload minus its length prefix).
pub const MAX_LOG_CHUNK: usize = MAX_PAYLOAD - 4;

/// A frame whose payload exceeds [`MAX_PAYLOAD`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} payload of {len} bytes exceeds the {MAX_PAYLOAD}-byte limit")]
pub struct FrameTooLarge {
    pub kind: FrameKind,
    pub len: usize,
}

/// Encodes exactly one frame, or refuses if its payload is over [`MAX_PAYLOAD`].
pub fn try_encode(frame: &Frame) -> Result<Vec<u8>, FrameTooLarge> {
    let len = frame.payload_len();
    if len > MAX_PAYLOAD {
        return Err(FrameTooLarge {
            kind: frame.kind(),
            len,
        });
    }
    let mut out = Vec::with_capacity(HEADER_LEN + len + TRAILER_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(frame.kind().into());
    // len <= MAX_PAYLOAD, so it fits in u32.
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&frame.encode_payload());
    let crc = crc32fast::hash(&out[MAGIC.len()..]);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Encodes a frame; never fails and never panics. Oversized frames are handled so that the
/// guest can always report something:
/// - `SchedulerLog` is split into several frames (see [`encode_log`]);
/// - the other text frames have their text truncated at a char boundary to fit;
/// - `ProgStats` and `Topology` are replaced by a `GuestError` naming the frame and its size,
///   rather than silently sending partial data.
pub fn encode(frame: &Frame) -> Vec<u8> {
    if let Ok(bytes) = try_encode(frame) {
        return bytes;
    }
    let fitted = match frame {
        Frame::SchedulerLog { text } => return encode_log(text),
        Frame::SchedulerDied { status } => Frame::SchedulerDied {
            status: truncate(status).to_owned(),
        },
        Frame::GuestError { message } => Frame::GuestError {
            message: truncate(message).to_owned(),
        },
        other => Frame::GuestError {
            message: format!(
                "{:?} frame not sent: payload of {} bytes exceeds the {MAX_PAYLOAD}-byte limit",
                other.kind(),
                other.payload_len()
            ),
        },
    };
    // Every fallback fits by construction; an empty vector would only mean a bug here.
    try_encode(&fitted).unwrap_or_default()
}

/// Encodes a log of any size as consecutive `SchedulerLog` frames, split at char boundaries,
/// whose texts concatenate to `text`. An empty log gives one frame with empty text.
pub fn encode_log(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + HEADER_LEN + TRAILER_LEN + 4);
    let mut rest = text;
    loop {
        let chunk = truncate(rest);
        rest = &rest[chunk.len()..];
        let frame = Frame::SchedulerLog {
            text: chunk.to_owned(),
        };
        out.extend_from_slice(&try_encode(&frame).unwrap_or_default());
        if rest.is_empty() {
            return out;
        }
    }
}

/// The longest prefix of `s` of at most [`MAX_LOG_CHUNK`] bytes ending at a char boundary.
/// Never empty for non-empty `s` (a char is at most 4 bytes).
fn truncate(s: &str) -> &str {
    &s[..s.floor_char_boundary(MAX_LOG_CHUNK)]
}

/// What the decoder saw besides good frames.
///
/// Every input byte ends up either in a decoded frame or in `garbage_bytes`: the bytes of a
/// rejected or truncated frame are rescanned for a magic and so are counted as garbage too.
/// Past [`MAX_FRAMES`], a decoded frame is counted in `excess` and dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodeStats {
    /// CRC-valid frames with a known kind and a well-formed payload.
    pub frames: u64,
    /// Bytes not part of any decoded frame.
    pub garbage_bytes: u64,
    /// Frames whose CRC did not match.
    pub corrupt: u64,
    /// A frame cut off by the end of input (at most one per stream).
    pub truncated: u64,
    /// Headers claiming a payload over [`MAX_PAYLOAD`].
    pub oversized: u64,
    /// CRC-valid frames whose payload did not decode.
    pub bad_payload: u64,
    /// CRC-valid frames with a kind byte this host does not know.
    pub unknown_kind: u64,
    /// Good frames past [`MAX_FRAMES`], dropped: no guest's init sends that many.
    #[serde(default)]
    pub excess: u64,
}

/// The most frames kept from one stream: the init sends dozens, its log in chunks of
/// up to 1 MiB; this bounds what a flood of tiny frames costs the host.
pub const MAX_FRAMES: usize = 1 << 16;

/// Streaming decoder: push bytes as they arrive, split anywhere, and pull frames.
///
/// Memory: consumed bytes are dropped, and an undecided frame never needs more than
/// `HEADER_LEN + MAX_PAYLOAD + TRAILER_LEN` bytes before it is accepted or rejected.
#[derive(Debug, Default, Clone)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    pos: usize,
    stats: DecodeStats,
    /// No more input will come: incomplete frames are truncated rather than awaited.
    eof: bool,
}

/// Outcome of looking at the candidate frame at the current position.
enum Step {
    Frame(Frame),
    /// Not enough bytes yet to decide.
    NeedMore,
    /// Not a valid frame: skip one byte and rescan.
    Reject,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        // Compact only when the consumed prefix is at least as large as what is kept, so
        // the copying stays amortised linear in the input.
        if self.pos > 0 && self.pos >= self.buf.len() - self.pos {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete, CRC-valid frame, or `None` until more bytes are pushed. Bad frames
    /// and garbage are skipped and counted in [`FrameDecoder::stats`].
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if !self.seek_magic() {
                return None;
            }
            match self.step() {
                Step::Frame(frame) => return Some(frame),
                Step::NeedMore if !self.eof => return None,
                Step::NeedMore => {
                    // Everything from here runs to the end of input, so any later incomplete
                    // candidate lies inside this one: count the cut-off frame once.
                    self.stats.truncated = 1;
                    self.skip_one();
                }
                Step::Reject => self.skip_one(),
            }
        }
    }

    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Ends the stream and returns the counts. Complete frames still buffered are decoded and
    /// counted but discarded; use [`FrameDecoder::finish_decoded`] to get them.
    pub fn finish(self) -> DecodeStats {
        self.finish_decoded().stats
    }

    /// Ends the stream: returns the frames still buffered (including any found inside a
    /// truncated tail) and the final counts. A leftover partial frame counts as truncated.
    pub fn finish_decoded(mut self) -> Decoded {
        self.eof = true;
        let mut frames = Vec::new();
        while let Some(frame) = self.next_frame() {
            if frames.len() < MAX_FRAMES {
                frames.push(frame);
            } else {
                self.stats.excess += 1;
            }
        }
        Decoded {
            frames,
            stats: self.stats,
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn skip_one(&mut self) {
        self.pos += 1;
        self.stats.garbage_bytes += 1;
    }

    /// Moves `pos` to the next magic, counting the skipped bytes as garbage. Returns false if
    /// there is none; then only a tail that could still become a magic is kept (none at eof).
    fn seek_magic(&mut self) -> bool {
        let pending = self.pending();
        let (skip, found) = match find_magic(pending) {
            Some(at) => (at, true),
            None if self.eof => (pending.len(), false),
            None => (pending.len() - magic_prefix_suffix(pending), false),
        };
        self.pos += skip;
        self.stats.garbage_bytes += skip as u64;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        found
    }

    /// Judges the candidate frame at `pos`, which starts with the magic. On success the frame
    /// is consumed and counted; on rejection the reason is counted.
    fn step(&mut self) -> Step {
        let pending = self.pending();
        let Some(header) = pending.get(..HEADER_LEN) else {
            return Step::NeedMore;
        };
        let kind = header[4];
        let len = u32::from_le_bytes([header[5], header[6], header[7], header[8]]) as usize;
        if len > MAX_PAYLOAD {
            self.stats.oversized += 1;
            return Step::Reject;
        }
        let total = HEADER_LEN + len + TRAILER_LEN;
        let Some(whole) = pending.get(..total) else {
            return Step::NeedMore;
        };
        let (body, crc) = whole.split_at(HEADER_LEN + len);
        let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        // Check the CRC before the kind, so a damaged kind byte counts as corruption and
        // `unknown_kind` only counts genuine frames from a newer guest.
        if crc32fast::hash(&body[MAGIC.len()..]) != crc {
            self.stats.corrupt += 1;
            return Step::Reject;
        }
        let Ok(kind) = FrameKind::try_from(kind) else {
            self.stats.unknown_kind += 1;
            return Step::Reject;
        };
        match Frame::decode_payload(kind, &body[HEADER_LEN..]) {
            Ok(frame) => {
                self.pos += total;
                self.stats.frames += 1;
                Step::Frame(frame)
            }
            Err(_) => {
                self.stats.bad_payload += 1;
                Step::Reject
            }
        }
    }
}

/// Offset of the first magic in `hay`.
fn find_magic(hay: &[u8]) -> Option<usize> {
    hay.windows(MAGIC.len()).position(|w| w == MAGIC)
}

/// Length of the longest suffix of `hay` that is a proper prefix of the magic, i.e. the bytes
/// that must be kept because the rest of a magic may still arrive.
fn magic_prefix_suffix(hay: &[u8]) -> usize {
    (1..MAGIC.len())
        .rev()
        .find(|&n| hay.ends_with(&MAGIC[..n]))
        .unwrap_or(0)
}

/// Everything decoded from a complete byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub frames: Vec<Frame>,
    pub stats: DecodeStats,
}

/// Decodes a complete byte stream.
pub fn decode_all(bytes: &[u8]) -> Decoded {
    let mut decoder = FrameDecoder::new();
    decoder.push(bytes);
    decoder.finish_decoded()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::test_samples;

    fn encode_all(frames: &[Frame]) -> Vec<u8> {
        frames.iter().flat_map(encode).collect()
    }

    #[test]
    fn frames_past_the_limit_are_counted_and_dropped() {
        let bytes = encode_all(&vec![Frame::PayloadStarting; MAX_FRAMES + 3]);
        let decoded = decode_all(&bytes);
        assert_eq!(decoded.frames.len(), MAX_FRAMES);
        assert_eq!(decoded.stats.excess, 3);
    }

    #[test]
    fn every_variant_round_trips() {
        let frames = test_samples();
        let bytes = encode_all(&frames);
        let decoded = decode_all(&bytes);
        assert_eq!(decoded.frames, frames);
        assert_eq!(
            decoded.stats,
            DecodeStats {
                frames: frames.len() as u64,
                ..DecodeStats::default()
            }
        );
    }

    #[test]
    fn frames_split_byte_by_byte() {
        let frames = test_samples();
        let bytes = encode_all(&frames);
        let mut decoder = FrameDecoder::new();
        let mut got = Vec::new();
        for b in &bytes {
            decoder.push(std::slice::from_ref(b));
            got.extend(std::iter::from_fn(|| decoder.next_frame()));
        }
        assert_eq!(got, frames);
        assert_eq!(decoder.finish(), decode_all(&bytes).stats);
    }

    #[test]
    fn garbage_before_and_between_frames_is_counted() {
        let a = Frame::SchedulerStarted { pid: 1 };
        let b = Frame::PayloadStarting;
        let mut bytes = b"[    0.1] kernel noise KTF".to_vec();
        bytes.extend(encode(&a));
        bytes.extend(b"KT F1 more noise\n");
        bytes.extend(encode(&b));
        bytes.extend(b"tail K");
        let decoded = decode_all(&bytes);
        assert_eq!(decoded.frames, vec![a, b]);
        assert_eq!(decoded.stats.garbage_bytes, (26 + 17 + 6) as u64);
        assert_eq!(decoded.stats.truncated, 0);
    }

    #[test]
    fn flipped_bit_is_corrupt_and_next_frame_survives() {
        let a = Frame::GuestError {
            message: "mount failed".into(),
        };
        let b = Frame::SchedulerStarted { pid: 7 };
        let mut bytes = encode(&a);
        bytes[HEADER_LEN + 3] ^= 0x10;
        let bad_len = bytes.len();
        bytes.extend(encode(&b));
        let decoded = decode_all(&bytes);
        assert_eq!(decoded.frames, vec![b]);
        assert_eq!(decoded.stats.corrupt, 1);
        assert_eq!(decoded.stats.garbage_bytes, bad_len as u64);
    }

    #[test]
    fn frame_hidden_inside_corrupt_length_is_found() {
        // A header whose length swallows the next real frame: resync one byte after its magic.
        let real = encode(&Frame::SchedulerStarted { pid: 9 });
        let mut bytes = MAGIC.to_vec();
        bytes.push(FrameKind::SchedulerLog.into());
        bytes.extend(100u32.to_le_bytes());
        bytes.extend(&real);
        bytes.extend([0u8; 100]);
        let decoded = decode_all(&bytes);
        assert_eq!(decoded.frames, vec![Frame::SchedulerStarted { pid: 9 }]);
        assert_eq!(decoded.stats.corrupt, 1);
    }

    #[test]
    fn truncated_tail_is_counted() {
        let a = Frame::SchedulerStarted { pid: 1 };
        let mut bytes = encode(&a);
        let b = encode(&Frame::SchedulerLog {
            text: "cut short".into(),
        });
        bytes.extend(&b[..b.len() - 3]);
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        assert_eq!(decoder.next_frame(), Some(a));
        assert_eq!(decoder.next_frame(), None);
        let stats = decoder.finish();
        assert_eq!(stats.truncated, 1);
        assert_eq!(stats.frames, 1);
        assert_eq!(stats.garbage_bytes, (b.len() - 3) as u64);

        // Only a header fragment left.
        let stats = decode_all(&b[..6]).stats;
        assert_eq!((stats.truncated, stats.garbage_bytes), (1, 6));
    }

    #[test]
    fn frame_found_inside_truncated_tail() {
        let real = encode(&Frame::PayloadStarting);
        let mut bytes = MAGIC.to_vec();
        bytes.push(FrameKind::SchedulerLog.into());
        bytes.extend(1000u32.to_le_bytes());
        bytes.extend(&real);
        let decoded = decode_all(&bytes);
        assert_eq!(decoded.frames, vec![Frame::PayloadStarting]);
        assert_eq!(decoded.stats.truncated, 1);
    }

    #[test]
    fn oversized_length_resyncs() {
        let mut bytes = MAGIC.to_vec();
        bytes.push(FrameKind::SchedulerLog.into());
        bytes.extend(((MAX_PAYLOAD + 1) as u32).to_le_bytes());
        bytes.extend(encode(&Frame::PayloadStarting));
        // Decided from the header alone: no need to wait for a megabyte.
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        assert_eq!(decoder.next_frame(), Some(Frame::PayloadStarting));
        let stats = decoder.finish();
        assert_eq!(stats.oversized, 1);
        assert_eq!(stats.garbage_bytes, HEADER_LEN as u64);
    }

    /// A CRC-valid frame with arbitrary kind byte and payload.
    fn raw_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(kind);
        out.extend((payload.len() as u32).to_le_bytes());
        out.extend(payload);
        let crc = crc32fast::hash(&out[4..]);
        out.extend(crc.to_le_bytes());
        out
    }

    #[test]
    fn unknown_kind_is_counted() {
        let mut bytes = raw_frame(200, b"from the future");
        bytes.extend(encode(&Frame::PayloadStarting));
        let decoded = decode_all(&bytes);
        assert_eq!(decoded.frames, vec![Frame::PayloadStarting]);
        assert_eq!(decoded.stats.unknown_kind, 1);
        assert_eq!(decoded.stats.corrupt, 0);
    }

    #[test]
    fn hostile_vector_length_is_bad_payload() {
        let mut payload = u32::MAX.to_le_bytes().to_vec();
        payload.extend([0u8; 16]);
        let mut bytes = raw_frame(FrameKind::ProgStats.into(), &payload);
        bytes.extend(raw_frame(FrameKind::Topology.into(), &payload));
        bytes.extend(raw_frame(
            FrameKind::SchedulerLog.into(),
            &[2, 0, 0, 0, 0xff, 0xfe],
        ));
        let decoded = decode_all(&bytes);
        assert!(decoded.frames.is_empty());
        assert_eq!(decoded.stats.bad_payload, 3);
    }

    #[test]
    fn large_log_splits_and_round_trips() {
        // Multi-byte chars so that naive byte splitting would land inside one.
        let text: String = "héllo wörld ✓ ".repeat(3 * 1024 * 1024 / 18 + 1);
        assert!(text.len() > 3 * 1024 * 1024);
        let bytes = encode_log(&text);
        let decoded = decode_all(&bytes);
        assert_eq!(decoded.stats.frames, 4);
        assert_eq!(decoded.stats.garbage_bytes, 0);
        let mut joined = String::new();
        for frame in decoded.frames {
            let Frame::SchedulerLog { text } = frame else {
                panic!("not a log frame: {frame:?}");
            };
            joined.push_str(&text);
        }
        assert_eq!(joined, text);
        // `encode` takes the same path for an oversized log.
        assert_eq!(encode(&Frame::SchedulerLog { text }), bytes);
    }

    #[test]
    fn oversized_frames_still_encode() {
        let long = "x".repeat(MAX_PAYLOAD + 10);
        let decoded = decode_all(&encode(&Frame::GuestError {
            message: long.clone(),
        }));
        assert_eq!(
            decoded.frames,
            vec![Frame::GuestError {
                message: long[..MAX_LOG_CHUNK].to_owned()
            }]
        );

        let topology = crate::shape::observed::ObservedTopology {
            online_cpus: vec![0; MAX_PAYLOAD / 4],
            ..Default::default()
        };
        let frame = Frame::Topology { topology };
        assert!(try_encode(&frame).is_err());
        let decoded = decode_all(&encode(&frame));
        assert!(matches!(decoded.frames[..], [Frame::GuestError { .. }]));
    }

    #[test]
    fn large_garbage_is_linear_and_bounded() {
        // Near-misses of the magic everywhere: must neither rescan nor keep it buffered.
        let noise: Vec<u8> = b"KTF0KT".iter().copied().cycle().take(8 << 20).collect();
        let mut decoder = FrameDecoder::new();
        for chunk in noise.chunks(4096) {
            decoder.push(chunk);
            assert_eq!(decoder.next_frame(), None);
            assert!(decoder.buf.len() <= 4096 + 3);
        }
        decoder.push(&encode(&Frame::PayloadStarting));
        assert_eq!(decoder.next_frame(), Some(Frame::PayloadStarting));
        assert_eq!(decoder.finish().garbage_bytes, noise.len() as u64);
    }

    #[test]
    fn decoder_never_panics_on_mutations() {
        let bytes = encode_all(&test_samples());
        for i in 0..bytes.len() {
            for bit in [0x01, 0x80] {
                let mut m = bytes.clone();
                m[i] ^= bit;
                let decoded = decode_all(&m);
                // One damaged frame at most is lost.
                assert!(decoded.frames.len() + 1 >= test_samples().len());
            }
        }
    }
}
