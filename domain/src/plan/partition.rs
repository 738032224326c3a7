//! Splitting a sweep across machines (`--partition hash:K/N` or `count:K/N`, K from 1),
//! deterministically: every cell in exactly one shard, the same on every machine.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::plan::cell::CellId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Partition {
    /// By a hash of the cell's name: a cell stays in its shard when others are added.
    Hash { shard: u32, of: u32 },
    /// By position in the planned matrix: shards as even as they can be.
    Count { shard: u32, of: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{text}` is not a partition: {why} (write hash:K/N or count:K/N, 1 <= K <= N)")]
pub struct PartitionError {
    text: String,
    why: &'static str,
}

impl FromStr for Partition {
    type Err = PartitionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |why| PartitionError {
            text: text.to_string(),
            why,
        };
        let (kind, shard) = text.split_once(':').ok_or(err("no `:`"))?;
        let (k, n) = shard.split_once('/').ok_or(err("no `/`"))?;
        let shard: u32 = k.trim().parse().map_err(|_| err("K is not a number"))?;
        let of: u32 = n.trim().parse().map_err(|_| err("N is not a number"))?;
        if of == 0 || shard == 0 || shard > of {
            return Err(err("K must be between 1 and N"));
        }
        match kind.trim() {
            "hash" => Ok(Partition::Hash { shard, of }),
            "count" => Ok(Partition::Count { shard, of }),
            _ => Err(err("the kind is neither hash nor count")),
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partition::Hash { shard, of } => write!(f, "hash:{shard}/{of}"),
            Partition::Count { shard, of } => write!(f, "count:{shard}/{of}"),
        }
    }
}

impl Partition {
    /// Whether this shard runs the cell at `position` in the planned matrix.
    pub fn selects(&self, cell: &CellId, position: usize) -> bool {
        match *self {
            Partition::Hash { shard, of } => {
                fnv1a(cell.to_string().as_bytes()) % u64::from(of) == u64::from(shard - 1)
            }
            Partition::Count { shard, of } => position % of as usize == (shard - 1) as usize,
        }
    }
}

/// 64-bit FNV-1a: fixed by its definition, so every machine and toolchain agrees (the
/// standard library's hasher promises neither).
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells() -> Vec<CellId> {
        let mut out = Vec::new();
        for sched in ["scx-ktstr", "scx_bpfland", "scx_layered"] {
            for kernel in ["kernel_6_12_118", "kernel_6_13_2"] {
                for preset in [
                    "tiny-1llc",
                    "tiny-2llc",
                    "odd-3llc",
                    "smt-2llc",
                    "numa2-4llc",
                ] {
                    out.push(CellId::new(sched, kernel, preset).unwrap());
                }
            }
        }
        out
    }

    #[test]
    fn every_cell_is_in_exactly_one_shard() {
        let cells = cells();
        for kind in ["hash", "count"] {
            for of in 1..=4u32 {
                for (position, cell) in cells.iter().enumerate() {
                    let holders = (1..=of)
                        .filter(|k| {
                            let p: Partition = format!("{kind}:{k}/{of}").parse().unwrap();
                            p.selects(cell, position)
                        })
                        .count();
                    assert_eq!(holders, 1, "{kind} {of}: {cell}");
                }
            }
        }
    }

    #[test]
    fn count_shards_are_even_and_hash_is_fixed_by_the_name() {
        let cells = cells();
        let sizes: Vec<usize> = (1..=4)
            .map(|k| {
                let p = Partition::Count { shard: k, of: 4 };
                (0..cells.len())
                    .filter(|&i| p.selects(&cells[i], i))
                    .count()
            })
            .collect();
        assert_eq!(sizes, [8, 8, 7, 7]);
        // The published FNV-1a test vector, then: a cell's shard ignores its position.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let p = Partition::Hash { shard: 1, of: 3 };
        assert_eq!(p.selects(&cells[4], 4), p.selects(&cells[4], 99));
    }

    #[test]
    fn malformed_partitions_say_how_to_write_one() {
        for bad in [
            "hash",
            "hash:0/2",
            "hash:3/2",
            "count:1/0",
            "mod:1/2",
            "hash:a/2",
        ] {
            let err = bad.parse::<Partition>().unwrap_err().to_string();
            assert!(err.contains("write hash:K/N or count:K/N"), "{bad}: {err}");
        }
        assert_eq!(
            "count:2/3".parse::<Partition>().unwrap().to_string(),
            "count:2/3"
        );
    }
}
