//! The devices a ktstr guest talks to by port I/O: two 16550 UARTs (COM1 the console,
//! COM2 the frame channel, as `vm-superio` models them) and the i8042 controller whose
//! CPU-reset command is how the guest says it is done.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use vm_superio::{I8042Device, Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

/// COM1 and COM2, eight registers each.
pub const COM1: u16 = 0x3f8;
pub const COM2: u16 = 0x2f8;
const UART_PORTS: u16 = 8;
/// The i8042 data and command ports, and the command that resets the CPU.
const I8042_DATA: u16 = 0x60;
pub const I8042_COMMAND: u16 = 0x64;
pub const I8042_RESET: u8 = 0xfe;
/// The hardware-reduced ACPI sleep control and status registers (named in the FADT), and
/// what a power-off writes: sleep type S5 (from the DSDT's `_S5`) with SLP_EN.
pub const SLEEP_CONTROL_PORT: u16 = 0x600;
pub const SLEEP_STATUS_PORT: u16 = 0x601;
pub const SLP_TYP_S5: u8 = 5;
const SLP_EN: u8 = 1 << 5;

/// Bytes a UART has sent, shared between the vCPU thread and whoever watches the guest.
#[derive(Debug, Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A one-way flag a device raises (the guest asked for a reset).
#[derive(Debug, Clone, Default)]
pub struct Latch(Arc<AtomicBool>);

impl Latch {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl Trigger for Latch {
    type E = std::convert::Infallible;

    fn trigger(&self) -> Result<(), Self::E> {
        self.0.store(true, Ordering::SeqCst);
        Ok(())
    }
}

/// The legacy interrupt lines of COM1 and COM2.
pub const COM1_IRQ: u32 = 4;
pub const COM2_IRQ: u32 = 3;

/// A UART's interrupt line: an eventfd the hypervisor turns into the guest's interrupt, or
/// none (a guest without an interrupt controller polls the line status).
#[derive(Debug)]
pub enum IrqLine {
    None,
    Event(EventFd),
}

impl Trigger for IrqLine {
    type E = std::io::Error;

    fn trigger(&self) -> Result<(), Self::E> {
        match self {
            IrqLine::None => Ok(()),
            IrqLine::Event(event) => event.write(1),
        }
    }
}

type Uart = Serial<IrqLine, vm_superio::serial::NoEvents, Captured>;

/// Every port-I/O device of one guest.
pub struct PortDevices {
    console: Uart,
    frames: Uart,
    i8042: I8042Device<Latch>,
    reset: Latch,
    power_off: bool,
}

impl std::fmt::Debug for PortDevices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortDevices")
            .field("reset", &self.reset.is_set())
            .finish_non_exhaustive()
    }
}

impl PortDevices {
    /// Devices whose output lands in `console` and `frames`, with no interrupt lines.
    pub fn new(console: Captured, frames: Captured) -> Self {
        Self::with_irqs(console, frames, IrqLine::None, IrqLine::None)
    }

    /// Devices whose UARTs raise `console_irq` and `frames_irq`.
    pub fn with_irqs(
        console: Captured,
        frames: Captured,
        console_irq: IrqLine,
        frames_irq: IrqLine,
    ) -> Self {
        let reset = Latch::default();
        PortDevices {
            console: Serial::new(console_irq, console),
            frames: Serial::new(frames_irq, frames),
            i8042: I8042Device::new(reset.clone()),
            reset,
            power_off: false,
        }
    }

    /// The guest asked for a CPU reset (a reboot): it is done.
    pub fn reset_requested(&self) -> bool {
        self.reset.is_set()
    }

    /// The guest powered off through ACPI: it is done too.
    pub fn power_off_requested(&self) -> bool {
        self.power_off
    }

    pub fn write(&mut self, port: u16, data: &[u8]) {
        let Some(&value) = data.first() else { return };
        match port {
            p if (COM1..COM1 + UART_PORTS).contains(&p) => {
                // A UART write only fails when its interrupt cannot be raised.
                let _ = self.console.write((p - COM1) as u8, value);
            }
            p if (COM2..COM2 + UART_PORTS).contains(&p) => {
                let _ = self.frames.write((p - COM2) as u8, value);
            }
            I8042_DATA | I8042_COMMAND => {
                let _ = self.i8042.write((port - I8042_DATA) as u8, value);
            }
            SLEEP_CONTROL_PORT if value & SLP_EN != 0 && (value >> 2) & 0x7 == SLP_TYP_S5 => {
                self.power_off = true;
            }
            // POST codes, the PIC's and the PIT's ports (in-kernel), probes of absent
            // hardware: nothing to do.
            _ => {}
        }
    }

    pub fn read(&mut self, port: u16, data: &mut [u8]) {
        let value = match port {
            p if (COM1..COM1 + UART_PORTS).contains(&p) => self.console.read((p - COM1) as u8),
            p if (COM2..COM2 + UART_PORTS).contains(&p) => self.frames.read((p - COM2) as u8),
            I8042_DATA | I8042_COMMAND => self.i8042.read((port - I8042_DATA) as u8),
            // Never asleep, never waking.
            SLEEP_STATUS_PORT => 0,
            // Absent hardware reads as a floating bus.
            _ => 0xff,
        };
        data.fill(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uart_writes_are_captured_per_port_and_the_i8042_reset_latches() {
        let (console, frames) = (Captured::default(), Captured::default());
        let mut devices = PortDevices::new(console.clone(), frames.clone());
        for b in b"hi" {
            devices.write(COM1, &[*b]);
        }
        devices.write(COM2, b"f");
        assert_eq!(console.take(), b"hi");
        assert_eq!(frames.take(), b"f");
        // The line status register says the transmitter is empty.
        let mut lsr = [0u8];
        devices.read(COM1 + 5, &mut lsr);
        assert_eq!(lsr[0] & 0x60, 0x60);
        let mut absent = [0u8; 2];
        devices.read(0x1234, &mut absent);
        assert_eq!(absent, [0xff, 0xff]);
        assert!(!devices.reset_requested());
        devices.write(I8042_COMMAND, &[0xfe]);
        assert!(devices.reset_requested());
    }

    #[test]
    fn an_acpi_s5_write_with_slp_en_is_a_power_off() {
        let mut devices = PortDevices::new(Captured::default(), Captured::default());
        // The sleep type alone, or another sleep state, does not power off.
        devices.write(SLEEP_CONTROL_PORT, &[SLP_TYP_S5 << 2]);
        devices.write(SLEEP_CONTROL_PORT, &[(3 << 2) | SLP_EN]);
        assert!(!devices.power_off_requested());
        devices.write(SLEEP_CONTROL_PORT, &[(SLP_TYP_S5 << 2) | SLP_EN]);
        assert!(devices.power_off_requested());
        let mut status = [0xffu8];
        devices.read(SLEEP_STATUS_PORT, &mut status);
        assert_eq!(status, [0]);
    }

    #[test]
    fn a_uart_with_an_interrupt_line_signals_it_when_the_guest_asks() {
        let event = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let line = IrqLine::Event(event.try_clone().unwrap());
        let mut devices = PortDevices::with_irqs(
            Captured::default(),
            Captured::default(),
            IrqLine::None,
            line,
        );
        // Enable the transmitter-empty interrupt (IER bit 1): the UART raises it at once.
        devices.write(COM2 + 1, &[0x02]);
        assert_eq!(event.read().unwrap(), 1);
    }
}
