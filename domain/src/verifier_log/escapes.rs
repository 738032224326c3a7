//! Terminal escape sequences in text a scheduler wrote for its own terminal: removed for
//! files, pipes and parsing; on a colour terminal its colours (SGR) may stay.

use std::borrow::Cow;

/// Removes terminal escape sequences: CSI (`ESC [ ... final`), OSC (`ESC ] ... BEL` or
/// `ESC \`) and two-byte escapes. With `keep_colour`, SGR sequences (`ESC [ ... m`, the
/// colours) stay, and a line that kept any ends with a reset so colour cannot bleed.
pub fn clean_escapes(text: &str, keep_colour: bool) -> Cow<'_, str> {
    if !text.contains('\x1b') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut kept_colour = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters and intermediates up to a final byte in @..~.
            Some('[') => {
                let mut sequence = String::from("\x1b[");
                let mut final_byte = None;
                for c in chars.by_ref() {
                    sequence.push(c);
                    if ('@'..='~').contains(&c) {
                        final_byte = Some(c);
                        break;
                    }
                }
                if keep_colour && final_byte == Some('m') {
                    out.push_str(&sequence);
                    kept_colour = true;
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
    if kept_colour {
        out.push_str("\x1b[0m");
    }
    Cow::Owned(out)
}

/// [`clean_escapes`] without colours: plain text.
pub fn strip_escapes(text: &str) -> Cow<'_, str> {
    clean_escapes(text, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_escapes_of_a_scheduler_log_are_removed() {
        assert!(matches!(strip_escapes("plain"), Cow::Borrowed(_)));
        assert_eq!(
            strip_escapes("\x1b[32mINFO\x1b[0m \x1b[1;38;5;208mwarn\x1b[m done"),
            "INFO warn done"
        );
        assert_eq!(strip_escapes("a\x1b]0;title\x07b\x1b]8;;x\x1b\\c"), "abc");
        assert_eq!(strip_escapes("cut\x1b[3"), "cut");
        assert_eq!(strip_escapes("a\x1bZb"), "ab");
    }

    #[test]
    fn on_a_colour_terminal_only_colours_stay_and_are_reset() {
        assert_eq!(
            clean_escapes("\x1b[33m[WARN]\x1b[0m x\x1b[2Ky\x1b]0;t\x07", true),
            "\x1b[33m[WARN]\x1b[0m xy\x1b[0m"
        );
        assert_eq!(clean_escapes("\x1b[2Kplain", true), "plain");
        assert!(matches!(clean_escapes("plain", true), Cow::Borrowed(_)));
    }
}
