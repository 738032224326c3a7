//! What the guest saw when its attach wait ran out with the scheduler still alive: whether
//! the scheduler was still working (a slow guest) or had stopped short of enabling
//! sched_ext (the scheduler's failure).

use crate::protocol::observation::AttachExpiry;

impl AttachExpiry {
    /// The kernel was still enabling the scheduler, or the loader was busy (running or in
    /// I/O) with no BPF program loaded yet, e.g. inside the verifier: more time would
    /// likely have seen it attach.
    pub fn still_working(&self) -> bool {
        let busy = matches!(self.process_state, Some('R' | 'D'));
        self.state == "enabling" || (self.programs == Some(0) && busy)
    }

    /// What the scheduler was doing, in words.
    pub fn activity(&self) -> String {
        let process = match self.process_state {
            Some(state) => format!(
                "process state {state}, {}.{} s of CPU",
                self.cpu_ms / 1000,
                self.cpu_ms % 1000 / 100
            ),
            None => "process state unknown".to_string(),
        };
        if self.state == "enabling" {
            return format!("the kernel was still enabling the scheduler ({process})");
        }
        match self.programs {
            Some(0) => format!(
                "the scheduler was still loading: alive, no BPF program loaded yet ({process})"
            ),
            Some(n) => format!(
                "the scheduler was alive with {n} BPF programs loaded but never enabled \
                 sched_ext ({process})"
            ),
            None => format!("the scheduler was alive ({process})"),
        }
    }

    /// The not-attached reason the guest reports.
    pub fn reason(&self) -> String {
        let state = if self.state.is_empty() {
            "unreadable"
        } else {
            &self.state
        };
        format!(
            "state stayed {state} for {} ms; {}",
            self.waited_ms,
            self.activity()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expiry(state: &str, programs: Option<u32>, process: Option<char>) -> AttachExpiry {
        AttachExpiry {
            waited_ms: 61_000,
            state: state.into(),
            programs,
            process_state: process,
            cpu_ms: 18_360,
        }
    }

    #[test]
    fn a_busy_loader_with_nothing_loaded_or_an_enabling_kernel_is_still_working() {
        let loading = expiry("disabled", Some(0), Some('R'));
        assert!(loading.still_working());
        assert_eq!(
            loading.reason(),
            "state stayed disabled for 61000 ms; the scheduler was still loading: alive, no \
             BPF program loaded yet (process state R, 18.3 s of CPU)"
        );
        let enabling = expiry("enabling", Some(30), Some('S'));
        assert!(enabling.still_working());
        assert!(
            enabling
                .activity()
                .starts_with("the kernel was still enabling")
        );
    }

    #[test]
    fn loaded_programs_or_a_sleeping_loader_are_the_schedulers_own() {
        let loaded = expiry("disabled", Some(12), Some('S'));
        assert!(!loaded.still_working());
        assert!(
            loaded
                .activity()
                .contains("12 BPF programs loaded but never enabled")
        );
        assert!(!expiry("disabled", Some(0), Some('S')).still_working());
        let unknown = expiry("", None, None);
        assert!(!unknown.still_working());
        assert_eq!(
            unknown.reason(),
            "state stayed unreadable for 61000 ms; the scheduler was alive (process state \
             unknown)"
        );
    }
}
