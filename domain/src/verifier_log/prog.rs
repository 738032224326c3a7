//! One loaded BPF program as the verifier left it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// A loaded BPF program: its id, type, full name and how many instructions the verifier
/// processed to accept it (`bpf_prog_aux->verified_insns`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProgStat {
    pub id: u32,
    /// `enum bpf_prog_type`; records name it (`struct_ops`) and read names or numbers.
    #[serde(with = "by_name")]
    pub prog_type: u32,
    pub name: String,
    pub verified_insns: u32,
}

/// `enum bpf_prog_type` of the kernel's UAPI, by value, as bpftool names the types.
const PROG_TYPES: [&str; 33] = [
    "unspec",
    "socket_filter",
    "kprobe",
    "sched_cls",
    "sched_act",
    "tracepoint",
    "xdp",
    "perf_event",
    "cgroup_skb",
    "cgroup_sock",
    "lwt_in",
    "lwt_out",
    "lwt_xmit",
    "sock_ops",
    "sk_skb",
    "cgroup_device",
    "sk_msg",
    "raw_tracepoint",
    "cgroup_sock_addr",
    "lwt_seg6local",
    "lirc_mode2",
    "sk_reuseport",
    "flow_dissector",
    "cgroup_sysctl",
    "raw_tracepoint_writable",
    "cgroup_sockopt",
    "tracing",
    "struct_ops",
    "ext",
    "lsm",
    "sk_lookup",
    "syscall",
    "netfilter",
];

/// The type's name (`struct_ops`), or `type 40` for one newer than ktstr.
pub fn prog_type_name(prog_type: u32) -> Cow<'static, str> {
    match PROG_TYPES.get(prog_type as usize) {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(format!("type {prog_type}")),
    }
}

fn prog_type_from_name(name: &str) -> Option<u32> {
    if let Some(n) = name.strip_prefix("type ") {
        return n.parse().ok();
    }
    PROG_TYPES.iter().position(|t| *t == name).map(|i| i as u32)
}

mod by_name {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(prog_type: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::prog_type_name(*prog_type))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NameOrNumber {
        Name(String),
        Number(u32),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        match NameOrNumber::deserialize(d)? {
            NameOrNumber::Number(n) => Ok(n),
            NameOrNumber::Name(name) => super::prog_type_from_name(&name)
                .ok_or_else(|| D::Error::custom(format!("unknown BPF program type `{name}`"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_named_as_the_kernel_numbers_them() {
        assert_eq!(prog_type_name(26), "tracing");
        assert_eq!(prog_type_name(27), "struct_ops");
        assert_eq!(prog_type_name(31), "syscall");
        assert_eq!(prog_type_name(99), "type 99");
    }

    #[test]
    fn records_carry_the_name_and_read_names_or_numbers() {
        let prog = ProgStat {
            id: 7,
            prog_type: 27,
            name: "ktstr_dispatch".into(),
            verified_insns: 104,
        };
        let json = serde_json::to_string(&prog).unwrap();
        assert!(json.contains(r#""prog_type":"struct_ops""#), "{json}");
        assert_eq!(serde_json::from_str::<ProgStat>(&json).unwrap(), prog);
        let numbered = json.replace(r#""struct_ops""#, "27");
        assert_eq!(serde_json::from_str::<ProgStat>(&numbered).unwrap(), prog);
        let newer = json.replace(r#""struct_ops""#, r#""type 99""#);
        assert_eq!(
            serde_json::from_str::<ProgStat>(&newer).unwrap().prog_type,
            99
        );
        let bad = json.replace(r#""struct_ops""#, r#""bogus""#);
        let err = serde_json::from_str::<ProgStat>(&bad).unwrap_err();
        assert!(err.to_string().contains("unknown BPF program type `bogus`"));
    }
}
