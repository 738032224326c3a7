//! The walker over synthetic guest images: every translation path, the radix tree's
//! shapes, name recovery, and the ways a corrupt guest is refused.

use ktstr_domain::verifier_log::prog::ProgStat;
use ktstr_introspection::synthetic::{SynthProg, SyntheticGuest, VecMemory, sample_layout};
use ktstr_introspection::{AddressSpace, Layout, START_KERNEL_MAP, WalkError, walk_programs};

const MIB: u64 = 1 << 20;

fn stat(p: &SynthProg, name: &str) -> ProgStat {
    ProgStat {
        id: p.id,
        prog_type: p.prog_type,
        name: name.to_string(),
        verified_insns: p.verified_insns,
    }
}

fn fixture_progs() -> Vec<SynthProg> {
    vec![
        SynthProg::named(3, 27, "ktstr_select_cpu", 1234),
        SynthProg::named(4, 27, "ktstr_enqueue", 88),
        SynthProg::named(5, 27, "ktstr_dispatch_long_name", 4096),
        SynthProg::named(70, 1, "tracepoint_x", 7),
        SynthProg::named(4100, 2, "far_away", 1),
    ]
}

#[test]
fn walks_a_multi_level_tree_on_both_paging_depths() {
    let layout = sample_layout();
    let progs = fixture_progs();
    for levels in [4, 5] {
        let guest = SyntheticGuest::with_programs(&layout, 4 * MIB, levels, &progs);
        // Ids up to 4100 need three levels of 64-slot nodes.
        assert!(guest.nodes().len() >= 4, "{}", guest.nodes().len());
        let mem = guest.into_memory();
        assert_eq!(AddressSpace::new(&layout, &mem).unwrap().levels(), levels);
        let got = walk_programs(&layout, &mem).unwrap();
        let want: Vec<ProgStat> = vec![
            stat(&progs[0], "ktstr_select_cpu"),
            stat(&progs[1], "ktstr_enqueue"),
            stat(&progs[2], "ktstr_dispatch_long_name"),
            stat(&progs[3], "tracepoint_x"),
            stat(&progs[4], "far_away"),
        ];
        assert_eq!(got, want, "levels {levels}");
    }
}

#[test]
fn an_empty_registry_and_a_lone_head_entry() {
    let layout = sample_layout();
    let mem = SyntheticGuest::new(&layout, MIB, 4).into_memory();
    assert_eq!(walk_programs(&layout, &mem).unwrap(), vec![]);

    let mut g = SyntheticGuest::new(&layout, MIB, 4);
    let p = SynthProg::named(0, 9, "solo", 5);
    let prog = g.add_program(&p);
    g.set_registry(&[(0, prog)]);
    assert_eq!(
        walk_programs(&layout, &g.into_memory()).unwrap(),
        vec![stat(&p, "solo")]
    );
}

#[test]
fn retry_zero_value_and_sibling_entries_are_skipped() {
    let layout = sample_layout();
    let mut g = SyntheticGuest::new(&layout, MIB, 4);
    let p = SynthProg::named(1, 2, "kept", 3);
    let prog = g.add_program(&p);
    g.set_registry(&[(1, prog), (2, 1026), (3, 1030), (4, 0x11), (5, 2)]);
    assert_eq!(
        walk_programs(&layout, &g.into_memory()).unwrap(),
        vec![stat(&p, "kept")]
    );
}

#[test]
fn names_fall_back_to_the_short_name_without_a_kallsyms_name() {
    let layout = sample_layout();
    let mut p = SynthProg::named(1, 2, "not_jited_but_long", 3);
    p.ksym_name.clear();
    let mut odd = SynthProg::named(2, 2, "odd", 3);
    odd.ksym_name = "bpf_prog_zzzz_odd_and_more".into();
    let mem = SyntheticGuest::with_programs(&layout, MIB, 4, &[p, odd]).into_memory();
    let names: Vec<String> = walk_programs(&layout, &mem)
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["not_jited_but_l", "odd"]);
}

