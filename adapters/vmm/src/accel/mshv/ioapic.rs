//! The I/O APIC the MSHV implementation keeps in the VMM (the Microsoft Hypervisor has
//! local APICs but no I/O APIC): its register window, the redirection table the guest
//! programs, and the MSI each unmasked pin becomes. KVM keeps its own in the kernel.

use crate::acpi::{IO_APIC_ADDR, IO_APIC_ID};

/// The register window: the index register, the data window, and the EOI register.
pub const IOAPIC_BASE: u64 = IO_APIC_ADDR as u64;
pub const IOAPIC_SIZE: u64 = 0x1000;
const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
/// Pins, as a PC's I/O APIC has: ISA interrupts 0-15 and eight more.
pub const PINS: usize = 24;
/// Indirect registers: identification, version, arbitration, then two per pin.
const REG_ID: u32 = 0x00;
const REG_VERSION: u32 = 0x01;
const REG_ARBITRATION: u32 = 0x02;
const REG_REDIRECTION: u32 = 0x10;
/// Version 0x11 (no EOI register, as the 82093AA), highest pin index in bits 16-23.
const VERSION: u32 = 0x11 | ((PINS as u32 - 1) << 16);
/// Redirection entry fields.
const VECTOR: u64 = 0xff;
const DELIVERY_MODE_SHIFT: u32 = 8;
const DEST_LOGICAL: u64 = 1 << 11;
const DELIVERY_STATUS: u64 = 1 << 12;
const REMOTE_IRR: u64 = 1 << 14;
const LEVEL: u64 = 1 << 15;
const MASKED: u64 = 1 << 16;
const DEST_SHIFT: u32 = 56;
/// Bits the guest cannot write: delivery status and remote IRR.
const READ_ONLY: u64 = DELIVERY_STATUS | REMOTE_IRR;
/// The MSI address window, its destination field, and its redirection-hint and
/// logical-destination bits; the MSI data's level-trigger bit.
const MSI_ADDRESS: u32 = 0xfee0_0000;
const MSI_DEST_SHIFT: u32 = 12;
const MSI_REDIRECTION_HINT: u32 = 1 << 3;
const MSI_DEST_LOGICAL: u32 = 1 << 2;
const MSI_LEVEL: u32 = 1 << 15;

/// Where one pin's interrupts go, as the message the hypervisor delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsiRoute {
    pub gsi: u32,
    pub address_lo: u32,
    pub data: u32,
}

/// One I/O APIC's registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ioapic {
    select: u32,
    id: u32,
    entries: [u64; PINS],
}

impl Default for Ioapic {
    /// As after reset: every pin masked, the ID the MADT gives.
    fn default() -> Self {
        Ioapic {
            select: 0,
            id: u32::from(IO_APIC_ID) << 24,
            entries: [MASKED; PINS],
        }
    }
}

impl Ioapic {
    /// A 32-bit read at `offset` into the window.
    pub fn read(&self, offset: u64) -> u32 {
        match offset {
            IOREGSEL => self.select,
            IOWIN => match self.select {
                REG_ID => self.id,
                REG_VERSION => VERSION,
                REG_ARBITRATION => self.id,
                reg => match self.pin_half(reg) {
                    Some((pin, high)) => (self.entries[pin] >> if high { 32 } else { 0 }) as u32,
                    None => 0,
                },
            },
            _ => 0,
        }
    }

    /// A 32-bit write at `offset`; `true` when it changed where some pin's interrupts go.
    pub fn write(&mut self, offset: u64, value: u32) -> bool {
        match offset {
            IOREGSEL => {
                self.select = value & 0xff;
                false
            }
            IOWIN => match self.select {
                REG_ID => {
                    self.id = value & 0xff00_0000;
                    false
                }
                reg => match self.pin_half(reg) {
                    Some((pin, high)) => {
                        let old = self.entries[pin];
                        let (shift, mask) = if high {
                            (32, 0xffff_ffff_0000_0000)
                        } else {
                            (0, 0x0000_0000_ffff_ffff & !READ_ONLY)
                        };
                        let new = (old & !mask) | ((u64::from(value) << shift) & mask);
                        self.entries[pin] = new;
                        // A pin masked before and after routes nowhere either way.
                        new != old && (old & MASKED == 0 || new & MASKED == 0)
                    }
                    None => false,
                },
            },
            _ => false,
        }
    }

