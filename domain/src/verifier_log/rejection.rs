//! Which program the verifier rejected and why, from libbpf's log in a scheduler's output:
//! `libbpf: prog 'NAME': -- BEGIN PROG LOAD LOG --`, the verifier's log, its closing
//! `processed N insns ...` line, then `-- END PROG LOAD LOG --`.

use serde::{Deserialize, Serialize};

use crate::verifier_log::escapes::strip_escapes;
use crate::verifier_log::vstats::parse_verifier_stats;

/// A program the kernel's verifier refused to load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifierRejection {
    /// The program's full name, as libbpf names it.
    pub program: String,
    /// The verifier's own error line (`R7 invalid mem access 'scalar'`).
    pub error: String,
    /// Instructions the verifier processed before giving up, when its log says.
    pub processed_insns: Option<u64>,
}

impl std::fmt::Display for VerifierRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the verifier rejected {}: {}", self.program, self.error)?;
        if let Some(n) = self.processed_insns {
            write!(f, " (processed {n} insns)")?;
        }
        Ok(())
    }
}

const BEGIN: &str = "-- BEGIN PROG LOAD LOG --";
const END: &str = "-- END PROG LOAD LOG --";

/// The first rejection in `log`, if libbpf reported one. Loggers may prefix and colour the
/// marker lines; the verifier's lines between them are taken as they are.
pub fn find_rejection(log: &str) -> Option<VerifierRejection> {
    let mut lines = log.lines().map(strip_escapes);
    let program = lines.by_ref().find_map(|line| {
        let (before, _) = line.split_once(BEGIN)?;
        let (_, named) = before.split_once("prog '")?;
        let (name, _) = named.split_once('\'')?;
        Some(name.to_string())
    })?;
    let mut body: Vec<String> = Vec::new();
    for line in lines {
        if let Some((last, _)) = line.split_once(END) {
            body.push(last.to_string());
            break;
        }
        body.push(line.into_owned());
    }
    let body: Vec<&str> = body
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect();
    // The error is the verifier's last word before its statistics line; a log cut short
    // (no statistics) ends with it.
    let stats_at = body
        .iter()
        .rposition(|l| !parse_verifier_stats(l).is_empty());
    let processed_insns = stats_at
        .and_then(|at| parse_verifier_stats(body[at]).first().copied())
        .map(|s| s.processed_insns);
    let error = body[..stats_at.unwrap_or(body.len())]
        .iter()
        .rev()
        .find(|l| !l.starts_with("verification time"))
        .map_or_else(
            || "no verifier log (load failed before verification)".to_string(),
            |l| l.to_string(),
        );
    Some(VerifierRejection {
        program,
        error,
        processed_insns,
    })
}

/// Words a loader uses for the errno of a refused program load: `EACCES` is the
/// verifier's refusal.
const REFUSED: [&str; 3] = ["Permission denied (os error 13)", "EACCES", "error -13"];
/// How far above the errno line the loader's "load" line may be (an error chain prints
/// its causes on the lines below the context).
const CHAIN_LINES: usize = 4;

/// A loader that hides libbpf's log still says its program load was refused, in its own
/// words (`Failed to load BPF program: Permission denied (os error 13)`); those words,
/// when there is no libbpf log to name the program.
pub fn find_load_refusal(log: &str) -> Option<String> {
    let lines: Vec<String> = log
        .lines()
        .map(|l| strip_escapes(l).trim().to_string())
        .collect();
    let at = lines
        .iter()
        .position(|l| REFUSED.iter().any(|r| l.contains(r)))?;
    let from = at.saturating_sub(CHAIN_LINES);
    let load = lines[from..=at]
        .iter()
        .rposition(|l| l.to_ascii_lowercase().contains("load"))?
        + from;
    Some(
        lines[load..=at]
            .iter()
            .filter(|l| !l.is_empty() && *l != "Caused by:")
            .cloned()
            .collect::<Vec<_>>()
            .join(" … "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixture's `--fail-verify` on 6.12, as its libbpf printed it.
    const FIXTURE_LOG: &str = "\
libbpf: prog 'ktstr_dispatch': BPF program load failed: -EACCES
libbpf: prog 'ktstr_dispatch': -- BEGIN PROG LOAD LOG --
Global function ktstr_dispatch() doesn't return scalar. Only those are supported.
0: R1=ctx() R10=fp0
80: (7b) *(u64 *)(r7 +0) = r1
R7 invalid mem access 'scalar'
processed 11 insns (limit 1000000) max_states_per_insn 0 total_states 1 peak_states 1 mark_read 1
-- END PROG LOAD LOG --
libbpf: prog 'ktstr_dispatch': failed to load: -EACCES
scx-ktstr: error: loading the BPF programs failed
";

    #[test]
    fn names_the_program_the_verifiers_error_and_its_count() {
        let r = find_rejection(FIXTURE_LOG).unwrap();
        assert_eq!(
            r,
            VerifierRejection {
                program: "ktstr_dispatch".into(),
                error: "R7 invalid mem access 'scalar'".into(),
                processed_insns: Some(11),
            }
        );
        assert_eq!(
            r.to_string(),
            "the verifier rejected ktstr_dispatch: R7 invalid mem access 'scalar' \
             (processed 11 insns)"
        );
    }

    #[test]
    fn logger_prefixes_colours_and_a_log_without_statistics() {
        let log = "\x1b[33m12:00:01 [WARN]\x1b[0m libbpf: prog 'lavd_enqueue': -- BEGIN PROG LOAD LOG --\n\
                   0: R1=ctx()\n\
                   only read is supported\n\
                   verification time 12 usec\n\
                   -- END PROG LOAD LOG --\n";
        let r = find_rejection(log).unwrap();
        assert_eq!(r.program, "lavd_enqueue");
        assert_eq!(r.error, "only read is supported");
        assert_eq!(r.processed_insns, None);
    }

    #[test]
    fn a_loader_that_hides_libbpfs_log_is_still_heard() {
        assert_eq!(
            find_load_refusal(
                "scx-ktstr: error: Failed to load BPF program: Permission denied (os error 13)\n"
            )
            .as_deref(),
            Some("scx-ktstr: error: Failed to load BPF program: Permission denied (os error 13)")
        );
        let chain = "Error: Failed to load BPF program\n\nCaused by:\n    Permission denied (os error 13)\n";
        assert_eq!(
            find_load_refusal(chain).as_deref(),
            Some("Error: Failed to load BPF program … Permission denied (os error 13)")
        );
        // A refused file open is no program load.
        assert_eq!(
            find_load_refusal("open /sys/x: Permission denied (os error 13)\n"),
            None
        );
        assert_eq!(find_load_refusal("all good\n"), None);
    }

    #[test]
    fn a_log_without_a_rejection_has_none() {
        assert_eq!(find_rejection("libbpf: loaded\nall good\n"), None);
        let empty = "libbpf: prog 'p': -- BEGIN PROG LOAD LOG --\n-- END PROG LOAD LOG --\n";
        assert_eq!(
            find_rejection(empty).unwrap().error,
            "no verifier log (load failed before verification)"
        );
    }
}
