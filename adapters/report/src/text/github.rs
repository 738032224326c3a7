//! GitHub Actions workflow commands: an `::error` annotation per cell that did not pass,
//! which GitHub shows on the run's page and the pull request.

use ktstr_domain::judging::record::CellRecord;
use ktstr_domain::judging::verdict::Verdict;

/// `::error title=ktstr FAIL [verify] <cell>::<reason>`, ending with a newline; `None` for
/// a cell that passed.
pub fn annotation(record: &CellRecord) -> Option<String> {
    let (title, reason) = match &record.verdict {
        Verdict::Pass => return None,
        Verdict::Fail { gate, reason } => (format!("FAIL [{gate}]"), reason),
        Verdict::Error { cause, reason } => (format!("ERROR [environment: {cause}]"), reason),
    };
    let mut message = reason.clone();
    if let Some(repro) = &record.repro {
        message.push_str(&format!("\nrerun: {repro}"));
    }
    Some(format!(
        "::error title={}::{}\n",
        escape_property(&format!("ktstr {title} {}", record.cell)),
        escape_data(&message)
    ))
}

/// The escapes GitHub's workflow commands define for a message.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// ... and for a property value, which also must not hold `:` or `,`.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use ktstr_domain::judging::verdict::Gate;
    use ktstr_domain::plan::cell::CellId;
    use ktstr_domain::shape::topology::Topology;

    use super::*;

    #[test]
    fn a_failing_cell_is_one_escaped_error_command() {
        let record = CellRecord {
            cell: CellId::new("s", "k", "tiny-1llc").unwrap(),
            topology: "1n1l4c1t".parse::<Topology>().unwrap(),
            verdict: Verdict::fail(Gate::Verify, "100% wrong:\nsecond line"),
            run: None,
            wall_ms: 1,
            boot: None,
            repro: Some("ktstr verifier x".into()),
        };
        assert_eq!(
            annotation(&record).unwrap(),
            "::error title=ktstr FAIL [verify] verifier/s/k/tiny-1llc::100%25 wrong:%0Asecond \
             line%0Arerun: ktstr verifier x\n"
        );
        let passed = CellRecord {
            verdict: Verdict::Pass,
            ..record
        };
        assert_eq!(annotation(&passed), None);
    }
}
