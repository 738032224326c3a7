//! Figures from `/proc`: the host's memory and a process's peak resident set.

/// The host's memory, in KiB, when `/proc/meminfo` says.
pub fn host_mem_total_kib() -> Option<u64> {
    mem_total_kib(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// `MemTotal` of a `/proc/meminfo` text, in KiB.
pub fn mem_total_kib(meminfo: &str) -> Option<u64> {
    kib_field(meminfo, "MemTotal:")
}

/// The peak resident set (`VmHWM`) of a running process, in KiB.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&status, "VmHWM:")
}

fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_total() {
        assert_eq!(
            mem_total_kib("MemFree: 1 kB\nMemTotal:       24570512 kB\n"),
            Some(24_570_512)
        );
        assert_eq!(mem_total_kib("nothing"), None);
        assert!(host_mem_total_kib().is_some_and(|kib| kib > 1024));
    }

    #[test]
    fn reads_the_peak_memory_of_a_live_process() {
        let kib = vm_hwm_kib(std::process::id()).unwrap();
        assert!(kib > 100, "{kib}");
        assert_eq!(vm_hwm_kib(u32::MAX), None);
    }
}
