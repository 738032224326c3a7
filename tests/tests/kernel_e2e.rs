//! Real kernel builds through `ktstr kernel build`, into the user's cache: the default
//! Debian 6.12 source, reused once built, and Debian's 6.1 as the kernel without sched_ext.
//! Cold, each build takes about 5 minutes on 2 cores; warm, they are cache hits.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use std::process::Output;

use common::{ktstr_in, stderr, stdout};
use ktstr_domain::kernel::kconfig::KernelConfig;
use ktstr_kernel_cache::fragment_options;
use object::{Object, ObjectSection};

const SOURCE_6_1: &str = "/usr/src/linux-source-6.1.tar.xz";

fn ktstr(args: &[&str]) -> Output {
    ktstr_in(&std::env::temp_dir(), args)
}

fn entry_dir_of(build_stdout: &str) -> PathBuf {
    let line = build_stdout
        .lines()
        .find(|l| l.starts_with("kernel "))
        .expect("build names the kernel");
    PathBuf::from(line.rsplit(" in ").next().unwrap())
}

#[test]
fn the_default_kernel_builds_with_every_fragment_option_and_is_reused() {
    let first = ktstr(&["kernel", "build"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let dir = entry_dir_of(&stdout(&first));
    assert!(
        stdout(&first).starts_with("kernel 6.12."),
        "{}",
        stdout(&first)
    );

    // Every option of the fragment survived, sched_ext among them.
    let config = fs::read_to_string(dir.join("config")).unwrap();
    let config = KernelConfig::parse(&config);
    assert_eq!(config.dropped(&fragment_options()), Vec::<String>::new());
    assert!(config.missing_required().is_empty());

    // vmlinux keeps its symbols and .BTF once DWARF is stripped.
    let vmlinux = fs::read(dir.join("vmlinux")).unwrap();
    let elf = object::File::parse(&*vmlinux).unwrap();
    assert!(
        elf.section_by_name(".BTF")
            .is_some_and(|s| s.size() > 1 << 20)
    );
    assert!(elf.symbol_by_name("prog_idr").is_some());
    assert!(elf.section_by_name(".debug_info").is_none());
    assert!(fs::metadata(dir.join("bzImage")).unwrap().len() > 1 << 20);

    let meta = metadata(&dir);
    assert_eq!(meta["sched_ext"], true);
    assert_eq!(meta["arch"], "x86_64");

    // A second build of the same inputs is a cache hit.
    let again = ktstr(&["kernel", "build"]);
    assert!(again.status.success());
    assert!(
        stderr(&again).contains("already cached as"),
        "{}",
        stderr(&again)
    );
    assert_eq!(entry_dir_of(&stdout(&again)), dir);

    let version = meta["version"].as_str().unwrap().to_string();
    let path = ktstr(&["kernel", "path", &version]);
    assert_eq!(stdout(&path).trim(), dir.display().to_string());
    let row = list_row(&dir);
    assert!(row.contains(" yes "), "{row}");
}

#[test]
fn a_kernel_without_sched_ext_is_refused_unless_asked_for_and_then_flagged() {
    assert!(
        Path::new(SOURCE_6_1).exists(),
        "{SOURCE_6_1} missing: apt-get install linux-source-6.1"
    );
    let refused = ktstr(&["kernel", "build", "--source", SOURCE_6_1]);
    assert_eq!(refused.status.code(), Some(2));
    let err = stderr(&refused);
    assert!(err.contains("dropped"), "{err}");
    assert!(err.contains("CONFIG_SCHED_CLASS_EXT=y"), "{err}");
    assert!(err.contains("--allow-dropped"), "{err}");

    let kept = ktstr(&["kernel", "build", "--source", SOURCE_6_1, "--allow-dropped"]);
    assert!(kept.status.success(), "{}", stderr(&kept));
    let out = stdout(&kept);
    assert!(out.starts_with("kernel 6.1."), "{out}");
    assert!(out.contains("no sched_ext"), "{out}");
    let dir = entry_dir_of(&out);
    let meta = metadata(&dir);
    assert_eq!(meta["sched_ext"], false);
    assert_eq!(meta["missing_options"][0], "CONFIG_SCHED_CLASS_EXT");
    let row = list_row(&dir);
    assert!(row.contains(" NO "), "{row}");
}

fn metadata(entry: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(entry.join("metadata.json")).unwrap()).unwrap()
}

/// The `ktstr kernel list` row of a cache entry.
fn list_row(entry: &Path) -> String {
    let list = stdout(&ktstr(&["kernel", "list"]));
    let key = entry.file_name().unwrap().to_str().unwrap();
    list.lines()
        .find(|l| l.contains(key))
        .unwrap_or_else(|| panic!("{key} not listed:\n{list}"))
        .to_string()
}

/// The nested-KVM bed's L1 kernel, a real `--kconfig` variant: its fragment's options are
/// in, it is labelled `<version>+kvm_host`, and only that label or its key selects it; a
/// version still means the plain kernel. A broken fragment is refused before any build.
#[test]
fn a_kconfig_variant_is_built_labelled_and_only_chosen_by_name() {
    let fragment = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts/nested-kvm/kvm-host.kconfig")
        .canonicalize()
        .unwrap();
    let fragment = fragment.to_str().unwrap();
    let plain = ktstr(&["kernel", "build"]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let plain_dir = entry_dir_of(&stdout(&plain));

    let built = ktstr(&["kernel", "build", "--kconfig", fragment]);
    assert!(built.status.success(), "{}", stderr(&built));
    let dir = entry_dir_of(&stdout(&built));
    assert_ne!(dir, plain_dir);
    let meta = metadata(&dir);
    let version = meta["version"].as_str().unwrap().to_string();
    let label = format!("{version}+kvm_host");
    assert_eq!(meta["label"], label.as_str());
    assert_eq!(meta["variant"], "kvm_host");
    assert!(meta["key"].as_str().unwrap().starts_with(&label), "{meta}");
    let config = KernelConfig::parse(&fs::read_to_string(dir.join("config")).unwrap());
    for option in ["CONFIG_KVM_AMD", "CONFIG_9P_FS", "CONFIG_SCHED_CLASS_EXT"] {
        assert!(config.is_builtin(option), "{option} not built in");
    }
    let kept = fs::read_to_string(dir.join("variant.kconfig")).unwrap();
    assert!(kept.contains("CONFIG_KVM_AMD=y"), "{kept}");

    let by_label = ktstr(&["kernel", "path", &label]);
    assert_eq!(stdout(&by_label).trim(), dir.display().to_string());
    let by_version = ktstr(&["kernel", "path", &version]);
    assert_eq!(stdout(&by_version).trim(), plain_dir.display().to_string());

    let broken = std::env::temp_dir().join(format!("ktstr-broken-{}.kconfig", std::process::id()));
    fs::write(&broken, "CONFIG_KVM=y\nKVM_AMD=y\n").unwrap();
    let refused = ktstr(&["kernel", "build", "--kconfig", broken.to_str().unwrap()]);
    fs::remove_file(&broken).unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("line 2: `KVM_AMD=y` is not CONFIG_NAME=value"),
        "{}",
        stderr(&refused)
    );
}
