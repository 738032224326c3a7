//! The walker over arbitrary and corrupted memory images: it may fail, but never panics
//! and always finishes quickly.

use std::time::{Duration, Instant};

use ktstr_introspection::synthetic::{SynthProg, SyntheticGuest, VecMemory, sample_layout};
use ktstr_introspection::{Layout, walk_programs};
use proptest::prelude::*;

const RAM: u64 = 1 << 20;
/// Generous: a healthy walk of these images takes well under a millisecond.
const DEADLINE: Duration = Duration::from_secs(2);

fn walk_quickly(layout: &Layout, mem: &VecMemory) {
    let start = Instant::now();
    let _ = walk_programs(layout, mem);
    assert!(
        start.elapsed() < DEADLINE,
        "walk took {:?}",
        start.elapsed()
    );
}

/// A healthy guest with programs at scattered ids (a three-level tree) on 4- or 5-level
/// paging, plus the addresses a mutation may aim at.
fn base(levels: u8) -> (SyntheticGuest, Vec<u64>) {
    let layout = sample_layout();
    let progs: Vec<SynthProg> = [1u32, 2, 3, 64, 65, 700, 4097]
        .iter()
        .map(|&id| SynthProg::named(id, 27, &format!("prog_number_{id}_long_name"), id * 10))
        .collect();
    let mut g = SyntheticGuest::new(&layout, RAM, levels);
    let mut targets = Vec::new();
    let entries: Vec<(u64, u64)> = progs
        .iter()
        .map(|p| {
            let prog = g.add_program(p);
            targets.push(prog);
            (u64::from(p.id), prog)
        })
        .collect();
    g.set_registry(&entries);
    targets.extend(g.nodes().iter().map(|n| n | 2));
    targets.extend(g.nodes());
    (g, targets)
}

/// One corruption: a value written at an 8-byte aligned physical offset.
#[derive(Debug, Clone)]
enum Value {
    Raw(u64),
    /// One of the image's own pointers (nodes, node entries, programs), maybe offset.
    Known(usize, i16),
    /// A present page-table entry pointing somewhere in RAM, maybe a large page.
    Pte(u32, bool),
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::Raw),
        (0u64..5000).prop_map(Value::Raw),
        (any::<usize>(), any::<i16>()).prop_map(|(i, d)| Value::Known(i, d)),
        (any::<u32>(), any::<bool>()).prop_map(|(p, l)| Value::Pte(p, l)),
    ]
}

fn resolve(v: &Value, targets: &[u64]) -> u64 {
    match *v {
        Value::Raw(x) => x,
        Value::Known(i, d) => targets[i % targets.len()].wrapping_add_signed(i64::from(d)),
        Value::Pte(p, large) => {
            ((u64::from(p) % RAM) & !0xfff) | 0b11 | if large { 1 << 7 } else { 0 }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(
        seed in proptest::collection::vec(any::<u8>(), 64..4096),
        fill in any::<u8>(),
    ) {
        let layout = sample_layout();
        // Random bytes repeated over the whole of RAM, image and tables included.
        let mut mem = vec![fill; RAM as usize];
        for (i, b) in mem.iter_mut().enumerate().step_by(3) {
            *b = seed[i % seed.len()];
        }
        walk_quickly(&layout, &VecMemory::new(mem));
    }

    #[test]
    fn corrupted_images_never_panic(
        five in any::<bool>(),
        edits in proptest::collection::vec((any::<u64>(), value()), 1..24),
    ) {
        let layout = sample_layout();
        let (mut g, targets) = base(if five { 5 } else { 4 });
        let used = g.alloc(8, 8);
        for (at, v) in &edits {
            // Mostly where the structures are; RAM past them holds nothing to break.
            let off = (0x1_0000 + at % (used - 0x1_0000)) & !7;
            g.write_phys(off, &resolve(v, &targets).to_le_bytes());
        }
        walk_quickly(&layout, &g.into_memory());
    }

    #[test]
    fn self_referencing_nodes_never_hang(
        links in proptest::collection::vec((any::<usize>(), 0u64..64, any::<usize>()), 1..16),
        shift_edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
    ) {
        let layout = sample_layout();
        let (mut g, _) = base(4);
        let nodes = g.nodes().to_vec();
        let o = layout.offsets.clone();
        for (from, slot, to) in &links {
            let from = nodes[from % nodes.len()];
            let to = nodes[to % nodes.len()];
            g.write_virt(from + o.node_slots.offset + slot * 8, &(to | 2).to_le_bytes());
        }
        for (node, shift) in &shift_edits {
            g.write_virt(nodes[node % nodes.len()] + o.node_shift.offset, &[*shift]);
        }
        walk_quickly(&layout, &g.into_memory());
    }
}

#[test]
fn the_uncorrupted_base_image_walks() {
    for levels in [4, 5] {
        let (g, _) = base(levels);
        let progs = walk_programs(&sample_layout(), &g.into_memory()).unwrap();
        assert_eq!(progs.len(), 7);
        assert_eq!(progs[6].name, "prog_number_4097_long_name");
    }
}
