//! The MMIO instructions the MSHV implementation decodes itself. The Microsoft Hypervisor
//! reports a guest's access to unmapped memory with the instruction's bytes, not its
//! operands (KVM decodes in the kernel): so the VMM finds the register or immediate, the
//! width and the instruction's length. Only the `mov` forms Linux's `readl`/`writel` and
//! their byte, word and quad siblings compile to are taken; anything else is named back.

use thiserror::Error;

/// How a load fills its destination register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// 8 or 16 bits of a register; the rest is kept.
    Low { reg: u8, bytes: u8 },
    /// AH, CH, DH or BH: bits 8-15 of register `reg` (0-3).
    HighByte { reg: u8 },
    /// The whole register, zero-extended (32- and 64-bit destinations, and `movzx`).
    Whole { reg: u8 },
}

/// Where a store's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Reg { reg: u8 },
    HighByte { reg: u8 },
    Imm(u64),
}

/// One decoded access: `size` bytes at the faulting address, by an instruction `len`
/// bytes long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioInsn {
    pub len: u64,
    pub size: usize,
    pub op: MmioOp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioOp {
    Load(Dest),
    Store(Source),
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the instruction is cut short ({0} bytes given)")]
    Truncated(usize),
    #[error("opcode {0:#04x} is not a mov to or from memory")]
    Unsupported(u8),
    #[error("a register operand where memory was expected")]
    NotMemory,
}

/// Registers' x86 numbers (RAX = 0 … R15 = 15).
pub const RAX: u8 = 0;

impl Dest {
    /// `old` after the load of `value`.
    pub fn merge(self, old: u64, value: u64) -> u64 {
        match self {
            Dest::Whole { .. } => value,
            Dest::Low { bytes, .. } => {
                let mask = (1u64 << (8 * u32::from(bytes))) - 1;
                (old & !mask) | (value & mask)
            }
            Dest::HighByte { .. } => (old & !0xff00) | ((value & 0xff) << 8),
        }
    }

    pub fn reg(self) -> u8 {
        match self {
            Dest::Low { reg, .. } | Dest::HighByte { reg } | Dest::Whole { reg } => reg,
        }
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn next(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or(DecodeError::Truncated(self.bytes.len()))?;
        self.at += 1;
        Ok(b)
    }

    fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        if self.at + n > self.bytes.len() {
            return Err(DecodeError::Truncated(self.bytes.len()));
        }
        self.at += n;
        Ok(())
    }

    fn imm(&mut self, n: usize) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for i in 0..n {
            value |= u64::from(self.next()?) << (8 * i);
        }
        Ok(value)
    }
}

const REX_W: u8 = 8;
const REX_R: u8 = 4;

