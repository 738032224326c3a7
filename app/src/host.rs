//! Facts about the host that size a sweep.

use ktstr_domain::shape::constraints::HostBudget;
use ktstr_host::host_mem_total_kib;

/// vCPUs per host core a VM may have by default: emulated CPUs are cheap when idle, and
/// 8 per core keeps boot under ~5 s on a 2-core TCG host (measured: 16 vCPUs 3.5 s).
pub const VCPUS_PER_HOST_CPU: u32 = 8;

pub fn host_cpus() -> u32 {
    host_cpus_usize() as u32
}

pub fn host_cpus_usize() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The default budget, or the user's `--max-vcpus`.
pub fn host_budget(max_vcpus: Option<u32>) -> HostBudget {
    HostBudget {
        max_vcpus: max_vcpus.unwrap_or(host_cpus() * VCPUS_PER_HOST_CPU),
    }
}

/// Guest RAM all running cells may hold together: half the host's memory.
pub fn memory_budget_mib() -> u64 {
    host_mem_total_kib().map_or(4096, |kib| kib / 1024 / 2)
}
