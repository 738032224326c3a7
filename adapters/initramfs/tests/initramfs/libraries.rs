//! Library resolution: recursion, search paths, missing libraries, and a run of the
//! unpacked image under chroot to prove the loader finds everything without a cache.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ktstr_initramfs::{EntrySource, LD_CACHE_PATH, LibrarySearch};

use crate::common::*;

/// Unpacks an image (minus device nodes) and runs `guest_cmd` inside it; returns stdout.
fn run_in_image(image: &Path, guest_cmd: &str) -> String {
    let root = tempfile::tempdir().unwrap();
    for m in read_image(image) {
        let path = root.path().join(&m.name);
        match m.mode & S_IFMT {
            S_IFDIR => fs::create_dir_all(&path).unwrap(),
            S_IFREG => {
                fs::write(&path, &m.data).unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(m.mode & 0o7777)).unwrap();
            }
            _ => {}
        }
    }
    // A private mount and pid namespace with its own /proc, as the guest init provides:
    // glibc resolves the executable's $ORIGIN through /proc/self/exe.
    let is_root = tool("id", &["-u"], "coreutils").trim() == "0";
    let mut cmd = Command::new("unshare");
    if !is_root {
        cmd.args(["--user", "--map-root-user"]);
    }
    let proc_dir = root.path().join("proc");
    let out = cmd
        .args(["--mount", "--pid", "--fork"])
        .arg(format!("--mount-proc={}", proc_dir.display()))
        .arg("chroot")
        .arg(root.path())
        .arg(guest_cmd)
        .output()
        .expect("running the image needs unshare (util-linux) and chroot (coreutils)");
    assert!(
        out.status.success(),
        "{guest_cmd} failed inside the unpacked image ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn host_files(b: &ktstr_initramfs::InitramfsBuilder, prog: &Path) -> Vec<(String, PathBuf)> {
    b.manifest(&plan(prog, &[]))
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.source {
            EntrySource::HostFile(p) => Some((e.guest_path, p)),
            _ => None,
        })
        .collect()
}

#[test]
fn indirect_dependencies_are_resolved_recursively() {
    let dir = tempfile::tempdir().unwrap();
    source(
        dir.path(),
        "main.c",
        "#include <libelf.h>\n#include <stdio.h>\n\
         int main(void) { printf(\"libelf %d\\n\", elf_version(EV_CURRENT) != EV_NONE); return 0; }\n",
    );
    cc(dir.path(), &["-o", "elfprog", "main.c", "-lelf"]);
    let prog = dir.path().join("elfprog");
    let needed = needed_of(&prog);
    assert!(
        needed.iter().any(|n| n.starts_with("libelf.so")),
        "{needed:?}"
    );
    assert!(
        !needed.iter().any(|n| n.starts_with("libz.so")),
        "libz must come only via libelf"
    );

    let b = builder(&host_binary(), &dir.path().join("cache"));
    let files = host_files(&b, &prog);
    for name in ["libelf.so.1", "libz.so.1", "libc.so.6"] {
        let (guest, host) = files
            .iter()
            .find(|(g, _)| g.ends_with(&format!("/{name}")))
            .unwrap_or_else(|| panic!("{name} missing from {files:?}"));
        assert_eq!(
            Path::new(guest),
            host.as_path(),
            "libraries keep their host path"
        );
    }
    let image = b.build_blocking(&plan(&prog, &[])).unwrap().path;
    assert_eq!(run_in_image(&image, "/ktstr/bin/elfprog"), "libelf 1\n");
}

#[test]
fn missing_library_names_library_and_binary_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    source(dir.path(), "lib.c", "int ghost(void) { return 9; }\n");
    source(
        dir.path(),
        "main.c",
        "int ghost(void);\nint main(void) { return ghost(); }\n",
    );
    cc(
        dir.path(),
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libdoesnotexist.so.9",
            "-o",
            "libdoesnotexist.so.9",
            "lib.c",
        ],
    );
    cc(
        dir.path(),
        &[
            "-o",
            "needs-ghost",
            "main.c",
            "-L.",
            "-l:libdoesnotexist.so.9",
        ],
    );
    fs::remove_file(dir.path().join("libdoesnotexist.so.9")).unwrap();
    let prog = dir.path().join("needs-ghost");

    let err = builder(&host_binary(), &dir.path().join("cache"))
        .build_blocking(&plan(&prog, &[]))
        .unwrap_err()
        .to_string();
    for part in [
        "libdoesnotexist.so.9",
        prog.to_str().unwrap(),
        "apt-get install",
        "statically linked",
    ] {
        assert!(err.contains(part), "`{part}` not in: {err}");
    }
    assert!(
        fs::read_dir(dir.path())
            .unwrap()
            .all(|e| e.unwrap().file_name() != "cache")
    );
}

