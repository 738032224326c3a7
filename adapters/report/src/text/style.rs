//! Colouring of status words and neutralising of text that came from the guest.

use std::borrow::Cow;
use std::fmt::Write as _;

use ktstr_domain::verifier_log::escapes::clean_escapes;
pub(crate) use ktstr_domain::verifier_log::escapes::strip_escapes;

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

/// One line a scheduler wrote, for people: its colours kept on a colour terminal and
/// every other escape removed; all remaining controls [`sanitize`]d.
pub(crate) fn guest_line(line: &str, opts: &TextOptions) -> String {
    let cleaned = clean_escapes(line, opts.color);
    let mut out = String::with_capacity(cleaned.len());
    // Only colour sequences survive cleaning: copy them whole, sanitize the text between.
    let mut rest: &str = &cleaned;
    while let Some(at) = rest.find("\x1b[") {
        out.push_str(&sanitize(&rest[..at]));
        let end = rest[at..].find('m').map_or(rest.len(), |m| at + m + 1);
        out.push_str(&rest[at..end]);
        rest = &rest[end..];
    }
    out.push_str(&sanitize(rest));
    out
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
    fn escapes_a_scheduler_left_are_gone_before_controls_are_escaped() {
        assert_eq!(sanitize(&strip_escapes("a\x1bZb\rc")), "ab\\u{d}c");
    }

    #[test]
    fn a_schedulers_colours_show_only_on_a_colour_terminal() {
        let line = "\x1b[33m[WARN]\x1b[0m loaded\x1b[2K\r";
        assert_eq!(
            guest_line(line, &TextOptions::default()),
            "[WARN] loaded\\u{d}"
        );
        let on = TextOptions {
            color: true,
            ..TextOptions::default()
        };
        assert_eq!(
            guest_line(line, &on),
            "\x1b[33m[WARN]\x1b[0m loaded\\u{d}\x1b[0m"
        );
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
