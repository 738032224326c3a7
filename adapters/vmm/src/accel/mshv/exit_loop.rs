//! One MSHV vCPU's run loop: the hypervisor's intercept messages turned into the core's
//! exits. Where KVM completes an exit in the kernel, here the VMM does: it advances RIP past
//! the instruction and writes what a port or MMIO read returned into its register before
//! the next run; the I/O APIC's window is served here and never reaches the core.

use std::sync::{Arc, Mutex, PoisonError};

use mshv_bindings::{
    HV_INTERCEPT_ACCESS_WRITE, StandardRegisters, hv_message, hv_message_type_HVMSG_GPA_INTERCEPT,
    hv_message_type_HVMSG_INVALID_VP_REGISTER_VALUE, hv_message_type_HVMSG_UNMAPPED_GPA,
    hv_message_type_HVMSG_UNRECOVERABLE_EXCEPTION, hv_message_type_HVMSG_X64_APIC_EOI,
    hv_message_type_HVMSG_X64_HALT, hv_message_type_HVMSG_X64_IO_PORT_INTERCEPT,
};

use super::ioapic::{IOAPIC_BASE, IOAPIC_SIZE, Ioapic, MsiRoute};
use super::mmio_insn::{Dest, MmioOp, RAX, Source, decode};
use crate::accel::{HvError, VcpuExit};

/// The intercept messages the loop handles.
const IO_PORT: u32 = hv_message_type_HVMSG_X64_IO_PORT_INTERCEPT;
const UNMAPPED_GPA: u32 = hv_message_type_HVMSG_UNMAPPED_GPA;
const GPA_INTERCEPT: u32 = hv_message_type_HVMSG_GPA_INTERCEPT;
const HALT: u32 = hv_message_type_HVMSG_X64_HALT;
const UNRECOVERABLE_EXCEPTION: u32 = hv_message_type_HVMSG_UNRECOVERABLE_EXCEPTION;
const INVALID_VP_REGISTER_VALUE: u32 = hv_message_type_HVMSG_INVALID_VP_REGISTER_VALUE;
const APIC_EOI: u32 = hv_message_type_HVMSG_X64_APIC_EOI;

/// `EINTR`: a signal took the vCPU out of its run; `EAGAIN`: the driver asks for a retry.
const EINTR: i32 = 4;
const EAGAIN: i32 = 11;

/// What the loop needs of one vCPU: run it, and read and write its general registers.
/// `VcpuFd` on a real host; a scripted fake in tests.
pub trait VpPort: Send + std::fmt::Debug {
    /// Runs until the next intercept message; `Err` carries the errno.
    fn run(&self) -> Result<hv_message, i32>;
    fn regs(&self) -> Result<StandardRegisters, HvError>;
    fn set_regs(&self, regs: &StandardRegisters) -> Result<(), HvError>;
    /// Up to 16 bytes of the guest's code at virtual address `rip`, for an intercept that
    /// came without them (the hypervisor could not fetch them, say across a page).
    fn fetch(&self, rip: u64) -> Result<Vec<u8>, HvError>;
}

/// Where a changed interrupt routing goes: the partition's MSI routing table.
pub trait MsiRouter: Send + Sync + std::fmt::Debug {
    fn route(&self, routes: &[MsiRoute]) -> Result<(), HvError>;
}

/// The partition's I/O APIC, shared by its vCPUs.
#[derive(Debug)]
pub struct IoapicDevice {
    state: Mutex<Ioapic>,
    router: Box<dyn MsiRouter>,
}

impl IoapicDevice {
    pub fn new(router: Box<dyn MsiRouter>) -> Self {
        IoapicDevice {
            state: Mutex::new(Ioapic::default()),
            router,
        }
    }

    fn read(&self, offset: u64) -> u32 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .read(offset)
    }

    /// Writes a register and, when a pin's destination changed, the routing table with it
    /// (under the lock, so tables reach the hypervisor in the order they were made).
    fn write(&self, offset: u64, value: u32) -> Result<(), HvError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.write(offset, value) {
            self.router.route(&state.routes())?;
        }
        Ok(())
    }
}

/// How the exit the core is handling completes on the next run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Completion {
    /// Past the instruction.
    Advance { rip: u64 },
    /// Past the instruction, with the `size` bytes the core read into `dest`.
    Load { rip: u64, dest: Dest, size: usize },
}

