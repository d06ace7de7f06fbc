//! The `[target]` table: where requests go (a URL, or the built-in target
//! and its settings), the protocol, the timeout and TLS. What is sent, the
//! single request of `[target]` or `[[requests]]`, is `requests`'s part;
//! what the target's headers and `expect` say is shared by every request.
//!
//! The URL is not a template (its host decides where connections go);
//! templated parts belong in `path`, `headers` and `body`.

use std::time::Duration;

use toml::de::DeValue;
use volley_plan::model::{url_parts, validate_url, MAX_BODY, MAX_RPS};
use volley_plan::{Protocol, Target, Tls};

use super::error::Fail;
use super::expect::expect;
use super::files::Files;
use super::raw::Section;
use super::requests::{self, Shared};
use super::template::Templates;
use super::units::{describe, quote, show};
use super::{builtin_placeholder_url, BuiltinTarget, ScenarioTarget};

const TARGET_KEYS: &[&str] = &[
    "url",
    "builtin",
    "protocol",
    "timeout",
    "headers",
    "tls_ca",
    "insecure_skip_verify",
    "method",
    "path",
    "body",
    "body_size",
    "body_file",
    "expect",
];
const BUILTIN_KEYS: &[&str] = &["delay", "error_rate", "body_size", "capacity"];
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const MAX_DELAY: Duration = Duration::from_secs(3600);
const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";

