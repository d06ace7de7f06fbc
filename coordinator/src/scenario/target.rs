//! The `[target]` table: where requests go and what they look like, or the
//! settings of the built-in target when the scenario asks for it.

use std::time::Duration;

use toml::de::DeValue;
use volley_plan::model::{validate_http_url, MAX_BODY, MAX_RPS};
use volley_plan::{Protocol, Target};

use super::error::Fail;
use super::raw::{join, Section};
use super::units::{describe, quote, show};
use super::{BuiltinTarget, ScenarioTarget, BUILTIN_PLACEHOLDER_URL};

const TARGET_KEYS: &[&str] = &[
    "url",
    "builtin",
    "protocol",
    "method",
    "body_size",
    "timeout",
    "headers",
];
const BUILTIN_KEYS: &[&str] = &["delay", "error_rate", "body_size", "capacity"];

/// Protocols the design names but the traffic engine does not speak yet.
const PLANNED_PROTOCOLS: &[&str] = &["http2", "grpc", "tcp"];
/// Headers Volley computes itself from the generated body.
const RESERVED_HEADERS: &[&str] = &["content-length", "transfer-encoding"];
const MAX_HEADERS: usize = 100;
const MAX_HEADER_VALUE: usize = 8 * 1024;
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const MAX_DELAY: Duration = Duration::from_secs(3600);

/// Reads `[target]` from the root table.
pub(super) fn target(root: &Section<'_, '_>) -> Result<(Target, ScenarioTarget), Fail> {
    let sec = root.table("target", TARGET_KEYS)?.ok_or_else(|| {
        Fail::new(
            "target",
            "missing; expected a [target] table with `url = \"http://host:port/\"` or `builtin = true`",
        )
    })?;

    let builtin = builtin(&sec)?;
    let url = sec.str("url")?;
    let (url, kind) = match (url, builtin) {
        (Some(_), Some(_)) => {
            return Err(sec.fail(
                "builtin",
                "cannot be combined with `url`; use `url` for an external target or `builtin` for the built-in one",
            ))
        }
        (Some(url), None) => {
            validate_http_url(url).map_err(|m| sec.fail("url", m))?;
            (url.to_owned(), ScenarioTarget::Url)
        }
        (None, Some(b)) => (BUILTIN_PLACEHOLDER_URL.to_owned(), ScenarioTarget::Builtin(b)),
        (None, None) if sec.has("builtin") => {
            return Err(sec.fail(
                "builtin",
                "is false and no `url` is set; set `url = \"http://host:port/\"` or `builtin = true`",
            ))
        }
        (None, None) => {
            return Err(Fail::new(
                "target",
                "expected `url = \"http://host:port/\"` or `builtin = true`",
            )
            .at(sec.span.clone()))
        }
    };

    let protocol = match sec.str("protocol")? {
        None => Protocol::Http1,
        Some(p) => match Protocol::parse(p) {
            Some(p) => p,
            None if PLANNED_PROTOCOLS.contains(&p) => {
                return Err(sec.fail(
                    "protocol",
                    format!("{p:?} is not supported yet; only \"http1\" is accepted today"),
                ))
            }
            None => {
                return Err(sec.fail(
                    "protocol",
                    format!(
                        "expected one of \"http1\", \"http2\", \"grpc\", \"tcp\" (only \"http1\" is supported today), got {}",
                        quote(p)
                    ),
                ))
            }
        },
    };

    let body_size = sec.size("body_size")?.unwrap_or(0);
    if body_size > MAX_BODY {
        return Err(sec.fail(
            "body_size",
            format!("expected at most {MAX_BODY} bytes (64 MiB), got {body_size}"),
        ));
    }

    let method = match sec.str("method")? {
        None if body_size > 0 => "POST".to_owned(),
        None => "GET".to_owned(),
        Some(m) => {
            let up = m.to_ascii_uppercase();
            if up.is_empty() || up.len() > 32 || !up.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(sec.fail(
                    "method",
                    format!(
                        "expected an HTTP method such as GET or POST, got {}",
                        quote(m)
                    ),
                ));
            }
            up
        }
    };

    let timeout = sec.duration("timeout")?.unwrap_or(Duration::from_secs(5));
    if timeout < Duration::from_millis(1) || timeout > MAX_TIMEOUT {
        return Err(sec.fail(
            "timeout",
            format!(
                "expected a duration between 1ms and 1h, got {:?}",
                show(timeout)
            ),
        ));
    }

    let target = Target {
        url,
        protocol,
        method,
        body_size,
        timeout,
        headers: headers(&sec)?,
    };
    Ok((target, kind))
}

