//! Host probing shared by the backends and the app: what KVM and MSHV this host offers, memory and
//! process figures from `/proc`, executables on `PATH`; and children tied to ktstr's life. It
//! reads the host and nothing else; every decision made from these facts lives with whoever
//! makes it.

pub mod child;
pub mod kvm_access;
pub mod mshv_access;
pub mod path;
pub mod procfs;

pub use child::die_with_parent;
pub use kvm_access::{KvmAccess, probe_kvm};
pub use mshv_access::{MshvAccess, probe_mshv};
pub use path::find_executable;
pub use procfs::{host_mem_total_kib, mem_total_kib, vm_hwm_kib};
