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
