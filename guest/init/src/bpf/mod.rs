//! The guest's own list of loaded BPF programs with their `verified_insns`: the oracle the
//! host's memory introspection is cross-checked against.

mod syscall;

use std::os::fd::AsFd;

use anyhow::{Context, Result};
use ktstr_domain::verifier_log::prog::ProgStat;

use crate::btf;

/// Every BPF program in the system, sorted by id, with full names where BTF allows.
/// Programs that vanish while being listed are skipped; other per-program failures (and
/// names that could not be recovered) are returned as notes, never fatal.
pub fn list_programs() -> Result<(Vec<ProgStat>, Vec<String>)> {
    let mut progs = Vec::new();
    let mut notes = Vec::new();
    let mut id = 0;
    while let Some(next) = syscall::prog_next_id(id).context("BPF_PROG_GET_NEXT_ID")? {
        id = next;
        let fd = match syscall::prog_fd_by_id(id) {
            Ok(fd) => fd,
            // Unloaded since it was enumerated.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => {
                notes.push(format!("program {id}: BPF_PROG_GET_FD_BY_ID failed: {e}"));
                continue;
            }
        };
        let info = match syscall::prog_info(fd.as_fd()) {
            Ok(info) => info,
            Err(e) => {
                notes.push(format!("program {id}: BPF_OBJ_GET_INFO_BY_FD failed: {e}"));
                continue;
            }
        };
        let short = kernel_name(&info.name);
        let name = if needs_full_name(&short) && info.btf_id != 0 && info.nr_func_info > 0 {
            match full_name(fd.as_fd(), &info, &short) {
                Ok(full) => full,
                Err(e) => {
                    notes.push(format!(
                        "program {id} `{short}`: full name not recovered: {e:#}"
                    ));
                    short
                }
            }
        } else {
            short
        };
        progs.push(ProgStat {
            id: info.id,
            prog_type: info.prog_type,
            name,
            verified_insns: info.verified_insns,
        });
    }
    progs.sort_by_key(|p| p.id);
    Ok((progs, notes))
}

/// The NUL-terminated name the kernel stored.
fn kernel_name(raw: &[u8; syscall::BPF_OBJ_NAME_LEN]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// The kernel keeps 15 characters; a name that long may have been cut.
fn needs_full_name(name: &str) -> bool {
    name.len() == syscall::BPF_OBJ_NAME_LEN - 1
}

/// The program's entry function name from its BTF (the first func_info record).
fn full_name(
    fd: std::os::fd::BorrowedFd<'_>,
    info: &syscall::BpfProgInfo,
    short: &str,
) -> Result<String> {
    let records = syscall::prog_func_info(fd, info.nr_func_info).context("reading func_info")?;
    let first = records.first().context("no func_info records")?;
    let btf_fd = syscall::btf_fd_by_id(info.btf_id)
        .with_context(|| format!("BPF_BTF_GET_FD_BY_ID {}", info.btf_id))?;
    let data = syscall::btf_data(btf_fd.as_fd()).context("reading BTF")?;
    let full = btf::func_name(&data, first.type_id)?;
    pick_name(short, full)
}

/// Uses the BTF name only if it extends the kernel's: anything else means the records did
/// not describe this program's entry, and the truncated name is the honest answer.
fn pick_name(short: &str, full: String) -> Result<String> {
    anyhow::ensure!(
        full.starts_with(short),
        "BTF names `{full}`, which does not extend `{short}`"
    );
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_and_truncation() {
        let mut raw = [0u8; 16];
        raw[..15].copy_from_slice(b"ktstr_select_cp");
        let short = kernel_name(&raw);
        assert_eq!(short, "ktstr_select_cp");
        assert!(needs_full_name(&short));
        assert!(!needs_full_name("ktstr_init"));
        assert_eq!(kernel_name(&[b'x'; 16]), "x".repeat(16));
    }

    #[test]
    fn btf_name_must_extend_the_kernel_name() {
        assert_eq!(
            pick_name("ktstr_select_cp", "ktstr_select_cpu".into()).unwrap(),
            "ktstr_select_cpu"
        );
        assert!(pick_name("ktstr_select_cp", "other_function_name".into()).is_err());
    }

    #[test]
    fn listing_without_privilege_fails_cleanly_or_lists() {
        // Unprivileged (or no BPF) it is an error; as root on a BPF kernel it is a list.
        // Either way: no panic, and a successful list is sorted.
        if let Ok((progs, _)) = list_programs() {
            assert!(progs.windows(2).all(|w| w[0].id < w[1].id));
        }
    }
}
