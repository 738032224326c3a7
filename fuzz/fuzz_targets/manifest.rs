//! The scheduler manifest (`ktstr.toml`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ktstr_domain::plan::manifest::parse_manifest(text);
    }
});
