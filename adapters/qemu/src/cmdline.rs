//! The QEMU command line for one cell: accelerator, CPU model, topology, NUMA, RAM
//! backing files, serial channels.

use std::path::{Path, PathBuf};

use ktstr_domain::protocol::init_plan::GuestChannels;
use ktstr_domain::shape::numa::NumaLayout;
use ktstr_domain::shape::ram_map::LOW_RAM_TOP;
use ktstr_domain::shape::topology::Topology;
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

/// Which of the guest's two serial ports carries the console and which the frames. The
/// guest learns it from the kernel command line; `FramesFirst` exists to prove it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SerialLayout {
    #[default]
    ConsoleFirst,
    FramesFirst,
}

impl SerialLayout {
    pub fn channels(self) -> GuestChannels {
        match self {
            SerialLayout::ConsoleFirst => GuestChannels::CONSOLE_FIRST,
            SerialLayout::FramesFirst => GuestChannels::FRAMES_FIRST,
        }
    }
}

/// The files one VM boots from and keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmFiles {
    /// The image `-kernel` loads: the spec's bzImage, or its `vmlinux` when QEMU can enter
    /// that through PVH.
    pub kernel: PathBuf,
    pub console: PathBuf,
    pub frames: PathBuf,
    /// One RAM backing file per NUMA node, mapped in node order from guest address 0.
    pub ram: Vec<PathBuf>,
}

/// The most vCPUs a TCG guest runs on one host thread.
///
/// One thread running every vCPU in turn uses one host core per VM, so as many VMs as
/// cores fill the host. A thread per vCPU oversubscribes it instead, and vCPUs that spin
/// (stop_machine, IPI waits) starve the one doing the work: on 2 cores a 32-vCPU boot
/// spent 7 s in one such wait, and a 64-vCPU cell took 30-37 s against 11 s on one thread.
/// At 128 vCPUs the turns get too long (no init within the 248 s watchdog on one thread,
/// 130 s on a thread each), so bigger guests get a thread per vCPU.
pub const TCG_ONE_THREAD_MAX_VCPUS: u32 = 64;

/// QEMU's `-accel` value for a TCG guest of `vcpus`.
fn tcg_accel(vcpus: u32) -> &'static str {
    if vcpus <= TCG_ONE_THREAD_MAX_VCPUS {
        "tcg,thread=single"
    } else {
        "tcg,thread=multi"
    }
}

/// The arguments after the QEMU binary.
pub fn qemu_args(
    spec: &VmSpec,
    accel: Accel,
    serial: SerialLayout,
    files: &VmFiles,
) -> Vec<String> {
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
            push("-accel", tcg_accel(t.cpus()).into());
            // QEMU's AMD `max` model keeps dies in one L3; the Intel vendor gives each die
            // (one LLC of the preset) its own L3, as the guest's sysfs then shows.
            push("-cpu", "max,vendor=GenuineIntel".into());
        }
    }
    // The PC machine, with RAM split at the hole exactly where the domain's map says.
    push(
        "-machine",
        format!("pc,max-ram-below-4g={}M", LOW_RAM_TOP >> 20),
    );
    push("-m", format!("{}M", spec.memory_mib));
    push("-smp", smp(t, accel));
    for (node, path) in NumaLayout::new(t, spec.memory_mib)
        .nodes()
        .iter()
        .zip(&files.ram)
    {
        let id = node.node;
        push(
            "-object",
            format!(
                "memory-backend-file,id=ram{id},size={}M,mem-path={},share=on",
                node.ram_mib,
                path.display()
            ),
        );
        push(
            "-numa",
            format!(
                "node,nodeid={id},cpus={}-{},memdev=ram{id}",
                node.cpus.start,
                node.cpus.end - 1
            ),
        );
    }
    push("-kernel", files.kernel.display().to_string());
    push("-initrd", spec.initramfs.display().to_string());
    push("-append", spec.cmdline.clone());
    let (first, second) = match serial {
        SerialLayout::ConsoleFirst => (&files.console, &files.frames),
        SerialLayout::FramesFirst => (&files.frames, &files.console),
    };
    push("-serial", file_chardev(first));
    push("-serial", file_chardev(second));
    push("-display", "none".into());
    args.extend(
        ["-nodefaults", "-no-user-config", "-no-reboot"]
            .iter()
            .map(|s| s.to_string()),
    );
    args
}

