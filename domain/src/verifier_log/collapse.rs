//! Folding of loop iterations in BPF verifier logs.
//!
//! The verifier walks every iteration of a bounded loop, so its log repeats the same
//! instructions many times with only the register state (and, for unrolled code, the
//! instruction index) changing. [`collapse`] keeps the first and last iteration of such a
//! run, verbatim, and replaces the ones between with a marker line.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::ops::Range;

const MAX_PASSES: usize = 5;
const MIN_PERIOD: usize = 5;
const MIN_REPEATS: usize = 3;
const MIN_ANCHOR_CHARS: usize = 10;
const MIN_ANCHOR_COUNT: usize = 3;
/// Anchors tried per pass when the most frequent one does not line up with a cycle (the
/// kept first/last iterations of an inner loop outnumber the outer loop's anchor).
const MAX_CANDIDATES: usize = 16;
const MARKER_PREFIX: &str = "--- ";

/// Collapses repeated loop iterations in a verifier log, in up to five passes so that
/// nested or separate loops fold too.
///
/// Returns the input itself (`Cow::Borrowed`) when nothing repeats.
pub fn collapse(log: &str) -> Cow<'_, str> {
    collapse_with(log, MAX_PASSES)
}

fn collapse_with(log: &str, max_passes: usize) -> Cow<'_, str> {
    let (body, trailing_newline) = match log.strip_suffix('\n') {
        Some(body) => (body, true),
        None => (log, false),
    };
    if u32::try_from(body.len()).is_err() {
        // Line offsets are kept as `u32`; the kernel caps its log at 1 GiB anyway.
        return Cow::Borrowed(log);
    }
    let mut doc = Doc::parse(body);
    let mut folded = false;
    for _ in 0..max_passes {
        if !doc.fold_once() {
            break;
        }
        folded = true;
    }
    if folded {
        Cow::Owned(doc.render(trailing_newline))
    } else {
        Cow::Borrowed(log)
    }
}

/// The log as lines keyed by hashes of their normalized forms. Passes work on these keys
/// and only the final text is rendered, so the input is split and hashed once.
struct Doc<'a> {
    input: &'a str,
    /// Text of the marker lines added by earlier passes.
    markers: String,
    /// Hash of the index-keeping form; 0 for lines that may not anchor.
    anchor: Vec<u64>,
    /// Hash of the index-stripped form, compared between blocks.
    block: Vec<u64>,
    spans: Vec<Span>,
}

/// Where a line's text lies, as byte offsets into the input or, from `marker_base()` on,
/// into the markers: the line is `start..end`; relative to `start`, its index-stripped
/// normalized form is `key_start..block_end` (which also drops a jump's offset) and its
/// index-keeping one `0..key_end`.
///
/// Relative `u32`s keep a million-line log's spans small enough to stay in cache and
/// out of fresh `mmap`s.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    key_start: u32,
    key_end: u32,
    block_end: u32,
}

impl<'a> Doc<'a> {
    fn parse(input: &'a str) -> Self {
        let lines = input.bytes().filter(|&b| b == b'\n').count() + 1;
        let mut doc = Doc {
            input,
            markers: String::new(),
            anchor: Vec::with_capacity(lines),
            block: Vec::with_capacity(lines),
            spans: Vec::with_capacity(lines),
        };
        let mut offset = 0;
        for line in input.split('\n') {
            let (anchor, block, key, block_end) = keys(line);
            doc.anchor.push(anchor);
            doc.block.push(block);
            doc.spans.push(Span {
                start: offset,
                end: offset + line.len(),
                key_start: relative(key.start),
                key_end: relative(key.end),
                block_end: relative(block_end),
            });
            offset += line.len() + 1;
        }
        doc
    }

    fn marker_base(&self) -> usize {
        // Past any input offset, the empty last line's included.
        self.input.len() + 1
    }

    fn text(&self, start: usize, end: usize) -> &str {
        let base = self.marker_base();
        if start < base {
            &self.input[start..end]
        } else {
            &self.markers[start - base..end - base]
        }
    }

    fn line(&self, i: usize) -> &str {
        let s = self.spans[i];
        self.text(s.start, s.end)
    }

    /// The normalized line, instruction index kept.
    fn full_key(&self, i: usize) -> &str {
        let s = self.spans[i];
        self.text(s.start, s.start + s.key_end as usize)
    }

    /// The normalized line, instruction index stripped.
    fn block_key(&self, i: usize) -> &str {
        let s = self.spans[i];
        self.text(
            s.start + s.key_start as usize,
            s.start + s.block_end as usize,
        )
    }

