use super::*;

const STATS: &str = "processed 186 insns (limit 1000000) max_states_per_insn 0 total_states 7 peak_states 7 mark_read 0";

/// One iteration of the test loop: a source anchor and four annotated instructions.
fn loop_body(anchor: &str, base: usize, i: usize) -> String {
    format!(
        "{anchor}\n\
         {}: (bf) r2 = r7                       ; R2_w=scalar(id={}) R7=scalar(id={})\n\
         {}: (0f) r6 += r2                      ; R6_w=scalar(smin=0,smax={})\n\
         {}: (07) r7 += 1                       ; R7_w={}\n\
         {}: (a5) if r7 < 0x8 goto pc+1         ; R7_w={}\n",
        base,
        i + 2,
        i + 2,
        base + 1,
        i * 10,
        base + 2,
        i + 1,
        base + 3,
        i + 1,
    )
}

const SUM: &str = "; sum += vals[i]; @ main.bpf.c:431";

fn realistic_log(iterations: usize) -> String {
    let mut log = String::from(
        "func#0 @0\n\
         0: R1=ctx() R10=fp0\n\
         ; if (crash) @ main.bpf.c:423\n\
         0: (18) r1 = 0xffffc90000e6a000       ; R1_w=map_value(map=main.bss,ks=4,vs=8)\n\
         2: (61) r1 = *(u32 *)(r1 +0)          ; R1_w=scalar(smin=0,smax=umax=0xffffffff)\n\
         3: (15) if r1 == 0x0 goto pc+40       ; R1_w=scalar(smin=umin=1)\n",
    );
    for i in 0..iterations {
        log.push_str(&loop_body(SUM, 4 + 4 * i, i));
    }
    log.push_str(
        "; return *(u64 *)0; @ main.bpf.c:440\n\
         36: (b7) r1 = 0                       ; R1_w=0\n\
         37: (79) r0 = *(u64 *)(r1 +0)\n\
         R1 invalid mem access 'scalar'\n",
    );
    log.push_str(STATS);
    log.push('\n');
    log
}

#[test]
fn normalizes_instructions_dumps_and_comments() {
    let cases = [
        (
            "37: (63) *(u32 *)(r10 -8) = r1        ; R1=0 R10=fp0 fp-8=mmmm0",
            "37: (63) *(u32 *)(r10 -8) = r1",
            "(63) *(u32 *)(r10 -8) = r1",
        ),
        (
            "3: (15) if r1 == 0x0 goto pc+20 R1=0 R10=fp0",
            "3: (15) if r1 == 0x0 goto pc+20",
            "(15) if r1 == 0x0 goto pc+20",
        ),
        (
            "9: (a5) if r7 < 0x8 goto pc-5   ; frame1: R7_w=1",
            "9: (a5) if r7 < 0x8 goto pc-5",
            "(a5) if r7 < 0x8 goto pc-5",
        ),
        ("0: R1=ctx() R10=fp0", "0:", ""),
        ("12: frame1: R1=ctx() R10=fp0", "12:", ""),
        (
            "; u64 t = bpf_ktime_get_ns(); @ main.bpf.c:453  ",
            "; u64 t = bpf_ktime_get_ns(); @ main.bpf.c:453",
            "; u64 t = bpf_ktime_get_ns(); @ main.bpf.c:453",
        ),
        (
            "R1 invalid mem access 'scalar'",
            "R1 invalid mem access 'scalar'",
            "R1 invalid mem access 'scalar'",
        ),
        ("12: safe", "12: safe", "safe"),
    ];
    for (line, full, cmp) in cases {
        assert_eq!(normalize(line), (full, cmp), "{line}");
    }
}

