//! Templates as the parser sees them: every `{{ … }}` in a path, a header
//! value or a body is compiled *while the file is walked*, so an unknown
//! variable, function or data column is an error naming the file, the field
//! and the line of the string (inside a multi-line body, the line of the
//! expression itself).
//!
//! The templates are compiled again, for real, by [`Plan::compile_requests`]
//! (in [`Plan::validate`] and on every worker); this pass exists for the
//! error's place and to learn what the templates read:
//! - `env.NAME`: resolved through the caller's [`Env`] now, so only the
//!   variables a template names are read, recorded in `Plan.env` and sent
//!   along (an unset one is an error);
//! - `vars.NAME`: recorded, so a `--set` no template reads is a warning.
//!
//! [`Plan::compile_requests`]: volley_plan::Plan::compile_requests
//! [`Plan::validate`]: volley_plan::Plan::validate

use std::collections::BTreeSet;
use std::ops::Range;

use volley_plan::data::DataSet;
use volley_plan::template::{Context, Scope, Template};

use super::error::Fail;
use super::raw::Value;
use super::units::quote;
use super::Env;

/// What templates may refer to, and what they have referred to so far.
pub(super) struct Templates<'t> {
    /// The scenario text, to place an error inside a string value.
    text: &'t str,
    pub vars: Vec<(String, String)>,
    pub data: Vec<DataSet>,
    /// The environment variables read so far (only those templates name).
    pub env: Vec<(String, String)>,
    lookup: Env<'t>,
    /// The `vars.NAME` names templates read.
    pub used_vars: BTreeSet<String>,
}

/// One piece of a template's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Piece<'s> {
    /// Text sent as it is.
    Lit(&'s str),
    /// The text between `{{` and `}}`, and its byte offset in the source.
    Expr(usize, &'s str),
}

/// Splits a template's source into literal text and expressions, the way
/// [`Template::compile`] does (a `}}` inside a string literal does not close
/// the expression). An unclosed `{{` ends the scan; compiling reports it.
pub(super) fn pieces(src: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        out.push(Piece::Lit(&rest[..open]));
        let start = open + 2;
        let Some(close) = volley_plan::template::find_close(&rest[start..]) else {
            return out;
        };
        out.push(Piece::Expr(offset + start, &rest[start..start + close]));
        let consumed = start + close + 2;
        rest = &rest[consumed..];
        offset += consumed;
    }
    out.push(Piece::Lit(rest));
    out
}

/// `NAME` when the expression is `PREFIX.NAME` (`env.HOME`, `vars.tenant`).
fn reference<'s>(expr: &'s str, prefix: &str) -> Option<&'s str> {
    let e = expr.trim();
    if e.starts_with('"') || e.contains('(') {
        return None;
    }
    match e.split('.').collect::<Vec<_>>().as_slice() {
        [p, name] if *p == prefix => Some(name),
        _ => None,
    }
}

/// The `vars.NAME` and `env.NAME` a template reads, with their offsets.
pub(super) fn references<'s>(src: &'s str, prefix: &str) -> Vec<(usize, &'s str)> {
    pieces(src)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Expr(at, e) => reference(e, prefix).map(|n| (at, n)),
            Piece::Lit(_) => None,
        })
        .collect()
}

impl<'t> Templates<'t> {
    pub fn new(
        text: &'t str,
        vars: Vec<(String, String)>,
        data: Vec<DataSet>,
        lookup: Env<'t>,
    ) -> Self {
        Templates {
            text,
            vars,
            data,
            env: Vec::new(),
            lookup,
            used_vars: BTreeSet::new(),
        }
    }

    /// Checks the template in the string value `v` of `field` (a no-op for
    /// text without `{{`).
    pub fn check_value(&mut self, field: &str, src: &str, v: &Value<'_>) -> Result<(), Fail> {
        self.compile(src).map_err(|(offset, message)| {
            let at = self.inside(v.span(), src, offset);
            Fail::new(field, message).at(Some(at))
        })
    }

