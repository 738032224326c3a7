//! The few ELF facts the dynamic loader acts on, read from program headers only
//! (as the loader does), so binaries with stripped section headers still work.

use object::Endianness;
use object::elf::{
    DT_NEEDED, DT_NULL, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_STRSZ, DT_STRTAB, FileHeader32,
    FileHeader64, PT_LOAD,
};
use object::read::StringTable;
use object::read::elf::{Dyn, FileHeader, ProgramHeader};

/// What decides whether two objects can live in one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ElfKind {
    pub is_64: bool,
    pub machine: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ElfInfo {
    pub kind: ElfKind,
    /// PT_INTERP: the loader the kernel maps for this executable.
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    pub soname: Option<String>,
    /// DT_RPATH entries, split on ':'.
    pub rpath: Vec<String>,
    /// DT_RUNPATH entries, split on ':'.
    pub runpath: Vec<String>,
}

/// The class and machine only; cheap enough to vet every search candidate.
pub(crate) fn kind(data: &[u8]) -> Result<ElfKind, String> {
    match class_of(data)? {
        true => kind_as::<FileHeader64<Endianness>>(data),
        false => kind_as::<FileHeader32<Endianness>>(data),
    }
}

pub(crate) fn parse(data: &[u8]) -> Result<ElfInfo, String> {
    match class_of(data)? {
        true => parse_as::<FileHeader64<Endianness>>(data),
        false => parse_as::<FileHeader32<Endianness>>(data),
    }
}

fn class_of(data: &[u8]) -> Result<bool, String> {
    if data.get(..4) != Some(&b"\x7fELF"[..]) {
        return Err("no ELF magic".into());
    }
    match data.get(4) {
        Some(1) => Ok(false),
        Some(2) => Ok(true),
        _ => Err("unknown ELF class".into()),
    }
}

fn kind_as<Elf: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<ElfKind, String> {
    let header = Elf::parse(data).map_err(|e| e.to_string())?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    Ok(ElfKind {
        is_64: header.is_type_64(),
        machine: header.e_machine(endian),
    })
}

fn parse_as<Elf: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<ElfInfo, String> {
    let header = Elf::parse(data).map_err(|e| e.to_string())?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    let phdrs = header
        .program_headers(endian, data)
        .map_err(|e| e.to_string())?;

    let mut info = ElfInfo {
        kind: ElfKind {
            is_64: header.is_type_64(),
            machine: header.e_machine(endian),
        },
        interpreter: None,
        needed: Vec::new(),
        soname: None,
        rpath: Vec::new(),
        runpath: Vec::new(),
    };
    let mut dynamic = None;
    for ph in phdrs {
        if let Some(interp) = ph.interpreter(endian, data).map_err(|e| e.to_string())? {
            info.interpreter = Some(String::from_utf8_lossy(interp).into_owned());
        }
        if let Some(entries) = ph.dynamic(endian, data).map_err(|e| e.to_string())? {
            dynamic = Some(entries);
        }
    }
    // Fully static: nothing for the loader to do.
    let Some(dynamic) = dynamic else {
        return Ok(info);
    };

    let entries: Vec<(u32, u64)> = dynamic
        .iter()
        .map(|d| (d.tag32(endian).unwrap_or(u32::MAX), d.d_val(endian).into()))
        .take_while(|&(tag, _)| tag != DT_NULL)
        .collect();
    let lookup = |wanted: u32| {
        entries
            .iter()
            .find(|(tag, _)| *tag == wanted)
            .map(|&(_, v)| v)
    };
    let has_strings = entries
        .iter()
        .any(|(tag, _)| matches!(*tag, DT_NEEDED | DT_SONAME | DT_RPATH | DT_RUNPATH));
    if !has_strings {
        return Ok(info);
    }
    let (Some(strtab), Some(strsz)) = (lookup(DT_STRTAB), lookup(DT_STRSZ)) else {
        return Err("dynamic section lacks DT_STRTAB/DT_STRSZ".into());
    };
    // DT_STRTAB is a virtual address; the file offset comes from the PT_LOAD holding it.
    let offset = phdrs
        .iter()
        .filter(|ph| ph.p_type(endian) == PT_LOAD)
        .find_map(|ph| {
            let vaddr: u64 = ph.p_vaddr(endian).into();
            let filesz: u64 = ph.p_filesz(endian).into();
            let off: u64 = ph.p_offset(endian).into();
            (strtab >= vaddr && strtab - vaddr < filesz).then(|| off + (strtab - vaddr))
        })
        .ok_or("DT_STRTAB lies outside every PT_LOAD segment")?;
    let strings = StringTable::new(data, offset, offset.saturating_add(strsz));
    let string = |val: u64| -> Result<String, String> {
        let val = u32::try_from(val).map_err(|_| "string offset out of range".to_string())?;
        strings
            .get(val)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .map_err(|()| "bad dynamic string offset".to_string())
    };
    for &(tag, val) in &entries {
        match tag {
            DT_NEEDED => info.needed.push(string(val)?),
            DT_SONAME => info.soname = Some(string(val)?),
            DT_RPATH => info.rpath.extend(split_path_list(&string(val)?)),
            DT_RUNPATH => info.runpath.extend(split_path_list(&string(val)?)),
            _ => {}
        }
    }
    Ok(info)
}

fn split_path_list(list: &str) -> impl Iterator<Item = String> + '_ {
    list.split(':').filter(|s| !s.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_elf() {
        assert!(parse(b"#!/bin/sh\n").is_err());
        assert!(kind(b"\x7fELF\x03").is_err());
    }

    #[test]
    fn reads_a_host_binary() {
        let data = std::fs::read("/bin/true").expect("/bin/true is readable");
        let info = parse(&data).expect("parses");
        assert!(
            info.interpreter.is_some(),
            "/bin/true is expected to be dynamically linked"
        );
        assert!(
            info.needed.iter().any(|n| n.starts_with("libc.so")),
            "{info:?}"
        );
        assert_eq!(kind(&data), Ok(info.kind));
    }
}