    /// The pin and which half of its entry an indirect register holds.
    fn pin_half(&self, reg: u32) -> Option<(usize, bool)> {
        let index = reg.checked_sub(REG_REDIRECTION)? as usize;
        (index / 2 < PINS).then_some((index / 2, index % 2 == 1))
    }

    /// The message each unmasked pin sends, by GSI.
    pub fn routes(&self) -> Vec<MsiRoute> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| **e & MASKED == 0)
            .map(|(pin, &e)| {
                let logical = e & DEST_LOGICAL != 0;
                let dest = (e >> DEST_SHIFT) as u32;
                let mode = ((e >> DELIVERY_MODE_SHIFT) & 0x7) as u32;
                MsiRoute {
                    gsi: pin as u32,
                    address_lo: MSI_ADDRESS
                        | (dest << MSI_DEST_SHIFT)
                        | if logical {
                            MSI_DEST_LOGICAL | MSI_REDIRECTION_HINT
                        } else {
                            0
                        },
                    data: (e & VECTOR) as u32
                        | (mode << DELIVERY_MODE_SHIFT)
                        | if e & LEVEL != 0 { MSI_LEVEL } else { 0 },
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_reg(ioapic: &mut Ioapic, reg: u32, value: u32) -> bool {
        ioapic.write(IOREGSEL, reg);
        ioapic.write(IOWIN, value)
    }

    fn read_reg(ioapic: &mut Ioapic, reg: u32) -> u32 {
        ioapic.write(IOREGSEL, reg);
        ioapic.read(IOWIN)
    }

    #[test]
    fn identifies_itself_as_the_madt_says_with_24_pins_all_masked() {
        let mut ioapic = Ioapic::default();
        assert_eq!(read_reg(&mut ioapic, REG_ID) >> 24, u32::from(IO_APIC_ID));
        assert_eq!(read_reg(&mut ioapic, REG_VERSION), 0x0017_0011);
        assert_eq!(read_reg(&mut ioapic, 0x10 + 2 * 23), 1 << 16);
        assert!(ioapic.routes().is_empty());
        // Past the last pin: nothing there.
        assert_eq!(read_reg(&mut ioapic, 0x10 + 2 * 24), 0);
    }

    /// What Linux writes for COM1 (pin 4): vector 0x24, fixed, physical, edge, unmasked, to
    /// APIC 2; then it masks the pin again.
    #[test]
    fn an_unmasked_pin_becomes_an_msi_to_its_destination() {
        let mut ioapic = Ioapic::default();
        assert!(
            !write_reg(&mut ioapic, 0x11 + 2 * 4, 2 << 24),
            "still masked: no route changed"
        );
        assert!(write_reg(&mut ioapic, 0x10 + 2 * 4, 0x24));
        assert_eq!(
            ioapic.routes(),
            vec![MsiRoute {
                gsi: 4,
                address_lo: 0xfee0_2000,
                data: 0x24
            }]
        );
        assert_eq!(read_reg(&mut ioapic, 0x10 + 2 * 4), 0x24);
        assert!(!write_reg(&mut ioapic, 0x10 + 2 * 4, 0x24), "no change");
        assert!(write_reg(&mut ioapic, 0x10 + 2 * 4, 0x24 | (1 << 16)));
        assert!(ioapic.routes().is_empty());
    }

    #[test]
    fn logical_level_triggered_pins_say_so_and_status_bits_stay_the_ioapics() {
        let mut ioapic = Ioapic::default();
        write_reg(&mut ioapic, 0x11 + 2 * 9, 0x0100_0000);
        // Lowest priority (1), logical, level, and a guest trying to set remote IRR.
        write_reg(
            &mut ioapic,
            0x10 + 2 * 9,
            0x31 | (1 << 8) | (1 << 11) | (1 << 14) | (1 << 15),
        );
        assert_eq!(read_reg(&mut ioapic, 0x10 + 2 * 9) & (1 << 14), 0);
        assert_eq!(
            ioapic.routes(),
            vec![MsiRoute {
                gsi: 9,
                address_lo: 0xfee0_100c,
                data: 0x31 | (1 << 8) | (1 << 15)
            }]
        );
    }
}
