//! `--kernel` specs and kernel versions.
#![no_main]

use ktstr_domain::kernel::spec::{KernelSpec, KernelVersion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<KernelSpec>();
        let _ = text.parse::<KernelVersion>();
        let _ = ktstr_domain::kernel::spec::sanitize_label(text);
    }
});
