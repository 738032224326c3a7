//! Just enough of the BTF format (include/uapi/linux/btf.h) to name a function type: walk
//! the type section to a type id and read its name from the string section.

use thiserror::Error;

const BTF_MAGIC: u16 = 0xeb9f;
/// magic u16, version u8, flags u8, then five u32: hdr_len, type_off/len, str_off/len.
const MIN_HEADER_LEN: usize = 24;
const BTF_TYPE_LEN: usize = 12;
const BTF_KIND_FUNC: u32 = 12;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BtfError {
    #[error("BTF blob too short or truncated ({0})")]
    Truncated(&'static str),
    #[error("bad BTF magic {0:#06x}")]
    BadMagic(u16),
    #[error("unknown BTF kind {kind} at type id {id}")]
    UnknownKind { kind: u32, id: u32 },
    #[error("no BTF type with id {0}")]
    NoSuchType(u32),
    #[error("BTF type {id} is kind {kind}, not FUNC")]
    NotFunc { id: u32, kind: u32 },
    #[error("BTF name offset {0} is outside the string section")]
    BadName(u32),
}

fn u32_at(data: &[u8], off: usize) -> Option<u32> {
    let bytes = data.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// Bytes that follow the common 12-byte `struct btf_type` for a kind.
fn extra_len(kind: u32, vlen: usize) -> Option<usize> {
    Some(match kind {
        // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
        2 | 7..=12 | 16 | 18 => 0,
        // INT (encoding word), VAR (linkage), DECL_TAG (component_idx)
        1 | 14 | 17 => 4,
        3 => 12,            // ARRAY: struct btf_array
        4 | 5 => 12 * vlen, // STRUCT, UNION: btf_member
        6 => 8 * vlen,      // ENUM: btf_enum
        13 => 8 * vlen,     // FUNC_PROTO: btf_param
        15 => 12 * vlen,    // DATASEC: btf_var_secinfo
        19 => 12 * vlen,    // ENUM64: btf_enum64
        _ => return None,
    })
}

/// The name of the FUNC type `type_id` in a standalone (non-split) BTF blob, such as a
/// program's BTF as `BPF_OBJ_GET_INFO_BY_FD` returns it. Type ids start at 1.
pub fn func_name(btf: &[u8], type_id: u32) -> Result<String, BtfError> {
    let magic = btf
        .get(..2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or(BtfError::Truncated("header"))?;
    if magic != BTF_MAGIC {
        return Err(BtfError::BadMagic(magic));
    }
    let field = |off| u32_at(btf, off).ok_or(BtfError::Truncated("header"));
    let hdr_len = field(4)? as usize;
    if hdr_len < MIN_HEADER_LEN {
        return Err(BtfError::Truncated("header length"));
    }
    let section = |off: u32, len: u32, what| {
        let start = hdr_len.checked_add(off as usize);
        let end = start.and_then(|s| s.checked_add(len as usize));
        start
            .zip(end)
            .and_then(|(s, e)| btf.get(s..e))
            .ok_or(BtfError::Truncated(what))
    };
    let types = section(field(8)?, field(12)?, "type section")?;
    let strings = section(field(16)?, field(20)?, "string section")?;

    let mut off = 0usize;
    for id in 1.. {
        if off >= types.len() {
            break;
        }
        let name_off = u32_at(types, off).ok_or(BtfError::Truncated("type"))?;
        let info = u32_at(types, off + 4).ok_or(BtfError::Truncated("type"))?;
        u32_at(types, off + 8).ok_or(BtfError::Truncated("type"))?;
        let kind = (info >> 24) & 0x1f;
        if id == type_id {
            if kind != BTF_KIND_FUNC {
                return Err(BtfError::NotFunc { id, kind });
            }
            return string_at(strings, name_off);
        }
        let vlen = (info & 0xffff) as usize;
        let extra = extra_len(kind, vlen).ok_or(BtfError::UnknownKind { kind, id })?;
        off += BTF_TYPE_LEN + extra;
    }
    Err(BtfError::NoSuchType(type_id))
}

fn string_at(strings: &[u8], off: u32) -> Result<String, BtfError> {
    let rest = strings.get(off as usize..).ok_or(BtfError::BadName(off))?;
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or(BtfError::BadName(off))?;
    Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a BTF blob from (name, kind, vlen, extra bytes) types.
    fn blob(types: &[(&str, u32, u32, usize)]) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut section = Vec::new();
        for (name, kind, vlen, extra) in types {
            let name_off = if name.is_empty() {
                0
            } else {
                let off = strings.len() as u32;
                strings.extend(name.as_bytes());
                strings.push(0);
                off
            };
            section.extend(name_off.to_le_bytes());
            section.extend(((kind << 24) | vlen).to_le_bytes());
            section.extend(0u32.to_le_bytes());
            section.extend(std::iter::repeat_n(0xAAu8, *extra));
        }
        let mut out = Vec::new();
        out.extend(BTF_MAGIC.to_le_bytes());
        out.extend([1u8, 0]);
        out.extend(24u32.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend((section.len() as u32).to_le_bytes());
        out.extend((section.len() as u32).to_le_bytes());
        out.extend((strings.len() as u32).to_le_bytes());
        out.extend(section);
        out.extend(strings);
        out
    }

    fn sample() -> Vec<u8> {
        blob(&[
            ("int", 1, 0, 4),                            // 1 INT
            ("", 2, 0, 0),                               // 2 PTR
            ("task_ctx", 4, 3, 36),                      // 3 STRUCT, 3 members
            ("", 13, 2, 16),                             // 4 FUNC_PROTO, 2 params
            ("ktstr_select_cpu", 12, 1, 0),              // 5 FUNC
            ("cpus", 6, 2, 16),                          // 6 ENUM
            ("big", 19, 1, 12),                          // 7 ENUM64
            (".bss", 15, 2, 24),                         // 8 DATASEC
            ("counter", 14, 0, 4),                       // 9 VAR
            ("ktstr_enqueue", 12, 0, 0),                 // 10 FUNC
            ("tag", 17, 0, 4),                           // 11 DECL_TAG
            ("arr", 3, 0, 12),                           // 12 ARRAY
            ("ktstr_dispatch_with_long_name", 12, 0, 0), // 13 FUNC
        ])
    }

    #[test]
    fn finds_func_names_past_every_kind() {
        let b = sample();
        assert_eq!(func_name(&b, 5).unwrap(), "ktstr_select_cpu");
        assert_eq!(func_name(&b, 10).unwrap(), "ktstr_enqueue");
        assert_eq!(func_name(&b, 13).unwrap(), "ktstr_dispatch_with_long_name");
    }

    #[test]
    fn refuses_non_func_missing_and_bad_blobs() {
        let b = sample();
        assert_eq!(func_name(&b, 3), Err(BtfError::NotFunc { id: 3, kind: 4 }));
        assert_eq!(func_name(&b, 14), Err(BtfError::NoSuchType(14)));
        assert_eq!(func_name(&b, 0), Err(BtfError::NoSuchType(0)));
        assert!(matches!(
            func_name(&b[..30], 5),
            Err(BtfError::Truncated(_))
        ));
        let mut bad = b.clone();
        bad[0] = 0;
        assert!(matches!(func_name(&bad, 5), Err(BtfError::BadMagic(_))));
        let unknown = blob(&[("x", 25, 0, 0), ("f", 12, 0, 0)]);
        assert_eq!(
            func_name(&unknown, 2),
            Err(BtfError::UnknownKind { kind: 25, id: 1 })
        );
        assert!(func_name(&[], 1).is_err());
    }

    #[test]
    fn hostile_offsets_do_not_panic() {
        let b = sample();
        for i in 0..b.len() {
            let mut m = b.clone();
            m[i] = 0xff;
            let _ = func_name(&m, 13);
        }
    }
}