#[test]
fn invalid_utf8_and_unterminated_names_are_read_lossily_and_bounded() {
    let layout = sample_layout();
    let o = &layout.offsets;
    let mut g = SyntheticGuest::new(&layout, MIB, 4);
    let prog = g.add_program(&SynthProg::named(1, 2, "x", 3));
    g.set_registry(&[(1, prog)]);
    let aux = {
        let mem = g.memory();
        AddressSpace::new(&layout, &mem)
            .unwrap()
            .read_u64(prog + o.prog_aux.offset)
            .unwrap()
    };
    let mut ksym = b"bpf_prog_00112233445566ff_x\xffy".to_vec();
    // No NUL anywhere in the buffer: the read stops at the field's end.
    ksym.resize(o.aux_ksym_name.size as usize, b'z');
    g.write_virt(aux + o.aux_ksym_name.offset, &ksym);
    let got = walk_programs(&layout, &g.into_memory()).unwrap();
    assert!(got[0].name.starts_with("x\u{fffd}yzzz"), "{}", got[0].name);
    assert_eq!(got[0].name.len(), ksym.len() - 26 + 2);
}

/// The bpf_prog page mapped through a large page instead of a 4 KiB one.
fn large_page_guest(layout: &Layout, levels: u8, page_shift: u32) -> (VecMemory, ProgStat) {
    let mut g = SyntheticGuest::new(layout, 8 * MIB, levels);
    let p = SynthProg::named(1, 5, "big_page", 42);
    // Plant normally, then map a second alias of the program page through a large page.
    let prog = g.add_program(&p);
    let size = 1u64 << page_shift;
    let region = if page_shift == 30 {
        0
    } else {
        g.alloc(size, size)
    };
    // Canonical under both depths, 1 GiB aligned, and used by nothing else.
    let alias_base = 0xffff_e000_0000_0000;
    g.map(alias_base, region, page_shift);
    // Copy the prog struct into the large page at an offset and point the registry at it.
    let offset = 3 * 4096 + 0x100;
    let mem = g.memory();
    let mut prog_bytes = vec![0u8; 64];
    let space = AddressSpace::new(layout, &mem).unwrap();
    space.read(prog, &mut prog_bytes).unwrap();
    g.write_phys(region + offset, &prog_bytes);
    g.set_registry(&[(1, alias_base + offset)]);
    (g.into_memory(), stat(&p, "big_page"))
}

#[test]
fn large_pages_translate() {
    let layout = sample_layout();
    for levels in [4, 5] {
        for shift in [21, 30] {
            let (mem, want) = large_page_guest(&layout, levels, shift);
            assert_eq!(
                walk_programs(&layout, &mem).unwrap(),
                vec![want],
                "levels {levels}, page shift {shift}"
            );
        }
    }
}

#[test]
fn image_direct_map_and_vmalloc_addresses_translate() {
    let layout = sample_layout();
    let mut g = SyntheticGuest::new(&layout, MIB, 5);
    let prog = g.add_program(&SynthProg::named(1, 1, "p", 1));
    let pa = g.alloc(4096, 4096);
    let mem = g.into_memory();
    let space = AddressSpace::new(&layout, &mem).unwrap();
    let img = layout.symbols.prog_idr;
    assert_eq!(space.translate(img).unwrap().raw(), img - START_KERNEL_MAP);
    assert_eq!(
        space.translate(0xff11_0000_0000_0000 + pa).unwrap().raw(),
        pa
    );
    assert!(space.translate(prog).is_ok());
    assert!(matches!(
        space.translate(prog + 4096),
        Err(WalkError::Unmapped { .. })
    ));
    // Not canonical for 5-level paging.
    assert!(matches!(
        space.translate(0xfe00_0000_0000_0000),
        Err(WalkError::Unmapped { .. })
    ));
}

fn write_u64(g: &mut SyntheticGuest, vaddr: u64, value: u64) {
    g.write_virt(vaddr, &value.to_le_bytes());
}

