//! Archive layout, the init plan, static binaries and the cache.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ktstr_domain::protocol::init_plan::{
    DEFAULT_ATTACH_MS, DEFAULT_PROBE_MS, FRAME_DEVICE, InitPlan,
};
use ktstr_initramfs::EntrySource;
use ktstr_ports::GuestImageBuilder;

use crate::common::*;

#[tokio::test]
async fn dynamic_binary_brings_libc_and_its_interpreter() {
    let cache = tempfile::tempdir().unwrap();
    let init = host_binary();
    let scheduler = Path::new("/bin/true");
    let image = builder(&init, cache.path())
        .build(&plan(scheduler, &["--flag", "x y"]))
        .await
        .expect("image builds");
    // What the image costs in guest RAM: its file, and every member unpacked.
    let footprint = image.footprint;
    let image = image.path;
    assert_eq!(
        footprint.compressed_bytes,
        fs::metadata(&image).unwrap().len()
    );
    let member_bytes: u64 = read_image(&image).iter().map(|m| m.data.len() as u64).sum();
    assert_eq!(footprint.unpacked_bytes, member_bytes);
    assert!(footprint.unpacked_bytes > footprint.compressed_bytes);
    assert!(image.starts_with(cache.path()));
    assert!(image.to_str().unwrap().ends_with(".cpio.gz"));

    let members = read_image(&image);
    let files = by_path(&members);
    let host = |p: &Path| fs::read(p).unwrap();

    let init_member = &files["/init"];
    assert_eq!(init_member.mode, S_IFREG | 0o755);
    assert_eq!(init_member.data, host(&init));
    let sched = &files["/ktstr/bin/true"];
    assert_eq!(sched.mode, S_IFREG | 0o755);
    assert_eq!(sched.data, host(scheduler));

    let plan_json = std::str::from_utf8(&files["/ktstr/plan.json"].data).unwrap();
    let parsed = InitPlan::from_json(plan_json).expect("plan parses");
    assert_eq!(parsed.scheduler, "/ktstr/bin/true");
    assert_eq!(parsed.sched_args, ["--flag", "x y"]);
    // The cell's waits travel on the kernel command line; the plan holds the fallbacks.
    assert_eq!(
        (parsed.attach_timeout_ms, parsed.probe_ms),
        (DEFAULT_ATTACH_MS, DEFAULT_PROBE_MS)
    );
    assert_eq!(parsed.frame_device, FRAME_DEVICE);
    assert_eq!(parsed.log_limit_bytes, 1 << 20);

    // The interpreter sits at its PT_INTERP path with the (symlink-resolved) host bytes.
    for binary in [init.as_path(), scheduler] {
        let interp = interpreter_of(binary);
        let member = files
            .get(&interp)
            .unwrap_or_else(|| panic!("{interp} missing"));
        assert_eq!(member.mode & S_IFMT, S_IFREG);
        assert_eq!(member.data, host(Path::new(&interp)));
    }

    // Every library ldd resolves is packed under its name with the host's bytes.
    for binary in [init.as_path(), scheduler] {
        let ldd = tool("ldd", &[binary.to_str().unwrap()], "libc-bin");
        let resolved: Vec<&str> = ldd.lines().filter_map(|l| l.split(" => ").nth(1)).collect();
        assert!(resolved.iter().any(|l| l.contains("libc.so.6")), "{ldd}");
        for line in resolved {
            let host_path = line.split_whitespace().next().unwrap();
            let name = Path::new(host_path).file_name().unwrap().to_str().unwrap();
            let member = members
                .iter()
                .find(|m| m.name.ends_with(&format!("/{name}")))
                .unwrap_or_else(|| panic!("{name} (from ldd) is not in the image"));
            assert_eq!(member.data, host(Path::new(host_path)), "{name}");
        }
    }

    let console = &files["/dev/console"];
    assert_eq!(console.mode, S_IFCHR | 0o600);
    assert_eq!(console.rdev, (5, 1));
    assert!(console.data.is_empty());
    assert_eq!(files["/tmp"].mode, S_IFDIR | 0o1777);
    for dir in ["/dev", "/proc", "/sys", "/run", "/ktstr", "/ktstr/bin"] {
        assert_eq!(files[dir].mode, S_IFDIR | 0o755, "{dir}");
    }

    // The kernel creates nothing implicitly: each parent precedes its children.
    for (i, m) in members.iter().enumerate() {
        assert!(
            !m.name.starts_with('/'),
            "names are root-relative: {}",
            m.name
        );
        if let Some((parent, _)) = m.name.rsplit_once('/') {
            let earlier = members[..i]
                .iter()
                .any(|p| p.name == parent && p.mode & S_IFMT == S_IFDIR);
            assert!(earlier, "{} comes before its directory", m.name);
        }
        if m.mode & S_IFMT == S_IFREG {
            assert_eq!(m.nlink, 1);
        }
    }
}

