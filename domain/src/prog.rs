//! One loaded BPF program as the verifier left it.

use serde::{Deserialize, Serialize};

/// A loaded BPF program: its id, type, full name and how many instructions the verifier
/// processed to accept it (`bpf_prog_aux->verified_insns`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProgStat {
    pub id: u32,
    pub prog_type: u32,
    pub name: String,
    pub verified_insns: u32,
}
