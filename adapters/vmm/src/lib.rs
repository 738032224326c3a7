//! ktstr's own VMM, for hosts with hardware KVM. The core is written once against the
//! `hypervisor` trait family (hypervisor → VM → vCPU); KVM implements it, MSHV will too.
//!
//! - `guest_ram`: RAM laid out by the domain's `RamMap`, read by the host as the
//!   guest-memory port;
//! - `x86`: the GDT, page tables and registers that enter 64-bit mode;
//! - `devices`: the two UARTs and the i8042 reset;
//! - `vcpu_loop`: one vCPU's exits handed to the devices until the guest is done.

pub mod accel;
pub mod acpi;
pub mod backend;
pub mod cpuid;
pub mod devices;
pub mod linux_boot;
pub mod machine;
pub mod process_ram;
pub mod vcpu_loop;
pub mod vcpu_thread;
pub mod x86;
