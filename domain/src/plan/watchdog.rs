//! The host watchdog every backend runs: a guest that says nothing new on its frame channel
//! for a whole period is stopped, and so is one still talking after a few periods in all,
//! so a slow guest making progress is never cut short and a silent one never waits forever.

use std::time::Duration;

/// However long a guest keeps talking, it is stopped at this many watchdog periods.
pub const WATCHDOG_CAP: u32 = 4;

/// Fed how long the VM has run and how many frame bytes it has sent; says when to stop it.
#[derive(Debug, Clone)]
pub struct FrameWatchdog {
    period: Duration,
    heard_bytes: u64,
    last_word: Duration,
    first_word: Option<Duration>,
}

impl FrameWatchdog {
    pub fn new(period: Duration) -> Self {
        FrameWatchdog {
            period,
            heard_bytes: 0,
            last_word: Duration::ZERO,
            first_word: None,
        }
    }

    /// `elapsed`: since the VM started; `heard_bytes`: what the frame channel holds now.
    pub fn expired(&mut self, heard_bytes: u64, elapsed: Duration) -> bool {
        if heard_bytes > self.heard_bytes {
            self.heard_bytes = heard_bytes;
            self.last_word = elapsed;
            self.first_word.get_or_insert(elapsed);
        }
        elapsed >= self.last_word + self.period || elapsed >= self.period * WATCHDOG_CAP
    }

    /// When the guest first said anything (its init's first frame), as `expired` was told:
    /// the VM's start-to-init time, to the backend's sampling period.
    pub fn first_word(&self) -> Option<Duration> {
        self.first_word
    }

    /// [`Watchdog::first_word`] in whole milliseconds, as records keep it.
    pub fn first_word_ms(&self) -> Option<u64> {
        self.first_word
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_the_guests_last_word_up_to_a_cap() {
        let s = Duration::from_secs;
        let mut dog = FrameWatchdog::new(s(10));
        assert!(!dog.expired(0, s(9)));
        assert!(dog.expired(0, s(10)), "silent for a whole period");
        assert_eq!(dog.first_word(), None);

        let mut dog = FrameWatchdog::new(s(10));
        assert!(!dog.expired(0, s(2)));
        assert!(!dog.expired(100, s(9)));
        assert!(!dog.expired(150, s(12)));
        assert_eq!(dog.first_word(), Some(s(9)), "the first word, not the last");
        assert!(!dog.expired(150, s(21)), "heard at 12 s");
        assert!(dog.expired(150, s(22)));

        let mut dog = FrameWatchdog::new(s(10));
        for t in 1..40 {
            assert!(!dog.expired(t * 10, s(t)), "talking at {t} s");
        }
        assert!(dog.expired(400, s(40)), "the cap");
    }
}