/// Decodes the 64-bit-mode instruction at the start of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<MmioInsn, DecodeError> {
    let mut c = Cursor { bytes, at: 0 };
    let mut operand16 = false;
    // A REX prefix, even an empty one (0x40), changes which byte registers 4-7 name.
    let mut rex: Option<u8> = None;
    let mut opcode = c.next()?;
    loop {
        match opcode {
            // A REX prefix counts only right before the opcode.
            0x66 => {
                operand16 = true;
                rex = None;
            }
            // Address size, segment overrides and lock change nothing the VMM sees.
            0x67 | 0x2e | 0x36 | 0x3e | 0x26 | 0x64 | 0x65 | 0xf0 => rex = None,
            0x40..=0x4f => rex = Some(opcode & 0xf),
            _ => break,
        }
        opcode = c.next()?;
    }
    let rex_bits = rex.unwrap_or(0);
    let wide = if rex_bits & REX_W != 0 {
        8
    } else if operand16 {
        2
    } else {
        4
    };
    let (size, op_kind) = match opcode {
        0x88 => (1, Kind::StoreReg),
        0x89 => (wide, Kind::StoreReg),
        0x8a => (1, Kind::Load { dest_bytes: 1 }),
        0x8b => (wide, Kind::Load { dest_bytes: wide }),
        0xc6 => (1, Kind::StoreImm(1)),
        0xc7 => (wide, Kind::StoreImm(wide.min(4))),
        0x0f => match c.next()? {
            0xb6 => (1, Kind::Load { dest_bytes: wide }),
            0xb7 => (2, Kind::Load { dest_bytes: wide }),
            other => return Err(DecodeError::Unsupported(other)),
        },
        other => return Err(DecodeError::Unsupported(other)),
    };
    let modrm = c.next()?;
    let mode = modrm >> 6;
    let rm = modrm & 7;
    if mode == 3 {
        return Err(DecodeError::NotMemory);
    }
    let reg_field = (modrm >> 3) & 7;
    if rm == 4 {
        let sib = c.next()?;
        if mode == 0 && sib & 7 == 5 {
            c.skip(4)?;
        }
    }
    match mode {
        0 if rm == 5 => c.skip(4)?, // RIP-relative
        1 => c.skip(1)?,
        2 => c.skip(4)?,
        _ => {}
    }
    let reg = reg_field | if rex_bits & REX_R != 0 { 8 } else { 0 };
    // Without REX, byte registers 4-7 are AH, CH, DH, BH.
    let high_byte = size == 1 && rex.is_none() && (4..8).contains(&reg_field);
    let op = match op_kind {
        Kind::StoreReg if high_byte => MmioOp::Store(Source::HighByte { reg: reg_field - 4 }),
        Kind::StoreReg => MmioOp::Store(Source::Reg { reg }),
        Kind::StoreImm(n) => {
            if reg_field != 0 {
                return Err(DecodeError::Unsupported(opcode));
            }
            let imm = c.imm(n)?;
            // A 32-bit immediate is sign-extended into a 64-bit store.
            let imm = if size == 8 {
                imm as u32 as i32 as i64 as u64
            } else {
                imm
            };
            MmioOp::Store(Source::Imm(imm))
        }
        Kind::Load { dest_bytes: 1 } if high_byte => {
            MmioOp::Load(Dest::HighByte { reg: reg_field - 4 })
        }
        Kind::Load { dest_bytes } if dest_bytes < 4 => MmioOp::Load(Dest::Low {
            reg,
            bytes: dest_bytes as u8,
        }),
        Kind::Load { .. } => MmioOp::Load(Dest::Whole { reg }),
    };
    Ok(MmioInsn {
        len: c.at as u64,
        size,
        op,
    })
}

