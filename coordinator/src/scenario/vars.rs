//! `[vars]`: named values templates read as `{{vars.NAME}}`, and the
//! `--set NAME=VALUE` overrides of `volley run`.
//!
//! A value is a string; an integer, a float or a boolean is accepted and
//! turned into the text a template writes (`qty = 3` → `3`, `ratio = 0.5`
//! → `0.5`, `1.0` stays `1.0`, `on = true` → `true`), so `{"qty":{{vars.qty}}}`
//! is valid JSON either way. Arrays, tables and dates are refused: a
//! template writes text. A `--set` wins over `[vars]` and may define a name
//! `[vars]` lacks; one that no template reads is a warning (a typo there
//! would otherwise silently test the default).

use toml::de::DeValue;

use super::error::Fail;
use super::raw::{join, Section};
use super::units::{describe, float_value, int_value, quote};

/// Most `[vars]` entries and `--set` overrides together.
const MAX_VARS: usize = 1000;
/// Longest value.
const MAX_VALUE: usize = 64 * 1024;
/// Longest name.
const MAX_NAME: usize = 64;

/// A variable name: a letter or `_`, then letters, digits or `_` (it is
/// written `vars.NAME` in a template, so no dots or spaces).
pub(super) fn valid_name(n: &str) -> bool {
    let mut b = n.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && n.len() <= MAX_NAME
}

/// `NAME=VALUE` as `--set` takes it (the value may contain `=`).
pub fn parse_set(s: &str) -> Result<(String, String), String> {
    let Some((name, value)) = s.split_once('=') else {
        return Err(format!(
            "expected NAME=VALUE such as tenant=acme, got {}",
            quote(s)
        ));
    };
    let name = name.trim();
    if !valid_name(name) {
        return Err(format!(
            "expected a variable name (a letter or _, then letters, digits or _, at most \
             {MAX_NAME}) before =, got {}",
            quote(name)
        ));
    }
    if value.len() > MAX_VALUE {
        return Err(format!(
            "expected a value of at most {MAX_VALUE} bytes for {name}"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// `[vars]` with the `--set` overrides applied, in file order then the
/// new names in `--set` order.
pub(super) fn vars(
    root: &Section<'_, '_>,
    overrides: &[(String, String)],
) -> Result<Vec<(String, String)>, Fail> {
    let mut out: Vec<(String, String)> = Vec::new();
    if let Some(v) = root.get("vars") {
        let DeValue::Table(t) = v.get_ref() else {
            return Err(root.fail(
                "vars",
                format!(
                    "expected a table ([vars]) of names to values, got {}",
                    describe(v.get_ref())
                ),
            ));
        };
        let mut entries: Vec<_> = t.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        for (k, v) in entries {
            let name: &str = k.get_ref();
            let field = join("vars", name);
            if !valid_name(name) {
                return Err(Fail::new(
                    field,
                    format!(
                        "{} is not a variable name (a letter or _, then letters, digits or _, \
                         at most {MAX_NAME}); templates read it as {{{{vars.NAME}}}}",
                        quote(name)
                    ),
                )
                .at(Some(k.span())));
            }
            let fail = |m: String| Fail::new(join("vars", name), m).at(Some(v.span()));
            let value = match v.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Integer(i) => match int_value(i) {
                    Some(n) => n.to_string(),
                    None => return Err(fail(format!("integer {i} does not fit 64 bits"))),
                },
                DeValue::Float(f) => {
                    let x = float_value(f.as_str());
                    if !x.is_finite() {
                        return Err(fail(format!(
                            "expected a finite number (a template writes it as text), got {f}"
                        )));
                    }
                    format!("{x:?}")
                }
                DeValue::Boolean(b) => b.to_string(),
                other => {
                    return Err(fail(format!(
                        "expected a string, number or boolean (a template writes it as \
                         text), got {}",
                        describe(other)
                    )))
                }
            };
            if value.len() > MAX_VALUE {
                return Err(fail(format!(
                    "expected a value of at most {MAX_VALUE} bytes, got {}",
                    value.len()
                )));
            }
            out.push((name.to_owned(), value));
        }
    }
    for (name, value) in overrides {
        match out.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.clone(),
            None => out.push((name.clone(), value.clone())),
        }
    }
    if out.len() > MAX_VARS {
        return Err(root.fail(
            "vars",
            format!(
                "expected at most {MAX_VARS} variables ([vars] and --set together), got {}",
                out.len()
            ),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_takes_name_equals_value() {
        assert_eq!(parse_set("a=1"), Ok(("a".into(), "1".into())));
        assert_eq!(parse_set("tok=x=y"), Ok(("tok".into(), "x=y".into())));
        assert_eq!(parse_set("e="), Ok(("e".into(), String::new())));
        assert!(parse_set("novalue").unwrap_err().contains("NAME=VALUE"));
        assert!(parse_set("a.b=1").unwrap_err().contains("variable name"));
        assert!(parse_set("=1").is_err());
        assert!(parse_set("1a=1").is_err());
    }
}