/// `prog` in bin/ needs liba in lib/ (found through `$ORIGIN/../lib`), liba needs libb.
fn origin_fixture(dir: &Path, new_dtags: bool) -> PathBuf {
    fs::create_dir_all(dir.join("lib")).unwrap();
    fs::create_dir_all(dir.join("bin")).unwrap();
    source(dir, "b.c", "int b_value(void) { return 40; }\n");
    source(
        dir,
        "a.c",
        "int b_value(void);\nint a_value(void) { return b_value() + 2; }\n",
    );
    source(
        dir,
        "main.c",
        "#include <stdio.h>\nint a_value(void);\nint main(void) { printf(\"%d\\n\", a_value()); return 0; }\n",
    );
    cc(
        dir,
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libktb.so.1",
            "-o",
            "lib/libktb.so.1",
            "b.c",
        ],
    );
    cc(
        dir,
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libkta.so.1",
            "-o",
            "lib/libkta.so.1",
            "a.c",
            "-Llib",
            "-l:libktb.so.1",
        ],
    );
    let dtags = if new_dtags {
        "-Wl,--enable-new-dtags"
    } else {
        "-Wl,--disable-new-dtags"
    };
    cc(
        dir,
        &[
            "-o",
            "bin/prog",
            "main.c",
            "-Llib",
            "-l:libkta.so.1",
            "-Wl,-rpath-link,lib",
            "-Wl,-rpath,$ORIGIN/../lib",
            dtags,
        ],
    );
    dir.join("bin/prog")
}

#[test]
fn rpath_origin_is_expanded_for_the_guest_and_inherited_by_dependencies() {
    let dir = tempfile::tempdir().unwrap();
    let prog = origin_fixture(dir.path(), false);
    let b = builder(&host_binary(), &dir.path().join("cache"));
    let files = host_files(&b, &prog);
    // The scheduler lives in /ktstr/bin, so its $ORIGIN/../lib is /ktstr/lib in the guest.
    for name in ["libkta.so.1", "libktb.so.1"] {
        let guest = format!("/ktstr/lib/{name}");
        let (_, host) = files
            .iter()
            .find(|(g, _)| *g == guest)
            .unwrap_or_else(|| panic!("{guest} in {files:?}"));
        assert_eq!(
            host.canonicalize().unwrap(),
            dir.path().join("lib").join(name).canonicalize().unwrap()
        );
    }
    let image = b.build_blocking(&plan(&prog, &[])).unwrap().path;
    assert_eq!(run_in_image(&image, "/ktstr/bin/prog"), "42\n");
}

#[test]
fn runpath_applies_to_direct_dependencies_only() {
    let dir = tempfile::tempdir().unwrap();
    let prog = origin_fixture(dir.path(), true);
    let err = builder(&host_binary(), &dir.path().join("cache"))
        .manifest(&plan(&prog, &[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("libktb.so.1") && err.contains("libkta.so.1"),
        "{err}"
    );
    assert!(
        err.contains(&format!("pulled in by `{}`", prog.display())),
        "{err}"
    );
}

#[test]
fn ld_so_conf_directories_are_searched_and_bring_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir_all(d.join("conflib")).unwrap();
    fs::create_dir_all(d.join("conf.d")).unwrap();
    source(d, "c.c", "int c_value(void) { return 7; }\n");
    source(
        d,
        "main.c",
        "int c_value(void);\nint main(void) { return c_value() - 7; }\n",
    );
    cc(
        d,
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libktconf.so.1",
            "-o",
            "conflib/libktconf.so.1",
            "c.c",
        ],
    );
    cc(
        d,
        &["-o", "prog", "main.c", "-Lconflib", "-l:libktconf.so.1"],
    );
    let prog = d.join("prog");

    let missing = builder(&host_binary(), &d.join("cache")).manifest(&plan(&prog, &[]));
    assert!(missing.unwrap_err().to_string().contains("libktconf.so.1"));

    fs::write(d.join("ld.so.conf"), "include conf.d/*.conf\n").unwrap();
    fs::write(
        d.join("conf.d/kt.conf"),
        format!("{}\n", d.join("conflib").display()),
    )
    .unwrap();
    fs::write(d.join("fake.cache"), b"ld.so-1.7.0").unwrap();
    let search = LibrarySearch {
        ld_so_conf: d.join("ld.so.conf"),
        ld_so_cache: d.join("fake.cache"),
        ..LibrarySearch::default()
    };
    let b = builder(&host_binary(), &d.join("cache")).with_library_search(search);
    let files = host_files(&b, &prog);
    let lib = d.join("conflib/libktconf.so.1");
    assert!(
        files.iter().any(|(g, h)| Path::new(g) == lib && *h == lib),
        "{files:?}"
    );
    assert!(
        files
            .iter()
            .any(|(g, h)| g == LD_CACHE_PATH && *h == d.join("fake.cache")),
        "{files:?}"
    );
}
