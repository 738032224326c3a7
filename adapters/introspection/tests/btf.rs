//! Member offsets from hand-encoded BTF: bitfield-bearing structs, anonymous unions,
//! typedefs, and the shapes that are refused.

use ktstr_introspection::{BtfIndex, Expect, Field, LayoutError, offsets_from_btf};

const INT: u32 = 1;
const PTR: u32 = 2;
const ARRAY: u32 = 3;
const STRUCT: u32 = 4;
const UNION: u32 = 5;
const ENUM: u32 = 6;
const TYPEDEF: u32 = 8;
const CONST: u32 = 10;

/// A minimal BTF encoder: types get ids from 1 in the order they are added.
#[derive(Default)]
struct Enc {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
}

/// A struct member: name, type id, bit offset, bitfield size (0: not a bitfield).
type M<'a> = (&'a str, u32, u32, u32);

impl Enc {
    fn new() -> Self {
        Enc {
            strings: vec![0],
            next_id: 1,
            ..Enc::default()
        }
    }

    fn str(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    fn u32s(&mut self, words: &[u32]) {
        for w in words {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
    }

    fn head(
        &mut self,
        name: &str,
        kind: u32,
        vlen: u32,
        kind_flag: bool,
        size_or_type: u32,
    ) -> u32 {
        let name = self.str(name);
        let info = (u32::from(kind_flag) << 31) | (kind << 24) | vlen;
        self.u32s(&[name, info, size_or_type]);
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn int(&mut self, name: &str, bytes: u32) -> u32 {
        let id = self.head(name, INT, 0, false, bytes);
        self.u32s(&[bytes * 8]);
        id
    }

    fn ptr(&mut self, to: u32) -> u32 {
        self.head("", PTR, 0, false, to)
    }

    fn array(&mut self, elem: u32, index: u32, n: u32) -> u32 {
        let id = self.head("", ARRAY, 0, false, 0);
        self.u32s(&[elem, index, n]);
        id
    }

    fn enum4(&mut self, name: &str) -> u32 {
        let id = self.head(name, ENUM, 1, false, 4);
        let v = self.str("V");
        self.u32s(&[v, 0]);
        id
    }

    fn typedef(&mut self, name: &str, kind: u32, to: u32) -> u32 {
        self.head(name, kind, 0, false, to)
    }

    fn composite(&mut self, kind: u32, name: &str, size: u32, members: &[M<'_>]) -> u32 {
        let bitfields = members.iter().any(|m| m.3 != 0);
        let id = self.head(name, kind, members.len() as u32, bitfields, size);
        for &(m_name, ty, bit_off, bits) in members {
            let n = self.str(m_name);
            let off = if bitfields {
                (bits << 24) | bit_off
            } else {
                bit_off
            };
            self.u32s(&[n, ty, off]);
        }
        id
    }

    fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xeb9fu16.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        let type_len = self.types.len() as u32;
        for w in [24, 0, type_len, type_len, self.strings.len() as u32] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// The kernel's structures, cut down to the members that matter, with the quirks the
/// real ones have: `bpf_prog` has bitfields before `type`, `bpf_prog_aux` hides members
/// in anonymous unions and structs, `type` goes through a typedef and a const.
fn kernel_like(bitfield_aux: bool) -> Vec<u8> {
    let mut e = Enc::new();
    let u8_ = e.int("u8", 1);
    let u16_ = e.int("u16", 2);
    let u32_ = e.int("u32", 4);
    let char_ = e.int("char", 1);
    let void_ptr = e.ptr(0);
    let int_ = e.int("int", 4);
    let xarray = e.composite(
        STRUCT,
        "xarray",
        16,
        &[
            ("xa_lock", u32_, 0, 0),
            ("xa_flags", u32_, 32, 0),
            ("xa_head", void_ptr, 64, 0),
        ],
    );
    e.composite(
        STRUCT,
        "idr",
        24,
        &[
            ("idr_rt", xarray, 0, 0),
            ("idr_base", u32_, 128, 0),
            ("idr_next", u32_, 160, 0),
        ],
    );
    let slots = e.array(void_ptr, int_, 64);
    e.composite(
        STRUCT,
        "xa_node",
        576,
        &[
            ("shift", u8_, 0, 0),
            ("offset", u8_, 8, 0),
            ("count", u8_, 16, 0),
            ("slots", slots, 320, 0),
        ],
    );
    let name16 = e.array(char_, int_, 16);
    let name512 = e.array(char_, int_, 512);
    let ksym = e.composite(
        STRUCT,
        "bpf_ksym",
        560,
        &[
            ("start", void_ptr, 0, 0),
            ("end", void_ptr, 64, 0),
            ("name", name512, 128, 0),
        ],
    );
    let verified = if bitfield_aux {
        ("verified_insns", u32_, 96, 20)
    } else {
        ("verified_insns", u32_, 96, 0)
    };
    let inner = e.composite(STRUCT, "", 8, &[("used_maps", u32_, 0, 0), verified]);
    let anon = e.composite(
        UNION,
        "",
        16,
        &[("work", void_ptr, 0, 0), ("", inner, 0, 0)],
    );
    let aux = e.composite(
        STRUCT,
        "bpf_prog_aux",
        1024 + 64,
        &[
            ("refcnt", u32_, 0, 0),
            ("", anon, 64, 0),
            ("id", u32_, 256, 0),
            ("ksym", ksym, 1024, 0),
            ("name", name16, 6000, 0),
        ],
    );
    let aux_ptr = e.ptr(aux);
    let prog_type = e.enum4("bpf_prog_type");
    let const_type = e.typedef("", CONST, prog_type);
    let typedef = e.typedef("prog_type_t", TYPEDEF, const_type);
    e.composite(
        STRUCT,
        "bpf_prog",
        72,
        &[
            ("pages", u16_, 0, 16),
            ("jited", u16_, 16, 1),
            ("jit_requested", u16_, 17, 1),
            ("type", typedef, 32, 0),
            ("aux", aux_ptr, 448, 0),
        ],
    );
    e.finish()
}

#[test]
fn offsets_come_through_bitfields_anonymous_members_and_typedefs() {
    let btf = BtfIndex::parse(&kernel_like(false)).unwrap();
    let o = offsets_from_btf(&btf).unwrap();
    assert_eq!(o.idr_rt, 0);
    assert_eq!(o.xa_head, Field::new(8, 8));
    assert_eq!(o.node_shift, Field::new(0, 1));
    assert_eq!(o.node_slots, Field::new(40, 512));
    assert_eq!(o.prog_type, Field::new(4, 4));
    assert_eq!(o.prog_aux, Field::new(56, 8));
    assert_eq!(o.aux_id, Field::new(32, 4));
    assert_eq!(o.aux_verified_insns, Field::new(8 + 12, 4));
    assert_eq!(o.aux_ksym_name, Field::new(128 + 16, 512));
    assert_eq!(o.aux_name, Field::new(750, 16));
}

#[test]
fn bitfields_and_wrong_shapes_are_refused() {
    let btf = BtfIndex::parse(&kernel_like(true)).unwrap();
    let err = offsets_from_btf(&btf).unwrap_err();
    assert!(
        matches!(&err, LayoutError::BadMember { member, .. } if member == "verified_insns"),
        "{err}"
    );
    assert!(err.to_string().contains("bitfield"), "{err}");

    let btf = BtfIndex::parse(&kernel_like(false)).unwrap();
    // A bitfield member asked for as a scalar.
    assert!(btf.member("bpf_prog", "jited", Expect::Scalar).is_err());
    // Shapes that do not match.
    assert!(btf.member("bpf_prog", "aux", Expect::Scalar).is_err());
    assert!(btf.member("xa_node", "slots", Expect::ByteArray).is_err());
    assert!(
        btf.member("bpf_prog_aux", "name", Expect::PtrArray)
            .is_err()
    );
    assert!(matches!(
        btf.member("bpf_prog", "nope", Expect::Scalar),
        Err(LayoutError::MissingMember { .. })
    ));
    assert!(matches!(
        btf.member("no_such_struct", "x", Expect::Scalar),
        Err(LayoutError::MissingStruct(_))
    ));
}

#[test]
fn garbage_is_not_btf() {
    assert!(BtfIndex::parse(b"definitely not BTF").is_err());
    assert!(BtfIndex::parse(&[]).is_err());
}
