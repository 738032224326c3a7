//! Kernel messages about sched_ext from `/dev/kmsg`: the kernel's own words on why a
//! scheduler was refused or kicked out, added to the scheduler log on failure.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;

/// Every kernel log record so far whose text mentions sched_ext, as `[kernel] ...` lines.
/// Never blocks: the device is read non-blocking until it has nothing more.
pub fn sched_ext_lines(path: &str) -> String {
    let mut dev = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(dev) => dev,
        Err(e) => return format!("[kernel] (cannot read {path}: {e})\n"),
    };
    let mut out = String::new();
    // One read returns one whole record; records are at most about 8 KiB.
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match dev.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Some(msg) = record_message(&buf[..n])
                    && msg.contains("sched_ext")
                {
                    out.push_str("[kernel] ");
                    out.push_str(&msg);
                    out.push('\n');
                }
            }
            // EPIPE: records were overwritten while reading; the next read resumes.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => {
                out.push_str(&format!("[kernel] (reading {path} failed: {e})\n"));
                break;
            }
        }
    }
    out
}

/// The message text of one `/dev/kmsg` record: `prio,seq,usec,flags[,...];text\n` followed
/// by optional ` KEY=value` continuation lines, which are dropped.
pub fn record_message(record: &[u8]) -> Option<String> {
    let record = String::from_utf8_lossy(record);
    let (_, rest) = record.split_once(';')?;
    let text = rest.split('\n').next().unwrap_or_default();
    Some(unescape(text))
}

/// The kernel escapes non-printable bytes as `\xNN`; undo that for readable logs.
fn unescape(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && bytes.get(i + 1) == Some(&b'x')
            && let Some(hex) = text.get(i + 2..i + 4)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_and_drops_dictionary() {
        let rec = b"6,812,1534567,-;sched_ext: BPF scheduler \"ktstr\" enabled\n SUBSYSTEM=x\n";
        assert_eq!(
            record_message(rec).unwrap(),
            "sched_ext: BPF scheduler \"ktstr\" enabled"
        );
        assert_eq!(
            record_message(b"3,9,1,c,caller=T1;tab\\x09here\n").unwrap(),
            "tab\there"
        );
        assert_eq!(record_message(b"no separator"), None);
    }

    #[test]
    fn missing_device_is_reported_not_fatal() {
        let text = sched_ext_lines("/nonexistent/kmsg");
        assert!(text.starts_with("[kernel] (cannot read"));
    }
}
