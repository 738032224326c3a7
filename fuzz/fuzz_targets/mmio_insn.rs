//! The MSHV backend's decoder of the guest instruction behind an MMIO exit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ktstr_vmm::accel::mshv::mmio_insn::decode(data);
});
