//! One line for an error and its causes, each said once.
//!
//! The engine's errors name their cause in their own message (so a `{e}` in a log is whole)
//! and also expose it as `source()` (so callers can inspect it). Printed with `{:#}`, anyhow
//! would then say every cause twice; this keeps a cause only when the text before it does
//! not already say it.

pub fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like the engine's errors: the cause in the message and as `source()`.
    #[derive(Debug)]
    struct Read {
        source: std::io::Error,
    }

    impl std::fmt::Display for Read {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot read /x.jpg: {}", self.source)
        }
    }

    impl std::error::Error for Read {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn a_cause_the_message_already_names_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let error = anyhow::Error::new(Read { source: io }).context("cannot load model m");
        assert_eq!(
            describe(&error),
            "cannot load model m: cannot read /x.jpg: No such file or directory"
        );
    }

    #[test]
    fn causes_that_add_something_are_kept() {
        let error = anyhow::anyhow!("disk full").context("cannot write the record");
        assert_eq!(describe(&error), "cannot write the record: disk full");
    }
}
