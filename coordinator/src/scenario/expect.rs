//! `[target.expect]` and `[requests.expect]`: what a reply must look like
//! to count as ok. A request's own `expect` table replaces the target's
//! entirely (an empty one brings back the default rules).
//!
//! ```toml
//! [target.expect]
//! status = [200, "3xx"]                   # codes and classes; one value is fine
//! header = { "content-type" = "application/json" }
//! body_contains = "\"ok\""
//! body_regex = "id\":\\s*\\d+"
//! json = { "$.status" = "ok", "$.items[0].qty" = 1 }
//! grpc_status = ["OK", "NOT_FOUND"]        # protocol "grpc" only
//! max_body_bytes = "64KiB"
//! ```
//!
//! Every check has a name (the report's `errors_by_check` counts under it),
//! by default [`Rule::default_name`] (`status`, `header content-type`,
//! `json $.status`). Any value may instead be written as an inline table
//! `{ value = …, name = "…" }`, entries of `header` and `json` included:
//! `status = { value = [200, 201], name = "created" }`,
//! `json = { "$.status" = { value = "ok", name = "status ok" } }`. For
//! `json`, a table with a `value` key and no key but `value` and `name` is
//! such a named check; to expect that very object, nest it:
//! `{ value = { value = 1 } }`.
//!
//! Checks are compiled here ([`Checker::new`]), so a malformed regex or
//! JSONPath is an error naming the field and its line; checks a protocol
//! cannot judge (a status or header of a framed-TCP reply, `grpc_status`
//! over plain HTTP) are refused.

use std::ops::Range;

use toml::de::DeValue;
use volley_plan::expect::{grpc_code, Check, Checker, Expect, Rule, StatusMatch, MAX_CHECKS};
use volley_plan::Protocol;

use super::error::Fail;
use super::raw::{entries, join, Section, Value};
use super::units::{self, describe, float_value, int_value, quote};

const EXPECT_KEYS: &[&str] = &[
    "status",
    "header",
    "body_contains",
    "body_regex",
    "json",
    "grpc_status",
    "max_body_bytes",
];
const NAMED_KEYS: &[&str] = &["value", "name"];
const STATUS: &str = "an HTTP status such as 200, a class such as \"2xx\", or an array of them";
const GRPC: &str = "a gRPC status name such as \"OK\" or \"NOT_FOUND\", or an array of them";

/// The `expect` table of `sec`, `None` when absent.
pub(super) fn expect(sec: &Section<'_, '_>, protocol: Protocol) -> Result<Option<Expect>, Fail> {
    let Some(t) = sec.table("expect", EXPECT_KEYS)? else {
        return Ok(None);
    };
    // Each check's field and the span of its value, by check index.
    let mut at: Vec<(String, Range<usize>)> = Vec::new();
    let mut checks = Vec::new();
    for (key, _, v) in t.entries() {
        let field = t.field(key);
        match key {
            "header" | "json" => {
                let DeValue::Table(entries_of) = v.get_ref() else {
                    let example = if key == "header" {
                        "{ \"content-type\" = \"application/json\" }"
                    } else {
                        "{ \"$.status\" = \"ok\" }"
                    };
                    return Err(Fail::new(
                        field,
                        format!(
                            "expected a table such as {example}, got {}",
                            describe(v.get_ref())
                        ),
                    )
                    .at(Some(v.span())));
                };
                for (name, name_span, v) in entries(entries_of) {
                    let field = join(&field, name);
                    let (check_name, v) = named(&field, v, key == "json")?;
                    let rule = if key == "header" {
                        header(&field, name, name_span, v)?
                    } else {
                        Rule::Json {
                            path: name.to_owned(),
                            value: json(&field, v)?,
                        }
                    };
                    push(&mut checks, &mut at, field, v, check_name, rule);
                }
            }
            _ => {
                let (check_name, v) = named(&field, v, false)?;
                let rule = scalar_rule(key, &field, v)?;
                push(&mut checks, &mut at, field, v, check_name, rule);
            }
        }
    }
    if checks.len() > MAX_CHECKS {
        return Err(sec.fail(
            "expect",
            format!("expected at most {MAX_CHECKS} checks, got {}", checks.len()),
        ));
    }
    for (i, c) in checks.iter().enumerate() {
        let (field, span) = &at[i];
        if let Some(j) = checks[..i].iter().position(|o: &Check| o.name == c.name) {
            return Err(Fail::new(
                field.clone(),
                format!(
                    "the check name {} is already used by {}; a request's check names must be \
                     unique (name one with {{ value = …, name = \"…\" }})",
                    quote(&c.name),
                    at[j].0
                ),
            )
            .at(Some(span.clone())));
        }
        if let Some(why) = unfit(&c.rule, protocol) {
            return Err(Fail::new(field.clone(), why).at(Some(span.clone())));
        }
    }
    let expect = Expect { checks };
    Checker::new(&expect).map_err(|e| match at.get(e.check) {
        Some((field, span)) => {
            Fail::new(field.clone(), format!("expected {}", e.message)).at(Some(span.clone()))
        }
        None => sec.fail("expect", format!("expected {}", e.message)),
    })?;
    Ok(Some(expect))
}

