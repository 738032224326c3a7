//! The verifier's closing statistics line, e.g.
//! `processed 186 insns (limit 1000000) max_states_per_insn 0 total_states 7 peak_states 7 mark_read 0`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What the verifier reported after checking one program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifierStats {
    pub processed_insns: u64,
    pub peak_states: u64,
    pub total_states: u64,
}

impl fmt::Display for VerifierStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "processed={}  states={}/{}",
            self.processed_insns, self.peak_states, self.total_states
        )
    }
}

/// One entry per statistics line in `log`, in order; lines that do not parse are skipped.
pub fn parse_verifier_stats(log: &str) -> Vec<VerifierStats> {
    log.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<VerifierStats> {
    // Text may precede the statistics (a logger prefix), so try every `processed` word.
    line.match_indices("processed").find_map(|(at, _)| {
        let glued = line[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if glued {
            None
        } else {
            parse_fields(&line[at..])
        }
    })
}

fn parse_fields(text: &str) -> Option<VerifierStats> {
    let mut tokens = text.split_whitespace();
    if tokens.next()? != "processed" {
        return None;
    }
    let processed_insns = number(tokens.next()?)?;
    if tokens.next()?.trim_end_matches(',') != "insns" {
        return None;
    }
    // Keys are matched by name so that reordered, extra or missing fields are tolerated.
    let (mut total, mut peak) = (None, None);
    let mut prev = "";
    for tok in tokens {
        match prev {
            "total_states" => total = total.or_else(|| number(tok)),
            "peak_states" => peak = peak.or_else(|| number(tok)),
            _ => {}
        }
        prev = tok;
    }
    Some(VerifierStats {
        processed_insns,
        peak_states: peak?,
        total_states: total?,
    })
}

fn number(tok: &str) -> Option<u64> {
    tok.trim_end_matches([',', ';', ')']).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "processed 186 insns (limit 1000000) max_states_per_insn 0 total_states 7 peak_states 7 mark_read 0";

    fn stats(processed_insns: u64, peak_states: u64, total_states: u64) -> VerifierStats {
        VerifierStats {
            processed_insns,
            peak_states,
            total_states,
        }
    }

    #[test]
    fn parses_the_kernel_line() {
        assert_eq!(parse_verifier_stats(LINE), vec![stats(186, 7, 7)]);
    }

    #[test]
    fn display_shows_peak_over_total() {
        assert_eq!(stats(186, 5, 7).to_string(), "processed=186  states=5/7");
    }

    #[test]
    fn one_entry_per_program_in_order() {
        let log = format!(
            "func#0 @0\n0: R1=ctx() R10=fp0\n{LINE}\nsomething else\n\
             processed 12 insns (limit 1000000) max_states_per_insn 1 total_states 3 peak_states 2 mark_read 1\n"
        );
        assert_eq!(
            parse_verifier_stats(&log),
            vec![stats(186, 7, 7), stats(12, 2, 3)]
        );
    }

    #[test]
    fn tolerates_missing_mark_read_extra_fields_and_prefixes() {
        let log = "  processed 5 insns (limit 1000000) max_states_per_insn 0 total_states 2 peak_states 1\n\
                   libbpf: prog 'x': processed 9 insns (limit 1000000) total_states 4 peak_states 3 mark_read 0 new_field 8\n\
                   processed 7 insns (limit 1000000) peak_states 6 total_states 8";
        assert_eq!(
            parse_verifier_stats(log),
            vec![stats(5, 1, 2), stats(9, 3, 4), stats(7, 6, 8)]
        );
    }

    #[test]
    fn skips_lines_that_do_not_parse() {
        let log = "processed many insns (limit 1000000) total_states 1 peak_states 1\n\
                   processed 3 insns (limit 131072), stack depth 0\n\
                   unprocessed 3 insns total_states 1 peak_states 1\n\
                   processed 3 bytes total_states 1 peak_states 1\n\
                   processed 3 insns total_states x peak_states 1\n\
                   \n\
                   processed";
        assert!(parse_verifier_stats(log).is_empty());
    }

    #[test]
    fn round_trips_through_serde() {
        let s = stats(186, 7, 7);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<VerifierStats>(&json).unwrap(), s);
    }
}
