//! Topology shapes (`1n2l4c2t`) as the manifest and the guest's report give them.
#![no_main]

use ktstr_domain::shape::topology::Topology;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(topology) = text.parse::<Topology>()
    {
        // A shape that parses prints back to one that parses to the same.
        assert_eq!(
            topology.to_string().parse::<Topology>().ok(),
            Some(topology)
        );
    }
});
