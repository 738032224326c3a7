//! Properties of verifier-log cycle collapse.

use std::borrow::Cow;

use ktstr_domain::verifier_log::collapse::collapse;
use proptest::prelude::*;

/// Lines shaped like verifier output, plus arbitrary text.
fn log_line() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9]{1,4}: \\([0-9a-f]{2}\\) r[0-9] [-+*=]{1,2} [0-9a-z]{1,6}( +; R[0-9]_?w?=[a-z0-9(),=]{0,16})?",
        "[0-9]{1,4}: \\(15\\) if r[0-9] == 0x[0-9] goto pc[+-][0-9]{0,3}( ;)?( R1=[0-9]{1,3})?",
        "[0-9]{1,4}: (frame[0-9]: )?R[0-9]{1,2}=[a-z0-9()]{0,12}",
        "; [a-z ()=;+]{0,24} @ main\\.bpf\\.c:[0-9]{1,3}",
        "--- [a-z0-9 ]{0,20}",
        "[0-9]{0,3}:? ?[;( ]{0,3}",
        Just(String::new()),
        Just("; for (i = 0; i < 8; i++) @ main.bpf.c:430".to_owned()),
    ]
}

fn join(lines: &[String], trailing_newline: bool) -> String {
    let mut log = lines.join("\n");
    if trailing_newline {
        log.push('\n');
    }
    log
}

/// A line that occurs once in the whole log, whatever the normalization keeps of it.
fn unique_line(tag: &str, i: usize, kind: u8) -> String {
    match kind % 4 {
        0 => format!("{i}: (b7) r1 = {tag}{i}    ; R1_w={i}"),
        1 => format!("; {tag} statement {i} @ {tag}.bpf.c:{i}"),
        2 => format!("{tag} message number {i}"),
        _ => format!("{i}: (05) goto pc+{i}{tag}"),
    }
}

/// Line `j` of iteration `it` of a loop body of `period` lines: same instruction text in
/// every iteration, varying index and register state.
fn body_line(period: usize, j: usize, it: usize, kind: u8, value: u32) -> String {
    let idx = 100 + it * period + j;
    if j == 0 {
        return "; for (i = 0; i < n; i++) @ main.bpf.c:430".to_owned();
    }
    match kind % 5 {
        0 => format!(
            "{idx}: (07) r{} += {j}          ; R{}_w={value}",
            j % 10,
            j % 10
        ),
        1 => format!("{idx}: R{}={value} R10=fp0", j % 10),
        2 => format!(
            "{idx}: (a5) if r{} < 0x{j:x} goto pc+{j} ; R1_w={value}",
            j % 10
        ),
        3 => format!("; body statement {j} @ main.bpf.c:{}", 431 + j),
        _ => format!("{idx}: (85) call bpf_helper#{j}    ; R0_w=scalar(id={value})"),
    }
}

#[derive(Debug, Clone)]
struct LoopLog {
    prefix: Vec<String>,
    suffix: Vec<String>,
    log: String,
    trailing_newline: bool,
    period: usize,
}

fn loop_log() -> impl Strategy<Value = LoopLog> {
    (
        prop::collection::vec(any::<u8>(), 0..12),
        prop::collection::vec(any::<u8>(), 0..12),
        prop::collection::vec(any::<u8>(), 5..12),
        3usize..10,
        0usize..12,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |(
                prefix_kinds,
                suffix_kinds,
                body_kinds,
                repeats,
                rotation,
                trailing_newline,
                seed,
            )| {
                let period = body_kinds.len();
                // Rotating the body moves the anchor off the first line; one more
                // iteration then keeps at least three whole blocks behind it.
                let rotation = rotation % period;
                let repeats = if rotation == 0 { repeats } else { repeats + 1 };
                let prefix: Vec<String> = prefix_kinds
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| unique_line("pre", i, k))
                    .collect();
                let suffix: Vec<String> = suffix_kinds
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| unique_line("post", 10_000 + i, k))
                    .collect();
                let mut lines = prefix.clone();
                let mut state = seed | 1;
                for it in 0..repeats {
                    for p in 0..period {
                        let j = (p + rotation) % period;
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        lines.push(body_line(period, j, it, body_kinds[j], state as u32));
                    }
                }
                lines.extend(suffix.iter().cloned());
                LoopLog {
                    log: join(&lines, trailing_newline),
                    prefix,
                    suffix,
                    trailing_newline,
                    period,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_panics_on_arbitrary_text(s in any::<String>()) {
        let out = collapse(&s);
        if let Cow::Borrowed(b) = out {
            prop_assert_eq!(b, s.as_str());
        }
    }

    #[test]
    fn never_panics_on_line_mixes(lines in prop::collection::vec(log_line(), 0..120), nl in any::<bool>()) {
        let log = join(&lines, nl);
        let out = collapse(&log);
        if matches!(out, Cow::Borrowed(_)) {
            prop_assert_eq!(out.as_ref(), log.as_str());
        } else {
            prop_assert!(out.contains("--- end repeat ---"));
            prop_assert_eq!(out.ends_with('\n'), log.ends_with('\n'));
        }
    }

    #[test]
    fn repeated_line_mixes_never_panic(body in prop::collection::vec(log_line(), 1..12), times in 1usize..8) {
        let log = join(&body, true).repeat(times);
        let _ = collapse(&log);
    }

    #[test]
    fn unique_lines_come_back_untouched(
        kinds in prop::collection::vec(any::<u8>(), 0..200),
        nl in any::<bool>(),
    ) {
        let lines: Vec<String> =
            kinds.iter().enumerate().map(|(i, &k)| unique_line("u", i, k)).collect();
        let log = join(&lines, nl);
        let out = collapse(&log);
        prop_assert!(matches!(out, Cow::Borrowed(_)));
        prop_assert_eq!(out.as_ref(), log.as_str());
    }

    #[test]
    fn two_iterations_come_back_untouched(
        body_kinds in prop::collection::vec(any::<u8>(), 5..12),
        pre in prop::collection::vec(any::<u8>(), 0..10),
        nl in any::<bool>(),
    ) {
        let period = body_kinds.len();
        let mut lines: Vec<String> =
            pre.iter().enumerate().map(|(i, &k)| unique_line("pre", i, k)).collect();
        for it in 0..2 {
            for (j, &k) in body_kinds.iter().enumerate() {
                lines.push(body_line(period, j, it, k, (it * 31 + j) as u32));
            }
        }
        let log = join(&lines, nl);
        let out = collapse(&log);
        prop_assert!(matches!(out, Cow::Borrowed(_)));
        prop_assert_eq!(out.as_ref(), log.as_str());
    }

    #[test]
    fn loops_collapse_between_untouched_prefix_and_suffix(l in loop_log()) {
        let out = collapse(&l.log);
        prop_assert!(matches!(out, Cow::Owned(_)), "did not collapse:\n{}", l.log);
        prop_assert!(out.contains("--- end repeat ---"));
        let header = format!("x of the following {} lines ---\n", l.period);
        prop_assert!(out.contains(&header), "no header for period {}:\n{}", l.period, out);

        let prefix = join(&l.prefix, !l.prefix.is_empty());
        prop_assert!(out.starts_with(&prefix), "prefix lost:\n{}", out);
        let suffix = join(&l.suffix, l.trailing_newline);
        prop_assert!(out.ends_with(&suffix), "suffix lost:\n{}", out);
        prop_assert_eq!(out.ends_with('\n'), l.trailing_newline);
    }
}
