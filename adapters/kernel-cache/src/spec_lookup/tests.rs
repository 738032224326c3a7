//! Every resolution path and every error, with real files in temporary directories.

use std::fs;
use std::path::Path;

use super::*;
use crate::cache_dir::tests::write_entry;

const DEBIAN_6_1_CONFIG: &str = include_str!("../../tests/data/debian-6.1-cloud-amd64.config");

fn cache_in(dir: &Path) -> FsKernelCache {
    FsKernelCache::new(
        CacheDir::new(dir.join("cache")),
        dir.to_path_buf(),
        Some(dir.join("home")),
        None,
    )
}

fn spec(s: &str) -> KernelSpec {
    s.parse().unwrap()
}

fn labels(artifacts: &[KernelArtifact]) -> Vec<String> {
    artifacts.iter().map(|a| a.label.raw.clone()).collect()
}

/// A cache entry labelled by its version, with a key whose hash is `tag` repeated.
fn cached(kc: &FsKernelCache, version: &str, tag: char) -> Entry {
    let key = format!("{version}-x86_64-{}", tag.to_string().repeat(12));
    write_entry(kc.cache(), &key, version, version)
}

/// A kernel build tree with the files resolution looks for.
fn write_tree(dir: &Path, config: &str) {
    fs::create_dir_all(dir.join("arch/x86/boot")).unwrap();
    fs::write(dir.join("Makefile"), "VERSION = 6\n").unwrap();
    fs::write(dir.join("arch/x86/boot/bzImage"), "image").unwrap();
    fs::write(dir.join("vmlinux"), "elf").unwrap();
    fs::write(dir.join(".config"), config).unwrap();
}

const SCHED_EXT_CONFIG: &str = "# Linux/x86 6.13.0 Kernel Configuration\nCONFIG_SCHED_CLASS_EXT=y\nCONFIG_BPF_SYSCALL=y\nCONFIG_DEBUG_INFO_BTF=y\n";

#[test]
fn versions_ranges_and_keys_resolve_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let kc = cache_in(tmp.path());
    cached(&kc, "6.12.117", 'a');
    cached(&kc, "6.1.158", 'b');
    write_entry(kc.cache(), "6.14.2-x86_64-cccccccccccc", "6.14.2", "mine");

    let got = kc.resolve_specs(&[spec("6.12.117")]).unwrap();
    assert_eq!(labels(&got), ["6.12.117"]);
    assert!(
        got[0]
            .image
            .ends_with("6.12.117-x86_64-aaaaaaaaaaaa/bzImage")
    );
    assert!(got[0].vmlinux.ends_with("vmlinux"));
    assert!(got[0].missing_options.is_empty());

    let got = kc.resolve_specs(&[spec("6.1..=6.12.200")]).unwrap();
    assert_eq!(labels(&got).len(), 2);
    let got = kc.resolve_specs(&[spec("6.13..6.15")]).unwrap();
    assert_eq!(labels(&got), ["mine"]);

    // A cache key, and a custom label given at build time, are both cache-key specs.
    let got = kc
        .resolve_specs(&[spec("6.1.158-x86_64-bbbbbbbbbbbb"), spec("mine")])
        .unwrap();
    assert_eq!(labels(&got), ["6.1.158", "mine"]);
    // The same kernel named twice is one kernel.
    let got = kc
        .resolve_specs(&[spec("6.12.117"), spec("6.12..6.13")])
        .unwrap();
    assert_eq!(labels(&got), ["6.12.117"]);
}

