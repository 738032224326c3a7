//! The scheduler's output, kept as a bounded tail: the verifier log that matters sits at the
//! end of what libbpf prints, and the guest has little memory.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The last `limit` bytes pushed, and how many earlier bytes were dropped.
#[derive(Debug)]
pub struct TailBuffer {
    limit: usize,
    bytes: VecDeque<u8>,
    dropped: u64,
}

impl TailBuffer {
    pub fn new(limit: usize) -> Self {
        TailBuffer {
            limit,
            bytes: VecDeque::with_capacity(limit.min(64 * 1024)),
            dropped: 0,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        // Only the tail of a chunk larger than the limit can survive.
        let skip = data.len().saturating_sub(self.limit);
        self.dropped += skip as u64;
        let data = &data[skip..];
        let overflow = (self.bytes.len() + data.len()).saturating_sub(self.limit);
        self.bytes.drain(..overflow);
        self.dropped += overflow as u64;
        self.bytes.extend(data);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.bytes.len()
    }

    #[cfg(test)]
    fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The kept bytes as text (invalid UTF-8, e.g. a character cut at the start, becomes
    /// U+FFFD), headed by a note when earlier output was dropped.
    pub fn text(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        let mut raw = Vec::with_capacity(a.len() + b.len());
        raw.extend_from_slice(a);
        raw.extend_from_slice(b);
        let body = String::from_utf8_lossy(&raw);
        if self.dropped == 0 {
            body.into_owned()
        } else {
            format!(
                "[ktstr-init: {} earlier bytes of scheduler output dropped]\n{body}",
                self.dropped
            )
        }
    }
}

/// A reader thread draining a pipe into a shared [`TailBuffer`].
#[derive(Debug, Clone)]
pub struct LogCapture {
    tail: Arc<Mutex<TailBuffer>>,
    eof: Arc<AtomicBool>,
}

impl LogCapture {
    /// Starts the reader thread. It ends at EOF (every writer closed) or on a read error.
    pub fn start(mut source: impl Read + Send + 'static, limit: usize) -> Self {
        let capture = LogCapture {
            tail: Arc::new(Mutex::new(TailBuffer::new(limit))),
            eof: Arc::new(AtomicBool::new(false)),
        };
        let shared = capture.clone();
        let spawned = thread::Builder::new()
            .name("sched-log".into())
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match source.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => shared.lock().push(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            shared
                                .lock()
                                .push(format!("\n[ktstr-init: log read failed: {e}]\n").as_bytes());
                            break;
                        }
                    }
                }
                shared.eof.store(true, Ordering::Release);
            });
        if let Err(e) = spawned {
            capture
                .lock()
                .push(format!("[ktstr-init: cannot start the log reader: {e}]\n").as_bytes());
            capture.eof.store(true, Ordering::Release);
        }
        capture
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TailBuffer> {
        // A panic while holding the lock leaves a usable buffer; keep going.
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits up to `timeout` for the output to end (used once the scheduler has exited, so its
    /// last words, e.g. the verifier log, are not lost in the pipe). Returns whether it ended.
    pub fn wait_eof(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.eof.load(Ordering::Acquire) {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// What has been read so far.
    pub fn snapshot(&self) -> String {
        self.lock().text()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_exactly_the_last_limit_bytes() {
        let mut t = TailBuffer::new(10);
        t.push(b"hello");
        assert_eq!((t.len(), t.dropped()), (5, 0));
        assert_eq!(t.text(), "hello");
        t.push(b" world!");
        assert_eq!((t.len(), t.dropped()), (10, 2));
        assert!(t.text().ends_with("llo world!"));
        t.push(b"0123456789ABCDEF");
        assert_eq!((t.len(), t.dropped()), (10, 18));
        assert_eq!(
            t.text(),
            "[ktstr-init: 18 earlier bytes of scheduler output dropped]\n6789ABCDEF"
        );
        for _ in 0..1000 {
            t.push(b"xyz");
            assert!(t.len() <= 10);
        }
        assert_eq!(t.dropped(), 18 + 3000);
    }

    #[test]
    fn zero_limit_keeps_nothing() {
        let mut t = TailBuffer::new(0);
        t.push(b"abc");
        assert_eq!((t.len(), t.dropped()), (0, 3));
    }

    #[test]
    fn cut_multibyte_char_is_replaced_not_fatal() {
        let mut t = TailBuffer::new(4);
        t.push("aé✓".as_bytes()); // 1 + 2 + 3 bytes: the tail starts inside 'é'.
        assert!(t.text().ends_with("\u{FFFD}✓"));
    }

    #[test]
    fn capture_reads_a_pipe_until_eof() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let capture = LogCapture::start(reader, 8);
        std::io::Write::write_all(&mut writer, b"0123456789abc").unwrap();
        drop(writer);
        assert!(capture.wait_eof(Duration::from_secs(5)));
        assert!(capture.snapshot().ends_with("56789abc"));
    }

    #[test]
    fn wait_eof_times_out_while_a_writer_lives() {
        let (reader, _writer) = std::io::pipe().unwrap();
        let capture = LogCapture::start(reader, 8);
        assert!(!capture.wait_eof(Duration::from_millis(30)));
    }
}
