//! How much RAM a cell's guest gets: sized from what the cell carries, not a fixed formula.
//!
//! The initramfs is unpacked into guest RAM and stays there (the root filesystem is a
//! tmpfs), its compressed copy is held while it unpacks, and a real scheduler's loader plus
//! the kernel verifier's state for a large program need hundreds of MiB on top:
//! `scx_layered --run-example` was OOM-killed in a 544 MiB guest and passes in 1 GiB.

use serde::{Deserialize, Serialize};

/// The kernel, the init, page cache and slack.
pub const KERNEL_BASE_MIB: u64 = 256;
/// What a real scheduler's start needs beyond its files: loader heap, BPF maps and the
/// verifier's state while it walks a program of hundreds of thousands of instructions.
pub const SCHEDULER_FLOOR_MIB: u64 = 640;
/// Per-CPU kernel data, per-CPU BPF maps, one probe worker per CPU.
pub const PER_CPU_MIB: u64 = 8;
/// Sizes are rounded up to this, so small differences between images do not change them.
pub const GRANULE_MIB: u64 = 64;
/// Below this no 6.x kernel with an initramfs boots.
pub const MIN_GUEST_MIB: u32 = 128;
/// The most one guest may have: far past what a scheduler test needs, so a size typed in
/// the wrong unit is caught rather than reserved. RAM past 3 GiB lies above the PCI hole
/// (see [`crate::shape::ram_map`]).
pub const MAX_GUEST_MIB: u32 = 65536;

/// What one scheduler's initramfs costs in guest RAM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFootprint {
    /// The image file as the backend hands it to the guest.
    pub compressed_bytes: u64,
    /// Every file of the archive, unpacked.
    pub unpacked_bytes: u64,
}

/// Where a cell's memory size came from, for messages that tell the user what to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemorySource {
    /// Sized by ktstr from the image and the vCPUs.
    Sized,
    /// `memory_mib` of the scheduler's manifest entry.
    Manifest,
    /// `--memory` on the command line.
    CommandLine,
}

/// A cell's guest RAM and why it is that size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestMemorySize {
    pub mib: u32,
    pub source: MemorySource,
}

impl GuestMemorySize {
    /// The command line wins over the manifest, which wins over the sized default.
    pub fn for_cell(
        cpus: u32,
        image: ImageFootprint,
        manifest_mib: Option<u32>,
        command_line_mib: Option<u32>,
    ) -> Self {
        if let Some(mib) = command_line_mib {
            return GuestMemorySize {
                mib,
                source: MemorySource::CommandLine,
            };
        }
        if let Some(mib) = manifest_mib {
            return GuestMemorySize {
                mib,
                source: MemorySource::Manifest,
            };
        }
        GuestMemorySize {
            mib: sized_mib(cpus, image),
            source: MemorySource::Sized,
        }
    }

    /// What to change to give this cell more memory.
    pub fn how_to_raise(&self) -> &'static str {
        match self.source {
            MemorySource::Sized | MemorySource::CommandLine => "raise --memory",
            MemorySource::Manifest => "raise memory_mib in the manifest (or pass --memory)",
        }
    }
}

fn sized_mib(cpus: u32, image: ImageFootprint) -> u32 {
    let image_mib = (image.compressed_bytes + image.unpacked_bytes).div_ceil(1 << 20);
    let total = KERNEL_BASE_MIB + image_mib + SCHEDULER_FLOOR_MIB + PER_CPU_MIB * u64::from(cpus);
    let rounded = total.div_ceil(GRANULE_MIB) * GRANULE_MIB;
    u32::try_from(rounded).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn sized_from_the_image_and_the_cpus() {
        let small = ImageFootprint {
            compressed_bytes: 3 * MIB,
            unpacked_bytes: 9 * MIB,
        };
        let tiny = GuestMemorySize::for_cell(4, small, None, None);
        // 256 + 12 + 640 + 32 = 940, rounded up to 960.
        assert_eq!(tiny.mib, 960);
        assert_eq!(tiny.source, MemorySource::Sized);
        // A large image and many CPUs both make it grow.
        let big_image = ImageFootprint {
            compressed_bytes: 20 * MIB,
            unpacked_bytes: 120 * MIB,
        };
        assert!(GuestMemorySize::for_cell(4, big_image, None, None).mib > tiny.mib);
        assert_eq!(GuestMemorySize::for_cell(128, small, None, None).mib, 1984);
    }

    #[test]
    fn command_line_beats_manifest_beats_sizing() {
        let image = ImageFootprint::default();
        let m = GuestMemorySize::for_cell(4, image, Some(2048), None);
        assert_eq!((m.mib, m.source), (2048, MemorySource::Manifest));
        assert!(m.how_to_raise().contains("memory_mib"));
        let c = GuestMemorySize::for_cell(4, image, Some(2048), Some(300));
        assert_eq!((c.mib, c.source), (300, MemorySource::CommandLine));
        assert_eq!(c.how_to_raise(), "raise --memory");
    }
}
