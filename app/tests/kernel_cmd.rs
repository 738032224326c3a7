//! `ktstr kernel list|path|rm` over a cache with real files in a temporary directory.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ktstr::kernel_cmd;
use ktstr_kernel_cache::{CacheDir, FsKernelCache, Metadata};

fn write_entry(root: &Path, key: &str, version: &str, sched_ext: bool, built_at: u64) {
    let dir = root.join(key);
    fs::create_dir_all(&dir).unwrap();
    let mut files = BTreeMap::new();
    for (name, body) in [
        ("bzImage", "x".repeat(3 << 20)),
        ("vmlinux", "elf".into()),
        ("config", "c".into()),
    ] {
        fs::write(dir.join(name), &body).unwrap();
        files.insert(name.to_string(), body.len() as u64);
    }
    let meta = Metadata {
        key: key.into(),
        label: version.into(),
        version: version.parse().unwrap(),
        source: "test".into(),
        source_identity: "id".into(),
        fragment_sha256: "f".into(),
        variant: None,
        arch: "x86_64".into(),
        built_at_unix: built_at,
        build_seconds: 1,
        sched_ext,
        missing_options: vec![],
        dropped_options: vec![],
        files,
    };
    fs::write(
        dir.join("metadata.json"),
        serde_json::to_string(&meta).unwrap(),
    )
    .unwrap();
}

fn kernels(root: &Path) -> FsKernelCache {
    FsKernelCache::new(CacheDir::new(root), root.to_path_buf(), None, None)
}

#[test]
fn list_shows_entries_and_marks_corrupt_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    write_entry(
        root,
        "6.12.117-x86_64-aaaa",
        "6.12.117",
        true,
        secs - 3 * 3600,
    );
    write_entry(root, "6.1.158-x86_64-bbbb", "6.1.158", false, secs - 30);
    fs::create_dir_all(root.join("half-written")).unwrap();
    let out = kernel_cmd::list(&CacheDir::new(root), now).unwrap();
    let row = |key: &str| out.lines().find(|l| l.contains(key)).unwrap().to_string();
    let r = row("6.12.117-x86_64-aaaa");
    assert!(
        r.contains(" yes ") && r.contains("3.0 MiB") && r.ends_with("3h"),
        "{r}"
    );
    assert!(row("6.1.158-x86_64-bbbb").contains(" NO "), "{out}");
    assert!(
        row("half-written").contains("CORRUPT: metadata.json unreadable"),
        "{out}"
    );
    let empty = tempfile::tempdir().unwrap();
    let out = kernel_cmd::list(&CacheDir::new(empty.path()), now + Duration::from_secs(1)).unwrap();
    assert!(out.contains("build one with `ktstr kernel build`"));
}

#[test]
fn path_and_rm_take_specs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_entry(root, "6.12.117-x86_64-aaaa", "6.12.117", true, 10);
    write_entry(root, "6.12.117-x86_64-cccc", "6.12.117", true, 20);
    write_entry(root, "6.1.158-x86_64-bbbb", "6.1.158", false, 5);
    let kc = kernels(root);
    // The newest build of a version.
    assert_eq!(
        kernel_cmd::path(&kc, "6.12.117").unwrap(),
        format!("{}\n", root.join("6.12.117-x86_64-cccc").display())
    );
    let err = kernel_cmd::path(&kc, "6.13").unwrap_err().to_string();
    assert!(err.contains("no kernel matches `6.13`"), "{err}");

    assert_eq!(
        kernel_cmd::remove(&kc, "6.12..6.12.200").unwrap(),
        "removed 6.12.117-x86_64-cccc\nremoved 6.12.117-x86_64-aaaa\n"
    );
    fs::create_dir_all(root.join("broken")).unwrap();
    assert_eq!(
        kernel_cmd::remove(&kc, "broken").unwrap(),
        "removed broken\n"
    );
    assert!(kernel_cmd::remove(&kc, "./somewhere").is_err());
    assert_eq!(
        kernel_cmd::remove(&kc, "6.1.158").unwrap(),
        "removed 6.1.158-x86_64-bbbb\n"
    );
    assert_eq!(fs::read_dir(root).unwrap().count(), 0);
}