/// The loop's state between runs.
#[derive(Debug)]
pub struct ExitLoop<P: VpPort> {
    vp: P,
    ioapic: Arc<IoapicDevice>,
    pending: Option<Completion>,
    data: [u8; 8],
}

/// A general register by its x86 number (RAX = 0 … R15 = 15).
fn gpr(regs: &mut StandardRegisters, n: u8) -> &mut u64 {
    match n {
        0 => &mut regs.rax,
        1 => &mut regs.rcx,
        2 => &mut regs.rdx,
        3 => &mut regs.rbx,
        4 => &mut regs.rsp,
        5 => &mut regs.rbp,
        6 => &mut regs.rsi,
        7 => &mut regs.rdi,
        8 => &mut regs.r8,
        9 => &mut regs.r9,
        10 => &mut regs.r10,
        11 => &mut regs.r11,
        12 => &mut regs.r12,
        13 => &mut regs.r13,
        14 => &mut regs.r14,
        _ => &mut regs.r15,
    }
}

/// Where a port read of `size` bytes lands: AL or AX keep the rest of RAX, EAX clears it.
fn port_dest(size: usize) -> Dest {
    if size < 4 {
        Dest::Low {
            reg: RAX,
            bytes: size as u8,
        }
    } else {
        Dest::Whole { reg: RAX }
    }
}

impl<P: VpPort> ExitLoop<P> {
    pub fn new(vp: P, ioapic: Arc<IoapicDevice>) -> Self {
        ExitLoop {
            vp,
            ioapic,
            pending: None,
            data: [0; 8],
        }
    }

    pub fn vp(&self) -> &P {
        &self.vp
    }

    pub fn vp_mut(&mut self) -> &mut P {
        &mut self.vp
    }

    /// Finishes the last exit: RIP past it, and a read's value in its register.
    fn complete(&mut self) -> Result<(), HvError> {
        let Some(done) = self.pending.take() else {
            return Ok(());
        };
        let mut regs = self.vp.regs()?;
        match done {
            Completion::Advance { rip } => regs.rip = rip,
            Completion::Load { rip, dest, size } => {
                regs.rip = rip;
                let mut bytes = [0u8; 8];
                bytes[..size].copy_from_slice(&self.data[..size]);
                let reg = gpr(&mut regs, dest.reg());
                *reg = dest.merge(*reg, u64::from_le_bytes(bytes));
            }
        }
        self.vp.set_regs(&regs)
    }

    /// The value a store writes.
    fn source(&self, source: Source) -> Result<u64, HvError> {
        Ok(match source {
            Source::Imm(value) => value,
            Source::Reg { reg } => *gpr(&mut self.vp.regs()?, reg),
            Source::HighByte { reg } => *gpr(&mut self.vp.regs()?, reg) >> 8,
        })
    }

