//! Host-read versus guest-reported program statistics: the two views of one boot must agree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::verifier_log::prog::{ProgStat, prog_type_name};

/// The disagreements between the host's and the guest's view; empty when they agree.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CrossCheck {
    pub mismatches: Vec<String>,
}

impl CrossCheck {
    pub fn agrees(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Compares by program id. Names may differ only by truncation: the kernel keeps 15
/// characters, one side may have recovered the full name.
pub fn cross_check(host: &[ProgStat], guest: &[ProgStat]) -> CrossCheck {
    let by_id = |progs: &[ProgStat]| -> BTreeMap<u32, ProgStat> {
        progs.iter().map(|p| (p.id, p.clone())).collect()
    };
    let (host, guest) = (by_id(host), by_id(guest));
    let mut mismatches = Vec::new();
    for (id, h) in &host {
        match guest.get(id) {
            None => mismatches.push(format!(
                "program {id} `{}` read by the host, not reported by the guest",
                h.name
            )),
            Some(g) => {
                if h.verified_insns != g.verified_insns {
                    mismatches.push(format!(
                        "program {id} `{}`: verified_insns host {} != guest {}",
                        h.name, h.verified_insns, g.verified_insns
                    ));
                }
                let (short, long) = if h.name.len() <= g.name.len() {
                    (&h.name, &g.name)
                } else {
                    (&g.name, &h.name)
                };
                if !long.starts_with(short.as_str()) {
                    mismatches.push(format!(
                        "program {id}: host name `{}` != guest name `{}`",
                        h.name, g.name
                    ));
                }
                if h.prog_type != g.prog_type {
                    mismatches.push(format!(
                        "program {id} `{}`: type host {} != guest {}",
                        h.name,
                        prog_type_name(h.prog_type),
                        prog_type_name(g.prog_type)
                    ));
                }
            }
        }
    }
    for (id, g) in &guest {
        if !host.contains_key(id) {
            mismatches.push(format!(
                "program {id} `{}` reported by the guest, not found by the host",
                g.name
            ));
        }
    }
    CrossCheck { mismatches }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: u32, name: &str, insns: u32) -> ProgStat {
        ProgStat {
            id,
            prog_type: 27,
            name: name.into(),
            verified_insns: insns,
        }
    }

    #[test]
    fn equal_views_agree_and_truncated_names_are_tolerated() {
        let host = [p(1, "ktstr_select_cpu", 39), p(2, "ktstr_init", 2296)];
        let guest = [p(2, "ktstr_init", 2296), p(1, "ktstr_select_cp", 39)];
        assert!(cross_check(&host, &guest).agrees());
    }

    #[test]
    fn every_disagreement_is_named() {
        let host = [p(1, "a_prog", 10), p(2, "b_prog", 5), p(4, "x", 1)];
        let guest = [p(1, "a_prog", 11), p(3, "c_prog", 7), p(4, "y", 1)];
        let c = cross_check(&host, &guest);
        assert_eq!(
            c.mismatches,
            [
                "program 1 `a_prog`: verified_insns host 10 != guest 11",
                "program 2 `b_prog` read by the host, not reported by the guest",
                "program 4: host name `x` != guest name `y`",
                "program 3 `c_prog` reported by the guest, not found by the host",
            ]
        );
    }
}