#[test]
fn a_cycle_in_the_tree_is_an_error() {
    let layout = sample_layout();
    let mut g = SyntheticGuest::with_programs(&layout, 4 * MIB, 4, &fixture_progs());
    let root = g.nodes()[0];
    let slots = layout.offsets.node_slots.offset;
    // The root's last slot points back at the root.
    write_u64(&mut g, root + slots + 63 * 8, root | 2);
    let err = walk_programs(&layout, &g.memory()).unwrap_err();
    assert!(matches!(err, WalkError::Registry(_)), "{err}");

    // A shared subtree: two root slots naming the same child.
    let mut g = SyntheticGuest::with_programs(&layout, 4 * MIB, 4, &fixture_progs());
    let root = g.nodes()[0];
    let child = g.nodes()[1];
    write_u64(&mut g, root + slots + 62 * 8, child | 2);
    let err = walk_programs(&layout, &g.into_memory()).unwrap_err();
    assert!(err.to_string().contains("reachable twice"), "{err}");
}

#[test]
fn wild_pointers_are_errors_not_panics() {
    let layout = sample_layout();
    let progs = [SynthProg::named(1, 1, "p", 1)];
    let head = layout.symbols.prog_idr + layout.offsets.xa_head.offset;
    for bad in [
        0xffff_c900_dead_0000u64, // unmapped vmalloc
        0x0000_1234_5678_0000,    // user half
        0x8000_0000_0000_0000,    // not canonical
        0xffff_8880_ffff_f000,    // direct map beyond RAM
        u64::MAX - 3,             // wraps
    ] {
        let mut g = SyntheticGuest::with_programs(&layout, MIB, 4, &progs);
        write_u64(&mut g, head, bad);
        assert!(walk_programs(&layout, &g.memory()).is_err(), "{bad:#x}");
        write_u64(&mut g, head, bad.wrapping_add(2) & !1 | 2);
        assert!(
            walk_programs(&layout, &g.into_memory()).is_err(),
            "node {bad:#x}"
        );
    }
}

#[test]
fn a_bad_paging_state_is_refused() {
    let layout = sample_layout();
    let sym = layout.symbols.clone();
    let mut g = SyntheticGuest::new(&layout, MIB, 4);
    write_u64(&mut g, sym.page_offset_base, 0x1000);
    assert!(matches!(
        walk_programs(&layout, &g.memory()),
        Err(WalkError::Paging(_))
    ));
    let mut g = SyntheticGuest::new(&layout, MIB, 4);
    g.write_virt(sym.pgdir_shift.unwrap(), &48u32.to_le_bytes());
    let err = walk_programs(&layout, &g.memory()).unwrap_err();
    assert!(err.to_string().contains("pgdir_shift"), "{err}");
    let mut g = SyntheticGuest::new(&layout, MIB, 4);
    write_u64(&mut g, sym.phys_base, 1 << 40);
    assert!(walk_programs(&layout, &g.memory()).is_err());
    // RAM smaller than the image.
    assert!(walk_programs(&layout, &VecMemory::new(vec![0; 4096])).is_err());
}

#[test]
fn program_count_is_capped() {
    let layout = sample_layout();
    let mut g = SyntheticGuest::new(&layout, 4 * MIB, 4);
    let prog = g.add_program(&SynthProg::named(1, 1, "p", 1));
    // Far more leaves than the cap, all pointing at one program, over few nodes: the
    // node cap would not stop this, the program cap must.
    let entries: Vec<(u64, u64)> = (0..(ktstr_introspection::MAX_PROGRAMS as u64 + 64))
        .map(|i| (i, prog))
        .collect();
    g.set_registry(&entries);
    let err = walk_programs(&layout, &g.into_memory()).unwrap_err();
    assert!(
        matches!(
            err,
            WalkError::TooMany {
                what: "programs",
                ..
            }
        ),
        "{err}"
    );
}
