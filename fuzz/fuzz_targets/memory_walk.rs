//! The guest-memory walker over a valid synthetic kernel image (page tables, `prog_idr`,
//! programs) that the input corrupts: after the first byte (4- or 5-level paging),
//! patches of `offset: u32 LE, len: u8, bytes`. A guest owns all of its memory.
#![no_main]

use ktstr_introspection::synthetic::{SynthProg, SyntheticGuest, sample_layout};
use ktstr_introspection::walk_programs;
use libfuzzer_sys::fuzz_target;

const SIZE: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let layout = sample_layout();
    let levels = if first & 1 == 1 { 5 } else { 4 };
    let progs = [
        SynthProg::named(1, 27, "ktstr_enqueue", 189),
        SynthProg::named(70, 27, "ktstr_dispatch", 55),
    ];
    let mut memory = SyntheticGuest::with_programs(&layout, SIZE, levels, &progs).into_memory();
    let bytes = memory.bytes_mut();
    while rest.len() >= 5 {
        let offset = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize % bytes.len();
        let len = usize::from(rest[4]).min(rest.len() - 5);
        let end = (offset + len).min(bytes.len());
        bytes[offset..end].copy_from_slice(&rest[5..5 + (end - offset)]);
        rest = &rest[5 + len..];
    }
    let _ = walk_programs(&layout, &memory);
});
