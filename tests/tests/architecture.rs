//! The hexagonal rules, checked against `cargo metadata`: dependencies point inward, and
//! the domain stays free of I/O, async, OS and hypervisor crates.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// What `cargo <args>` prints, run from this crate.
fn cargo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo");
    assert!(
        out.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Normal (non-dev, non-build) dependencies of every package in the resolved graph.
fn graph() -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
    let meta: Value =
        serde_json::from_str(&cargo(&["metadata", "--format-version", "1", "--locked"])).unwrap();
    let name_of = |id: &str| -> String {
        meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .map(|p| p["name"].as_str().unwrap().to_string())
            .unwrap()
    };
    let members: BTreeSet<String> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| name_of(id.as_str().unwrap()))
        .collect();
    let mut deps = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let normal: BTreeSet<String> = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| name_of(d["pkg"].as_str().unwrap()))
            .collect();
        deps.insert(name_of(node["id"].as_str().unwrap()), normal);
    }
    (deps, members)
}

fn closure(deps: &BTreeMap<String, BTreeSet<String>>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![root.to_string()];
    while let Some(p) = todo.pop() {
        for d in &deps[&p] {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn the_domain_pulls_in_no_io_async_os_or_hypervisor_crate() {
    let (deps, _) = graph();
    let forbidden = [
        "tokio",
        "async-trait",
        "futures",
        "libc",
        "nix",
        "rustix",
        "kvm-ioctls",
        "kvm-bindings",
        "vm-memory",
        "mshv-ioctls",
        "linux-loader",
        "mio",
        "socket2",
        "memmap2",
        "tempfile",
        "object",
        "goblin",
        "btf-rs",
    ];
    let all = closure(&deps, "ktstr-domain");
    for f in forbidden {
        assert!(!all.contains(f), "ktstr-domain depends on `{f}`");
    }
}

#[test]
fn dependencies_point_inward() {
    let (deps, members) = graph();
    let layer = |name: &str| -> u8 {
        match name {
            "ktstr-domain" => 0,
            // Beside each other, never on each other: the port traits, and the host
            // probing every backend and the app share.
            "ktstr-ports" | "ktstr-host" => 1,
            "ktstr" => 3,
            "ktstr-tests" => 4,
            _ => 2, // adapters
        }
    };
    for member in &members {
        for dep in deps[member].iter().filter(|d| members.contains(*d)) {
            assert!(
                layer(dep) < layer(member),
                "`{member}` must not depend on `{dep}`: dependencies point inward"
            );
        }
    }
    assert!(deps["ktstr-domain"].iter().all(|d| !members.contains(d)));
}

/// Rust sources under `dir` (relative to the workspace root), recursively.
fn sources(dir: &str) -> Vec<(std::path::PathBuf, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dir);
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    out
}

#[test]
fn host_probing_has_one_home() {
    // KVM detection and /proc parsing live in ktstr-host; backends and the app ask it.
    // (Tests may look at /proc to check what the code left behind.)
    for dir in ["app/src", "adapters", "ports/src", "domain/src"] {
        for (path, text) in sources(dir) {
            if path.components().any(|c| c.as_os_str() == "tests") {
                continue;
            }
            for needle in ["\"/proc/", "\"/sys/module", "\"/dev/kvm"] {
                assert!(
                    !text.contains(needle),
                    "{} probes the host ({needle}); use ktstr-host",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn only_the_backend_factory_names_a_concrete_backend() {
    for (path, text) in sources("app/src") {
        if path.ends_with("backends.rs") {
            continue;
        }
        assert!(
            !text.contains("QemuBackend"),
            "{} names QemuBackend; build backends in app/src/backends.rs",
            path.display()
        );
    }
}

#[test]
fn test_support_and_mocks_stay_out_of_the_ktstr_binary() {
    let tree = cargo(&[
        "tree",
        "--locked",
        "-p",
        "ktstr",
        "-e",
        "features,normal",
        "--prefix",
        "none",
    ]);
    assert!(tree.contains("ktstr-domain"), "{tree}");
    for feature in ["\"test-support\"", "\"mocks\""] {
        assert!(
            !tree.contains(feature),
            "the ktstr binary enables feature {feature}:\n{tree}"
        );
    }
}

/// Every `.rs` module under `dir`, as (name, path); `mod.rs` counts as its folder's name.
fn modules(dir: &std::path::Path, out: &mut Vec<(String, std::path::PathBuf)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            modules(&path, out);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let name = if stem == "mod" {
            dir.file_name().unwrap().to_string_lossy().into_owned()
        } else {
            stem
        };
        // Entry points and a module's own test file say nothing of what a module holds.
        if !["lib", "main", "error", "tests"].contains(&name.as_str()) {
            out.push((name, path));
        }
    }
}

#[test]
fn no_two_modules_of_the_workspace_have_the_same_name() {
    // A name says what a module holds; two `layout`s or `resolve`s say it twice, vaguely.
    let crates = [
        "domain/src",
        "ports/src",
        "host/src",
        "adapters/initramfs/src",
        "adapters/introspection/src",
        "adapters/kernel-cache/src",
        "adapters/qemu/src",
        "adapters/report/src",
        "adapters/scheduler-source/src",
        "adapters/vmm/src",
        "app/src",
        "guest/init/src",
        "guest/scx-ktstr/src",
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut owner: BTreeMap<String, std::path::PathBuf> = BTreeMap::new();
    for dir in crates {
        let mut found = Vec::new();
        modules(&root.join(dir), &mut found);
        for (name, path) in found {
            // A module's file and its folder of submodules are one module.
            let module = path.with_extension("");
            if let Some(other) = owner.insert(name.clone(), module.clone())
                && other != module
                && other != module.parent().unwrap()
            {
                panic!(
                    "module `{name}` is both {} and {}; name each for what it holds",
                    other.display(),
                    path.display()
                );
            }
        }
    }
}

/// The domain's folders in layers: each may use only those listed for it.
const DOMAIN_LAYERS: [(&str, &[&str]); 7] = [
    ("shape", &[]),
    ("kernel", &[]),
    ("verifier_log", &[]),
    ("plan", &["shape", "kernel"]),
    ("protocol", &["shape", "verifier_log", "plan"]),
    (
        "judging",
        &["shape", "kernel", "verifier_log", "plan", "protocol"],
    ),
    (
        "results",
        &[
            "shape",
            "kernel",
            "verifier_log",
            "plan",
            "protocol",
            "judging",
        ],
    ),
];

/// `crate::FOLDER::MODULE` paths a domain source file uses, outside its unit tests.
fn domain_uses(path: &std::path::Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let mut parts = code[at + "crate::".len()..]
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .next()
            .unwrap()
            .split("::");
        if let (Some(folder), Some(module)) = (parts.next(), parts.next()) {
            out.push((folder.to_string(), module.to_string()));
        }
    }
    out
}

#[test]
fn the_domain_folders_are_layered_and_no_two_modules_use_each_other() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain/src");
    let layers: BTreeMap<&str, &[&str]> = DOMAIN_LAYERS.into_iter().collect();
    let mut uses: BTreeMap<(String, String), BTreeSet<(String, String)>> = BTreeMap::new();
    let mut found = Vec::new();
    modules(&src, &mut found);
    for (name, path) in &found {
        let folder = path
            .strip_prefix(&src)
            .unwrap()
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        let allowed = layers
            .get(folder.as_str())
            .unwrap_or_else(|| panic!("domain folder `{folder}` has no layer; add it"));
        for (used_folder, used_module) in domain_uses(path) {
            assert!(
                used_folder == folder || allowed.contains(&used_folder.as_str()),
                "{} uses crate::{used_folder}::{used_module}: `{folder}` may use only {allowed:?}",
                path.display()
            );
            let module = (folder.clone(), name.clone());
            if (used_folder.clone(), used_module.clone()) != module {
                uses.entry(module)
                    .or_default()
                    .insert((used_folder, used_module));
            }
        }
    }
    for (module, used) in &uses {
        for other in used {
            assert!(
                !uses.get(other).is_some_and(|back| back.contains(module)),
                "domain modules {module:?} and {other:?} use each other"
            );
        }
    }
}