#[test]
fn collapses_a_realistic_log() {
    let log = realistic_log(8);
    let expected = format!(
        "func#0 @0\n\
         0: R1=ctx() R10=fp0\n\
         ; if (crash) @ main.bpf.c:423\n\
         0: (18) r1 = 0xffffc90000e6a000       ; R1_w=map_value(map=main.bss,ks=4,vs=8)\n\
         2: (61) r1 = *(u32 *)(r1 +0)          ; R1_w=scalar(smin=0,smax=umax=0xffffffff)\n\
         3: (15) if r1 == 0x0 goto pc+40       ; R1_w=scalar(smin=umin=1)\n\
         --- 8x of the following 5 lines ---\n\
         ; sum += vals[i]; @ main.bpf.c:431\n\
         4: (bf) r2 = r7                       ; R2_w=scalar(id=2) R7=scalar(id=2)\n\
         5: (0f) r6 += r2                      ; R6_w=scalar(smin=0,smax=0)\n\
         6: (07) r7 += 1                       ; R7_w=1\n\
         7: (a5) if r7 < 0x8 goto pc+1         ; R7_w=1\n\
         --- 6 identical iterations omitted ---\n\
         ; sum += vals[i]; @ main.bpf.c:431\n\
         32: (bf) r2 = r7                       ; R2_w=scalar(id=9) R7=scalar(id=9)\n\
         33: (0f) r6 += r2                      ; R6_w=scalar(smin=0,smax=70)\n\
         34: (07) r7 += 1                       ; R7_w=8\n\
         35: (a5) if r7 < 0x8 goto pc+1         ; R7_w=8\n\
         --- end repeat ---\n\
         ; return *(u64 *)0; @ main.bpf.c:440\n\
         36: (b7) r1 = 0                       ; R1_w=0\n\
         37: (79) r0 = *(u64 *)(r1 +0)\n\
         R1 invalid mem access 'scalar'\n\
         {STATS}\n"
    );
    assert_eq!(collapse(&log), expected);
}

#[test]
fn keeps_the_absence_of_a_trailing_newline() {
    let log = realistic_log(8);
    let trimmed = log.trim_end_matches('\n');
    let out = collapse(trimmed);
    assert!(out.ends_with(STATS));
    assert_eq!(format!("{out}\n"), collapse(&log));
}

#[test]
fn copies_jumping_to_a_shared_exit_collapse_despite_different_offsets() {
    let mut log = String::from("0: R1=ctx() R10=fp0\n");
    for i in 0..8u32 {
        let base = 1 + i * 5;
        log.push_str("; if (!bpf_cpumask_test_cpu(i, mask)) @ main.bpf.c:88\n");
        log.push_str(&format!("{base}: (bf) r1 = r6             ; R1_w={i}\n"));
        log.push_str(&format!(
            "{}: (85) call bpf_cpumask_test_cpu#1  ; R0=scalar()\n",
            base + 1
        ));
        // Every copy leaves the loop to the same exit: the offset shrinks by 5 each time.
        log.push_str(&format!(
            "{}: (15) if r0 == 0x0 goto pc+{}\n",
            base + 2,
            40 - i * 5
        ));
        log.push_str(&format!(
            "{}: (07) r6 += 1          ; R6_w={}\n",
            base + 3,
            i + 1
        ));
    }
    log.push_str("41: (95) exit\n");
    let out = collapse(&log);
    assert!(
        out.contains("--- 8x of the following 5 lines ---\n"),
        "{out}"
    );
    // The kept iterations show their real offsets.
    assert!(out.contains("3: (15) if r0 == 0x0 goto pc+40\n"));
    assert!(out.contains("38: (15) if r0 == 0x0 goto pc+5\n"));
    assert!(out.ends_with("41: (95) exit\n"));
}

#[test]
fn two_repetitions_are_left_alone() {
    let log = realistic_log(2);
    let out = collapse(&log);
    assert!(matches!(out, Cow::Borrowed(_)));
    assert_eq!(out, log);
}

#[test]
fn three_repetitions_collapse() {
    let log = realistic_log(3);
    let out = collapse(&log);
    assert!(out.contains("--- 3x of the following 5 lines ---\n"));
    assert!(out.contains("--- 1 identical iterations omitted ---\n"));
}

#[test]
fn keeps_first_and_last_iterations_verbatim() {
    let log = realistic_log(8);
    let out = collapse(&log);
    let first = loop_body(SUM, 4, 0);
    let last = loop_body(SUM, 4 + 4 * 7, 7);
    assert!(out.contains(&first), "{out}");
    assert!(out.contains(&last), "{out}");
    for i in 1..7 {
        assert!(!out.contains(&format!("R7_w={}\n", i + 1)), "{out}");
    }
}