    /// Runs the vCPU until an exit the core must see.
    pub fn run(&mut self) -> Result<VcpuExit<'_>, HvError> {
        loop {
            self.complete()?;
            let message = match self.vp.run() {
                Ok(message) => message,
                Err(EINTR | EAGAIN) => return Ok(VcpuExit::Interrupted),
                Err(errno) => {
                    return Err(HvError::os(
                        "running a vCPU",
                        std::io::Error::from_raw_os_error(errno),
                    ));
                }
            };
            match message.header.message_type {
                IO_PORT => return self.port_io(&message),
                UNMAPPED_GPA | GPA_INTERCEPT => {
                    if let Some(exit) = self.memory(&message)? {
                        return Ok(exit.into_exit(&mut self.data));
                    }
                }
                // The end of a level-triggered interrupt: no device of ours holds a level
                // line, so there is nothing to re-raise.
                APIC_EOI => {}
                HALT => return Ok(VcpuExit::Halt),
                UNRECOVERABLE_EXCEPTION => {
                    return Ok(VcpuExit::TripleFault);
                }
                INVALID_VP_REGISTER_VALUE => {
                    return Ok(VcpuExit::Failed(
                        "the hypervisor refused the vCPU's register state".into(),
                    ));
                }
                other => {
                    return Ok(VcpuExit::Failed(format!(
                        "unexpected MSHV message {other:#x}"
                    )));
                }
            }
        }
    }

    fn port_io(&mut self, message: &hv_message) -> Result<VcpuExit<'_>, HvError> {
        let info = message
            .to_ioport_info()
            .map_err(|e| HvError::os("reading a port intercept", e))?;
        let port = info.port_number;
        let access = info.access_info;
        #[allow(unsafe_code)]
        // SAFETY: the access-info union is one byte; its bitfield view covers all of it.
        let (size, string) = unsafe {
            (
                usize::from(access.__bindgen_anon_1.access_size()),
                access.__bindgen_anon_1.string_op() != 0,
            )
        };
        if string || !matches!(size, 1 | 2 | 4) {
            return Ok(VcpuExit::Failed(format!(
                "string or {size}-byte port I/O at port {port:#x}, which this VMM does not emulate"
            )));
        }
        let rip = info.header.rip + u64::from(info.header.instruction_length());
        if u32::from(info.header.intercept_access_type) == HV_INTERCEPT_ACCESS_WRITE {
            self.data = info.rax.to_le_bytes();
            self.pending = Some(Completion::Advance { rip });
            Ok(VcpuExit::IoOut {
                port,
                data: &self.data[..size],
            })
        } else {
            self.data = [0; 8];
            self.pending = Some(Completion::Load {
                rip,
                dest: port_dest(size),
                size,
            });
            Ok(VcpuExit::IoIn {
                port,
                data: &mut self.data[..size],
            })
        }
    }

    /// An access to memory no RAM backs: the I/O APIC's window is served here (`None`);
    /// anything else goes to the core.
    fn memory(&mut self, message: &hv_message) -> Result<Option<MmioExit>, HvError> {
        let info = message
            .to_memory_info()
            .map_err(|e| HvError::os("reading a memory intercept", e))?;
        let gpa = info.guest_physical_address;
        let rip = info.header.rip;
        let count = usize::from(info.instruction_byte_count).min(info.instruction_bytes.len());
        let fetched;
        let bytes = if count == 0 {
            fetched = self.vp.fetch(rip)?;
            &fetched[..]
        } else {
            &info.instruction_bytes[..count]
        };
        let insn = match decode(bytes) {
            Ok(insn) => insn,
            Err(e) => {
                return Ok(Some(MmioExit::Failed(format!(
                    "the guest touched {gpa:#x} (no RAM there) at rip {rip:#x} with an \
                     instruction this VMM does not emulate: {e} (bytes {bytes:02x?})"
                ))));
            }
        };
        let next = rip + insn.len;
        if (IOAPIC_BASE..IOAPIC_BASE + IOAPIC_SIZE).contains(&gpa) {
            let offset = gpa - IOAPIC_BASE;
            let mut regs = self.vp.regs()?;
            match insn.op {
                MmioOp::Store(source) => {
                    let value = self.source(source)?;
                    self.ioapic.write(offset, value as u32)?;
                }
                MmioOp::Load(dest) => {
                    let value = u64::from(self.ioapic.read(offset));
                    let reg = gpr(&mut regs, dest.reg());
                    *reg = dest.merge(*reg, value);
                }
            }
            regs.rip = next;
            self.vp.set_regs(&regs)?;
            return Ok(None);
        }
        Ok(Some(match insn.op {
            MmioOp::Store(source) => {
                self.pending = Some(Completion::Advance { rip: next });
                MmioExit::Write {
                    addr: gpa,
                    value: self.source(source)?,
                    size: insn.size,
                }
            }
            MmioOp::Load(dest) => {
                self.pending = Some(Completion::Load {
                    rip: next,
                    dest,
                    size: insn.size,
                });
                MmioExit::Read {
                    addr: gpa,
                    size: insn.size,
                }
            }
        }))
    }
}

/// A memory access the core handles, before it borrows the loop's data buffer.
enum MmioExit {
    Write { addr: u64, value: u64, size: usize },
    Read { addr: u64, size: usize },
    Failed(String),
}

impl MmioExit {
    fn into_exit(self, data: &mut [u8; 8]) -> VcpuExit<'_> {
        match self {
            MmioExit::Write { addr, value, size } => {
                *data = value.to_le_bytes();
                VcpuExit::MmioWrite {
                    addr,
                    data: &data[..size],
                }
            }
            MmioExit::Read { addr, size } => {
                *data = [0; 8];
                VcpuExit::MmioRead {
                    addr,
                    data: &mut data[..size],
                }
            }
            MmioExit::Failed(why) => VcpuExit::Failed(why),
        }
    }
}
