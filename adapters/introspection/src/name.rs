//! Full program names. `bpf_prog_aux.name` keeps 15 characters; the kallsyms
//! name the kernel builds for every JITed program (`bpf_prog_ksym_set_name` in 6.12's
//! `kernel/bpf/core.c`) is `bpf_prog_<16 hex digits of the tag>_<name>`, where `<name>`
//! is the entry function's name from the program's BTF func info when it has one, else
//! `aux->name`.

const PREFIX: &str = "bpf_prog_";
const TAG_HEX: usize = 16;

/// The name to report: the kallsyms name without its prefix when it extends the short
/// name (or the short name is empty), else the short name.
pub fn full_name(short: &str, ksym: &str) -> String {
    match name_in_ksym(ksym) {
        Some(full) if full.starts_with(short) => full.to_string(),
        _ => short.to_string(),
    }
}

/// The `<name>` of `bpf_prog_<tag>_<name>`, if `ksym` has that shape and a name.
fn name_in_ksym(ksym: &str) -> Option<&str> {
    let rest = ksym.strip_prefix(PREFIX)?;
    let tag = rest.get(..TAG_HEX)?;
    if !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let name = rest.get(TAG_HEX..)?.strip_prefix('_')?;
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kallsyms_name_restores_a_truncated_name() {
        assert_eq!(
            full_name(
                "ktstr_select_cp",
                "bpf_prog_0123456789abcdef_ktstr_select_cpu"
            ),
            "ktstr_select_cpu"
        );
        assert_eq!(
            full_name("dispatch", "bpf_prog_0123456789abcdef_dispatch"),
            "dispatch"
        );
        // Not JITed (no kallsyms name), or a name that is no extension: the short one.
        assert_eq!(full_name("ktstr_init", ""), "ktstr_init");
        assert_eq!(full_name("mine", "bpf_prog_0123456789abcdef_other"), "mine");
        // A nameless program whose BTF names its function.
        assert_eq!(full_name("", "bpf_prog_0123456789abcdef_fn"), "fn");
    }

    #[test]
    fn malformed_kallsyms_names_fall_back() {
        for ksym in [
            "bpf_prog_0123456789abcdef",
            "bpf_prog_0123456789abcdef_",
            "bpf_prog_0123456789abcdeg_name",
            "bpf_prog_0123_name",
            "bpf_trampoline_6442_name",
            "bpf_prog_é123456789abcdef_x",
        ] {
            assert_eq!(full_name("short", ksym), "short", "{ksym}");
        }
    }
}