    /// Checks the template read from the file `name` (`body_file`); the
    /// error names the file's line and is placed on the key's line.
    pub fn check_file(
        &mut self,
        field: &str,
        src: &str,
        name: &str,
        span: Option<Range<usize>>,
    ) -> Result<(), Fail> {
        self.compile(src).map_err(|(offset, message)| {
            let line = super::error::line_of(src.as_bytes(), offset);
            Fail::new(field, format!("{} line {line}: {message}", quote(name))).at(span)
        })
    }

    /// What `src` (already checked) renders for arrival 0: a templated
    /// path must still be a path, even when only constants (`vars.NAME`)
    /// fill it.
    pub fn sample(&self, src: &str) -> Vec<u8> {
        let scope = Scope {
            vars: &self.vars,
            env: &self.env,
            data: &self.data,
        };
        let Ok(t) = Template::compile(src, &scope, &mut 0) else {
            return src.as_bytes().to_vec();
        };
        t.render_to_vec(&Context {
            seq: 0,
            seed: 0,
            now: std::time::SystemTime::UNIX_EPOCH,
            worker: "worker",
            stage: "stage",
            data: &self.data,
        })
    }

    /// Compiles `src`, first resolving the environment variables it names.
    /// The error is the byte offset in `src` and a sentence.
    fn compile(&mut self, src: &str) -> Result<(), (usize, String)> {
        if !volley_plan::template::is_template(src.as_bytes()) {
            return Ok(());
        }
        for (at, name) in references(src, "env") {
            if self.env.iter().any(|(n, _)| n == name) {
                continue;
            }
            match (self.lookup)(name) {
                Some(value) => self.env.push((name.to_owned(), value)),
                None => {
                    return Err((
                        at,
                        format!(
                            "environment variable {name} is not set; this template reads it \
                             as {{{{env.{name}}}}} (set it where `volley run` runs)"
                        ),
                    ))
                }
            }
        }
        let scope = Scope {
            vars: &self.vars,
            env: &self.env,
            data: &self.data,
        };
        let mut site = 0;
        Template::compile(src, &scope, &mut site)
            .map_err(|e| (e.offset, format!("invalid template: {}", e.message)))?;
        for (_, name) in references(src, "vars") {
            self.used_vars.insert(name.to_owned());
        }
        Ok(())
    }

    /// The span of byte `offset` of a string value's text, when the value
    /// is written without escapes (so source and text line up); else the
    /// whole value.
    fn inside(&self, span: Range<usize>, value: &str, offset: usize) -> Range<usize> {
        let Some(raw) = self.text.get(span.clone()) else {
            return span;
        };
        for delim in ["\"\"\"", "'''", "\"", "'"] {
            let Some(inner) = raw.strip_prefix(delim).and_then(|r| r.strip_suffix(delim)) else {
                continue;
            };
            let mut start = span.start + delim.len();
            // A newline right after an opening """ or ''' is not part of
            // the string.
            let inner = if delim.len() == 3 {
                let trimmed = inner
                    .strip_prefix("\r\n")
                    .or_else(|| inner.strip_prefix('\n'))
                    .unwrap_or(inner);
                start += inner.len() - trimmed.len();
                trimmed
            } else {
                inner
            };
            if inner == value {
                let at = start + offset.min(value.len());
                return at..at;
            }
            break;
        }
        span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_split_like_the_compiler() {
        assert_eq!(
            pieces("/a/{{ seq }}/b{{\"}}\"}}"),
            [
                Piece::Lit("/a/"),
                Piece::Expr(5, " seq "),
                Piece::Lit("/b"),
                Piece::Expr(16, "\"}}\""),
                Piece::Lit(""),
            ]
        );
        assert_eq!(pieces("x{{seq"), [Piece::Lit("x")]);
        assert_eq!(pieces("plain"), [Piece::Lit("plain")]);
    }

    #[test]
    fn references_are_exact_names() {
        let src = "{{env.A}} {{ env.B }} {{\"env.C\"}} {{vars.x}} {{env.a.b}} {{pick(\"env.D\")}}";
        let env: Vec<_> = references(src, "env").into_iter().map(|r| r.1).collect();
        assert_eq!(env, ["A", "B"]);
        let vars: Vec<_> = references(src, "vars").into_iter().map(|r| r.1).collect();
        assert_eq!(vars, ["x"]);
    }
}
