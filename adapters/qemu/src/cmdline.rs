//! The QEMU command line for one cell: accelerator, CPU model, topology, NUMA, RAM
//! backing files, serial channels.

use std::path::{Path, PathBuf};

use ktstr_domain::topology::Topology;
use ktstr_ports::VmSpec;

/// Which accelerator QEMU runs the guest on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware KVM (VMX/SVM).
    Kvm,
    /// QEMU's software emulation; works everywhere, slower.
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Where one VM keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmFiles {
    pub console: PathBuf,
    pub frames: PathBuf,
    /// One RAM backing file per NUMA node, mapped in node order from guest address 0.
    pub ram: Vec<PathBuf>,
}

/// MiB of RAM each NUMA node gets; the remainder goes to node 0.
pub fn node_memory_mib(memory_mib: u32, nodes: u32) -> Vec<u32> {
    let per = memory_mib / nodes;
    (0..nodes)
        .map(|n| {
            if n == 0 {
                per + memory_mib % nodes
            } else {
                per
            }
        })
        .collect()
}

/// The arguments after the QEMU binary.
pub fn qemu_args(spec: &VmSpec, accel: Accel, files: &VmFiles) -> Vec<String> {
    let t: &Topology = &spec.topology;
    let mut args: Vec<String> = Vec::new();
    let mut push = |a: &str, b: String| {
        args.push(a.to_string());
        args.push(b);
    };
    match accel {
        Accel::Kvm => {
            push("-accel", "kvm".into());
            push("-cpu", "host".into());
        }
        Accel::Tcg => {
            push("-accel", "tcg,thread=multi".into());
            // QEMU's AMD `max` model keeps dies in one L3; the Intel vendor gives each die
            // (one LLC of the preset) its own L3, as the guest's sysfs then shows.
            push("-cpu", "max,vendor=GenuineIntel".into());
        }
    }
    push("-m", format!("{}M", spec.memory_mib));
    // Sockets are NUMA nodes, dies are LLCs inside a node.
    push(
        "-smp",
        format!(
            "cpus={},sockets={},dies={},cores={},threads={}",
            t.cpus(),
            t.numa_nodes,
            t.llcs_per_node(),
            t.cores_per_llc,
            t.threads_per_core
        ),
    );
    let per_node_cpus = t.cpus() / t.numa_nodes;
    for (node, (mib, path)) in node_memory_mib(spec.memory_mib, t.numa_nodes)
        .into_iter()
        .zip(&files.ram)
        .enumerate()
    {
        push(
            "-object",
            format!(
                "memory-backend-file,id=ram{node},size={mib}M,mem-path={},share=on",
                path.display()
            ),
        );
        let first = node as u32 * per_node_cpus;
        push(
            "-numa",
            format!(
                "node,nodeid={node},cpus={first}-{},memdev=ram{node}",
                first + per_node_cpus - 1
            ),
        );
    }
    push("-kernel", spec.kernel_image.display().to_string());
    push("-initrd", spec.initramfs.display().to_string());
    let mut cmdline = String::from("console=ttyS0");
    if !spec.cmdline.is_empty() {
        cmdline.push(' ');
        cmdline.push_str(&spec.cmdline);
    }
    push("-append", cmdline);
    push("-serial", file_chardev(&files.console));
    push("-serial", file_chardev(&files.frames));
    push("-display", "none".into());
    args.extend(
        ["-nodefaults", "-no-user-config", "-no-reboot"]
            .iter()
            .map(|s| s.to_string()),
    );
    args
}

fn file_chardev(path: &Path) -> String {
    format!("file:{}", path.display())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn spec(shape: &str, memory_mib: u32) -> VmSpec {
        VmSpec {
            kernel_image: "/k/bzImage".into(),
            initramfs: "/i/initrd.gz".into(),
            cmdline: "panic=-1 nokaslr".into(),
            topology: shape.parse().unwrap(),
            memory_mib,
            timeout: Duration::from_secs(60),
        }
    }

    fn files(nodes: usize) -> VmFiles {
        VmFiles {
            console: "/w/console.log".into(),
            frames: "/w/frames.bin".into(),
            ram: (0..nodes)
                .map(|n| PathBuf::from(format!("/dev/shm/r{n}")))
                .collect(),
        }
    }

    fn value_of<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn a_single_node_smt_preset() {
        let args = qemu_args(&spec("1n2l2c2t", 576), Accel::Tcg, &files(1));
        assert_eq!(
            value_of(&args, "-smp"),
            ["cpus=8,sockets=1,dies=2,cores=2,threads=2"]
        );
        assert_eq!(value_of(&args, "-cpu"), ["max,vendor=GenuineIntel"]);
        assert_eq!(value_of(&args, "-accel"), ["tcg,thread=multi"]);
        assert_eq!(
            value_of(&args, "-object"),
            ["memory-backend-file,id=ram0,size=576M,mem-path=/dev/shm/r0,share=on"]
        );
        assert_eq!(
            value_of(&args, "-numa"),
            ["node,nodeid=0,cpus=0-7,memdev=ram0"]
        );
        assert_eq!(
            value_of(&args, "-append"),
            ["console=ttyS0 panic=-1 nokaslr"]
        );
        assert_eq!(
            value_of(&args, "-serial"),
            ["file:/w/console.log", "file:/w/frames.bin"]
        );
        assert!(args.contains(&"-no-reboot".to_string()));
    }

    #[test]
    fn numa_presets_split_cpus_and_memory_by_node() {
        let args = qemu_args(&spec("4n8l4c1t", 1001), Accel::Kvm, &files(4));
        assert_eq!(
            value_of(&args, "-smp"),
            ["cpus=32,sockets=4,dies=2,cores=4,threads=1"]
        );
        assert_eq!(value_of(&args, "-cpu"), ["host"]);
        assert_eq!(
            value_of(&args, "-numa"),
            [
                "node,nodeid=0,cpus=0-7,memdev=ram0",
                "node,nodeid=1,cpus=8-15,memdev=ram1",
                "node,nodeid=2,cpus=16-23,memdev=ram2",
                "node,nodeid=3,cpus=24-31,memdev=ram3",
            ]
        );
        let sizes: Vec<&str> = value_of(&args, "-object")
            .iter()
            .map(|o| o.split(',').nth(2).unwrap())
            .collect();
        assert_eq!(sizes, ["size=251M", "size=250M", "size=250M", "size=250M"]);
        assert_eq!(node_memory_mib(1001, 4).iter().sum::<u32>(), 1001);
    }
}
