//! Kconfig fragments: ktstr's own and the user's `--kconfig` files.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ktstr_domain::kernel::kconfig::parse_fragment(text);
        let _ = ktstr_domain::kernel::config_variant::parse_user_fragment("fuzz.kconfig", text);
        let _ = ktstr_domain::kernel::kconfig::KernelConfig::parse(text);
    }
});
