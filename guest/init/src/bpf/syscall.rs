//! `bpf(2)` commands for enumerating programs and reading their info and BTF, with the uapi
//! structs laid out as in Linux 6.12 include/uapi/linux/bpf.h.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

// enum bpf_cmd
const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_BTF_GET_FD_BY_ID: libc::c_long = 19;

/// `BPF_OBJ_NAME_LEN`: the kernel keeps 15 characters of a program name plus NUL.
pub const BPF_OBJ_NAME_LEN: usize = 16;

/// The `BPF_*_GET_*_ID` member of `union bpf_attr`.
#[repr(C)]
#[derive(Debug, Default)]
struct GetIdAttr {
    /// `start_id`, `prog_id` or `btf_id` depending on the command.
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// The `BPF_OBJ_GET_INFO_BY_FD` member of `union bpf_attr`.
#[repr(C)]
#[derive(Debug, Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `struct bpf_prog_info` (Linux 6.12). The two unnamed bitfields are `gpl_compatible:1` +
/// 31 bits of padding (one `u32`) and the trailing `:32`.
#[repr(C, align(8))]
#[derive(Debug, Default, Clone, Copy)]
pub struct BpfProgInfo {
    pub prog_type: u32,
    pub id: u32,
    pub tag: [u8; 8],
    pub jited_prog_len: u32,
    pub xlated_prog_len: u32,
    pub jited_prog_insns: u64,
    pub xlated_prog_insns: u64,
    pub load_time: u64,
    pub created_by_uid: u32,
    pub nr_map_ids: u32,
    pub map_ids: u64,
    pub name: [u8; BPF_OBJ_NAME_LEN],
    pub ifindex: u32,
    pub gpl_compatible: u32,
    pub netns_dev: u64,
    pub netns_ino: u64,
    pub nr_jited_ksyms: u32,
    pub nr_jited_func_lens: u32,
    pub jited_ksyms: u64,
    pub jited_func_lens: u64,
    pub btf_id: u32,
    pub func_info_rec_size: u32,
    pub func_info: u64,
    pub nr_func_info: u32,
    pub nr_line_info: u32,
    pub line_info: u64,
    pub jited_line_info: u64,
    pub nr_jited_line_info: u32,
    pub line_info_rec_size: u32,
    pub jited_line_info_rec_size: u32,
    pub nr_prog_tags: u32,
    pub prog_tags: u64,
    pub run_time_ns: u64,
    pub run_cnt: u64,
    pub recursion_misses: u64,
    pub verified_insns: u32,
    pub attach_btf_obj_id: u32,
    pub attach_btf_id: u32,
    pub _pad: u32,
}

/// `struct bpf_btf_info`.
#[repr(C, align(8))]
#[derive(Debug, Default, Clone, Copy)]
struct BpfBtfInfo {
    btf: u64,
    btf_size: u32,
    id: u32,
    name: u64,
    name_len: u32,
    kernel_btf: u32,
}

/// `struct bpf_func_info`: one record per function of a program.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BpfFuncInfo {
    pub insn_off: u32,
    pub type_id: u32,
}

/// Issues one bpf(2) command with `attr` as its (prefix of) `union bpf_attr`.
///
/// # Safety
/// Any pointers stored inside `attr` must be valid for what the command writes through them.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, writable object of the size passed; the kernel zero-fills
    // the rest of its union. Pointer fields inside are the caller's responsibility.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned_fd(ret: libc::c_long) -> OwnedFd {
    // SAFETY: a successful *_GET_FD_BY_ID returns a new descriptor that we now own.
    unsafe { OwnedFd::from_raw_fd(ret as libc::c_int) }
}

/// The next program id after `start`, or `None` after the last one.
pub fn prog_next_id(start: u32) -> io::Result<Option<u32>> {
    let mut attr = GetIdAttr {
        id: start,
        ..GetIdAttr::default()
    };
    // SAFETY: GetIdAttr holds no pointers.
    match unsafe { bpf(BPF_PROG_GET_NEXT_ID, &mut attr) } {
        Ok(_) => Ok(Some(attr.next_id)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetIdAttr {
        id,
        ..GetIdAttr::default()
    };
    // SAFETY: GetIdAttr holds no pointers.
    unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) }.map(owned_fd)
}

pub fn btf_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetIdAttr {
        id,
        ..GetIdAttr::default()
    };
    // SAFETY: GetIdAttr holds no pointers.
    unsafe { bpf(BPF_BTF_GET_FD_BY_ID, &mut attr) }.map(owned_fd)
}

