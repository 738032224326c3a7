//! ELF symbols and `.BTF` of a corrupted `vmlinux`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ktstr_introspection::Layout::from_elf(data, Path::new("vmlinux"));
});
