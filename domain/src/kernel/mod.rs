//! Kernels: labels, versions and specs (`spec`), the options a kernel needs (`kconfig`),
//! and config variants.

pub mod config_variant;
pub mod kconfig;
pub mod spec;