/// A kconfig variant (the nested-KVM host kernel, say) is chosen by its label or key only:
/// a version, a range or the default never lands a sweep on it, even when it is newer.
#[test]
fn a_kconfig_variant_is_selected_only_by_its_label_or_key() {
    let tmp = tempfile::tempdir().unwrap();
    let kc = cache_in(tmp.path());
    cached(&kc, "6.12.118", 'a');
    let key = "6.12.118+kvm_host-x86_64-dddddddddddd";
    let variant = write_entry(kc.cache(), key, "6.12.118", "6.12.118+kvm_host");
    let mut meta = variant.meta.clone();
    meta.variant = Some("kvm_host".into());
    meta.built_at_unix += 1000;
    fs::write(
        variant.dir.join("metadata.json"),
        serde_json::to_string(&meta).unwrap(),
    )
    .unwrap();

    for plain in ["6.12.118", "6.12..6.13", "6.12.118..=6.12.118"] {
        assert_eq!(
            labels(&kc.resolve_specs(&[spec(plain)]).unwrap()),
            ["6.12.118"],
            "{plain}"
        );
    }
    assert_eq!(labels(&kc.resolve_specs(&[]).unwrap()), ["6.12.118"]);
    for named in ["6.12.118+kvm_host", key, "kernel_6_12_118_kvm_host"] {
        let got = kc.resolve_specs(&[spec(named)]).unwrap();
        assert_eq!(labels(&got), ["6.12.118+kvm_host"], "{named}");
        assert!(got[0].image.starts_with(&variant.dir), "{named}");
    }
}

#[test]
fn no_spec_means_the_default_spec_or_the_newest_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let kc = cache_in(tmp.path());
    let err = kc.resolve_specs(&[]).unwrap_err().to_string();
    assert!(err.contains("ktstr kernel build"), "{err}");
    assert!(err.contains("apt-get install linux-source-6.12"), "{err}");

    cached(&kc, "6.1.158", 'b');
    cached(&kc, "6.12.117", 'a');
    assert_eq!(labels(&kc.resolve_specs(&[]).unwrap()), ["6.12.117"]);
    // A newer kernel kept without sched_ext is never the default.
    let old = cached(&kc, "6.1.192", 'f');
    let mut meta = old.meta.clone();
    meta.sched_ext = false;
    meta.missing_options = vec!["CONFIG_SCHED_CLASS_EXT".into()];
    meta.built_at_unix += 1000;
    fs::write(
        old.dir.join("metadata.json"),
        serde_json::to_string(&meta).unwrap(),
    )
    .unwrap();
    assert_eq!(labels(&kc.resolve_specs(&[]).unwrap()), ["6.12.117"]);

    let pinned = FsKernelCache::new(
        kc.cache().clone(),
        tmp.path().to_path_buf(),
        None,
        Some(spec("6.1.158")),
    );
    assert_eq!(labels(&pinned.resolve_specs(&[]).unwrap()), ["6.1.158"]);
}

#[test]
fn unknown_versions_and_empty_ranges_name_what_is_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let kc = cache_in(tmp.path());
    cached(&kc, "6.12.117", 'a');
    for bad in ["6.13", "7.0..7.2", "nosuchkey"] {
        let err = kc.resolve_specs(&[spec(bad)]).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("no kernel matches `{bad}`")),
            "{err}"
        );
        assert!(
            err.contains("cached: 6.12.117 (6.12.117-x86_64-aaaaaaaaaaaa)"),
            "{err}"
        );
    }
}

#[test]
fn two_kernels_with_one_label_get_distinct_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let kc = cache_in(tmp.path());
    cached(&kc, "6.12.117", 'a');
    cached(&kc, "6.12.117", 'd');
    let got = kc.resolve_specs(&[spec("6.12..6.12.200")]).unwrap();
    let got = labels(&got);
    assert_eq!(got.len(), 2);
    assert_ne!(sanitize_label(&got[0]), sanitize_label(&got[1]));
    assert!(
        got.iter()
            .any(|l| l.ends_with("-aaaaaaaa") || l.ends_with("-dddddddd"))
    );
}

#[test]
fn corrupt_entries_are_never_used() {
    let tmp = tempfile::tempdir().unwrap();
    let kc = cache_in(tmp.path());
    cached(&kc, "6.12.117", 'a');
    let bad = cached(&kc, "6.13.0", 'e');
    fs::write(bad.image(), "").unwrap();
    // Not the default, not found by version, refused by key with the fix.
    assert_eq!(labels(&kc.resolve_specs(&[]).unwrap()), ["6.12.117"]);
    assert!(kc.resolve_specs(&[spec("6.13.0")]).is_err());
    let err = kc
        .resolve_specs(&[spec("6.13.0-x86_64-eeeeeeeeeeee")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("corrupt"), "{err}");
    assert!(
        err.contains("ktstr kernel rm 6.13.0-x86_64-eeeeeeeeeeee"),
        "{err}"
    );
}

/// With the only cached kernel damaged, the error names it and both fixes, instead of
/// calling the cache empty.
#[test]
fn a_corrupt_only_entry_is_named_with_its_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let kc = cache_in(tmp.path());
    let bad = cached(&kc, "6.12.118", 'c');
    fs::remove_file(bad.vmlinux()).unwrap();
    let err = kc.resolve_specs(&[]).unwrap_err().to_string();
    assert!(
        err.starts_with("no kernel given and none cached: "),
        "{err}"
    );
    for part in [
        "cache entry 6.12.118-x86_64-cccccccccccc is corrupt (vmlinux missing",
        "rebuild it with `ktstr kernel build`",
        "`ktstr kernel rm 6.12.118-x86_64-cccccccccccc`",
    ] {
        assert!(err.contains(part), "no `{part}` in: {err}");
    }
}

