//! What goes into an image, decided without writing anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ktstr_domain::protocol::init_plan::{
    DEFAULT_ATTACH_MS, DEFAULT_PROBE_MS, FRAME_DEVICE, GUEST_BIN_DIR, INIT_PLAN_PATH, InitPlan,
};
use ktstr_ports::GuestPlan;

use crate::error::BuildError;
use crate::paths::ancestors;
use crate::shared_libs::{self, LibrarySearch, SystemDirs};

/// Where the kernel runs the init from.
pub const INIT_PATH: &str = "/init";
/// Where the guest loader finds directories outside its built-in list, when needed.
pub const LD_CACHE_PATH: &str = "/etc/ld.so.cache";
/// The console the kernel opens for init before devtmpfs is mounted.
pub const CONSOLE_PATH: &str = "/dev/console";

/// Mount points and directories the init expects, beyond the parents of packed files.
const BASE_DIRS: [&str; 7] = [
    "/dev",
    "/proc",
    "/sys",
    "/tmp",
    "/run",
    "/ktstr",
    GUEST_BIN_DIR,
];

/// Where an entry's bytes (if any) come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntrySource {
    Directory,
    CharDevice {
        major: u32,
        minor: u32,
    },
    /// A host file, read when the image is built (symlinks followed).
    HostFile(PathBuf),
    /// Bytes made by the builder, such as the init plan.
    Generated(Vec<u8>),
}

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// Absolute path inside the guest.
    pub guest_path: String,
    /// Permission bits; the file type follows from `source`.
    pub mode: u32,
    pub source: EntrySource,
}

/// The plan the init reads, for a scheduler placed under [`GUEST_BIN_DIR`].
pub fn init_plan(plan: &GuestPlan, log_limit_bytes: u64) -> Result<InitPlan, BuildError> {
    Ok(InitPlan {
        scheduler: scheduler_guest_path(&plan.scheduler)?,
        sched_args: plan.sched_args.clone(),
        attach_timeout_ms: DEFAULT_ATTACH_MS,
        probe_ms: DEFAULT_PROBE_MS,
        frame_device: FRAME_DEVICE.to_owned(),
        log_limit_bytes,
        boot_profile: false,
    })
}

fn scheduler_guest_path(scheduler: &Path) -> Result<String, BuildError> {
    let name = scheduler
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| BuildError::SchedulerName(scheduler.to_owned()))?;
    Ok(format!("{GUEST_BIN_DIR}/{name}"))
}

/// Directories first (parents before children), then the console, then files, each
/// group sorted by guest path so the archive is reproducible.
pub(crate) fn assemble(
    init_binary: &Path,
    plan: &GuestPlan,
    log_limit_bytes: u64,
    search: &LibrarySearch,
) -> Result<Vec<ImageEntry>, BuildError> {
    let init_plan = init_plan(plan, log_limit_bytes)?;
    let mut files = Files::default();
    files.add(
        INIT_PATH,
        0o755,
        EntrySource::HostFile(init_binary.to_owned()),
    )?;
    files.add(
        &init_plan.scheduler,
        0o755,
        EntrySource::HostFile(plan.scheduler.clone()),
    )?;
    files.add(
        INIT_PLAN_PATH,
        0o644,
        EntrySource::Generated(init_plan.to_json().into_bytes()),
    )?;

    let dirs = SystemDirs::load(search);
    let mut needs_ld_cache = false;
    for (binary, guest) in [
        (init_binary, INIT_PATH),
        (plan.scheduler.as_path(), &init_plan.scheduler),
    ] {
        let deps = shared_libs::dependencies(binary, guest, &dirs)?;
        needs_ld_cache |= deps.needs_ld_cache;
        for object in deps.objects {
            files.add(
                &object.guest_path,
                0o755,
                EntrySource::HostFile(object.host_path),
            )?;
        }
    }
    if needs_ld_cache && search.ld_so_cache.is_file() {
        files.add(
            LD_CACHE_PATH,
            0o644,
            EntrySource::HostFile(search.ld_so_cache.clone()),
        )?;
    }

    let mut dir_paths: BTreeSet<String> = BASE_DIRS.iter().map(|d| (*d).to_owned()).collect();
    for path in files.0.keys().map(String::as_str).chain([CONSOLE_PATH]) {
        dir_paths.extend(ancestors(path));
    }
    let mut entries: Vec<ImageEntry> = dir_paths
        .into_iter()
        .map(|guest_path| ImageEntry {
            mode: if guest_path == "/tmp" { 0o1777 } else { 0o755 },
            guest_path,
            source: EntrySource::Directory,
        })
        .collect();
    entries.push(ImageEntry {
        guest_path: CONSOLE_PATH.to_owned(),
        mode: 0o600,
        source: EntrySource::CharDevice { major: 5, minor: 1 },
    });
    entries.extend(files.0.into_values());
    Ok(entries)
}

#[derive(Debug, Default)]
struct Files(BTreeMap<String, ImageEntry>);

impl Files {
    /// The same host file reached twice (init and scheduler share libc) is packed once.
    fn add(&mut self, guest_path: &str, mode: u32, source: EntrySource) -> Result<(), BuildError> {
        if let Some(existing) = self.0.get(guest_path) {
            return match (&existing.source, &source) {
                (EntrySource::HostFile(a), EntrySource::HostFile(b)) if same_file(a, b) => Ok(()),
                (a, b) => Err(BuildError::Conflict {
                    guest_path: guest_path.to_owned(),
                    first: describe(a),
                    second: describe(b),
                }),
            };
        }
        let entry = ImageEntry {
            guest_path: guest_path.to_owned(),
            mode,
            source,
        };
        self.0.insert(guest_path.to_owned(), entry);
        Ok(())
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

fn describe(source: &EntrySource) -> PathBuf {
    match source {
        EntrySource::HostFile(p) => p.clone(),
        _ => PathBuf::from("<generated>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_plan_points_at_the_guest_bin_dir() {
        let plan = GuestPlan {
            scheduler: "/host/target/release/scx_foo".into(),
            sched_args: vec!["-v".into()],
        };
        let got = init_plan(&plan, 4096).unwrap();
        assert_eq!(got.scheduler, "/ktstr/bin/scx_foo");
        // The cell's own waits come on the kernel command line; these are the fallbacks.
        assert_eq!(
            (got.attach_timeout_ms, got.probe_ms),
            (DEFAULT_ATTACH_MS, DEFAULT_PROBE_MS)
        );
        assert_eq!(got.frame_device, FRAME_DEVICE);
        let bad = GuestPlan {
            scheduler: "/".into(),
            ..plan
        };
        assert!(matches!(
            init_plan(&bad, 1),
            Err(BuildError::SchedulerName(_))
        ));
    }
}
