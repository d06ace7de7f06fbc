//! The one error type of scenario parsing, and the span → line conversion.

use std::fmt;
use std::ops::Range;

/// What is wrong with a scenario file: which file, which field, what was
/// expected, and (when known) on which line.
///
/// Displays as `{file}:{line}: {field}: {message}`; the line is left out when
/// unknown and the field when the error concerns the file as a whole (a read
/// error, a TOML syntax error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Rendered(self))]
pub struct ScenarioError {
    pub file: String,
    /// Dotted path of the offending field, e.g. `stages[1].rate`; empty when
    /// the error is about the whole file.
    pub field: String,
    pub message: String,
    /// 1-based line number, when known.
    pub line: Option<usize>,
}

struct Rendered<'a>(&'a ScenarioError);

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(f, "{}", e.file)?;
        if let Some(line) = e.line {
            write!(f, ":{line}")?;
        }
        if !e.field.is_empty() {
            write!(f, ": {}", e.field)?;
        }
        write!(f, ": {}", e.message)
    }
}

/// An error found while walking the document, before it knows its file name.
/// `span` is a byte range into the source text.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Fail {
    pub field: String,
    pub message: String,
    pub span: Option<Range<usize>>,
}

impl Fail {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Fail {
            field: field.into(),
            message: message.into(),
            span: None,
        }
    }

    pub fn at(mut self, span: Option<Range<usize>>) -> Self {
        self.span = span;
        self
    }

    pub fn into_error(self, file: &str, text: &str) -> ScenarioError {
        ScenarioError {
            file: file.to_owned(),
            field: self.field,
            message: self.message,
            line: self.span.map(|s| line_of(text.as_bytes(), s.start)),
        }
    }
}

/// 1-based line of a byte offset (clamped to the text).
pub(super) fn line_of(text: &[u8], offset: usize) -> usize {
    let end = offset.min(text.len());
    text[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// 1-based column (in characters) of a byte offset.
pub(super) fn column_of(text: &str, offset: usize) -> usize {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let start = text[..end].rfind('\n').map_or(0, |i| i + 1);
    text[start..end].chars().count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(field: &str, line: Option<usize>) -> ScenarioError {
        ScenarioError {
            file: "a.toml".into(),
            field: field.into(),
            message: "bad".into(),
            line,
        }
    }

    #[test]
    fn display_leaves_out_what_is_unknown() {
        assert_eq!(
            err("stages[0].rate", Some(7)).to_string(),
            "a.toml:7: stages[0].rate: bad"
        );
        assert_eq!(
            err("stages[0].rate", None).to_string(),
            "a.toml: stages[0].rate: bad"
        );
        assert_eq!(err("", Some(3)).to_string(), "a.toml:3: bad");
        assert_eq!(err("", None).to_string(), "a.toml: bad");
    }

    #[test]
    fn lines_and_columns_are_one_based() {
        let t = "ab\ncdé\nf";
        assert_eq!(line_of(t.as_bytes(), 0), 1);
        assert_eq!(line_of(t.as_bytes(), 2), 1);
        assert_eq!(line_of(t.as_bytes(), 3), 2);
        assert_eq!(line_of(t.as_bytes(), 999), 3);
        assert_eq!(column_of(t, 0), 1);
        assert_eq!(column_of(t, 4), 2);
        // Inside the two-byte 'é': clamps back to its start.
        assert_eq!(column_of(t, 6), 3);
        assert_eq!(column_of(t, 8), 1);
        assert_eq!(column_of(t, 99), 2);
    }

    #[test]
    fn fail_carries_the_line() {
        let e = Fail::new("x", "m")
            .at(Some(3..4))
            .into_error("f", "a\nb\nc");
        assert_eq!(e.line, Some(2));
        assert_eq!(e.field, "x");
    }
}
