//! Errors as a user reads them: the message and every cause under it, on one line.

use std::error::Error;

/// `outer: cause: root cause`.
pub fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // A wrapper that already prints its cause (`{0}`) would repeat it.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot start qemu-system-x86_64")]
    struct Spawn(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("wrapped: {0}")]
    struct Says(#[source] std::io::Error);

    #[test]
    fn every_cause_is_kept_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(
            error_chain(&Spawn(io())),
            "cannot start qemu-system-x86_64: no such file"
        );
        assert_eq!(error_chain(&Says(io())), "wrapped: no such file");
    }
}