#[test]
fn build_trees_and_image_files_resolve_by_path() {
    let tmp = tempfile::tempdir().unwrap();
    let kc = cache_in(tmp.path());
    write_tree(&tmp.path().join("linux"), SCHED_EXT_CONFIG);
    let got = kc.resolve_specs(&[spec("./linux")]).unwrap();
    assert_eq!(got[0].label.raw, "./linux");
    assert_eq!(got[0].label.sanitized(), "kernel_linux");
    assert_eq!(got[0].label.version, Some("6.13.0".parse().unwrap()));
    assert!(got[0].image.ends_with("linux/arch/x86/boot/bzImage"));

    // An image file with vmlinux and config beside it, reached through `~`.
    let boot = tmp.path().join("home/kernels");
    fs::create_dir_all(&boot).unwrap();
    fs::write(boot.join("vmlinuz-6.13"), "image").unwrap();
    fs::write(boot.join("vmlinux"), "elf").unwrap();
    fs::write(boot.join("config"), SCHED_EXT_CONFIG).unwrap();
    let got = kc.resolve_specs(&[spec("~/kernels/vmlinuz-6.13")]).unwrap();
    assert_eq!(got[0].image, boot.join("vmlinuz-6.13"));
    assert!(got[0].missing_options.is_empty());

    // A cache entry directory, as `ktstr kernel path` prints it.
    let entry = write_entry(kc.cache(), "6.12.117-x86_64-aaaaaaaaaaaa", "6.12.117", "x");
    let got = kc
        .resolve_specs(&[KernelSpec::Path(entry.dir.display().to_string())])
        .unwrap();
    assert_eq!(got[0].image, entry.image());
}

#[test]
fn a_path_missing_a_piece_says_which() {
    let tmp = tempfile::tempdir().unwrap();
    let kc = cache_in(tmp.path());
    let tree = tmp.path().join("linux");
    write_tree(&tree, SCHED_EXT_CONFIG);
    fs::remove_file(tree.join("arch/x86/boot/bzImage")).unwrap();
    let err = kc
        .resolve_specs(&[spec("./linux")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing the kernel image (run `make bzImage`"),
        "{err}"
    );

    write_tree(&tree, SCHED_EXT_CONFIG);
    fs::remove_file(tree.join("vmlinux")).unwrap();
    let err = kc
        .resolve_specs(&[spec("./linux")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing vmlinux"), "{err}");

    let err = kc
        .resolve_specs(&[spec("./nowhere")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn a_real_debian_config_without_sched_ext_is_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let kc = cache_in(tmp.path());
    write_tree(&tmp.path().join("debian-6.1"), DEBIAN_6_1_CONFIG);
    let got = kc.resolve_specs(&[spec("./debian-6.1")]).unwrap();
    assert_eq!(got[0].missing_options, ["CONFIG_SCHED_CLASS_EXT"]);
    assert_eq!(got[0].label.version.unwrap().major, 6);
    assert_eq!(got[0].label.version.unwrap().minor, 1);
}

#[tokio::test]
async fn the_port_resolves_like_the_method() {
    let tmp = tempfile::tempdir().unwrap();
    let kc = cache_in(tmp.path());
    cached(&kc, "6.12.117", 'a');
    let port: &dyn KernelCache = &kc;
    assert_eq!(labels(&port.resolve(&[]).await.unwrap()), ["6.12.117"]);
}
