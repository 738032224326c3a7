//! A scripted MSHV vCPU for the exit loop: intercept messages as the Microsoft Hypervisor
//! sends them, and a register file the loop reads and writes.
#![allow(dead_code)] // each test file uses part of it

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use ktstr_vmm::accel::HvError;
use ktstr_vmm::accel::mshv::exit_loop::{MsiRouter, VpPort};
use ktstr_vmm::accel::mshv::ioapic::MsiRoute;
use mshv_bindings::{
    StandardRegisters, hv_message, hv_message_type_HVMSG_UNMAPPED_GPA,
    hv_message_type_HVMSG_X64_IO_PORT_INTERCEPT, hv_x64_intercept_message_header,
    hv_x64_io_port_access_info, hv_x64_io_port_access_info__bindgen_ty_1,
    hv_x64_io_port_intercept_message, hv_x64_memory_intercept_message,
};

/// `EINTR`, as a signal leaves `MSHV_RUN_VP`.
pub const EINTR: i32 = 4;

fn with_payload<T: Copy>(message_type: u32, payload: T) -> hv_message {
    assert!(size_of::<T>() <= 240);
    let mut message = hv_message::default();
    message.header.message_type = message_type;
    #[allow(unsafe_code)]
    // SAFETY: the payload area is 240 bytes, more than `T` (checked above); unaligned
    // writes are what the crate's own readers expect.
    unsafe {
        std::ptr::write_unaligned(
            std::ptr::addr_of_mut!(message.u.payload).cast::<T>(),
            payload,
        )
    };
    message
}

fn header(rip: u64, write: bool, len: u8) -> hv_x64_intercept_message_header {
    let mut header = hv_x64_intercept_message_header {
        rip,
        intercept_access_type: u8::from(write),
        ..Default::default()
    };
    header.set_instruction_length(len);
    header
}

/// `out`/`in` of `size` bytes at `port`, an instruction of `len` bytes at `rip`; `string`
/// for `outs`/`ins`.
pub fn port(
    port: u16,
    write: bool,
    size: u8,
    rax: u64,
    rip: u64,
    len: u8,
    string: bool,
) -> hv_message {
    let mut bits = hv_x64_io_port_access_info__bindgen_ty_1::default();
    bits.set_access_size(size);
    bits.set_string_op(u8::from(string));
    with_payload(
        hv_message_type_HVMSG_X64_IO_PORT_INTERCEPT,
        hv_x64_io_port_intercept_message {
            header: header(rip, write, len),
            port_number: port,
            access_info: hv_x64_io_port_access_info {
                __bindgen_anon_1: bits,
            },
            rax,
            ..Default::default()
        },
    )
}

/// An access to unbacked memory at `gpa` by the instruction `insn` at `rip`.
pub fn memory(gpa: u64, write: bool, rip: u64, insn: &[u8]) -> hv_message {
    let mut bytes = [0u8; 16];
    bytes[..insn.len()].copy_from_slice(insn);
    with_payload(
        hv_message_type_HVMSG_UNMAPPED_GPA,
        hv_x64_memory_intercept_message {
            header: header(rip, write, 0),
            instruction_byte_count: insn.len() as u8,
            guest_physical_address: gpa,
            instruction_bytes: bytes,
            ..Default::default()
        },
    )
}

/// A message with nothing past its type (halt, unrecoverable exception, bad registers).
pub fn bare(message_type: u32) -> hv_message {
    let mut message = hv_message::default();
    message.header.message_type = message_type;
    message
}

/// Each run's (RIP, RAX), shared with whoever checks them.
pub type RunLog = Arc<Mutex<Vec<(u64, u64)>>>;

/// A vCPU that plays `script` and then waits, as a guest's vCPU does, for a signal; every
/// run is logged with the RIP and RAX the loop left it.
#[derive(Default)]
pub struct FakeVp {
    pub script: Mutex<VecDeque<Result<hv_message, i32>>>,
    pub regs: Arc<Mutex<StandardRegisters>>,
    pub runs: RunLog,
    /// Past the script: wait for a signal (like a vCPU in the guest) rather than return.
    pub wait_when_done: bool,
    /// The guest's code, for intercepts that come without their instruction bytes.
    pub code: Vec<u8>,
}

impl std::fmt::Debug for FakeVp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeVp")
            .field("left", &self.script.lock().unwrap().len())
            .field("regs", &self.regs)
            .finish_non_exhaustive()
    }
}

impl FakeVp {
    pub fn new(script: Vec<Result<hv_message, i32>>, regs: StandardRegisters) -> Self {
        FakeVp {
            script: Mutex::new(script.into()),
            regs: Arc::new(Mutex::new(regs)),
            ..Default::default()
        }
    }
}

impl VpPort for FakeVp {
    fn run(&self) -> Result<hv_message, i32> {
        let regs = *self.regs.lock().unwrap();
        self.runs.lock().unwrap().push((regs.rip, regs.rax));
        if let Some(next) = self.script.lock().unwrap().pop_front() {
            return next;
        }
        if self.wait_when_done {
            let long = libc::timespec {
                tv_sec: 3600,
                tv_nsec: 0,
            };
            #[allow(unsafe_code)]
            // SAFETY: a plain sleep; a null remainder is allowed.
            let _ = unsafe { libc::nanosleep(&long, std::ptr::null_mut()) };
        }
        Err(EINTR)
    }

    fn regs(&self) -> Result<StandardRegisters, HvError> {
        Ok(*self.regs.lock().unwrap())
    }

    fn set_regs(&self, regs: &StandardRegisters) -> Result<(), HvError> {
        *self.regs.lock().unwrap() = *regs;
        Ok(())
    }

    fn fetch(&self, _rip: u64) -> Result<Vec<u8>, HvError> {
        Ok(self.code.clone())
    }
}

/// Every routing table the I/O APIC sent.
#[derive(Debug, Default, Clone)]
pub struct Routes(pub Arc<Mutex<Vec<Vec<MsiRoute>>>>);

impl MsiRouter for Routes {
    fn route(&self, routes: &[MsiRoute]) -> Result<(), HvError> {
        self.0.lock().unwrap().push(routes.to_vec());
        Ok(())
    }
}
