//! The host's decoder of the guest's frame channel: any bytes a guest writes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ktstr_domain::protocol::wire::decode_all(data);
});
