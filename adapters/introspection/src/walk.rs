//! Walking `prog_idr` (an IDR, i.e. an xarray radix tree) and reading each program.
//! Every loop is bounded by a cap, so a corrupt or hostile guest yields an error, never
//! a hang or an unbounded allocation.

use std::collections::HashSet;

use ktstr_domain::verifier_log::prog::ProgStat;
use ktstr_ports::GuestMemory;

use crate::error::WalkError;
use crate::kernel_layout::Layout;
use crate::name::full_name;
use crate::translate::AddressSpace;

/// More programs than any real system loads; past it the registry is taken as corrupt.
pub const MAX_PROGRAMS: usize = 65536;
/// Radix-tree nodes visited at most: enough to index [`MAX_PROGRAMS`] programs twice over.
pub const MAX_NODES: usize = 4096;
/// Bytes of `bpf_prog_aux.ksym.name` read at most (`KSYM_NAME_LEN` is 512).
pub const MAX_KSYM_NAME: u64 = 512;
/// Bytes of `bpf_prog_aux.name` read at most (`BPF_OBJ_NAME_LEN` is 16).
const MAX_SHORT_NAME: u64 = 64;
/// Highest node shift an index of 64 bits can need.
const MAX_SHIFT: u64 = 63;

/// Entries below this that carry the internal tag are sibling, retry or zero entries.
const INTERNAL_LIMIT: u64 = 4096;

/// What a slot of the tree holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Empty,
    /// Sibling, retry, zero or value entries: no program there.
    Skip,
    Node(u64),
    Leaf(u64),
}

fn classify(entry: u64) -> Slot {
    match entry {
        0 => Slot::Empty,
        e if e & 3 == 2 && e > INTERNAL_LIMIT => Slot::Node(e - 2),
        e if e & 3 == 2 => Slot::Skip,
        // Value entries (bit 0) never hold pointers.
        e if e & 1 == 1 => Slot::Skip,
        e => Slot::Leaf(e),
    }
}

/// Every program in the guest's `prog_idr`, sorted by id.
pub fn walk_programs(
    layout: &Layout,
    memory: &dyn GuestMemory,
) -> Result<Vec<ProgStat>, WalkError> {
    let space = AddressSpace::new(layout, memory)?;
    let progs = leaf_pointers(layout, &space)?;
    let mut stats = progs
        .into_iter()
        .map(|prog| read_program(layout, &space, prog))
        .collect::<Result<Vec<_>, _>>()?;
    stats.sort();
    Ok(stats)
}

/// The `struct bpf_prog *` in every occupied slot of the tree.
fn leaf_pointers(layout: &Layout, space: &AddressSpace<'_>) -> Result<Vec<u64>, WalkError> {
    let o = &layout.offsets;
    let slots = layout.slots_per_node();
    if !(2..=256).contains(&slots) || !slots.is_power_of_two() {
        return Err(WalkError::Registry(format!("{slots} slots per node")));
    }
    let chunk_shift = u64::from(slots.trailing_zeros());
    let head_addr = layout.symbols.prog_idr + o.idr_rt + o.xa_head.offset;
    let head = space.read_u64(head_addr)?;

    let mut leaves = Vec::new();
    let push_leaf = |ptr: u64, leaves: &mut Vec<u64>| {
        if leaves.len() >= MAX_PROGRAMS {
            return Err(WalkError::TooMany {
                what: "programs",
                limit: MAX_PROGRAMS,
            });
        }
        leaves.push(ptr);
        Ok(())
    };
    // Depth first; the caller sorts by id, so visiting order does not matter.
    let mut stack: Vec<(u64, Option<u64>)> = match classify(head) {
        Slot::Empty | Slot::Skip => return Ok(leaves),
        Slot::Leaf(ptr) => {
            push_leaf(ptr, &mut leaves)?;
            return Ok(leaves);
        }
        Slot::Node(node) => vec![(node, None)],
    };
    let mut visited = HashSet::new();
    let mut buf = vec![0u8; (slots * 8) as usize];
    while let Some((node, parent_shift)) = stack.pop() {
        if !visited.insert(node) {
            return Err(WalkError::Registry(format!(
                "node {node:#x} is reachable twice (a cycle or shared subtree)"
            )));
        }
        if visited.len() > MAX_NODES {
            return Err(WalkError::TooMany {
                what: "radix-tree nodes",
                limit: MAX_NODES,
            });
        }
        let shift = space.read_uint(node + o.node_shift.offset, o.node_shift.size)?;
        let expected = parent_shift.map(|p| p.checked_sub(chunk_shift));
        let shape_ok = shift <= MAX_SHIFT
            && shift.is_multiple_of(chunk_shift)
            && expected.is_none_or(|e| e == Some(shift));
        if !shape_ok {
            return Err(WalkError::Registry(format!(
                "node {node:#x} has shift {shift} (parent's: {parent_shift:?})"
            )));
        }
        space.read(node + o.node_slots.offset, &mut buf)?;
        for chunk in buf.chunks_exact(8) {
            let entry = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
            match classify(entry) {
                Slot::Empty | Slot::Skip => {}
                Slot::Node(_) if shift == 0 => {
                    return Err(WalkError::Registry(format!(
                        "leaf-level node {node:#x} points to another node"
                    )));
                }
                Slot::Node(child) => stack.push((child, Some(shift))),
                // A leaf above level 0 is a multi-index entry: one program all the same.
                Slot::Leaf(ptr) => push_leaf(ptr, &mut leaves)?,
            }
        }
    }
    Ok(leaves)
}