    /// One pass: folds every run of the first candidate anchor that yields one.
    fn fold_once(&mut self) -> bool {
        if self.block.len() < MIN_PERIOD * MIN_REPEATS {
            return false;
        }
        // Sorting (key, line) groups equal lines with their occurrences in order, which
        // stays cache-friendly on million-line logs where a hash map would not.
        let mut keyed: Vec<(u64, usize)> = self
            .anchor
            .iter()
            .enumerate()
            .filter(|&(_, &key)| key != 0)
            .map(|(i, &key)| (key, i))
            .collect();
        keyed.sort_unstable();
        let mut groups: Vec<&[(u64, usize)]> = keyed
            .chunk_by(|a, b| a.0 == b.0)
            .filter(|g| g.len() >= MIN_ANCHOR_COUNT)
            .collect();
        // The most frequent first, ties to the earliest first occurrence.
        groups.sort_unstable_by_key(|g| (Reverse(g.len()), g[0].1));

        for group in groups.iter().take(MAX_CANDIDATES) {
            let anchor_text = self.full_key(group[0].1);
            // Equal hashes of different lines would be a collision: leave those out.
            let positions: Vec<usize> = group
                .iter()
                .map(|&(_, i)| i)
                .filter(|&i| self.full_key(i) == anchor_text)
                .collect();
            if positions.len() < MIN_ANCHOR_COUNT {
                continue;
            }
            let Some(period) = dominant_gap(&positions) else {
                continue;
            };
            let same_block = |a: usize, b: usize| {
                (0..period).all(|k| self.block_key(a + k) == self.block_key(b + k))
            };
            let runs = find_runs(&positions, period, &self.block, same_block);
            if !runs.is_empty() {
                self.apply(&runs, period);
                return true;
            }
        }
        false
    }

    /// Replaces each run `(first line, blocks)` with its first and last block between
    /// marker lines.
    fn apply(&mut self, runs: &[(usize, usize)], period: usize) {
        let kept = self.block.len() - runs.iter().map(|&(_, b)| (b - 2) * period).sum::<usize>()
            + 3 * runs.len();
        let mut next = Lines {
            anchor: Vec::with_capacity(kept),
            block: Vec::with_capacity(kept),
            spans: Vec::with_capacity(kept),
        };
        let base = self.marker_base();
        let marker = |markers: &mut String, next: &mut Lines, text: String| {
            let start = base + markers.len();
            markers.push_str(&text);
            next.anchor.push(0);
            next.block.push(hash_str(&text));
            next.spans.push(Span {
                start,
                end: start + text.len(),
                key_start: 0,
                key_end: relative(text.len()),
                block_end: relative(text.len()),
            });
        };
        let mut cursor = 0;
        for &(start, blocks) in runs {
            next.copy(self, cursor..start);
            let header = format!("--- {blocks}x of the following {period} lines ---");
            marker(&mut self.markers, &mut next, header);
            next.copy(self, start..start + period);
            let omitted = format!("--- {} identical iterations omitted ---", blocks - 2);
            marker(&mut self.markers, &mut next, omitted);
            let last = start + (blocks - 1) * period;
            next.copy(self, last..last + period);
            marker(
                &mut self.markers,
                &mut next,
                "--- end repeat ---".to_owned(),
            );
            cursor = start + blocks * period;
        }
        next.copy(self, cursor..self.block.len());
        self.anchor = next.anchor;
        self.block = next.block;
        self.spans = next.spans;
    }

    fn render(&self, trailing_newline: bool) -> String {
        let mut out = String::with_capacity(self.input.len() + self.markers.len() + 1);
        for i in 0..self.spans.len() {
            out.push_str(self.line(i));
            out.push('\n');
        }
        if !trailing_newline {
            out.pop();
        }
        out
    }
}

/// The line columns of a [`Doc`] being rebuilt.
struct Lines {
    anchor: Vec<u64>,
    block: Vec<u64>,
    spans: Vec<Span>,
}

impl Lines {
    fn copy(&mut self, doc: &Doc<'_>, range: Range<usize>) {
        self.anchor.extend_from_slice(&doc.anchor[range.clone()]);
        self.block.extend_from_slice(&doc.block[range.clone()]);
        self.spans.extend_from_slice(&doc.spans[range]);
    }
}

/// An offset within one line; inputs over 4 GiB are refused before parsing.
fn relative(offset: usize) -> u32 {
    u32::try_from(offset).unwrap_or(u32::MAX)
}

/// The anchor and block hashes of a line, where its index-stripped form lies in it, and
/// where that form ends once a jump's offset is dropped too.
fn keys(line: &str) -> (u64, u64, Range<usize>, usize) {
    let (full, body) = normalize(line);
    let key_start = full.len() - body.len();
    // Unrolled copies that jump to one shared exit differ only in the offset.
    let block_text = strip_jump_offset(body);
    let full_hash = hash_str(full);
    let block = if block_text.len() == full.len() {
        // `block_text` starts inside `full`: equal lengths mean the same text.
        full_hash
    } else {
        hash_str(block_text)
    };
    let anchor = if is_anchor_text(full) {
        full_hash.max(1)
    } else {
        0
    };
    (
        anchor,
        block,
        key_start..full.len(),
        key_start + block_text.len(),
    )
}

/// `… goto pc+12` → `… goto pc+`, for block comparison only.
fn strip_jump_offset(insn: &str) -> &str {
    let digits = insn.bytes().rev().take_while(u8::is_ascii_digit).count();
    let head = &insn[..insn.len() - digits];
    if digits > 0 && (head.ends_with("goto pc+") || head.ends_with("goto pc-")) {
        head
    } else {
        insn
    }
}

