//! What a sweep runs: the manifest, the cells (schedulers × kernels × presets), shards of
//! them, and each cell's guest memory and waits.

pub mod cell;
pub mod guest_memory;
pub mod manifest;
pub mod matrix;
pub mod partition;
pub mod waits;
pub mod watchdog;
