//! Pure logic of ktstr: no I/O, no async, no OS or hypervisor crates.

pub mod attach;
pub mod attach_wait;
pub mod cell;
pub mod collapse;
pub mod constraints;
pub mod crosscheck;
pub mod environment;
pub mod frame;
pub mod guest_memory;
pub mod init_plan;
pub mod kconfig;
pub mod kernel;
pub mod manifest;
pub mod matrix;
pub mod observed;
pub mod preset;
pub mod prog;
pub mod report;
pub mod timing;
pub mod topology;
pub mod verdict;
pub mod vstats;
pub mod waits;
pub mod wire;
