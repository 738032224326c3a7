//! How much a guest may write to its two serial lines. The host holds at most about this
//! much of each; a guest that writes more (a flooding scheduler or kernel, garbage on the
//! frame channel) is stopped and its cell says so.

/// The frame channel: the init's frames fit many times over (it keeps at most 32 MiB of
/// the scheduler's log, the tail).
pub const FRAME_CHANNEL_LIMIT: u64 = 64 << 20;
/// The kernel console; its tail is what a cell keeps.
pub const CONSOLE_LIMIT: u64 = 16 << 20;

/// Which line passed its limit, as the reason a cell gives; `None` while both are within.
pub fn flood(console_bytes: u64, frame_bytes: u64) -> Option<String> {
    let over = |what: &str, limit: u64| {
        format!(
            "the guest wrote more than {} MiB to its {what}, and was stopped (ktstr's init \
             never does: the scheduler or the kernel flooded it)",
            limit >> 20
        )
    };
    if frame_bytes > FRAME_CHANNEL_LIMIT {
        Some(over("frame channel", FRAME_CHANNEL_LIMIT))
    } else if console_bytes > CONSOLE_LIMIT {
        Some(over("console", CONSOLE_LIMIT))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_line_that_passed_its_limit() {
        assert_eq!(flood(CONSOLE_LIMIT, FRAME_CHANNEL_LIMIT), None);
        assert!(
            flood(0, FRAME_CHANNEL_LIMIT + 1)
                .unwrap()
                .contains("64 MiB to its frame channel")
        );
        assert!(
            flood(CONSOLE_LIMIT + 1, 0)
                .unwrap()
                .contains("16 MiB to its console")
        );
    }
}
