//! The CPU topology the BPF side is specialised for: which CPUs are online and which
//! of them share a last-level (L3) cache, as the guest's own sysfs reports it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

/// Mirrors `KTSTR_MAX_CPUS` / `KTSTR_MAX_LLCS` in `src/bpf/intf.h`.
pub const MAX_CPUS: usize = 512;
pub const MAX_LLCS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Online CPU ids, ascending.
    pub online: Vec<u32>,
    /// Bound for the BPF side's CPU scans: highest online id + 1 (equals the online
    /// count whenever online CPUs are contiguous, as in every ktstr guest).
    pub nr_cpus: u32,
    pub nr_llcs: u32,
    /// LLC id of every online CPU; ids are dense, numbered by each LLC's lowest CPU.
    pub cpu_llc: BTreeMap<u32, u32>,
}

/// The CPUs of every LLC laid out one LLC after another, as the BPF side scans them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlcLayout {
    /// CPU ids grouped by LLC, ascending within each.
    pub cpus: Vec<u32>,
    /// Where each LLC's CPUs start in `cpus`.
    pub first: Vec<u32>,
    /// How many CPUs each LLC has.
    pub size: Vec<u32>,
    /// The largest LLC's size.
    pub span: u32,
}

impl Topology {
    pub fn llc_layout(&self) -> LlcLayout {
        let mut by_llc: Vec<Vec<u32>> = vec![Vec::new(); self.nr_llcs as usize];
        for (&cpu, &llc) in &self.cpu_llc {
            by_llc[llc as usize].push(cpu);
        }
        let mut layout = LlcLayout {
            cpus: Vec::with_capacity(self.cpu_llc.len()),
            first: Vec::with_capacity(by_llc.len()),
            size: Vec::with_capacity(by_llc.len()),
            span: 0,
        };
        for cpus in by_llc {
            let size = cpus.len() as u32;
            layout.first.push(layout.cpus.len() as u32);
            layout.size.push(size);
            layout.span = layout.span.max(size);
            layout.cpus.extend(cpus);
        }
        layout
    }
}

