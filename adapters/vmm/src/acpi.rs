//! The ACPI tables a guest finds its CPUs and NUMA nodes in: RSDP in the BIOS area (where
//! Linux scans for it), an XSDT, a MADT with one entry per vCPU (local APIC while the ID
//! fits in eight bits, local x2APIC past that) and the I/O APIC, and for NUMA guests an
//! SRAT (each vCPU's and each RAM range's node) and a SLIT (distances).

use acpi_tables::aml::{
    Device, EISAName, IO, Interrupt, Name, Package, Path, ResourceTemplate, Scope,
};
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::madt::{
    EnabledStatus, IoApic, LocalInterruptController, MADT, ProcessorLocalApic,
};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::slit::SLIT;
use acpi_tables::srat::{MemoryAffinity, SRAT};
use acpi_tables::xsdt::XSDT;
use acpi_tables::{Aml, AmlSink};
use ktstr_domain::shape::apic::MAX_XAPIC_ID;
use ktstr_domain::shape::numa::NumaLayout;
use ktstr_domain::shape::ram_map::RamMap;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use zerocopy::{Immutable, IntoBytes};

use crate::devices::{
    I8042_COMMAND, I8042_RESET, SLEEP_CONTROL_PORT, SLEEP_STATUS_PORT, SLP_TYP_S5,
};

/// Where the RSDP goes: the start of the BIOS read-only area Linux scans.
pub const RSDP_ADDR: u64 = 0xe_0000;
/// The local APIC and I/O APIC register windows.
pub const LOCAL_APIC_ADDR: u32 = 0xfee0_0000;
pub const IO_APIC_ADDR: u32 = 0xfec0_0000;
const OEM_ID: [u8; 6] = *b"KTSTR ";
const OEM_TABLE_ID: [u8; 8] = *b"KTSTRVMM";
const OEM_REVISION: u32 = 1;
/// The I/O APIC's ID: above every xAPIC ID a CPU of ours has in small guests.
pub const IO_APIC_ID: u8 = 0xfe;

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

/// MADT entry type 2: an ISA interrupt that reaches the I/O APIC on another pin. The PIT
/// (IRQ 0) is wired to pin 2 on PCs, and in KVM's in-kernel I/O APIC.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, IntoBytes, Immutable)]
struct InterruptSourceOverride {
    kind: u8,
    length: u8,
    bus: u8,
    source: u8,
    gsi: u32,
    flags: u16,
}

impl Aml for InterruptSourceOverride {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(self.as_bytes());
    }
}

/// SRAT entry type 0: an xAPIC processor's node.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, IntoBytes, Immutable)]
struct LocalApicAffinity {
    kind: u8,
    length: u8,
    domain_low: u8,
    apic_id: u8,
    flags: u32,
    sapic_eid: u8,
    domain_high: [u8; 3],
    clock_domain: u32,
}

/// SRAT entry type 2: an x2APIC processor's node.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, IntoBytes, Immutable)]
struct LocalX2ApicAffinity {
    kind: u8,
    length: u8,
    reserved: u16,
    domain: u32,
    x2apic_id: u32,
    flags: u32,
    clock_domain: u32,
    reserved2: u32,
}

/// Distances in the SLIT: a node to itself, and to any other.
const LOCAL_DISTANCE: u8 = 10;
const REMOTE_DISTANCE: u8 = 20;

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
    madt.add_structure(InterruptSourceOverride {
        kind: 2,
        length: 10,
        bus: 0,
        source: 0,
        gsi: 2,
        flags: 0, // the bus's own polarity and trigger
    });
    bytes(&madt)
}

/// Appends `extra` structures to a finished table, fixing its length and checksum: for
/// structure types the `acpi_tables` builders do not offer.
fn append_structures(mut table: Vec<u8>, extra: &[u8]) -> Vec<u8> {
    table.extend_from_slice(extra);
    let len = table.len() as u32;
    table[4..8].copy_from_slice(&len.to_le_bytes());
    table[9] = 0;
    let sum = table.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    table[9] = sum.wrapping_neg();
    table
}

