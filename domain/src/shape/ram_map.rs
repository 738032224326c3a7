//! Where guest RAM sits in the guest-physical address space. Like a PC, RAM starts at 0,
//! stops below the 32-bit PCI hole, and continues at 4 GiB; host introspection reads by
//! guest-physical address and each backend maps its RAM with this one layout.

use std::fmt;

use serde::{Deserialize, Serialize};

/// RAM below 4 GiB ends here at most; devices own the rest of the low 4 GiB. QEMU is told
/// the same (`max-ram-below-4g`), so its machine and this map agree.
pub const LOW_RAM_TOP: u64 = 3 << 30;
/// Where RAM that does not fit below the hole continues.
pub const HIGH_RAM_START: u64 = 4 << 30;

/// A guest-physical address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GuestPhysAddr(pub u64);

impl GuestPhysAddr {
    pub fn raw(self) -> u64 {
        self.0
    }

    pub fn checked_add(self, bytes: u64) -> Option<Self> {
        self.0.checked_add(bytes).map(GuestPhysAddr)
    }
}

impl fmt::Display for GuestPhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// One contiguous range of RAM: `len` bytes at `start`, held at `offset` bytes into the
/// guest's RAM counted from its first byte (node files or one mapping, concatenated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RamRange {
    pub start: GuestPhysAddr,
    pub len: u64,
    pub offset: u64,
}

impl RamRange {
    pub fn end(&self) -> u64 {
        self.start.0 + self.len
    }
}

/// The guest's RAM ranges in address order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RamMap {
    ranges: Vec<RamRange>,
}

impl RamMap {
    /// The layout of `bytes` of RAM: all of it from 0 when it fits below
    /// [`LOW_RAM_TOP`], otherwise that much low and the rest from [`HIGH_RAM_START`].
    pub fn for_size(bytes: u64) -> Self {
        let low = bytes.min(LOW_RAM_TOP);
        let mut ranges = vec![RamRange {
            start: GuestPhysAddr(0),
            len: low,
            offset: 0,
        }];
        if bytes > low {
            ranges.push(RamRange {
                start: GuestPhysAddr(HIGH_RAM_START),
                len: bytes - low,
                offset: low,
            });
        }
        RamMap { ranges }
    }

    pub fn ranges(&self) -> &[RamRange] {
        &self.ranges
    }

    /// Bytes of RAM in all ranges.
    pub fn size(&self) -> u64 {
        self.ranges.iter().map(|r| r.len).sum()
    }

    /// One past the highest guest-physical address that is RAM.
    pub fn end(&self) -> GuestPhysAddr {
        GuestPhysAddr(self.ranges.last().map_or(0, RamRange::end))
    }

    /// The offset into RAM of `len` bytes at `gpa`, when all of them are RAM of one range
    /// (a read never spans the hole).
    pub fn offset_of(&self, gpa: GuestPhysAddr, len: u64) -> Option<u64> {
        let end = gpa.0.checked_add(len)?;
        self.ranges
            .iter()
            .find(|r| gpa.0 >= r.start.0 && end <= r.end())
            .map(|r| r.offset + (gpa.0 - r.start.0))
    }

    /// The guest-physical ranges holding `len` bytes that start `offset` bytes into RAM
    /// (a NUMA node's slice, which may straddle the hole), as `(start, len)`.
    pub fn gpa_ranges(&self, offset: u64, len: u64) -> Vec<(GuestPhysAddr, u64)> {
        let end = offset.saturating_add(len);
        self.ranges
            .iter()
            .filter_map(|r| {
                let from = offset.max(r.offset);
                let to = end.min(r.offset + r.len);
                (from < to).then(|| (GuestPhysAddr(r.start.0 + (from - r.offset)), to - from))
            })
            .collect()
    }

    /// Whether `gpa` is a byte of RAM.
    pub fn contains(&self, gpa: GuestPhysAddr) -> bool {
        self.offset_of(gpa, 1).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_small_guest_is_one_range_from_zero() {
        let map = RamMap::for_size(576 * MIB);
        assert_eq!(map.ranges().len(), 1);
        assert_eq!(map.end(), GuestPhysAddr(576 * MIB));
        assert_eq!(map.offset_of(GuestPhysAddr(0x1000), 8), Some(0x1000));
        assert_eq!(map.offset_of(GuestPhysAddr(576 * MIB - 4), 8), None);
        assert_eq!(RamMap::for_size(LOW_RAM_TOP).ranges().len(), 1);
    }

    #[test]
    fn ram_past_the_hole_continues_at_4_gib() {
        let map = RamMap::for_size(4608 * MIB);
        assert_eq!(
            map.ranges(),
            [
                RamRange {
                    start: GuestPhysAddr(0),
                    len: LOW_RAM_TOP,
                    offset: 0
                },
                RamRange {
                    start: GuestPhysAddr(HIGH_RAM_START),
                    len: 1536 * MIB,
                    offset: LOW_RAM_TOP
                },
            ]
        );
        assert_eq!(map.size(), 4608 * MIB);
        assert_eq!(map.end(), GuestPhysAddr(HIGH_RAM_START + 1536 * MIB));
        // The first byte above 4 GiB is the first byte after the low range in RAM.
        assert_eq!(
            map.offset_of(GuestPhysAddr(HIGH_RAM_START), 1),
            Some(LOW_RAM_TOP)
        );
        // The hole is not RAM, and no read spans it.
        assert!(!map.contains(GuestPhysAddr(LOW_RAM_TOP)));
        assert!(!map.contains(GuestPhysAddr(HIGH_RAM_START - 1)));
        assert_eq!(map.offset_of(GuestPhysAddr(LOW_RAM_TOP - 4), 8), None);
        assert_eq!(map.offset_of(GuestPhysAddr(u64::MAX), 8), None);
    }

    #[test]
    fn a_slice_of_ram_that_straddles_the_hole_is_two_gpa_ranges() {
        let map = RamMap::for_size(4608 * MIB);
        // Two nodes of 2304 MiB: the second starts below the hole and ends above it.
        assert_eq!(
            map.gpa_ranges(0, 2304 * MIB),
            [(GuestPhysAddr(0), 2304 * MIB)]
        );
        assert_eq!(
            map.gpa_ranges(2304 * MIB, 2304 * MIB),
            [
                (GuestPhysAddr(2304 * MIB), 768 * MIB),
                (GuestPhysAddr(HIGH_RAM_START), 1536 * MIB),
            ]
        );
        assert!(map.gpa_ranges(4608 * MIB, 1).is_empty());
    }
}