/// Parses a kernel CPU list such as `0-3,8,10-11` (as in `online` or
/// `shared_cpu_list`) into ascending, de-duplicated ids.
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>> {
    let text = text.trim();
    let mut cpus = Vec::new();
    if text.is_empty() {
        return Ok(cpus);
    }
    for part in text.split(',') {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (parse_id(lo, text)?, parse_id(hi, text)?),
            None => {
                let id = parse_id(part, text)?;
                (id, id)
            }
        };
        ensure!(lo <= hi, "reversed range {part:?} in CPU list {text:?}");
        ensure!(
            (hi as usize) < MAX_CPUS,
            "CPU {hi} in {text:?} is beyond the {MAX_CPUS} CPUs scx-ktstr supports"
        );
        cpus.extend(lo..=hi);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

fn parse_id(s: &str, whole: &str) -> Result<u32> {
    s.trim()
        .parse()
        .with_context(|| format!("bad CPU id {s:?} in CPU list {whole:?}"))
}

/// Groups online CPUs by the L3 they share. `l3_shared` maps a CPU to its L3's
/// `shared_cpu_list`; CPUs missing from it (no L3 reported) share one group.
pub fn group_llcs(online: &[u32], l3_shared: &BTreeMap<u32, Vec<u32>>) -> Result<Topology> {
    let Some(&highest) = online.iter().max() else {
        bail!("no online CPUs");
    };
    let mut online = online.to_vec();
    online.sort_unstable();
    online.dedup();

    let no_l3 = Vec::new();
    let mut ids: BTreeMap<&[u32], u32> = BTreeMap::new();
    let mut cpu_llc = BTreeMap::new();
    for &cpu in &online {
        let key = l3_shared.get(&cpu).unwrap_or(&no_l3).as_slice();
        let next = u32::try_from(ids.len())?;
        let llc = *ids.entry(key).or_insert(next);
        cpu_llc.insert(cpu, llc);
    }
    ensure!(
        ids.len() <= MAX_LLCS,
        "{} LLCs found; scx-ktstr supports at most {MAX_LLCS}",
        ids.len()
    );
    Ok(Topology {
        online,
        nr_cpus: highest + 1,
        nr_llcs: u32::try_from(ids.len())?,
        cpu_llc,
    })
}

/// Reads the topology below `cpu_root` (normally `/sys/devices/system/cpu`).
pub fn read_sysfs(cpu_root: &Path) -> Result<Topology> {
    let online_path = cpu_root.join("online");
    let online = fs::read_to_string(&online_path)
        .with_context(|| format!("reading {}", online_path.display()))?;
    let online = parse_cpu_list(&online)?;

    let mut l3_shared = BTreeMap::new();
    for &cpu in &online {
        if let Some(list) = read_l3_shared(&cpu_root.join(format!("cpu{cpu}/cache")))? {
            l3_shared.insert(cpu, list);
        }
    }
    group_llcs(&online, &l3_shared)
}

/// The `shared_cpu_list` of the cache index whose `level` is 3, if any.
fn read_l3_shared(cache_dir: &Path) -> Result<Option<Vec<u32>>> {
    let Ok(entries) = fs::read_dir(cache_dir) else {
        return Ok(None);
    };
    let mut indices: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("index"))
        })
        .collect();
    indices.sort();
    for index in indices {
        let level = fs::read_to_string(index.join("level")).unwrap_or_default();
        if level.trim() != "3" {
            continue;
        }
        let shared_path = index.join("shared_cpu_list");
        let shared = fs::read_to_string(&shared_path)
            .with_context(|| format!("reading {}", shared_path.display()))?;
        return parse_cpu_list(&shared).map(Some);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_singles_and_whitespace() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n").unwrap(),
            vec![0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(parse_cpu_list("5").unwrap(), vec![5]);
        assert_eq!(parse_cpu_list(" 2-2 , 0 ").unwrap(), vec![0, 2]);
        assert!(parse_cpu_list("").unwrap().is_empty());
    }

    #[test]
    fn parse_sorts_and_dedups() {
        assert_eq!(parse_cpu_list("4-5,0,4").unwrap(), vec![0, 4, 5]);
    }

    #[test]
    fn parse_rejects_garbage() {
        for bad in ["a", "1-", "-3", "3-1", "1,,2", "0-512"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    fn shared(pairs: &[(u32, &str)]) -> BTreeMap<u32, Vec<u32>> {
        pairs
            .iter()
            .map(|&(cpu, list)| (cpu, parse_cpu_list(list).unwrap()))
            .collect()
    }

    #[test]
    fn groups_by_shared_l3_in_cpu_order() {
        // Two LLCs interleaved, as SMT siblings numbered apart would give.
        let l3 = shared(&[(0, "0,2"), (1, "1,3"), (2, "0,2"), (3, "1,3")]);
        let t = group_llcs(&[0, 1, 2, 3], &l3).unwrap();
        assert_eq!(t.nr_cpus, 4);
        assert_eq!(t.nr_llcs, 2);
        assert_eq!(
            t.cpu_llc.into_iter().collect::<Vec<_>>(),
            vec![(0, 0), (1, 1), (2, 0), (3, 1)]
        );
    }

    #[test]
    fn three_llcs_of_three() {
        let l3 = shared(&[
            (0, "0-2"),
            (1, "0-2"),
            (2, "0-2"),
            (3, "3-5"),
            (4, "3-5"),
            (5, "3-5"),
            (6, "6-8"),
            (7, "6-8"),
            (8, "6-8"),
        ]);
        let t = group_llcs(&(0..9).collect::<Vec<_>>(), &l3).unwrap();
        assert_eq!(t.nr_llcs, 3);
        assert_eq!(t.cpu_llc[&4], 1);
        assert_eq!(t.cpu_llc[&8], 2);
        assert_eq!(
            t.llc_layout(),
            LlcLayout {
                cpus: (0..9).collect(),
                first: vec![0, 3, 6],
                size: vec![3, 3, 3],
                span: 3,
            }
        );
    }

    #[test]
    fn missing_l3_means_one_llc() {
        let t = group_llcs(&[0, 1, 2], &BTreeMap::new()).unwrap();
        assert_eq!(t.nr_llcs, 1);
        assert!(t.cpu_llc.values().all(|&l| l == 0));
    }

    #[test]
    fn scan_bound_covers_holes() {
        let t = group_llcs(&[0, 1, 4], &BTreeMap::new()).unwrap();
        assert_eq!(t.nr_cpus, 5);
        assert_eq!(t.online, vec![0, 1, 4]);
    }

    #[test]
    fn no_cpus_is_an_error() {
        assert!(group_llcs(&[], &BTreeMap::new()).is_err());
    }

    #[test]
    fn too_many_llcs_is_an_error() {
        let online: Vec<u32> = (0..65).collect();
        let l3 = online.iter().map(|&c| (c, vec![c])).collect();
        assert!(group_llcs(&online, &l3).is_err());
    }

    #[test]
    fn reads_a_sysfs_tree() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path();
        fs::write(p.join("online"), "0-3\n").unwrap();
        for cpu in 0..4u32 {
            let llc = if cpu < 2 { "0-1" } else { "2-3" };
            for (idx, level, list) in [(0, "1", "0"), (2, "2", "0"), (3, "3", llc)] {
                let dir = p.join(format!("cpu{cpu}/cache/index{idx}"));
                fs::create_dir_all(&dir).unwrap();
                fs::write(dir.join("level"), format!("{level}\n")).unwrap();
                fs::write(dir.join("shared_cpu_list"), format!("{list}\n")).unwrap();
            }
        }
        let t = read_sysfs(p).unwrap();
        assert_eq!((t.nr_cpus, t.nr_llcs), (4, 2));
        assert_eq!(t.cpu_llc[&1], 0);
        assert_eq!(t.cpu_llc[&2], 1);
        let layout = t.llc_layout();
        assert_eq!(layout.first, [0, layout.size[0]]);
        assert_eq!(layout.cpus.len(), 4);
        assert_eq!(layout.span, *layout.size.iter().max().unwrap());
    }
}