/// The SRAT: each vCPU's node, and each node's RAM at its guest-physical addresses.
pub fn srat(apic_ids: &[u32], numa: &NumaLayout, ram: &RamMap) -> Vec<u8> {
    let mut srat = SRAT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    for node in numa.nodes() {
        let offset = node.ram_offset_mib << 20;
        for (start, len) in ram.gpa_ranges(offset, u64::from(node.ram_mib) << 20) {
            srat.add_memory_affinity(MemoryAffinity::new(node.node, start.raw(), len).enabled());
        }
    }
    let mut cpus = Vec::new();
    for node in numa.nodes() {
        for cpu in node.cpus.clone() {
            let id = apic_ids[cpu as usize];
            let domain = node.node.to_le_bytes();
            match u8::try_from(id) {
                Ok(id) if u32::from(id) <= MAX_XAPIC_ID => cpus.extend_from_slice(
                    LocalApicAffinity {
                        kind: 0,
                        length: 16,
                        domain_low: domain[0],
                        apic_id: id,
                        flags: 1, // enabled
                        sapic_eid: 0,
                        domain_high: [domain[1], domain[2], domain[3]],
                        clock_domain: 0,
                    }
                    .as_bytes(),
                ),
                _ => cpus.extend_from_slice(
                    LocalX2ApicAffinity {
                        kind: 2,
                        length: 24,
                        reserved: 0,
                        domain: node.node,
                        x2apic_id: id,
                        flags: 1,
                        clock_domain: 0,
                        reserved2: 0,
                    }
                    .as_bytes(),
                ),
            }
        }
    }
    append_structures(bytes(&srat), &cpus)
}

/// The SLIT: 10 from a node to itself, 20 to any other.
pub fn slit(nodes: u32) -> Vec<u8> {
    let mut slit = SLIT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION, nodes);
    for a in 0..nodes as usize {
        for b in 0..nodes as usize {
            let distance = if a == b {
                LOCAL_DISTANCE
            } else {
                REMOTE_DISTANCE
            };
            slit.set_distance(a, b, distance);
        }
    }
    bytes(&slit)
}

/// A DSDT describing the two UARTs (PNP0501) with their ports and interrupts.
pub fn dsdt() -> Vec<u8> {
    let com = |name: &str, uid: u32, base: u16, irq: u32| {
        let (ports, line) = (
            IO::new(base, base, 1, 8),
            Interrupt::new(true, true, false, false, irq),
        );
        let crs = ResourceTemplate::new(vec![&ports, &line]);
        let mut body = Vec::new();
        Device::new(
            Path::new(name),
            vec![
                &Name::new("_HID".into(), &EISAName::new("PNP0501")),
                &Name::new("_UID".into(), &uid),
                &Name::new("_CRS".into(), &crs),
            ],
        )
        .to_aml_bytes(&mut body);
        body
    };
    let com1 = com("COM1", 0, 0x3f8, 4);
    let com2 = com("COM2", 1, 0x2f8, 3);
    let mut sb = Vec::new();
    Scope::new("\\_SB_".into(), vec![&RawAml(&com1), &RawAml(&com2)]).to_aml_bytes(&mut sb);
    // The S5 (soft-off) sleep type the guest writes to the sleep control register.
    let mut s5 = Vec::new();
    Name::new("_S5_".into(), &Package::new(vec![&SLP_TYP_S5, &0u8])).to_aml_bytes(&mut s5);
    let mut dsdt = Sdt::new(*b"DSDT", 36, 6, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    dsdt.append_slice(&sb);
    dsdt.append_slice(&s5);
    dsdt.as_slice().to_vec()
}

/// AML already serialised, placed inside another object.
struct RawAml<'a>(&'a [u8]);

impl Aml for RawAml<'_> {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(self.0);
    }
}

