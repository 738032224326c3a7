//! The guest's CPU topology as its own sysfs shows it (the guest must *see* the
//! preset). Reads from a root directory so tests can use a fake sysfs tree.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ktstr_domain::shape::observed::ObservedTopology;

use crate::cpulist::parse_cpu_list;

fn cpu_dir(root: &Path) -> PathBuf {
    root.join("sys/devices/system/cpu")
}

fn read_list(path: &Path) -> Result<Vec<u32>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(parse_cpu_list(&text)?)
}

/// Reads online CPUs, SMT sibling groups, L3 groups and NUMA nodes below `root` (`/` in the
/// guest). Groups are restricted to online CPUs, sorted, deduplicated and ordered by their
/// first CPU. A CPU without a readable sibling list is its own core; a CPU without an L3 is
/// in no L3 group (the host's shape check then names the gap rather than us inventing one).
pub fn read_topology(root: &Path) -> Result<ObservedTopology> {
    let cpus = cpu_dir(root);
    let online = read_list(&cpus.join("online"))?;

    let mut cores = Vec::new();
    let mut llcs = Vec::new();
    for &cpu in &online {
        let dir = cpus.join(format!("cpu{cpu}"));
        cores.push(
            read_list(&dir.join("topology/thread_siblings_list")).unwrap_or_else(|_| vec![cpu]),
        );
        if let Some(l3) = l3_of(&dir)? {
            llcs.push(l3);
        }
    }
    let numa_nodes = match numa_node_lists(root)? {
        Some(nodes) => nodes,
        None => vec![online.clone()],
    };

    Ok(ObservedTopology {
        cores: normalize_groups(cores, &online),
        llcs: normalize_groups(llcs, &online),
        numa_nodes: normalize_groups(numa_nodes, &online),
        online_cpus: online,
    })
}

/// The `shared_cpu_list` of the level-3 cache of the CPU whose sysfs directory is `cpu_dir`.
fn l3_of(cpu_dir: &Path) -> Result<Option<Vec<u32>>> {
    let Ok(entries) = fs::read_dir(cpu_dir.join("cache")) else {
        return Ok(None);
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("index") {
            continue;
        }
        let level = fs::read_to_string(entry.path().join("level")).unwrap_or_default();
        if level.trim() == "3" {
            return read_list(&entry.path().join("shared_cpu_list")).map(Some);
        }
    }
    Ok(None)
}

/// `nodeN/cpulist` for every node directory, or `None` when the kernel shows no nodes
/// (built without NUMA).
fn numa_node_lists(root: &Path) -> Result<Option<Vec<Vec<u32>>>> {
    let Ok(entries) = fs::read_dir(root.join("sys/devices/system/node")) else {
        return Ok(None);
    };
    let mut nodes = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_node = name
            .strip_prefix("node")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_node {
            nodes.push(read_list(&entry.path().join("cpulist"))?);
        }
    }
    Ok(if nodes.is_empty() { None } else { Some(nodes) })
}

/// Restricts each group to online CPUs, drops empty groups (memory-only nodes) and
/// duplicates, and orders groups by their first CPU.
fn normalize_groups(groups: Vec<Vec<u32>>, online: &[u32]) -> Vec<Vec<u32>> {
    let online: BTreeSet<u32> = online.iter().copied().collect();
    let set: BTreeSet<Vec<u32>> = groups
        .into_iter()
        .map(|g| {
            let mut g: Vec<u32> = g.into_iter().filter(|c| online.contains(c)).collect();
            g.sort_unstable();
            g.dedup();
            g
        })
        .filter(|g| !g.is_empty())
        .collect();
    // BTreeSet<Vec<u32>> orders lexicographically, i.e. by first CPU for disjoint groups.
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeSysfs {
        dir: tempfile::TempDir,
    }

    impl FakeSysfs {
        fn new(online: &str) -> Self {
            let fake = FakeSysfs {
                dir: tempfile::tempdir().unwrap(),
            };
            fake.write("sys/devices/system/cpu/online", online);
            fake
        }

        fn write(&self, rel: &str, text: &str) {
            let path = self.dir.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, format!("{text}\n")).unwrap();
        }

        fn cpu(&self, cpu: u32, siblings: &str, caches: &[(u32, &str)]) {
            let base = format!("sys/devices/system/cpu/cpu{cpu}");
            self.write(&format!("{base}/topology/thread_siblings_list"), siblings);
            for (i, (level, shared)) in caches.iter().enumerate() {
                self.write(&format!("{base}/cache/index{i}/level"), &level.to_string());
                self.write(&format!("{base}/cache/index{i}/shared_cpu_list"), shared);
            }
        }
    }

    #[test]
    fn smt_two_llcs_one_node_without_node_dirs() {
        // smt-2llc: 1n2l2c2t, siblings numbered (n, n+4) as Linux often does.
        let fake = FakeSysfs::new("0-7");
        for cpu in 0..8u32 {
            let core = cpu % 4;
            let siblings = format!("{},{}", core, core + 4);
            let llc = if core < 2 { "0-1,4-5" } else { "2-3,6-7" };
            fake.cpu(
                cpu,
                &siblings,
                &[(1, &cpu.to_string()), (2, &siblings), (3, llc)],
            );
        }
        let t = read_topology(fake.dir.path()).unwrap();
        assert_eq!(t.online_cpus, (0..8).collect::<Vec<_>>());
        assert_eq!(
            t.cores,
            vec![vec![0, 4], vec![1, 5], vec![2, 6], vec![3, 7]]
        );
        assert_eq!(t.llcs, vec![vec![0, 1, 4, 5], vec![2, 3, 6, 7]]);
        assert_eq!(t.numa_nodes, vec![(0..8).collect::<Vec<_>>()]);
    }

    #[test]
    fn numa_nodes_offline_cpus_and_missing_files() {
        let fake = FakeSysfs::new("0-2");
        // cpu3 is offline but still listed in shared lists and its node.
        fake.cpu(0, "0", &[(3, "0-1")]);
        fake.cpu(1, "1", &[(3, "0-1")]);
        fake.cpu(2, "2", &[(2, "2"), (3, "2-3")]);
        fake.write("sys/devices/system/node/node1/cpulist", "2-3");
        fake.write("sys/devices/system/node/node0/cpulist", "0-1");
        // A memory-only node and an unrelated entry.
        fake.write("sys/devices/system/node/node2/cpulist", "");
        fake.write("sys/devices/system/node/possible", "0-2");
        let t = read_topology(fake.dir.path()).unwrap();
        assert_eq!(t.cores, vec![vec![0], vec![1], vec![2]]);
        assert_eq!(t.llcs, vec![vec![0, 1], vec![2]]);
        assert_eq!(t.numa_nodes, vec![vec![0, 1], vec![2]]);
    }

    #[test]
    fn cpu_without_sysfs_dir_is_own_core_in_no_llc() {
        let fake = FakeSysfs::new("0-1");
        fake.cpu(0, "0", &[(3, "0")]);
        let t = read_topology(fake.dir.path()).unwrap();
        assert_eq!(t.cores, vec![vec![0], vec![1]]);
        assert_eq!(t.llcs, vec![vec![0]]);
    }

    #[test]
    fn missing_online_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_topology(dir.path()).is_err());
    }
}
