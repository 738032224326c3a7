//! What the VMM's integration tests share: tiny hand-made guests packed as ELF "kernels".
#![allow(dead_code)] // each test file uses part of it

pub mod mshv;

/// Where the tiny guest is linked and entered (the kernel's usual 1 MiB and up).
pub const LOAD: u64 = 0x10_0000;

/// A minimal ELF64 executable whose one segment, `code`, loads and starts at `LOAD`; with
/// `pvh_entry`, a Xen `PHYS32_ENTRY` note names that 32-bit entry too, as a kernel built
/// with `CONFIG_PVH` does.
pub fn tiny_elf(code: &[u8], pvh_entry: Option<u32>) -> Vec<u8> {
    const HEADER: u64 = 64;
    const PHDR: u64 = 56;
    let phdrs: u16 = if pvh_entry.is_some() { 2 } else { 1 };
    let code_at = HEADER + PHDR * u64::from(phdrs);
    let mut elf = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
    elf.resize(16, 0);
    elf.extend(2u16.to_le_bytes()); // ET_EXEC
    elf.extend(0x3eu16.to_le_bytes()); // x86-64
    elf.extend(1u32.to_le_bytes());
    elf.extend(LOAD.to_le_bytes()); // entry
    elf.extend(HEADER.to_le_bytes()); // program headers right after this header
    elf.extend(0u64.to_le_bytes()); // no sections
    elf.extend(0u32.to_le_bytes());
    elf.extend((HEADER as u16).to_le_bytes());
    elf.extend((PHDR as u16).to_le_bytes());
    elf.extend(phdrs.to_le_bytes());
    elf.extend([0u8; 6]);
    elf.extend(1u32.to_le_bytes()); // PT_LOAD
    elf.extend(5u32.to_le_bytes()); // read + execute
    elf.extend(code_at.to_le_bytes());
    elf.extend(LOAD.to_le_bytes());
    elf.extend(LOAD.to_le_bytes());
    elf.extend((code.len() as u64).to_le_bytes());
    elf.extend((code.len() as u64).to_le_bytes());
    elf.extend(0x1000u64.to_le_bytes());
    // The note: namesz, descsz, type 18 (PHYS32_ENTRY), "Xen\0", the entry.
    let note: Vec<u8> = pvh_entry
        .map(|entry| {
            [4u32, 4, 18]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .chain(*b"Xen\0")
                .chain(entry.to_le_bytes())
                .collect()
        })
        .unwrap_or_default();
    if pvh_entry.is_some() {
        elf.extend(4u32.to_le_bytes()); // PT_NOTE
        elf.extend(4u32.to_le_bytes()); // read
        elf.extend((code_at + code.len() as u64).to_le_bytes());
        elf.extend([0u8; 16]); // no addresses
        elf.extend((note.len() as u64).to_le_bytes());
        elf.extend((note.len() as u64).to_le_bytes());
        elf.extend(4u64.to_le_bytes());
    }
    elf.extend(code);
    elf.extend(note);
    elf
}
