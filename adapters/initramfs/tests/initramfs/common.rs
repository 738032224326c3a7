//! Helpers: an independent newc reader, a C compiler wrapper, plan and builder fixtures.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use ktstr_initramfs::InitramfsBuilder;
use ktstr_ports::GuestPlan;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFCHR: u32 = 0o020000;

#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub mode: u32,
    pub nlink: u32,
    pub rdev: (u32, u32),
    pub data: Vec<u8>,
}

/// Gunzips and parses a newc archive, checking the framing as the kernel would.
pub fn read_image(path: &Path) -> Vec<Member> {
    let gz = std::fs::read(path).unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .expect("valid gzip");
    let align = |n: usize| (n + 3) & !3;
    let mut members = Vec::new();
    let mut pos = 0;
    loop {
        let header = &raw[pos..pos + 110];
        assert_eq!(&header[..6], b"070701", "newc magic at offset {pos}");
        let field = |i: usize| {
            let text = std::str::from_utf8(&header[6 + 8 * i..14 + 8 * i]).unwrap();
            u32::from_str_radix(text, 16).unwrap()
        };
        let (mode, nlink, size, namesize) =
            (field(1), field(4), field(6) as usize, field(11) as usize);
        let name_bytes = &raw[pos + 110..pos + 110 + namesize];
        assert_eq!(name_bytes.last(), Some(&0), "name is NUL-terminated");
        let name = String::from_utf8(name_bytes[..namesize - 1].to_vec()).unwrap();
        pos = align(pos + 110 + namesize);
        let data = raw[pos..pos + size].to_vec();
        pos = align(pos + size);
        if name == "TRAILER!!!" {
            break;
        }
        members.push(Member {
            name,
            mode,
            nlink,
            rdev: (field(9), field(10)),
            data,
        });
    }
    assert_eq!(pos, raw.len(), "nothing after the trailer");
    members
}

/// Members by absolute guest path.
pub fn by_path(members: &[Member]) -> BTreeMap<String, Member> {
    members
        .iter()
        .map(|m| (format!("/{}", m.name), m.clone()))
        .collect()
}

/// Runs `cc` in `dir`; a missing compiler or failed compile fails the test loudly.
pub fn cc(dir: &Path, args: &[&str]) {
    let out = Command::new("cc")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("these tests need a C compiler: `apt-get install gcc` (cc not found)");
    assert!(
        out.status.success(),
        "cc {args:?} failed (static tests need libc6-dev, libelf tests need libelf-dev):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a host tool and returns stdout; a missing tool fails with the package to install.
pub fn tool(program: &str, args: &[&str], package: &str) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("`{program}` is needed (apt-get install {package}): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The PT_INTERP path as binutils reports it.
pub fn interpreter_of(binary: &Path) -> String {
    let text = tool("readelf", &["-lW", binary.to_str().unwrap()], "binutils");
    let line = text
        .lines()
        .find(|l| l.contains("Requesting program interpreter:"))
        .unwrap_or_else(|| panic!("{} has no PT_INTERP", binary.display()));
    line.rsplit(": ")
        .next()
        .unwrap()
        .trim_end_matches(']')
        .to_owned()
}

/// DT_NEEDED names as binutils reports them.
pub fn needed_of(binary: &Path) -> Vec<String> {
    tool("readelf", &["-dW", binary.to_str().unwrap()], "binutils")
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .map(|l| {
            l.rsplit('[')
                .next()
                .unwrap()
                .trim_end_matches(']')
                .to_owned()
        })
        .collect()
}

pub fn plan(scheduler: &Path, args: &[&str]) -> GuestPlan {
    GuestPlan {
        scheduler: scheduler.to_owned(),
        sched_args: args.iter().map(|a| (*a).to_owned()).collect(),
    }
}

pub fn builder(init: &Path, cache: &Path) -> InitramfsBuilder {
    InitramfsBuilder::new(init, cache, 1 << 20)
}

/// Writes a C source file and returns its path.
pub fn source(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A dynamically linked host binary present on every Debian-like system.
pub fn host_binary() -> PathBuf {
    ["/usr/bin/env", "/bin/true"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("/usr/bin/env or /bin/true (coreutils) is needed")
}
