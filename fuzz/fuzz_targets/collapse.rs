//! Cycle collapse of a verifier log (the guest sends the log; any text).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let log = String::from_utf8_lossy(data);
    let _ = ktstr_domain::verifier_log::collapse::collapse(&log);
});
