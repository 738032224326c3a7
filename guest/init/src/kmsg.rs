//! Kernel log records from `/dev/kmsg`: the kernel's own words on why a scheduler was
//! refused or kicked out (added to the scheduler log on failure), and the boot records a
//! boot profile is made of.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;

use ktstr_domain::results::boot_profile::is_profile_record;

use ktstr_domain::protocol::observation::KernelRecord;

/// Every kernel log record so far whose text mentions sched_ext, as `[kernel] ...` lines.
pub fn sched_ext_lines(path: &str) -> String {
    let mut out = String::new();
    let read = read_records(path, |r| r.text.contains("sched_ext"));
    let (records, error) = match read {
        Ok(records) => (records, None),
        Err((records, e)) => (records, Some(e)),
    };
    for r in records {
        out.push_str("[kernel] ");
        out.push_str(&r.text);
        out.push('\n');
    }
    if let Some(e) = error {
        out.push_str(&format!("[kernel] ({e})\n"));
    }
    out
}

/// Every kernel log record so far whose text mentions sched_ext (what it could read).
pub fn sched_ext_records(path: &str) -> Vec<KernelRecord> {
    read_records(path, |r| r.text.contains("sched_ext")).unwrap_or_else(|(records, _)| records)
}

/// The records a boot profile is made of (initcalls, SMP bring-up, the init's exec).
pub fn profile_records(path: &str) -> Vec<KernelRecord> {
    read_records(path, |r| is_profile_record(&r.text)).unwrap_or_else(|(records, _)| records)
}

/// The records so far that `keep` accepts. Never blocks: the device is read non-blocking
/// until it has nothing more. On a read error, what was read and why it stopped.
fn read_records(
    path: &str,
    mut keep: impl FnMut(&KernelRecord) -> bool,
) -> Result<Vec<KernelRecord>, (Vec<KernelRecord>, String)> {
    let mut dev = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(dev) => dev,
        Err(e) => return Err((Vec::new(), format!("cannot read {path}: {e}"))),
    };
    let mut out = Vec::new();
    // One read returns one whole record; records are at most about 8 KiB.
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match dev.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                if let Some(record) = parse_record(&buf[..n])
                    && keep(&record)
                {
                    out.push(record);
                }
            }
            // EPIPE: records were overwritten while reading; the next read resumes.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(out),
            Err(e) => return Err((out, format!("reading {path} failed: {e}"))),
        }
    }
}

/// One `/dev/kmsg` record: `prio,seq,usec,flags[,...];text\n` followed by optional
/// ` KEY=value` continuation lines, which are dropped.
pub fn parse_record(record: &[u8]) -> Option<KernelRecord> {
    let record = String::from_utf8_lossy(record);
    let (prefix, rest) = record.split_once(';')?;
    let usec = prefix.split(',').nth(2)?.parse().ok()?;
    let text = rest.split('\n').next().unwrap_or_default();
    Some(KernelRecord {
        usec,
        text: unescape(text),
    })
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
            parse_record(rec).unwrap(),
            KernelRecord {
                usec: 1_534_567,
                text: "sched_ext: BPF scheduler \"ktstr\" enabled".into()
            }
        );
        assert_eq!(
            parse_record(b"3,9,1,c,caller=T1;tab\\x09here\n")
                .unwrap()
                .text,
            "tab\there"
        );
        assert_eq!(parse_record(b"no separator"), None);
        assert_eq!(parse_record(b"6,1,soon,-;text"), None);
    }

    #[test]
    fn missing_device_is_reported_not_fatal() {
        let text = sched_ext_lines("/nonexistent/kmsg");
        assert!(text.starts_with("[kernel] (cannot read"));
        assert!(profile_records("/nonexistent/kmsg").is_empty());
    }
}
