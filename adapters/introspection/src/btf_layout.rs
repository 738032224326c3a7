//! Member offsets out of `.BTF`, through `btf-rs`. Members may sit inside anonymous
//! structs or unions (e.g. in `bpf_prog_aux`), and the structs may carry bitfields (e.g.
//! `bpf_prog`): only whole-byte, non-bitfield members are accepted.

use btf_rs::{Btf, Member, Struct, Type};

use crate::error::LayoutError;
use crate::kernel_layout::Field;

/// How deep anonymous members are searched, and how many typedef/const hops are followed:
/// far beyond what the kernel uses, but a corrupt `.BTF` cannot make us loop.
const MAX_NESTING: u32 = 16;

/// The shape the walker will read a member as; anything else is refused at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// An integer or enum of 1, 2, 4 or 8 bytes.
    Scalar,
    Pointer,
    /// A struct or union (only its offset matters).
    Struct,
    /// An array of single-byte integers (a C string buffer).
    ByteArray,
    /// An array of pointers.
    PtrArray,
}

/// A parsed `.BTF` section.
pub struct BtfIndex {
    btf: Btf,
}

impl std::fmt::Debug for BtfIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BtfIndex").finish_non_exhaustive()
    }
}

impl BtfIndex {
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        Btf::from_bytes(bytes)
            .map(|btf| BtfIndex { btf })
            .map_err(|e| e.to_string())
    }

    /// Offset and size of `strukt.member`, checked against `expect`.
    pub fn member(&self, strukt: &str, member: &str, expect: Expect) -> Result<Field, LayoutError> {
        let bad = |reason: String| LayoutError::BadMember {
            strukt: strukt.to_string(),
            member: member.to_string(),
            reason,
        };
        let outer = self.struct_named(strukt)?;
        let (bit_offset, found) = self
            .find_member(&outer, member, 0)
            .map_err(bad)?
            .ok_or_else(|| LayoutError::MissingMember {
                strukt: strukt.to_string(),
                member: member.to_string(),
            })?;
        if found.bitfield_size().is_some_and(|bits| bits != 0) {
            return Err(bad("it is a bitfield".into()));
        }
        if !bit_offset.is_multiple_of(8) {
            return Err(bad(format!("bit offset {bit_offset} is not byte-aligned")));
        }
        let ty = self
            .btf
            .resolve_chained_type(&found)
            .map_err(|e| bad(e.to_string()))?;
        let size = self.check_shape(ty, expect).map_err(bad)?;
        Ok(Field::new(bit_offset / 8, size))
    }

    fn struct_named(&self, name: &str) -> Result<Struct, LayoutError> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|_| LayoutError::MissingStruct(name.to_string()))?;
        types
            .into_iter()
            .find_map(|t| match t {
                Type::Struct(s) => Some(s),
                _ => None,
            })
            .ok_or_else(|| LayoutError::MissingStruct(name.to_string()))
    }

    /// The member named `name` and its bit offset from the start of `s`, looking through
    /// anonymous struct and union members.
    fn find_member(
        &self,
        s: &Struct,
        name: &str,
        depth: u32,
    ) -> Result<Option<(u64, Member)>, String> {
        for m in &s.members {
            let m_name = self.btf.resolve_name(m).unwrap_or_default();
            if m_name == name {
                return Ok(Some((u64::from(m.bit_offset()), m.clone())));
            }
            if !m_name.is_empty() || depth >= MAX_NESTING {
                continue;
            }
            let inner = self
                .strip(
                    self.btf
                        .resolve_chained_type(m)
                        .map_err(|e| e.to_string())?,
                )
                .map_err(|e| e.to_string())?;
            if let Type::Struct(inner) | Type::Union(inner) = inner
                && let Some((off, found)) = self.find_member(&inner, name, depth + 1)?
            {
                return Ok(Some((u64::from(m.bit_offset()) + off, found)));
            }
        }
        Ok(None)
    }

    /// Follows typedefs and qualifiers to the type they name.
    fn strip(&self, mut ty: Type) -> Result<Type, String> {
        for _ in 0..MAX_NESTING {
            match &ty {
                Type::Typedef(_)
                | Type::Const(_)
                | Type::Volatile(_)
                | Type::Restrict(_)
                | Type::TypeTag(_) => {
                    let x = ty.as_btf_type().ok_or("qualifier without a type")?;
                    ty = self
                        .btf
                        .resolve_chained_type(x)
                        .map_err(|e| e.to_string())?;
                }
                _ => return Ok(ty),
            }
        }
        Err("typedef chain too long".into())
    }

    /// The member's size in bytes, if its type has the expected shape.
    fn check_shape(&self, ty: Type, expect: Expect) -> Result<u64, String> {
        let ty = self.strip(ty)?;
        let size = match (&ty, expect) {
            (Type::Int(i), Expect::Scalar) => i.size(),
            (Type::Enum(e), Expect::Scalar) => e.size(),
            (Type::Enum64(e), Expect::Scalar) => e.size(),
            (Type::Ptr(_), Expect::Pointer) => 8,
            (Type::Struct(s) | Type::Union(s), Expect::Struct) => s.size(),
            (Type::Array(a), Expect::ByteArray | Expect::PtrArray) => {
                let elem = self.strip(
                    self.btf
                        .resolve_chained_type(a)
                        .map_err(|e| e.to_string())?,
                )?;
                match (elem, expect) {
                    (Type::Int(i), Expect::ByteArray) if i.size() == 1 => a.len(),
                    (Type::Ptr(_), Expect::PtrArray) => a.len() * 8,
                    (elem, _) => {
                        return Err(format!(
                            "expected {expect:?}, found an array of {}",
                            elem.name()
                        ));
                    }
                }
            }
            (other, _) => return Err(format!("expected {expect:?}, found {}", other.name())),
        };
        if expect == Expect::Scalar && ![1, 2, 4, 8].contains(&size) {
            return Err(format!("scalar of {size} bytes"));
        }
        Ok(size as u64)
    }
}
