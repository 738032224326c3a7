//! The MSHV exit loop against scripted intercept messages: what reaches the core, what the
//! VMM completes itself (RIP, the register a read fills), the I/O APIC served in place and
//! routed as MSIs, and what it refuses to guess. Runs anywhere: no `/dev/mshv` needed.

use std::sync::Arc;

use ktstr_vmm::accel::VcpuExit;
use ktstr_vmm::accel::mshv::exit_loop::{ExitLoop, IoapicDevice};
use ktstr_vmm::accel::mshv::ioapic::{IOAPIC_BASE, MsiRoute};
use mshv_bindings::{
    StandardRegisters, hv_message_type_HVMSG_INVALID_VP_REGISTER_VALUE,
    hv_message_type_HVMSG_UNRECOVERABLE_EXCEPTION, hv_message_type_HVMSG_X64_APIC_EOI,
    hv_message_type_HVMSG_X64_HALT,
};

mod common;
use common::mshv::{EINTR, FakeVp, Routes, bare, memory, port};

fn exit_loop(
    script: Vec<Result<mshv_bindings::hv_message, i32>>,
    regs: StandardRegisters,
) -> (ExitLoop<FakeVp>, Routes) {
    let routes = Routes::default();
    let ioapic = Arc::new(IoapicDevice::new(Box::new(routes.clone())));
    (ExitLoop::new(FakeVp::new(script, regs), ioapic), routes)
}

fn regs(exits: &ExitLoop<FakeVp>) -> StandardRegisters {
    *exits.vp().regs.lock().unwrap()
}

