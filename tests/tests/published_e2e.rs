//! Published schedulers from crates.io (the scx project's `scx_bpfland` and `scx_layered`),
//! built once and cached, swept on real VMs: every cell passes with the default memory and
//! waits, the host reads the same `verified_insns` as the guest, full program names and
//! non-struct_ops programs are reported, and their coloured logs print clean.

mod common;

use std::fs;

use common::{
    KERNEL_6_12, assert_passed_host_read, cell_block, ensure_kernels, ktstr_in, published_manifest,
    stderr, stdout, tempfile_dir,
};

const PRESETS: [&str; 2] = ["tiny-1llc", "smt-2llc"];

/// Both schedulers in one sweep (two cells at a time, as on a user's 2-core machine), so
/// the test's VMs never compete with another sweep's for the cores.
#[test]
fn scx_bpfland_and_scx_layered_verify_attach_and_dispatch() {
    ensure_kernels();
    let dir = tempfile_dir("published");
    fs::write(dir.join("ktstr.toml"), published_manifest()).unwrap();
    let mut cmd = vec!["verifier", "--kernel", KERNEL_6_12, "--show", "all"];
    cmd.extend(PRESETS);
    let out = ktstr_in(&dir, &cmd);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert_cells(
        &text,
        "scx_bpfland",
        &["bpfland_select_cpu", "bpfland_enqueue", "bpfland_dispatch"],
    );
    assert_cells(
        &text,
        "scx_layered",
        &[
            "layered_select_cpu",
            "layered_dispatch",
            "scx_lib_init_probe",
        ],
    );
    assert!(text.contains("verifier summary: 4 ✅  0 ❌  0 🇽"), "{text}");
}

/// Every cell of `name` passed, with host-read numbers the guest agrees with, and
/// includes `progs` under their full names.
fn assert_cells(text: &str, name: &str, progs: &[&str]) {
    for preset in PRESETS {
        let block = cell_block(text, name, preset);
        assert_passed_host_read(&block);
        for prog in progs {
            assert!(
                block
                    .iter()
                    .any(|l| l.split_whitespace().next() == Some(prog)),
                "{prog} missing in {block:#?}"
            );
        }
        // The loaders colour their logs; none of it may reach the text as escapes.
        assert!(
            !block
                .iter()
                .any(|l| l.contains("\\u{1b}") || l.contains('\x1b')),
            "{block:#?}"
        );
    }
}
