//! The sweep as veristat's CSV (`veristat -o csv`), so the kernel community's compare
//! tooling (`veristat -C base.csv new.csv`) reads ktstr's results unchanged.
//!
//! Mapping (docs/ci.md): `file_name` is the cell's name, `prog_name` the program's,
//! `verdict` is `success` for a loaded program and `failure` for the program the verifier
//! rejected, `total_insns` is `verified_insns` (for a rejection, the instructions
//! processed before it). Columns veristat fills from its own run (duration, states) are
//! left out rather than invented; veristat compares the columns both files have.

use ktstr_domain::results::report::SweepReport;

/// veristat's names for the columns ktstr has.
pub const COLUMNS: [&str; 4] = ["file_name", "prog_name", "verdict", "total_insns"];

/// One row per program per cell record, in record order; a header first.
pub fn render_csv(report: &SweepReport) -> Result<String, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(COLUMNS)?;
    for record in &report.records {
        let Some(run) = &record.run else { continue };
        let mut file_name = record.cell.to_string();
        if let Some(boot) = record.boot {
            file_name.push_str(&format!("#boot{}", boot.index));
        }
        for prog in &run.judgment.progs {
            out.write_record([
                file_name.as_str(),
                &prog.name,
                "success",
                &prog.verified_insns.to_string(),
            ])?;
        }
        if let Some(rejected) = &run.judgment.rejection {
            let insns = rejected
                .processed_insns
                .map_or_else(String::new, |n| n.to_string());
            out.write_record([file_name.as_str(), &rejected.program, "failure", &insns])?;
        }
    }
    let bytes = out.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes).expect("the CSV writer wrote UTF-8 fields"))
}