/// `builtin = true`, `builtin = false`, or a table of built-in settings.
/// `Ok(None)` when absent or false.
fn builtin(sec: &Section<'_, '_>) -> Result<Option<BuiltinTarget>, Fail> {
    let Some(v) = sec.get("builtin") else {
        return Ok(None);
    };
    match v.get_ref() {
        DeValue::Boolean(true) => Ok(Some(BuiltinTarget::default())),
        DeValue::Boolean(false) => Ok(None),
        DeValue::Table(_) => {
            let b = sec
                .table("builtin", BUILTIN_KEYS)?
                .expect("checked to be a table");
            builtin_settings(&b).map(Some)
        }
        other => Err(sec.fail(
            "builtin",
            format!(
                "expected true or a table such as {{ delay = \"10ms\", capacity = 5000 }}, got {}",
                describe(other)
            ),
        )),
    }
}

fn builtin_settings(b: &Section<'_, '_>) -> Result<BuiltinTarget, Fail> {
    let defaults = BuiltinTarget::default();
    let delay = b.duration("delay")?.unwrap_or(defaults.delay);
    if delay > MAX_DELAY {
        return Err(b.fail(
            "delay",
            format!("expected a duration of at most 1h, got {:?}", show(delay)),
        ));
    }
    const RATE: &str = "a fraction between 0 and 1 such as 0.01, or a percentage such as \"1%\"";
    let error_rate = b
        .fraction("error_rate", RATE)?
        .unwrap_or(defaults.error_rate);
    if !(0.0..=1.0).contains(&error_rate) {
        return Err(b.fail("error_rate", format!("expected {RATE}, got {error_rate}")));
    }
    let body_size = b.size("body_size")?.unwrap_or(defaults.body_size as u64);
    if body_size > MAX_BODY {
        return Err(b.fail(
            "body_size",
            format!("expected at most {MAX_BODY} bytes (64 MiB), got {body_size}"),
        ));
    }
    let capacity = b.rate("capacity")?;
    if let Some(c) = capacity {
        if !c.is_finite() || c <= 0.0 || c > MAX_RPS {
            return Err(b.fail(
                "capacity",
                format!(
                    "expected a rate above 0 and at most {MAX_RPS} requests per second, got {c}"
                ),
            ));
        }
    }
    Ok(BuiltinTarget {
        delay,
        error_rate,
        body_size: body_size as usize,
        capacity,
    })
}

/// `[target.headers]`: a table of header name → string value.
fn headers(sec: &Section<'_, '_>) -> Result<Vec<(String, String)>, Fail> {
    let Some(v) = sec.get("headers") else {
        return Ok(Vec::new());
    };
    let DeValue::Table(t) = v.get_ref() else {
        return Err(sec.fail(
            "headers",
            format!(
                "expected a table of header names to strings such as {{ \"X-Id\" = \"1\" }}, got {}",
                describe(v.get_ref())
            ),
        ));
    };
    if t.len() > MAX_HEADERS {
        return Err(sec.fail(
            "headers",
            format!("expected at most {MAX_HEADERS} headers, got {}", t.len()),
        ));
    }
    let path = sec.field("headers");
    let mut out = Vec::with_capacity(t.len());
    for (k, v) in t.iter() {
        let name: &str = k.get_ref();
        let fail = |m: String| Fail::new(join(&path, name), m).at(Some(v.span()));
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(Fail::new(
                join(&path, name),
                format!(
                    "{} is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)",
                    quote(name)
                ),
            )
            .at(Some(k.span())));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(fail(format!(
                "{name} is set by Volley from `body_size`; remove it"
            )));
        }
        let DeValue::String(value) = v.get_ref() else {
            return Err(fail(format!(
                "expected a string, got {}",
                describe(v.get_ref())
            )));
        };
        if value.len() > MAX_HEADER_VALUE {
            return Err(fail(format!(
                "expected at most {MAX_HEADER_VALUE} bytes, got {}",
                value.len()
            )));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(fail(
                "header values may not contain control characters such as CR or LF".into(),
            ));
        }
        out.push((name.to_owned(), value.to_string()));
    }
    Ok(out)
}
