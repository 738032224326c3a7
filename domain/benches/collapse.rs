//! Throughput of verifier-log cycle collapse on large synthetic logs.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ktstr_domain::verifier_log::collapse::collapse;

/// Deterministic xorshift so every run benches the same log.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A verifier-like log of exactly `lines` lines: unrolled loops of a few bodies, each run
/// 3 to 40 iterations long, separated by noise (unique register dumps and instructions).
fn synthetic_log(lines: usize) -> String {
    const BODIES: [&str; 3] = [
        "; sum += vals[i]; @ main.bpf.c:431",
        "; if (bpf_map_lookup_elem(&cpu_ctx, &cpu)) @ main.bpf.c:612",
        "; cnt = scx_bpf_dsq_nr_queued(dsq_id); @ main.bpf.c:877",
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut log = String::with_capacity(lines * 64);
    let mut idx = 0u64;
    let mut written = 0;
    // Overshoot by at most one chunk, then cut at the exact line count.
    while written < lines {
        for _ in 0..rng.below(20) + 3 {
            idx += 1;
            written += 1;
            let v = rng.next();
            if v.is_multiple_of(2) {
                let _ = writeln!(log, "{idx}: R1=ctx() R6=scalar(id={v}) R10=fp0");
            } else {
                let (r, k) = (v % 10, v >> 8);
                let _ = writeln!(log, "{idx}: (b7) r{r} = {k}    ; R{r}_w={k}");
            }
        }
        let anchor = BODIES[rng.below(3) as usize];
        for it in 0..rng.below(38) + 3 {
            let v = rng.next() >> 40;
            let _ = writeln!(
                log,
                "{anchor}\n\
                 {}: (bf) r2 = r7                       ; R2_w=scalar(id={v}) R7=scalar(id={v})\n\
                 {}: (0f) r6 += r2                      ; R6_w=scalar(smin=0,smax={})\n\
                 {}: (07) r7 += 1                       ; R7_w={it}\n\
                 {}: R0=scalar() R6=scalar(id={v}) R7={it} R10=fp0\n\
                 {}: (a5) if r7 < 0x28 goto pc-6         ; R7_w={it}",
                idx + 1,
                idx + 2,
                v * 3,
                idx + 3,
                idx + 4,
                idx + 5,
            );
            idx += 5;
            written += 6;
        }
    }
    let cut = log
        .match_indices('\n')
        .nth(lines - 1)
        .map_or(log.len(), |(at, _)| at + 1);
    log.truncate(cut);
    log
}

fn bench_collapse(c: &mut Criterion) {
    let mut group = c.benchmark_group("collapse");
    group.sample_size(10);
    for lines in [250_000, 500_000, 1_000_000] {
        let log = synthetic_log(lines);
        group.throughput(Throughput::Elements(lines as u64));
        group.bench_function(format!("{lines}_lines"), |b| {
            b.iter(|| collapse(black_box(&log)).len())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_collapse);
criterion_main!(benches);
