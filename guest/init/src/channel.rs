//! The frame channel to the host: a serial port in raw mode, with stderr (the kernel
//! console) as the fallback for anything that cannot go there.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{Context, Result};
use ktstr_domain::protocol::frame::Frame;
use ktstr_domain::protocol::order::FrameOrder;
use ktstr_domain::protocol::wire::{encode, encode_log};

use crate::sys;

#[derive(Debug, Default)]
pub struct FrameSink {
    /// `None` until the frame device is open (or when it cannot be opened).
    device: Option<File>,
    /// Where the run's stream is in the protocol's order.
    order: FrameOrder,
}

impl FrameSink {
    /// A sink that only reaches the console.
    pub fn console_only() -> Self {
        FrameSink::default()
    }

    /// Opens the frame device and puts it into raw mode, so neither `\n` → `\r\n` nor any
    /// other output processing alters frame bytes.
    pub fn open(path: &str) -> Result<Self> {
        let device = OpenOptions::new()
            .write(true)
            // A tty opened by PID 1 must not become its controlling terminal, and the open
            // must not wait for a carrier that a virtual UART may never raise.
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(path)
            .with_context(|| format!("opening frame device {path}"))?;
        sys::make_raw(&device).with_context(|| format!("raw mode on {path}"))?;
        // Frames are written with blocking writes: none may be dropped on a full buffer.
        sys::clear_nonblock(&device).with_context(|| format!("blocking mode on {path}"))?;
        Ok(FrameSink {
            device: Some(device),
            order: FrameOrder::default(),
        })
    }

    pub fn is_open(&self) -> bool {
        self.device.is_some()
    }

    /// Sends one frame; a short summary goes to the console for whoever watches it. A
    /// frame the protocol's order does not allow here is a bug in this init: it is
    /// reported as an error instead of sent, so the host never has to guess.
    pub fn send(&mut self, frame: &Frame) {
        if let Err(e) = self.order.advance(frame) {
            return self.error(format!("ktstr-init bug: {e}"));
        }
        eprintln!("ktstr-init: {}", summary(frame));
        self.write(&encode(frame));
    }

    /// Sends a log of any size as `SchedulerLog` frames.
    pub fn send_log(&mut self, text: &str) {
        let first = Frame::SchedulerLog {
            text: String::new(),
        };
        if let Err(e) = self.order.advance(&first) {
            return self.error(format!("ktstr-init bug: {e}"));
        }
        eprintln!("ktstr-init: SchedulerLog ({} bytes)", text.len());
        self.write(&encode_log(text));
    }

    /// Marks a milestone with the guest's uptime, so the host can split a cell's time.
    pub fn phase(&mut self, phase: &str) {
        if let Some(uptime_ms) = uptime_ms() {
            self.send(&Frame::Phase {
                phase: phase.to_string(),
                uptime_ms,
            });
        }
    }

    /// Reports a failure of the init itself.
    pub fn error(&mut self, message: impl Into<String>) {
        self.send(&Frame::GuestError {
            message: message.into(),
        });
    }

    /// Blocks until the UART has transmitted every byte written so far.
    pub fn drain(&mut self) {
        if let Some(device) = &mut self.device {
            let _ = device.flush();
            // ENOTTY for a plain file in `--plan` tests: nothing to drain.
            if let Err(e) = sys::tcdrain(device)
                && e.raw_os_error() != Some(libc::ENOTTY)
            {
                eprintln!("ktstr-init: tcdrain on the frame device: {e}");
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        let Some(device) = &mut self.device else {
            return;
        };
        if let Err(e) = device.write_all(bytes) {
            eprintln!("ktstr-init: writing a frame failed: {e}");
        }
    }
}

/// One console line per frame; bulky payloads are only counted.
fn summary(frame: &Frame) -> String {
    match frame {
        Frame::SchedulerLog { text } => format!("SchedulerLog ({} bytes)", text.len()),
        Frame::ProgStats { progs } => format!("ProgStats ({} programs)", progs.len()),
        Frame::KernelLog { records } => format!("KernelLog ({} records)", records.len()),
        Frame::Topology { topology } => {
            format!("Topology ({} online CPUs)", topology.online_cpus.len())
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktstr_domain::protocol::observation::ScxSample;
    use ktstr_domain::protocol::wire::decode_all;

    #[test]
    fn frames_reach_a_plain_file_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("frames");
        std::fs::write(&path, b"").unwrap();
        let mut sink = FrameSink::open(path.to_str().unwrap()).unwrap();
        let frames = [
            Frame::SchedulerStarted { pid: 42 },
            Frame::SchedExtSample {
                sample: ScxSample {
                    uptime_ms: 1500,
                    state: "disabled".into(),
                    enable_seq: Some(0),
                    scheduler_alive: true,
                },
            },
            Frame::SchedulerLog {
                text: "line\nwith\r\nbreaks\n".into(),
            },
        ];
        for f in &frames {
            sink.send(f);
        }
        sink.send_log("tail");
        sink.drain();
        let decoded = decode_all(&std::fs::read(&path).unwrap());
        assert_eq!(decoded.frames[..3], frames);
        assert_eq!(
            decoded.frames[3],
            Frame::SchedulerLog {
                text: "tail".into()
            }
        );
        assert_eq!(decoded.stats.garbage_bytes, 0);
    }

    /// The sink follows the protocol's order: a frame out of it is this init's bug, sent
    /// as an error naming it instead of the frame.
    #[test]
    fn a_frame_out_of_order_is_reported_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("frames");
        std::fs::write(&path, b"").unwrap();
        let mut sink = FrameSink::open(path.to_str().unwrap()).unwrap();
        sink.send(&Frame::PayloadStarting);
        sink.send_log("too early");
        let decoded = decode_all(&std::fs::read(&path).unwrap());
        let errors: Vec<&str> = decoded
            .frames
            .iter()
            .map(|f| match f {
                Frame::GuestError { message } => message.as_str(),
                other => panic!("sent out of order: {other:?}"),
            })
            .collect();
        assert_eq!(
            errors,
            [
                "ktstr-init bug: frame 0 (PayloadStarting) is out of order: not allowed while \
                 booting",
                "ktstr-init bug: frame 1 (SchedulerLog) is out of order: not allowed while booting"
            ]
        );
    }

    #[test]
    fn raw_mode_passes_every_byte_through_a_tty() {
        use std::io::Read;
        let (mut master, slave) = sys::open_pty().unwrap();
        let mut sink = FrameSink::open(&slave).unwrap();
        // Bytes a cooked tty would rewrite: \n -> \r\n, \r, tabs, 0x7f, ^C, ^D.
        let message: String = "a\nb\r\n\tc\x7f\x03\x04\u{1b}[0m\x11\x13".repeat(300);
        let frame = Frame::GuestError { message };
        let expected = encode(&frame);
        sink.send(&frame);
        sink.drain();
        let mut got = vec![0u8; expected.len()];
        master.read_exact(&mut got).unwrap();
        assert_eq!(got, expected);
    }
}

/// Milliseconds since boot, from `/proc/uptime`.
pub fn uptime_ms() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    parse_uptime_ms(&text)
}

fn parse_uptime_ms(text: &str) -> Option<u64> {
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some((secs * 1000.0) as u64)
}

#[cfg(test)]
mod uptime_tests {
    #[test]
    fn parses_proc_uptime() {
        assert_eq!(super::parse_uptime_ms("12.34 40.00\n"), Some(12_340));
        assert_eq!(super::parse_uptime_ms(""), None);
    }
}