/// `-smp` for the preset: which CPUs share an L3 must come out right whatever CPU the
/// guest is given.
///
/// Under TCG (an Intel model) dies are the LLCs inside a node's socket. Under KVM the guest
/// has the host's vendor, and a Linux guest on an AMD CPU keeps dies in one L3 unless the
/// CPU offers TOPOEXT (nested SVM under TCG does not; family 17h's first models fix the
/// LLC at 8 APIC IDs besides). A package boundary splits the L3 for every vendor and
/// family, so on KVM each LLC is a socket, and `-numa` gives a node its sockets.
fn smp(t: &Topology, accel: Accel) -> String {
    let (sockets, dies) = match accel {
        Accel::Tcg => (t.numa_nodes, t.llcs_per_node()),
        Accel::Kvm => (t.llcs, 1),
    };
    format!(
        "cpus={},sockets={sockets},dies={dies},cores={},threads={}",
        t.cpus(),
        t.cores_per_llc,
        t.threads_per_core
    )
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
            vmlinux: None,
            initramfs: "/i/initrd.gz".into(),
            cmdline: "console=ttyS0 panic=-1 nokaslr".into(),
            topology: shape.parse().unwrap(),
            memory_mib,
            timeout: Duration::from_secs(60),
        }
    }

    fn files(nodes: usize) -> VmFiles {
        VmFiles {
            kernel: "/k/vmlinux".into(),
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
        let args = qemu_args(
            &spec("1n2l2c2t", 576),
            Accel::Tcg,
            SerialLayout::ConsoleFirst,
            &files(1),
        );
        assert_eq!(
            value_of(&args, "-smp"),
            ["cpus=8,sockets=1,dies=2,cores=2,threads=2"]
        );
        assert_eq!(value_of(&args, "-cpu"), ["max,vendor=GenuineIntel"]);
        assert_eq!(value_of(&args, "-accel"), ["tcg,thread=single"]);
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
        assert_eq!(value_of(&args, "-kernel"), ["/k/vmlinux"]);
        assert_eq!(
            value_of(&args, "-serial"),
            ["file:/w/console.log", "file:/w/frames.bin"]
        );
        assert!(args.contains(&"-no-reboot".to_string()));
    }

    #[test]
    fn big_tcg_guests_get_a_host_thread_per_vcpu() {
        let accel = |shape: &str| {
            let args = qemu_args(
                &spec(shape, 2048),
                Accel::Tcg,
                SerialLayout::ConsoleFirst,
                &files(1),
            );
            value_of(&args, "-accel")[0].to_string()
        };
        assert_eq!(accel("1n8l4c2t"), "tcg,thread=single");
        assert_eq!(accel("1n4l16c2t"), "tcg,thread=multi");
    }

    #[test]
    fn numa_presets_split_cpus_and_memory_by_node() {
        let args = qemu_args(
            &spec("4n8l4c1t", 1001),
            Accel::Kvm,
            SerialLayout::FramesFirst,
            &files(4),
        );
        // On KVM every LLC is a socket, whatever the host's vendor; each node its two.
        assert_eq!(
            value_of(&args, "-smp"),
            ["cpus=32,sockets=8,dies=1,cores=4,threads=1"]
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
        assert_eq!(value_of(&args, "-machine"), ["pc,max-ram-below-4g=3072M"]);
        assert_eq!(
            value_of(&args, "-serial"),
            ["file:/w/frames.bin", "file:/w/console.log"]
        );
    }
}
