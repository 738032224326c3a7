//! Machine shape: the topology a cell asks for (`1n2l4c2t`), the named presets, the limits
//! schedulers and hosts put on them, how a backend lays the shape out (NUMA slices, APIC
//! IDs, the RAM map) and what the guest saw of it.

pub mod apic;
pub mod constraints;
pub mod numa;
pub mod observed;
pub mod preset;
pub mod ram_map;
pub mod topology;