enum Kind {
    StoreReg,
    StoreImm(usize),
    Load { dest_bytes: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(bytes: &[u8]) -> (u64, usize, Dest) {
        match decode(bytes).unwrap() {
            MmioInsn {
                len,
                size,
                op: MmioOp::Load(d),
            } => (len, size, d),
            other => panic!("{other:?}"),
        }
    }

    fn store(bytes: &[u8]) -> (u64, usize, Source) {
        match decode(bytes).unwrap() {
            MmioInsn {
                len,
                size,
                op: MmioOp::Store(s),
            } => (len, size, s),
            other => panic!("{other:?}"),
        }
    }

    /// Encodings as GNU as emits them for what Linux's I/O APIC and MMIO accessors compile to.
    #[test]
    fn the_movs_of_readl_and_writel() {
        // mov %esi,(%rax): writel(reg, &ioapic->index)
        assert_eq!(store(&[0x89, 0x30]), (2, 4, Source::Reg { reg: 6 }));
        // mov 0x10(%rax),%eax: readl(&ioapic->data)
        assert_eq!(load(&[0x8b, 0x40, 0x10]), (3, 4, Dest::Whole { reg: RAX }));
        // mov %r12d,0x10(%rbx)
        assert_eq!(
            store(&[0x44, 0x89, 0x63, 0x10]),
            (4, 4, Source::Reg { reg: 12 })
        );
        // movl $0x10,(%rdx)
        assert_eq!(
            store(&[0xc7, 0x02, 0x10, 0, 0, 0]),
            (6, 4, Source::Imm(0x10))
        );
        // mov 0x12345678(%rip),%ecx
        assert_eq!(
            load(&[0x8b, 0x0d, 0x78, 0x56, 0x34, 0x12]),
            (6, 4, Dest::Whole { reg: 1 })
        );
        // mov (%rsp,%rbx,4),%rdx with REX.W; mov %rax,0x8(%rsp)
        assert_eq!(
            load(&[0x48, 0x8b, 0x14, 0x9c]),
            (4, 8, Dest::Whole { reg: 2 })
        );
        assert_eq!(
            store(&[0x48, 0x89, 0x44, 0x24, 0x08]),
            (5, 8, Source::Reg { reg: 0 })
        );
        // movq $-1,0x100(%rdi): the immediate sign-extends
        assert_eq!(
            store(&[0x48, 0xc7, 0x87, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff]),
            (11, 8, Source::Imm(u64::MAX))
        );
    }

    #[test]
    fn bytes_and_words_keep_the_rest_of_the_register() {
        // mov (%rdi),%al; mov (%rdi),%ah; mov %bh,(%rdi); mov (%rdi),%sil with REX
        assert_eq!(load(&[0x8a, 0x07]), (2, 1, Dest::Low { reg: 0, bytes: 1 }));
        assert_eq!(load(&[0x8a, 0x27]), (2, 1, Dest::HighByte { reg: 0 }));
        assert_eq!(store(&[0x88, 0x3f]), (2, 1, Source::HighByte { reg: 3 }));
        assert_eq!(
            load(&[0x40, 0x8a, 0x37]),
            (3, 1, Dest::Low { reg: 6, bytes: 1 })
        );
        // mov (%rdi),%cx; movw $0x1234,(%rdi)
        assert_eq!(
            load(&[0x66, 0x8b, 0x0f]),
            (3, 2, Dest::Low { reg: 1, bytes: 2 })
        );
        assert_eq!(
            store(&[0x66, 0xc7, 0x07, 0x34, 0x12]),
            (5, 2, Source::Imm(0x1234))
        );
        // movzbl (%rdi),%eax; movzwl 0x4(%rsi),%edx
        assert_eq!(load(&[0x0f, 0xb6, 0x07]), (3, 1, Dest::Whole { reg: 0 }));
        assert_eq!(
            load(&[0x0f, 0xb7, 0x56, 0x04]),
            (4, 2, Dest::Whole { reg: 2 })
        );

        assert_eq!(
            Dest::Low { reg: 0, bytes: 1 }.merge(0x1122_3344, 0xab),
            0x1122_33ab
        );
        assert_eq!(
            Dest::Low { reg: 0, bytes: 2 }.merge(0x1122_3344, 0xabcd),
            0x1122_abcd
        );
        assert_eq!(
            Dest::HighByte { reg: 0 }.merge(0x1122_3344, 0xab),
            0x1122_ab44
        );
        assert_eq!(Dest::Whole { reg: 0 }.merge(u64::MAX, 0xab), 0xab);
    }

    #[test]
    fn what_it_cannot_decode_is_refused_not_guessed() {
        // rep movsb, add %eax,(%rdi), a register-to-register mov, a cut-off instruction.
        assert_eq!(decode(&[0xf3, 0xa4]), Err(DecodeError::Unsupported(0xf3)));
        assert_eq!(decode(&[0x01, 0x07]), Err(DecodeError::Unsupported(0x01)));
        assert_eq!(decode(&[0x89, 0xc0]), Err(DecodeError::NotMemory));
        assert_eq!(decode(&[0x8b, 0x80, 0x10]), Err(DecodeError::Truncated(3)));
        assert_eq!(decode(&[]), Err(DecodeError::Truncated(0)));
        // A REX before another prefix is ignored: this is a 16-bit store of AX.
        assert_eq!(
            store(&[0x48, 0x66, 0x89, 0x07]),
            (4, 2, Source::Reg { reg: 0 })
        );
    }
}
