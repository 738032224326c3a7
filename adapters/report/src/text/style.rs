//! Colouring of status words and neutralising of text that came from the guest.

use std::borrow::Cow;
use std::fmt::Write as _;

use owo_colors::OwoColorize;

use super::TextOptions;

pub(crate) fn good(word: &str, opts: &TextOptions) -> String {
    if opts.color {
        word.green().to_string()
    } else {
        word.to_string()
    }
}

pub(crate) fn bad(word: &str, opts: &TextOptions) -> String {
    if opts.color {
        word.red().bold().to_string()
    } else {
        word.to_string()
    }
}

pub(crate) fn warn(word: &str, opts: &TextOptions) -> String {
    if opts.color {
        word.yellow().bold().to_string()
    } else {
        word.to_string()
    }
}

/// Removes terminal escape sequences (colours, cursor moves) that a scheduler wrote for its
/// own terminal: CSI (`ESC [ ... final`), OSC (`ESC ] ... BEL` or `ESC \\`) and two-byte
/// escapes. What remains is then [`sanitize`]d like any guest text.
pub(crate) fn strip_escapes(text: &str) -> Cow<'_, str> {
    if !text.contains('\x1b') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters and intermediates up to a final byte in @..~.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or ST.
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    Cow::Owned(out)
}

/// Escapes control characters (tabs excepted) so guest output cannot inject terminal
/// escapes or break the block layout.
pub(crate) fn sanitize(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\t';
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_escapes_controls_and_keeps_tabs() {
        assert!(matches!(sanitize("plain\ttext"), Cow::Borrowed(_)));
        assert_eq!(sanitize("a\x1b[31mb\rc"), "a\\u{1b}[31mb\\u{d}c");
    }

    #[test]
    fn colour_escapes_of_a_scheduler_log_are_removed() {
        assert!(matches!(strip_escapes("plain"), Cow::Borrowed(_)));
        assert_eq!(
            strip_escapes("\x1b[32mINFO\x1b[0m \x1b[1;38;5;208mwarn\x1b[m done"),
            "INFO warn done"
        );
        assert_eq!(strip_escapes("a\x1b]0;title\x07b\x1b]8;;x\x1b\\c"), "abc");
        assert_eq!(strip_escapes("cut\x1b[3"), "cut");
        // A two-byte escape goes too; other controls are left for sanitize to escape.
        assert_eq!(sanitize(&strip_escapes("a\x1bZb\rc")), "ab\\u{d}c");
    }

    #[test]
    fn colour_only_when_asked() {
        let on = TextOptions {
            color: true,
            ..TextOptions::default()
        };
        assert_eq!(good("ok", &TextOptions::default()), "ok");
        assert!(good("ok", &on).contains("\x1b["));
        assert!(bad("no", &on).contains("\x1b["));
    }
}