fn read_program(
    layout: &Layout,
    space: &AddressSpace<'_>,
    prog: u64,
) -> Result<ProgStat, WalkError> {
    let o = &layout.offsets;
    let field = |base: u64, off: u64| {
        base.checked_add(off).ok_or_else(|| WalkError::Unmapped {
            vaddr: base,
            reason: "field address overflows".into(),
        })
    };
    let prog_type = space.read_uint(field(prog, o.prog_type.offset)?, o.prog_type.size)?;
    let aux = space.read_uint(field(prog, o.prog_aux.offset)?, o.prog_aux.size)?;
    if aux == 0 {
        return Err(WalkError::Registry(format!(
            "program at {prog:#x} has no aux"
        )));
    }
    let id = space.read_uint(field(aux, o.aux_id.offset)?, o.aux_id.size)?;
    let verified_insns = space.read_uint(
        field(aux, o.aux_verified_insns.offset)?,
        o.aux_verified_insns.size,
    )?;
    let short = read_cstr(
        space,
        field(aux, o.aux_name.offset)?,
        o.aux_name.size.min(MAX_SHORT_NAME),
    )?;
    let ksym = read_cstr(
        space,
        field(aux, o.aux_ksym_name.offset)?,
        o.aux_ksym_name.size.min(MAX_KSYM_NAME),
    )?;
    let narrow = |v: u64, what: &str| {
        u32::try_from(v)
            .map_err(|_| WalkError::Registry(format!("program {what} {v} exceeds 32 bits")))
    };
    Ok(ProgStat {
        id: narrow(id, "id")?,
        prog_type: narrow(prog_type, "type")?,
        name: full_name(&short, &ksym),
        verified_insns: narrow(verified_insns, "verified_insns")?,
    })
}

/// A NUL-terminated string from a buffer of at most `cap` bytes; invalid UTF-8 is
/// replaced, not refused.
fn read_cstr(space: &AddressSpace<'_>, vaddr: u64, cap: u64) -> Result<String, WalkError> {
    let mut buf = vec![0u8; cap as usize];
    space.read(vaddr, &mut buf)?;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_classified_like_the_kernel_does() {
        assert_eq!(classify(0), Slot::Empty);
        assert_eq!(
            classify(0xffff_8880_0123_4002),
            Slot::Node(0xffff_8880_0123_4000)
        );
        assert_eq!(classify(2), Slot::Skip); // sibling 0
        assert_eq!(classify(1026), Slot::Skip); // retry
        assert_eq!(classify(1030), Slot::Skip); // zero
        assert_eq!(classify(0x15), Slot::Skip); // value
        assert_eq!(
            classify(0xffff_c900_0000_0000),
            Slot::Leaf(0xffff_c900_0000_0000)
        );
    }
}
