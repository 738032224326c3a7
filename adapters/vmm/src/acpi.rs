//! The ACPI tables a guest finds its CPUs in: RSDP in the BIOS area (where Linux scans
//! for it), an XSDT, and a MADT with one entry per vCPU (local APIC while the ID fits in
//! eight bits, local x2APIC past that) and the I/O APIC.

use acpi_tables::madt::{
    EnabledStatus, IoApic, LocalInterruptController, MADT, ProcessorLocalApic,
};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::xsdt::XSDT;
use acpi_tables::{Aml, AmlSink};
use ktstr_domain::apic::MAX_XAPIC_ID;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use zerocopy::{Immutable, IntoBytes};

/// Where the RSDP goes: the start of the BIOS read-only area Linux scans.
pub const RSDP_ADDR: u64 = 0xe_0000;
/// The local APIC and I/O APIC register windows.
pub const LOCAL_APIC_ADDR: u32 = 0xfee0_0000;
pub const IO_APIC_ADDR: u32 = 0xfec0_0000;
const OEM_ID: [u8; 6] = *b"KTSTR ";
const OEM_TABLE_ID: [u8; 8] = *b"KTSTRVMM";
const OEM_REVISION: u32 = 1;
/// The I/O APIC's ID: above every xAPIC ID a CPU of ours has in small guests.
const IO_APIC_ID: u8 = 0xfe;

/// MADT entry type 9: a processor whose APIC ID needs 32 bits.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, IntoBytes, Immutable)]
struct LocalX2Apic {
    kind: u8,
    length: u8,
    reserved: u16,
    x2apic_id: u32,
    flags: u32,
    uid: u32,
}

impl Aml for LocalX2Apic {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(self.as_bytes());
    }
}

fn bytes(table: &dyn Aml) -> Vec<u8> {
    let mut out = Vec::new();
    table.to_aml_bytes(&mut out);
    out
}

/// The MADT for vCPUs with these APIC IDs, in vCPU order.
pub fn madt(apic_ids: &[u32]) -> Vec<u8> {
    let mut madt = MADT::new(
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
        LocalInterruptController::Address(LOCAL_APIC_ADDR),
    );
    for (uid, &id) in apic_ids.iter().enumerate() {
        match u8::try_from(id) {
            Ok(id) if u32::from(id) <= MAX_XAPIC_ID && uid <= usize::from(u8::MAX) => {
                madt.add_structure(ProcessorLocalApic::new(
                    uid as u8,
                    id,
                    EnabledStatus::Enabled,
                ));
            }
            _ => madt.add_structure(LocalX2Apic {
                kind: 9,
                length: 16,
                reserved: 0,
                x2apic_id: id,
                flags: 1, // enabled
                uid: uid as u32,
            }),
        }
    }
    madt.add_structure(IoApic::new(IO_APIC_ID, IO_APIC_ADDR, 0));
    bytes(&madt)
}

/// Writes the RSDP, the XSDT and the MADT from `RSDP_ADDR` up.
pub fn write_acpi_tables(
    mem: &GuestMemoryMmap,
    apic_ids: &[u32],
) -> Result<(), vm_memory::GuestMemoryError> {
    let madt = madt(apic_ids);
    let xsdt_addr = RSDP_ADDR + 0x100;
    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    let madt_addr = xsdt_addr + 0x100;
    xsdt.add_entry(madt_addr);
    mem.write_slice(
        &bytes(&Rsdp::new(OEM_ID, xsdt_addr)),
        GuestAddress(RSDP_ADDR),
    )?;
    mem.write_slice(&bytes(&xsdt), GuestAddress(xsdt_addr))?;
    mem.write_slice(&madt, GuestAddress(madt_addr))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The MADT's interrupt controller structures: (type, length).
    fn structures(table: &[u8]) -> Vec<(u8, u8)> {
        let mut out = Vec::new();
        let mut at = 44;
        while at < table.len() {
            out.push((table[at], table[at + 1]));
            at += usize::from(table[at + 1]);
        }
        out
    }

    #[test]
    fn small_ids_get_local_apic_entries_large_ones_x2apic() {
        let table = madt(&[0, 1, 2, 300]);
        assert_eq!(&table[..4], b"APIC");
        let len = u32::from_le_bytes(table[4..8].try_into().unwrap()) as usize;
        assert_eq!(len, table.len());
        assert_eq!(
            table.iter().fold(0u8, |a, b| a.wrapping_add(*b)),
            0,
            "checksum"
        );
        assert_eq!(
            structures(&table),
            [(0, 8), (0, 8), (0, 8), (9, 16), (1, 12)]
        );
        // The x2APIC entry carries the whole ID.
        let x2 = 44 + 3 * 8;
        assert_eq!(
            u32::from_le_bytes(table[x2 + 4..x2 + 8].try_into().unwrap()),
            300
        );
    }
}
