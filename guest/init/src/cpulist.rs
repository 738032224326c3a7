//! The kernel's cpu-list syntax (`0-3,8`), as found in sysfs `online`, `*_list` and `cpulist`.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("bad cpu list {text:?}: {why}")]
pub struct CpuListError {
    pub text: String,
    pub why: String,
}

/// Parses a cpu list into sorted, deduplicated CPU ids. Whitespace around the list and an
/// empty list (a memory-only NUMA node) are accepted.
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>, CpuListError> {
    let fail = |why: String| CpuListError {
        text: text.to_owned(),
        why,
    };
    let mut cpus = Vec::new();
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(cpus);
    }
    for part in trimmed.split(',') {
        let num = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| fail(format!("{s:?} is not a CPU number")))
        };
        match part.split_once('-') {
            None => cpus.push(num(part)?),
            Some((lo, hi)) => {
                let (lo, hi) = (num(lo)?, num(hi)?);
                if lo > hi {
                    return Err(fail(format!("range {lo}-{hi} runs backwards")));
                }
                cpus.extend(lo..=hi);
            }
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_singles_and_newline() {
        assert_eq!(parse_cpu_list("0-3,8\n").unwrap(), vec![0, 1, 2, 3, 8]);
        assert_eq!(parse_cpu_list("5").unwrap(), vec![5]);
        assert_eq!(parse_cpu_list("2,0-1").unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_cpu_list("0-1,1-2").unwrap(), vec![0, 1, 2]);
        assert_eq!(
            parse_cpu_list("0-251").unwrap(),
            (0..252).collect::<Vec<_>>()
        );
    }

    #[test]
    fn empty_list_is_no_cpus() {
        assert_eq!(parse_cpu_list("\n").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn garbage_is_refused() {
        for bad in ["x", "1-", "-1", "3-1", "1,,2", "0-3:2"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad} accepted");
        }
    }
}