/// Reads `[target]` (and, through it, the requests) from the root table.
pub(super) fn target(
    root: &Section<'_, '_>,
    files: &mut Files<'_>,
    templates: &mut Templates<'_>,
) -> Result<(Target, ScenarioTarget), Fail> {
    let sec = root.table("target", TARGET_KEYS)?.ok_or_else(|| {
        Fail::new(
            "target",
            "missing; expected a [target] table with `url = \"http://host:port/\"` or `builtin = true`",
        )
    })?;

    let protocol = protocol(&sec)?;
    let example = match protocol {
        Protocol::Tcp => "`url = \"tcp://host:port\"`",
        _ => "`url = \"http://host:port/\"`",
    };
    let builtin = builtin(&sec, protocol)?;
    let url = sec.str("url")?;
    let (url, kind) = match (url, builtin) {
        (Some(_), Some(_)) => {
            return Err(sec.fail(
                "builtin",
                "cannot be combined with `url`; use `url` for an external target or `builtin` for the built-in one",
            ))
        }
        (Some(url), None) => {
            check_url(&sec, protocol, url)?;
            (url.to_owned(), ScenarioTarget::Url)
        }
        (None, Some(b)) => (
            builtin_placeholder_url(protocol).to_owned(),
            ScenarioTarget::Builtin(b),
        ),
        (None, None) if sec.has("builtin") => {
            return Err(sec.fail(
                "builtin",
                format!("is false and no `url` is set; set {example} or `builtin = true`"),
            ))
        }
        (None, None) => {
            return Err(Fail::new(
                "target",
                format!("expected {example} or `builtin = true`"),
            )
            .at(sec.span.clone()))
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

    let builtin = matches!(kind, ScenarioTarget::Builtin(_));
    let tls = tls(&sec, &url, builtin, files)?;
    let headers = requests::headers(&sec, protocol, templates)?;
    let shared = Shared {
        protocol,
        path: url_parts(&url).map_or_else(|| "/".to_owned(), |p| p.path),
        headers: &headers,
        expect: expect(&sec, protocol)?,
    };
    let requests = requests::requests(root, &sec, &shared, files, templates)?;

    let target = Target {
        url,
        protocol,
        timeout,
        requests,
        tls,
    };
    Ok((target, kind))
}

fn protocol(sec: &Section<'_, '_>) -> Result<Protocol, Fail> {
    let Some(p) = sec.str("protocol")? else {
        return Ok(Protocol::Http1);
    };
    Protocol::parse(p).ok_or_else(|| {
        let hint = match Protocol::parse(&p.to_ascii_lowercase()) {
            Some(_) => " (protocols are written in lower case)",
            None => "",
        };
        sec.fail(
            "protocol",
            format!(
                "expected one of \"http1\", \"http2\", \"grpc\", \"tcp\", got {}{hint}",
                quote(p)
            ),
        )
    })
}

fn check_url(sec: &Section<'_, '_>, protocol: Protocol, url: &str) -> Result<(), Fail> {
    if volley_plan::template::is_template(url.as_bytes()) {
        let hint = match protocol {
            Protocol::Tcp => "",
            _ => " (write the base URL here and the templated part in `path`)",
        };
        return Err(sec.fail(
            "url",
            format!("expected a URL without templates{hint}, got {}", quote(url)),
        ));
    }
    validate_url(protocol, url).map_err(|m| {
        let hint = if protocol != Protocol::Tcp && url.starts_with("tcp://") {
            " (a tcp:// URL needs `protocol = \"tcp\"`)"
        } else {
            ""
        };
        sec.fail("url", format!("{m}{hint}"))
    })?;
    if protocol == Protocol::Grpc && url_parts(url).is_some_and(|p| p.path != "/") {
        return Err(sec.fail(
            "url",
            format!(
                "expected http://host:port or https://host:port with no path for protocol \"grpc\", \
                 got {}; the method path (\"/package.Service/Method\") goes in `method`",
                quote(url)
            ),
        ));
    }
    Ok(())
}

/// `tls_ca` and `insecure_skip_verify`, which only an `https://` URL uses.
fn tls(
    sec: &Section<'_, '_>,
    url: &str,
    builtin: bool,
    files: &mut Files<'_>,
) -> Result<Tls, Fail> {
    let https = url.starts_with("https://");
    let why_not = if builtin {
        "the built-in target has no TLS"
    } else {
        "the target's URL is not https://"
    };
    let insecure_skip_verify = sec.bool("insecure_skip_verify")?.unwrap_or(false);
    if insecure_skip_verify && !https {
        return Err(sec.fail(
            "insecure_skip_verify",
            format!("applies only to https:// URLs and {why_not}; remove it"),
        ));
    }
    if sec.has("tls_ca") && !https {
        return Err(sec.fail(
            "tls_ca",
            format!("applies only to https:// URLs and {why_not}; remove it"),
        ));
    }
    let ca_pem = match files.read(sec, "tls_ca")? {
        None => None,
        Some(bytes) => Some(pem(sec, bytes)?),
    };
    Ok(Tls {
        ca_pem,
        insecure_skip_verify,
    })
}

/// A PEM file with at least one certificate (parsed for real by the worker).
fn pem(sec: &Section<'_, '_>, bytes: Vec<u8>) -> Result<String, Fail> {
    let name = sec.str("tls_ca")?.unwrap_or_default();
    let expected = format!("expected a PEM file with at least one {PEM_BEGIN} block");
    let text = String::from_utf8(bytes).map_err(|_| {
        sec.fail(
            "tls_ca",
            format!(
                "{expected}; {} is not text (for a DER certificate, convert it with \
                 `openssl x509 -inform der -in ca.der -out ca.pem`)",
                quote(name)
            ),
        )
    })?;
    let complete = text
        .find(PEM_BEGIN)
        .is_some_and(|at| text[at + PEM_BEGIN.len()..].contains(PEM_END));
    if !complete {
        return Err(sec.fail("tls_ca", format!("{expected}; {} has none", quote(name))));
    }
    Ok(text)
}

/// `builtin = true`, `builtin = false`, or a table of built-in settings.
/// `Ok(None)` when absent or false.
fn builtin(sec: &Section<'_, '_>, protocol: Protocol) -> Result<Option<BuiltinTarget>, Fail> {
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
            builtin_settings(&b, protocol).map(Some)
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

fn builtin_settings(b: &Section<'_, '_>, protocol: Protocol) -> Result<BuiltinTarget, Fail> {
    let defaults = BuiltinTarget::default();
    if matches!(protocol, Protocol::Grpc | Protocol::Tcp) && b.has("body_size") {
        return Err(b.fail(
            "body_size",
            format!(
                "for protocol {:?} the built-in target echoes each request's body; remove it",
                protocol.as_str()
            ),
        ));
    }
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
