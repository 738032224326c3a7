//! Which kernel image QEMU boots: the uncompressed ELF `vmlinux` through its PVH entry when
//! it has one, so the guest skips the bzImage's decompression stub; the bzImage otherwise.

use std::fs::File;
use std::path::Path;

use object::elf::{FileHeader64, PT_NOTE};
use object::read::ReadCache;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, ReadRef};

/// The ELF note type of the 32-bit PVH entry point (Xen's `XEN_ELFNOTE_PHYS32_ENTRY`).
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// The owner name of that note.
const XEN_NOTE_OWNER: &[u8] = b"Xen";

/// The image to pass to `-kernel`: `vmlinux` when it is an ELF with a PVH entry note, else
/// `bzimage`. A `vmlinux` that cannot be read is not an error here: the bzImage still boots.
pub fn boot_image<'a>(bzimage: &'a Path, vmlinux: Option<&'a Path>) -> &'a Path {
    match vmlinux {
        Some(elf) if has_pvh_entry(elf) => elf,
        _ => bzimage,
    }
}

/// Whether the ELF at `path` carries a PVH entry note in a `PT_NOTE` segment, where QEMU's
/// loader looks for it. Reads only the headers and notes, not the whole image.
pub fn has_pvh_entry(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let cache = ReadCache::new(file);
    pvh_note_in(&cache).unwrap_or(false)
}

fn pvh_note_in<'data, R: ReadRef<'data>>(data: R) -> object::read::Result<bool> {
    let header = FileHeader64::<Endianness>::parse(data)?;
    let endian = header.endian()?;
    for segment in header.program_headers(endian, data)? {
        if segment.p_type(endian) != PT_NOTE {
            continue;
        }
        let Some(mut notes) = segment.notes(endian, data)? else {
            continue;
        };
        while let Some(note) = notes.next()? {
            if note.name() == XEN_NOTE_OWNER && note.n_type(endian) == XEN_ELFNOTE_PHYS32_ENTRY {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use object::write::elf::{ProgramHeader as WriteProgramHeader, Writer};

    use super::*;

    /// A minimal 64-bit ELF with one `PT_NOTE` segment holding a note of `owner` and `kind`.
    fn elf_with_note(owner: &[u8], kind: u32) -> Vec<u8> {
        let mut note = Vec::new();
        let padded = |n: usize| n.div_ceil(4) * 4;
        let name_len = owner.len() + 1;
        note.extend_from_slice(&(name_len as u32).to_le_bytes());
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&kind.to_le_bytes());
        note.extend_from_slice(owner);
        note.resize(12 + padded(name_len), 0);
        note.extend_from_slice(&0x0100_0000u32.to_le_bytes());

        let mut out = Vec::new();
        let mut w = Writer::new(Endianness::Little, true, &mut out);
        w.reserve_file_header();
        w.reserve_program_headers(1);
        let offset = w.reserve(note.len(), 4);
        w.write_file_header(&object::write::elf::FileHeader {
            os_abi: 0,
            abi_version: 0,
            e_type: object::elf::ET_EXEC,
            e_machine: object::elf::EM_X86_64,
            e_entry: 0x0100_0000,
            e_flags: 0,
        })
        .unwrap();
        w.write_align_program_headers();
        w.write_program_header(&WriteProgramHeader {
            p_type: PT_NOTE,
            p_flags: 0,
            p_offset: offset as u64,
            p_vaddr: 0,
            p_paddr: 0,
            p_filesz: note.len() as u64,
            p_memsz: note.len() as u64,
            p_align: 4,
        });
        w.write_align(4);
        w.write(&note);
        out
    }

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn a_vmlinux_with_the_pvh_note_is_booted_directly() {
        let elf = file_with(&elf_with_note(b"Xen", XEN_ELFNOTE_PHYS32_ENTRY));
        let bz = Path::new("/k/bzImage");
        assert!(has_pvh_entry(elf.path()));
        assert_eq!(boot_image(bz, Some(elf.path())), elf.path());
    }

    #[test]
    fn anything_else_falls_back_to_the_bzimage() {
        let bz = Path::new("/k/bzImage");
        // Another Xen note, the right type under another owner, not an ELF, no file.
        let other_note = file_with(&elf_with_note(b"Xen", 1));
        let other_owner = file_with(&elf_with_note(b"GNU", XEN_ELFNOTE_PHYS32_ENTRY));
        let not_elf = file_with(b"MZ this is a bzImage, not an ELF");
        for elf in [other_note.path(), other_owner.path(), not_elf.path()] {
            assert!(!has_pvh_entry(elf), "{}", elf.display());
            assert_eq!(boot_image(bz, Some(elf)), bz);
        }
        assert_eq!(boot_image(bz, Some(Path::new("/no/such/vmlinux"))), bz);
        assert_eq!(boot_image(bz, None), bz);
    }
}