/// A hardware-reduced FADT pointing at the DSDT: no legacy PM blocks; the reset register
/// is the i8042's CPU reset and the sleep control register our power-off port, so a
/// guest's reboot and power-off both end the run.
pub fn fadt(dsdt_addr: u64) -> Vec<u8> {
    let port = |address: u16| {
        GAS::new(
            AddressSpace::SystemIo,
            8,
            0,
            AccessSize::ByteAccess,
            u64::from(address),
        )
    };
    let mut fadt = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .dsdt_64(dsdt_addr)
        .flag(Flags::HwReducedAcpi)
        .flag(Flags::ResetRegSup)
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton);
    fadt.reset_reg = port(I8042_COMMAND);
    fadt.reset_value = I8042_RESET;
    fadt.sleep_control_reg = port(SLEEP_CONTROL_PORT);
    fadt.sleep_status_reg = port(SLEEP_STATUS_PORT);
    bytes(&fadt.finalize())
}

/// Writes the RSDP, the XSDT and the tables it lists from `RSDP_ADDR` up: the FADT (and
/// its DSDT), the MADT, and with more than one node the SRAT and the SLIT.
pub fn write_acpi_tables(
    mem: &GuestMemoryMmap,
    apic_ids: &[u32],
    numa: &NumaLayout,
    ram: &RamMap,
) -> Result<(), vm_memory::GuestMemoryError> {
    let xsdt_addr = RSDP_ADDR + 0x100;
    // The DSDT is reached through the FADT, not the XSDT.
    let dsdt_addr = xsdt_addr + 0x100;
    let dsdt = dsdt();
    mem.write_slice(&dsdt, GuestAddress(dsdt_addr))?;
    let mut next = (dsdt_addr + dsdt.len() as u64).next_multiple_of(16);
    let mut tables = vec![fadt(dsdt_addr), madt(apic_ids)];
    if numa.nodes().len() > 1 {
        tables.push(srat(apic_ids, numa, ram));
        tables.push(slit(numa.nodes().len() as u32));
    }
    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    for table in &tables {
        xsdt.add_entry(next);
        mem.write_slice(table, GuestAddress(next))?;
        next = (next + table.len() as u64).next_multiple_of(16);
    }
    mem.write_slice(
        &bytes(&Rsdp::new(OEM_ID, xsdt_addr)),
        GuestAddress(RSDP_ADDR),
    )?;
    mem.write_slice(&bytes(&xsdt), GuestAddress(xsdt_addr))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use ktstr_domain::shape::apic::apic_ids;

    use super::*;

    fn checksum_ok(table: &[u8]) -> bool {
        let len = u32::from_le_bytes(table[4..8].try_into().unwrap()) as usize;
        len == table.len() && table.iter().fold(0u8, |a, b| a.wrapping_add(*b)) == 0
    }

    #[test]
    fn the_srat_gives_each_cpu_and_ram_range_its_node() {
        let topology = "2n4l2c1t".parse().unwrap();
        let ids = apic_ids(&topology);
        let ram = RamMap::for_size(4096 << 20);
        let numa = NumaLayout::new(&topology, 4096);
        let table = srat(&ids, &numa, &ram);
        assert_eq!(&table[..4], b"SRAT");
        assert!(checksum_ok(&table));
        // After the 48-byte header: node 0's RAM, node 1's RAM in two ranges (it straddles
        // the hole), then eight processor entries.
        let mut at = 48;
        let mut kinds = Vec::new();
        while at < table.len() {
            kinds.push(table[at]);
            at += usize::from(table[at + 1]);
        }
        assert_eq!(kinds, [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        // The fourth CPU entry (APIC ID 3) is in node 0, the fifth (4) in node 1.
        let cpu = |n: usize| &table[48 + 3 * 40 + n * 16..];
        assert_eq!((cpu(3)[2], cpu(3)[3]), (0, 3));
        assert_eq!((cpu(4)[2], cpu(4)[3]), (1, 4));
    }

    #[test]
    fn the_slit_is_local_10_remote_20() {
        let table = slit(2);
        assert!(checksum_ok(&table));
        assert_eq!(&table[44..], [10, 20, 20, 10]);
    }

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
            [(0, 8), (0, 8), (0, 8), (9, 16), (1, 12), (2, 10)]
        );
        // The x2APIC entry carries the whole ID.
        let x2 = 44 + 3 * 8;
        assert_eq!(
            u32::from_le_bytes(table[x2 + 4..x2 + 8].try_into().unwrap()),
            300
        );
    }
}