/// `BPF_OBJ_GET_INFO_BY_FD` into `info`, which the kernel updates in place.
///
/// # Safety
/// Pointer fields inside `info` must be null or valid for what the kernel writes there.
unsafe fn obj_info<T>(fd: BorrowedFd<'_>, info: &mut T) -> io::Result<()> {
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: size_of::<T>() as u32,
        info: info as *mut T as u64,
    };
    // SAFETY: `info` is valid for info_len bytes; its pointers are the caller's promise.
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }.map(drop)
}

/// The program's info without any of the variable-length arrays.
pub fn prog_info(fd: BorrowedFd<'_>) -> io::Result<BpfProgInfo> {
    let mut info = BpfProgInfo::default();
    // SAFETY: every pointer field is zero, so the kernel writes no arrays.
    unsafe { obj_info(fd, &mut info) }?;
    Ok(info)
}

/// The program's BTF function records (the first is the program's entry function).
pub fn prog_func_info(fd: BorrowedFd<'_>, count: u32) -> io::Result<Vec<BpfFuncInfo>> {
    let mut records = vec![BpfFuncInfo::default(); count as usize];
    let mut info = BpfProgInfo {
        nr_func_info: count,
        func_info_rec_size: size_of::<BpfFuncInfo>() as u32,
        func_info: records.as_mut_ptr() as u64,
        ..BpfProgInfo::default()
    };
    // SAFETY: `func_info` points at `count` records of the declared size; the kernel copies
    // at most min(count, actual) of them.
    unsafe { obj_info(fd, &mut info) }?;
    records.truncate(info.nr_func_info.min(count) as usize);
    Ok(records)
}

/// The raw BTF blob (header, types, strings) of a BTF object.
pub fn btf_data(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut info = BpfBtfInfo::default();
    // SAFETY: null pointers with zero sizes: the kernel only reports the size.
    unsafe { obj_info(fd, &mut info) }?;
    let mut data = vec![0u8; info.btf_size as usize];
    let mut info = BpfBtfInfo {
        btf: data.as_mut_ptr() as u64,
        btf_size: data.len() as u32,
        ..BpfBtfInfo::default()
    };
    // SAFETY: `btf` points at `btf_size` writable bytes; the kernel copies at most that.
    unsafe { obj_info(fd, &mut info) }?;
    data.truncate(info.btf_size as usize);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// Offsets derived from include/uapi/linux/bpf.h (6.12) and cross-checked by compiling
    /// the header with gcc and printing `offsetof`.
    #[test]
    fn prog_info_layout_matches_uapi() {
        assert_eq!(size_of::<BpfProgInfo>(), 232);
        assert_eq!(offset_of!(BpfProgInfo, prog_type), 0);
        assert_eq!(offset_of!(BpfProgInfo, id), 4);
        assert_eq!(offset_of!(BpfProgInfo, load_time), 40);
        assert_eq!(offset_of!(BpfProgInfo, map_ids), 56);
        assert_eq!(offset_of!(BpfProgInfo, name), 64);
        assert_eq!(offset_of!(BpfProgInfo, ifindex), 80);
        assert_eq!(offset_of!(BpfProgInfo, netns_dev), 88);
        assert_eq!(offset_of!(BpfProgInfo, btf_id), 128);
        assert_eq!(offset_of!(BpfProgInfo, func_info_rec_size), 132);
        assert_eq!(offset_of!(BpfProgInfo, func_info), 136);
        assert_eq!(offset_of!(BpfProgInfo, nr_func_info), 144);
        assert_eq!(offset_of!(BpfProgInfo, prog_tags), 184);
        assert_eq!(offset_of!(BpfProgInfo, verified_insns), 216);
        assert_eq!(offset_of!(BpfProgInfo, attach_btf_id), 224);
    }

    #[test]
    fn other_layouts_match_uapi() {
        assert_eq!(size_of::<BpfBtfInfo>(), 32);
        assert_eq!(offset_of!(BpfBtfInfo, name), 16);
        assert_eq!(offset_of!(BpfBtfInfo, name_len), 24);
        assert_eq!(size_of::<BpfFuncInfo>(), 8);
        assert_eq!(size_of::<GetIdAttr>(), 12);
        assert_eq!(size_of::<InfoAttr>(), 16);
        assert_eq!(offset_of!(InfoAttr, info), 8);
    }
}