#[test]
fn manifest_lists_what_the_archive_holds() {
    let cache = tempfile::tempdir().unwrap();
    let b = builder(&host_binary(), cache.path());
    let plan = plan(Path::new("/bin/true"), &[]);
    let manifest = b.manifest(&plan).unwrap();
    assert!(
        fs::read_dir(cache.path()).unwrap().next().is_none(),
        "manifest writes nothing"
    );
    let image = b.build_blocking(&plan).unwrap().path;
    let names: Vec<String> = read_image(&image)
        .into_iter()
        .map(|m| format!("/{}", m.name))
        .collect();
    let listed: Vec<&str> = manifest.iter().map(|e| e.guest_path.as_str()).collect();
    assert_eq!(names, listed);
    let libc = manifest
        .iter()
        .find(|e| e.guest_path.ends_with("/libc.so.6"))
        .expect("libc listed");
    assert!(matches!(&libc.source, EntrySource::HostFile(p) if p.is_file()));
}

#[test]
fn static_binary_pulls_no_libraries() {
    let dir = tempfile::tempdir().unwrap();
    source(dir.path(), "main.c", "int main(void) { return 0; }\n");
    cc(
        dir.path(),
        &["-static", "-O1", "-o", "sched-static", "main.c"],
    );
    let prog = dir.path().join("sched-static");
    assert!(
        needed_of(&prog).is_empty(),
        "cc -static produced a dynamic binary"
    );

    let b = builder(&prog, &dir.path().join("cache"));
    let plan = plan(&prog, &[]);
    let files: Vec<String> = b
        .manifest(&plan)
        .unwrap()
        .into_iter()
        .filter(|e| {
            !matches!(
                e.source,
                EntrySource::Directory | EntrySource::CharDevice { .. }
            )
        })
        .map(|e| e.guest_path)
        .collect();
    assert_eq!(
        files,
        ["/init", "/ktstr/bin/sched-static", "/ktstr/plan.json"]
    );
    let members = read_image(&b.build_blocking(&plan).unwrap().path);
    assert!(
        !members.iter().any(|m| m.name.contains(".so")),
        "{members:?}"
    );
}

#[tokio::test]
async fn cache_hits_reuse_the_file_and_plan_changes_make_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("nested/cache");
    let b = builder(&host_binary(), &cache);
    let first = b
        .build(&plan(Path::new("/bin/true"), &["a"]))
        .await
        .unwrap()
        .path;

    // Backdate the image: a rebuild would give it a fresh mtime.
    let old = SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&first)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let again = b
        .build(&plan(Path::new("/bin/true"), &["a"]))
        .await
        .unwrap()
        .path;
    assert_eq!(again, first);
    assert_eq!(
        fs::metadata(&again).unwrap().modified().unwrap(),
        old,
        "cache hit rewrote the image"
    );

    let other = b
        .build(&plan(Path::new("/bin/true"), &["b"]))
        .await
        .unwrap()
        .path;
    assert_ne!(other, first);
    let mut limit = b.clone();
    limit.log_limit_bytes += 1;
    let third = limit
        .build(&plan(Path::new("/bin/true"), &["a"]))
        .await
        .unwrap()
        .path;
    assert!(third != first && third != other);

    // Only finished images remain: no temporary files left behind.
    let mut names: Vec<String> = fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    for name in names {
        let key = name.strip_suffix(".cpio.gz").expect("named <key>.cpio.gz");
        assert!(
            key.len() == 64 && key.chars().all(|c| c.is_ascii_hexdigit()),
            "{name}"
        );
    }
}

#[tokio::test]
async fn unreadable_inputs_are_reported_through_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let b = builder(&host_binary(), dir.path());
    let err = b
        .build(&plan(&dir.path().join("no-such-sched"), &[]))
        .await
        .unwrap_err();
    // The port's error names what failed; its source keeps the adapter's own error.
    assert_eq!(err.to_string(), "cannot build the guest image");
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("no-such-sched"), "{cause}");
    let script = source(dir.path(), "sched.sh", "#!/bin/sh\n");
    let err = b.build(&plan(&script, &[])).await.unwrap_err();
    assert!(err.0.to_string().contains("not a usable ELF"), "{err:?}");
}