fn push(
    checks: &mut Vec<Check>,
    at: &mut Vec<(String, Range<usize>)>,
    field: String,
    v: &Value<'_>,
    name: Option<String>,
    rule: Rule,
) {
    checks.push(Check {
        name: name.unwrap_or_else(|| rule.default_name()),
        rule,
    });
    at.push((field, v.span()));
}

/// Why a check does not fit the protocol, when it does not.
fn unfit(rule: &Rule, protocol: Protocol) -> Option<String> {
    match (rule, protocol) {
        (Rule::Status(_) | Rule::Header { .. }, Protocol::Tcp) => Some(
            "a framed-TCP reply has no status or headers; check its body instead \
             (body_contains, body_regex, json, max_body_bytes)"
                .into(),
        ),
        (Rule::GrpcStatus(_), p) if p != Protocol::Grpc => Some(format!(
            "applies to protocol \"grpc\" only, and the target's protocol is {:?}; \
             use `status` for HTTP",
            p.as_str()
        )),
        _ => None,
    }
}

/// A value written plainly, or as `{ value = …, name = "…" }`: the name
/// (when given) and the value. `loose`: a table that is not shaped like a
/// named check is a value in its own right (`json`).
fn named<'a, 'i>(
    field: &str,
    v: &'a Value<'i>,
    loose: bool,
) -> Result<(Option<String>, &'a Value<'i>), Fail> {
    let DeValue::Table(t) = v.get_ref() else {
        return Ok((None, v));
    };
    let keys: Vec<&str> = t.iter().map(|(k, _)| k.get_ref().as_ref()).collect();
    let shaped = keys.contains(&"value") && keys.iter().all(|k| NAMED_KEYS.contains(k));
    if loose && !shaped {
        return Ok((None, v));
    }
    let sec = Section::new(field.to_owned(), t, Some(v.span()), NAMED_KEYS)?;
    let value = sec.get("value").ok_or_else(|| {
        sec.missing(
            "value",
            "the checked value; a named check is written { value = …, name = \"…\" }",
        )
    })?;
    let name = super::requests::display_name(&sec)?;
    Ok((name, value))
}

fn wrong(field: &str, v: &Value<'_>, expected: &str) -> Fail {
    Fail::new(
        field,
        format!("expected {expected}, got {}", describe(v.get_ref())),
    )
    .at(Some(v.span()))
}

/// One value, or an array of them.
fn one_or_many<'a, 'i>(v: &'a Value<'i>) -> Vec<&'a Value<'i>> {
    match v.get_ref() {
        DeValue::Array(a) => a.iter().collect(),
        _ => vec![v],
    }
}