#[test]
fn trivial_inputs_come_back_borrowed() {
    for log in ["", "\n", "a", "a\nb\n", &"--- x ---\n".repeat(40)] {
        let out = collapse(log);
        assert!(matches!(out, Cow::Borrowed(_)));
        assert_eq!(out, log);
    }
}

const INNER: &str = "; acc += step(j); @ main.bpf.c:512";
const OUTER: &str = "; for (i = 0; i < 3; i++) @ main.bpf.c:510";

fn nested_log() -> String {
    let mut log = String::from("func#0 @0\n0: R1=ctx() R10=fp0\n");
    let mut idx = 1;
    for i in 0..3 {
        log.push_str(&format!("{OUTER}\n{idx}: (b7) r8 = 0    ; R8_w=0 R9={i}\n"));
        idx += 1;
        for j in 0..4 {
            log.push_str(&loop_body(INNER, idx, i * 4 + j));
            idx += 4;
        }
        log.push_str(&format!(
            "{idx}: (07) r9 += 1    ; R9_w={}\n{}: (a5) if r9 < 0x3 goto pc-19    ; R9_w={}\n",
            i + 1,
            idx + 1,
            i + 1
        ));
        idx += 2;
    }
    log.push_str(&format!("{idx}: (95) exit\n{STATS}\n"));
    log
}

#[test]
fn nested_loops_collapse_in_two_passes() {
    let log = nested_log();

    let once = collapse_with(&log, 1).into_owned();
    assert_eq!(
        once.matches("--- 4x of the following 5 lines ---").count(),
        3
    );
    assert!(!once.contains("--- 3x"));

    let twice = collapse_with(&once, 1).into_owned();
    assert_eq!(
        twice
            .matches("--- 3x of the following 17 lines ---")
            .count(),
        1
    );
    // The kept outer iterations still carry their folded inner loop.
    assert_eq!(
        twice.matches("--- 4x of the following 5 lines ---").count(),
        2
    );
    assert_eq!(twice.matches("--- end repeat ---").count(), 3);
    assert!(matches!(collapse_with(&twice, 1), Cow::Borrowed(_)));

    assert_eq!(collapse(&log), twice);
    assert!(twice.starts_with("func#0 @0\n0: R1=ctx() R10=fp0\n--- 3x"));
    assert!(twice.ends_with(&format!("(95) exit\n{STATS}\n")));
}

#[test]
fn separate_loops_collapse_in_two_passes() {
    const FIRST: &str = "; first loop body @ main.bpf.c:300";
    const SECOND: &str = "; second loop body @ main.bpf.c:320";
    let mut log = String::from("0: R1=ctx() R10=fp0\n");
    for i in 0..4 {
        log.push_str(&loop_body(FIRST, 1 + 4 * i, i));
    }
    log.push_str("17: (b7) r7 = 0    ; R7_w=0\n");
    for i in 0..6 {
        log.push_str(&loop_body(SECOND, 18 + 4 * i, i));
    }
    log.push_str("42: (95) exit\n");

    let once = collapse_with(&log, 1).into_owned();
    assert!(once.contains("--- 6x of the following 5 lines ---\n"));
    assert!(!once.contains("--- 4x"));

    let out = collapse(&log);
    assert!(out.contains("--- 4x of the following 5 lines ---\n"));
    assert!(out.contains("--- 6x of the following 5 lines ---\n"));
    assert_eq!(out.matches("--- end repeat ---").count(), 2);
    assert!(out.starts_with("0: R1=ctx() R10=fp0\n--- 4x"));
    assert!(out.ends_with("--- end repeat ---\n42: (95) exit\n"));
}

#[test]
fn short_periods_do_not_collapse() {
    let mut log = String::new();
    for i in 0..20 {
        log.push_str(&format!(
            "; tiny loop @ main.bpf.c:9\n{i}: (07) r1 += 1 ; R1_w={i}\n"
        ));
    }
    assert!(matches!(collapse(&log), Cow::Borrowed(_)));
}

#[test]
fn dominant_gap_ignores_short_gaps_and_breaks_ties_low() {
    assert_eq!(dominant_gap(&[0, 1, 2, 3]), None);
    assert_eq!(dominant_gap(&[0, 7, 14, 15, 20]), Some(7));
    assert_eq!(dominant_gap(&[0, 9, 15]), Some(6));
}