/// A 64-bit multiply-fold hash. Equal hashes are confirmed on the text before anything is
/// folded, so a collision can only cost a missed fold, never a wrong one.
fn hash_str(s: &str) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    const FINAL: u64 = 0xa076_1d64_78bd_642f;
    let fold = |a: u64, b: u64| {
        let p = u128::from(a) * u128::from(b);
        (p as u64) ^ ((p >> 64) as u64)
    };
    let bytes = s.as_bytes();
    let mut h = (bytes.len() as u64) ^ 0x243f_6a88_85a3_08d3;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = fold(h ^ u64::from_le_bytes(word), K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = fold(h ^ u64::from_le_bytes(word), K);
    }
    fold(h, FINAL)
}

/// Splits a line into its two comparison keys, both borrowed from it: `full` keeps the
/// instruction index (anchor choice), the second drops it (block comparison).
fn normalize(line: &str) -> (&str, &str) {
    let t = line.trim_end();
    let s = t.trim_start();
    if s.starts_with(';') {
        // Source comment: stable across iterations, the natural anchor.
        return (t, t);
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || s.as_bytes().get(digits) != Some(&b':') {
        return (t, t);
    }
    let colon = t.len() - s.len() + digits;
    let rest = t[colon + 1..].trim_start();
    if rest.starts_with('(') {
        let insn = strip_insn_state(rest);
        let rest_at = t.len() - rest.len();
        (&t[..rest_at + insn.len()], insn)
    } else if is_register_dump(rest) {
        (&t[..=colon], &t[colon + 1..colon + 1])
    } else {
        (t, rest)
    }
}

/// Drops the register state printed after an instruction: the `; R…` annotation, or
/// whatever follows a branch's `goto pc±N`.
fn strip_insn_state(insn: &str) -> &str {
    const GOTO: &str = "goto pc";
    let head = insn.find(';').map_or(insn, |at| &insn[..at]);
    let head = match head.find(GOTO) {
        Some(at) => {
            let target = &head.as_bytes()[at + GOTO.len()..];
            match target.split_first() {
                Some((b'+' | b'-', tail)) => {
                    let digits = tail.iter().take_while(|b| b.is_ascii_digit()).count();
                    &head[..at + GOTO.len() + 1 + digits]
                }
                _ => head,
            }
        }
        None => head,
    };
    head.trim_end()
}

/// `R1=ctx() R10=fp0` or `frame1: R1=…` after an instruction index.
fn is_register_dump(rest: &str) -> bool {
    let starts_with_digit = |s: &str| s.as_bytes().first().is_some_and(u8::is_ascii_digit);
    rest.strip_prefix('R').is_some_and(starts_with_digit)
        || rest.strip_prefix("frame").is_some_and(starts_with_digit)
}

fn is_anchor_text(s: &str) -> bool {
    !s.starts_with(MARKER_PREFIX) && s.chars().nth(MIN_ANCHOR_CHARS - 1).is_some()
}

/// The most common gap of at least [`MIN_PERIOD`] between consecutive anchors; the
/// smallest wins a tie.
fn dominant_gap(positions: &[usize]) -> Option<usize> {
    let mut gaps: Vec<usize> = positions
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|&g| g >= MIN_PERIOD)
        .collect();
    gaps.sort_unstable();
    let mut best: Option<(usize, usize)> = None;
    for chunk in gaps.chunk_by(|a, b| a == b) {
        if best.is_none_or(|(_, count)| chunk.len() > count) {
            best = Some((chunk[0], chunk.len()));
        }
    }
    best.map(|(gap, _)| gap)
}

/// Runs of at least [`MIN_REPEATS`] equal blocks of `period` lines, each starting on an
/// anchor occurrence, as `(first line, blocks)`; ascending and non-overlapping.
///
/// Each pair of consecutive anchors is compared once and such blocks barely overlap, so
/// this is linear in the number of lines.
fn find_runs(
    positions: &[usize],
    period: usize,
    keys: &[u64],
    same_block: impl Fn(usize, usize) -> bool,
) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    // Lines before `covered` already belong to a run.
    let mut covered = 0;
    let mut run_start = 0;
    let mut blocks = 1;
    for w in positions.windows(2) {
        let (a, b) = (w[0], w[1]);
        let extends = b - a == period
            && b + period <= keys.len()
            && (blocks > 1 || a >= covered)
            && keys[a..b] == keys[b..b + period]
            && same_block(a, b);
        if extends {
            if blocks == 1 {
                run_start = a;
            }
            blocks += 1;
        } else {
            if blocks >= MIN_REPEATS {
                runs.push((run_start, blocks));
                covered = run_start + blocks * period;
            }
            blocks = 1;
        }
    }
    if blocks >= MIN_REPEATS {
        runs.push((run_start, blocks));
    }
    runs
}

#[cfg(test)]
mod tests;
