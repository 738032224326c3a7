//! The verifier-log parsers: the rejection (the kernel's reason) and the per-program
//! statistics lines.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let log = String::from_utf8_lossy(data);
    let _ = ktstr_domain::verifier_log::rejection::find_rejection(&log);
    let _ = ktstr_domain::verifier_log::vstats::parse_verifier_stats(&log);
});