/// The checks written as one value: everything but `header` and `json`.
fn scalar_rule(key: &str, field: &str, v: &Value<'_>) -> Result<Rule, Fail> {
    let string = |expected: &str| match v.get_ref() {
        DeValue::String(s) => Ok(s.to_string()),
        _ => Err(wrong(field, v, expected)),
    };
    Ok(match key {
        "status" => {
            let mut list = Vec::new();
            for item in one_or_many(v) {
                let parsed = match item.get_ref() {
                    DeValue::Integer(i) => int_value(i)
                        .and_then(|n| StatusMatch::parse(&n.to_string()))
                        .filter(|m| matches!(m, StatusMatch::Code(_))),
                    DeValue::String(s) => StatusMatch::parse(s),
                    _ => None,
                };
                list.push(parsed.ok_or_else(|| wrong(field, item, STATUS))?);
            }
            Rule::Status(list)
        }
        "grpc_status" => {
            let mut list = Vec::new();
            for item in one_or_many(v) {
                let parsed = match item.get_ref() {
                    DeValue::String(s) => grpc_code(s),
                    DeValue::Integer(i) => int_value(i)
                        .filter(|n| (0..17).contains(n))
                        .map(|n| n as u32),
                    _ => None,
                };
                list.push(parsed.ok_or_else(|| wrong(field, item, GRPC))?);
            }
            Rule::GrpcStatus(list)
        }
        "max_body_bytes" => {
            const SIZE: &str = "a size in bytes such as 65536 or \"64KiB\"";
            let n = match v.get_ref() {
                DeValue::Integer(i) => int_value(i).and_then(|n| u64::try_from(n).ok()),
                DeValue::String(s) => units::parse_size(s),
                _ => None,
            };
            Rule::MaxBodyBytes(n.ok_or_else(|| wrong(field, v, SIZE))?)
        }
        "body_contains" => Rule::BodyContains(string("a string to find in the body")?),
        "body_regex" => Rule::BodyRegex(string("a regular expression (a string)")?),
        other => unreachable!("expect key {other} is listed in EXPECT_KEYS"),
    })
}

/// `header = { NAME = VALUE }`: the reply has the header with that value.
fn header(field: &str, name: &str, name_span: Range<usize>, v: &Value<'_>) -> Result<Rule, Fail> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(Fail::new(
            field,
            format!(
                "{} is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)",
                quote(name)
            ),
        )
        .at(Some(name_span)));
    }
    match v.get_ref() {
        DeValue::String(s) => Ok(Rule::Header {
            name: name.to_owned(),
            value: s.to_string(),
        }),
        _ => Err(wrong(field, v, "the header's exact value (a string)")),
    }
}

/// A TOML value as the JSON value it stands for.
fn json(field: &str, v: &Value<'_>) -> Result<serde_json::Value, Fail> {
    use serde_json::Value as J;
    Ok(match v.get_ref() {
        DeValue::String(s) => J::String(s.to_string()),
        DeValue::Boolean(b) => J::Bool(*b),
        DeValue::Integer(i) => match int_value(i) {
            Some(n) => J::from(n),
            None => {
                return Err(wrong(
                    field,
                    v,
                    "a JSON value (an integer that fits 64 bits)",
                ))
            }
        },
        DeValue::Float(f) => match serde_json::Number::from_f64(float_value(f.as_str())) {
            Some(n) => J::Number(n),
            None => return Err(wrong(field, v, "a JSON value (nan and inf are not JSON)")),
        },
        // JSON has no dates; a reply carries them as strings.
        DeValue::Datetime(d) => J::String(d.to_string()),
        DeValue::Array(a) => J::Array(
            a.iter()
                .enumerate()
                .map(|(i, item)| json(&format!("{field}[{i}]"), item))
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(t) => {
            let mut m = serde_json::Map::new();
            for (k, _, item) in entries(t) {
                m.insert(k.to_owned(), json(&join(field, k), item)?);
            }
            J::Object(m)
        }
    })
}