#[test]
fn port_io_reaches_the_core_and_the_vmm_completes_it() {
    let start = StandardRegisters {
        rip: 0x1000,
        rax: 0xdead_beef_0000_1268,
        ..Default::default()
    };
    let (mut exits, _) = exit_loop(
        vec![
            // out %al,(%dx) to COM1; in (%dx),%al from its line status; in (%dx),%eax.
            Ok(port(
                0x3f8,
                true,
                1,
                0xdead_beef_0000_1268,
                0x1000,
                1,
                false,
            )),
            Ok(port(0x3fd, false, 1, 0, 0x1001, 1, false)),
            Ok(port(0x600, false, 4, 0, 0x1002, 1, false)),
        ],
        start,
    );
    match exits.run().unwrap() {
        VcpuExit::IoOut { port, data } => assert_eq!((port, data), (0x3f8, &[0x68][..])),
        other => panic!("{other:?}"),
    }
    match exits.run().unwrap() {
        VcpuExit::IoIn { port, data } => {
            assert_eq!((port, data.len()), (0x3fd, 1));
            data[0] = 0x60;
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(regs(&exits).rip, 0x1001, "past the out");
    match exits.run().unwrap() {
        VcpuExit::IoIn { port, data } => {
            assert_eq!((port, data.len()), (0x600, 4));
            data.copy_from_slice(&[1, 2, 3, 4]);
        }
        other => panic!("{other:?}"),
    }
    // The byte read kept the rest of RAX.
    assert_eq!(
        exits.vp().runs.lock().unwrap()[2],
        (0x1002, 0xdead_beef_0000_1260)
    );
    assert!(matches!(exits.run().unwrap(), VcpuExit::Interrupted));
    // The 32-bit read cleared RAX's upper half, as `in %dx,%eax` does.
    assert_eq!((regs(&exits).rip, regs(&exits).rax), (0x1003, 0x0403_0201));
}

/// Linux programs COM1's pin as `io_apic_write` does: select the register, write the data
/// window; then reads it back. None of it reaches the core; the route follows.
#[test]
fn the_ioapic_is_served_in_place_and_its_routes_follow_the_guest() {
    let start = StandardRegisters {
        rip: 0x2000,
        rsi: 0x11 + 2 * 4, // pin 4, high half: destination APIC 1
        rbx: IOAPIC_BASE,
        r12: 1 << 24,
        rdx: IOAPIC_BASE,
        ..Default::default()
    };
    let (mut exits, routes) = exit_loop(
        vec![
            Ok(memory(IOAPIC_BASE, true, 0x2000, &[0x89, 0x30])), // mov %esi,(%rax)
            Ok(memory(
                IOAPIC_BASE + 0x10,
                true,
                0x2002,
                &[0x44, 0x89, 0x63, 0x10],
            )), // mov %r12d,0x10(%rbx)
            Ok(memory(
                IOAPIC_BASE,
                true,
                0x2006,
                &[0xc7, 0x02, 0x18, 0, 0, 0],
            )), // movl $0x18,(%rdx)
            Ok(memory(
                IOAPIC_BASE + 0x10,
                true,
                0x200c,
                &[0xc7, 0x42, 0x10, 0x24, 0, 0, 0],
            )), // movl $0x24,0x10(%rdx)
            Ok(memory(
                IOAPIC_BASE + 0x10,
                false,
                0x2013,
                &[0x8b, 0x40, 0x10],
            )), // mov 0x10(%rax),%eax
            // An EOI the hypervisor reports: nothing of ours waits for one.
            Ok(bare(hv_message_type_HVMSG_X64_APIC_EOI)),
            Ok(bare(hv_message_type_HVMSG_X64_HALT)),
        ],
        start,
    );
    assert!(matches!(exits.run().unwrap(), VcpuExit::Halt));
    assert_eq!(regs(&exits).rip, 0x2016);
    assert_eq!(regs(&exits).rax, 0x24, "the low half read back, unmasked");
    // Masked pins route nowhere: the first table is the one the unmasking write made.
    assert_eq!(
        *routes.0.lock().unwrap(),
        vec![vec![MsiRoute {
            gsi: 4,
            address_lo: 0xfee0_1000,
            data: 0x24
        }]]
    );
}

#[test]
fn other_mmio_goes_to_the_core_and_a_load_lands_in_its_register() {
    let start = StandardRegisters {
        rip: 0x3000,
        rcx: 0xffff_ffff_ffff_ffff,
        ..Default::default()
    };
    let (mut exits, _) = exit_loop(
        vec![
            Ok(memory(0xd000_0000, false, 0x3000, &[0x66, 0x8b, 0x0f])), // mov (%rdi),%cx
            Ok(memory(
                0xd000_0004,
                true,
                0x3003,
                &[0xc7, 0x02, 0xcd, 0xab, 0, 0],
            )), // movl $0xabcd,(%rdx)
            // The same store again, its bytes not fetched by the hypervisor: read from the
            // guest's code at RIP.
            Ok(memory(0xd000_0004, true, 0x3009, &[])),
        ],
        start,
    );
    exits.vp_mut().code = vec![0xc7, 0x02, 0xcd, 0xab, 0, 0];
    match exits.run().unwrap() {
        VcpuExit::MmioRead { addr, data } => {
            assert_eq!((addr, data.len()), (0xd000_0000, 2));
            data.copy_from_slice(&[0x34, 0x12]);
        }
        other => panic!("{other:?}"),
    }
    match exits.run().unwrap() {
        VcpuExit::MmioWrite { addr, data } => {
            assert_eq!((addr, data), (0xd000_0004, &[0xcd, 0xab, 0, 0][..]))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(regs(&exits).rcx, 0xffff_ffff_ffff_1234);
    match exits.run().unwrap() {
        VcpuExit::MmioWrite { addr, data } => {
            assert_eq!((addr, data), (0xd000_0004, &[0xcd, 0xab, 0, 0][..]))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(exits.run().unwrap(), VcpuExit::Interrupted));
    assert_eq!(regs(&exits).rip, 0x300f);
}

#[test]
fn what_the_vmm_cannot_emulate_is_named_and_hypervisor_ends_are_told_apart() {
    let (mut exits, _) = exit_loop(
        vec![
            Ok(memory(0xd000_0000, true, 0x4000, &[0xf3, 0xa4])), // rep movsb
            Ok(port(0x3f8, true, 1, 0, 0x4002, 2, true)),         // outsb
            Ok(bare(hv_message_type_HVMSG_UNRECOVERABLE_EXCEPTION)),
            Ok(bare(hv_message_type_HVMSG_INVALID_VP_REGISTER_VALUE)),
            Err(EINTR),
            Err(22),
        ],
        StandardRegisters::default(),
    );
    match exits.run().unwrap() {
        VcpuExit::Failed(why) => {
            assert!(
                why.contains("0xd0000000") && why.contains("0x4000"),
                "{why}"
            );
            assert!(why.contains("opcode 0xf3"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    match exits.run().unwrap() {
        VcpuExit::Failed(why) => assert!(why.contains("string") && why.contains("0x3f8"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(exits.run().unwrap(), VcpuExit::TripleFault));
    assert!(
        matches!(exits.run().unwrap(), VcpuExit::Failed(why) if why.contains("register state"))
    );
    assert!(matches!(exits.run().unwrap(), VcpuExit::Interrupted));
    let err = exits.run().unwrap_err();
    assert!(err.to_string().contains("running a vCPU"), "{err}");
}
