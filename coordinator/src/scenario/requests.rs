//! What is sent: the single request `[target]` describes, or the weighted
//! `[[requests]]` tables. Each becomes a [`Request`] of the plan; what a
//! request may say depends on the protocol (a gRPC `method` is the method
//! path, framed TCP has neither method, path nor headers).

use toml::de::DeValue;
use volley_plan::model::{MAX_BODY, MAX_REQUESTS, MAX_WEIGHT};
use volley_plan::{Body, Protocol, Request};

use super::error::Fail;
use super::files::Files;
use super::raw::{array_table, join, Section, UniqueNames};
use super::units::{describe, quote};

const REQUEST_KEYS: &[&str] = &[
    "name",
    "weight",
    "method",
    "path",
    "headers",
    "body_size",
    "body_file",
];
/// Keys of `[target]` that describe its single request; with `[[requests]]`
/// tables each request says them itself.
const SINGLE_KEYS: &[&str] = &["method", "body_size", "body_file"];
const MAX_HEADERS: usize = 100;
const MAX_HEADER_VALUE: usize = 8 * 1024;
const MAX_NAME: usize = 128;
const GRPC_METHOD: &str = "a gRPC method path such as \"/package.Service/Method\"";

/// What every request of the target shares.
pub(super) struct Shared<'a> {
    pub protocol: Protocol,
    /// Path and query of `target.url`: the default `path`.
    pub path: String,
    /// `target.headers`, already checked.
    pub headers: &'a [(String, String)],
}

/// Where a request definition is written.
#[derive(Debug, Clone, Copy)]
enum At {
    /// The single request of `[target]`.
    Target,
    /// `requests[i]` of `n`.
    Table { i: usize, n: usize },
}

/// The plan's requests: one per `[[requests]]` table, or the single one
/// `target` describes when there are none.
pub(super) fn requests(
    root: &Section<'_, '_>,
    target: &Section<'_, '_>,
    shared: &Shared<'_>,
    files: &mut Files<'_>,
) -> Result<Vec<Request>, Fail> {
    const EXPECTED: &str = "an array of tables written as [[requests]]";
    let Some(items) = root.array("requests", EXPECTED)? else {
        return Ok(vec![request(target, At::Target, shared, files)?]);
    };
    if let Some(key) = SINGLE_KEYS.iter().find(|k| target.has(k)) {
        return Err(target.fail(
            key,
            format!(
                "cannot be set in [target] when there are [[requests]] tables; \
                 move `{key}` into each [[requests]] table"
            ),
        ));
    }
    if items.is_empty() {
        return Err(root.fail("requests", "expected at least one [[requests]] table"));
    }
    if items.len() > MAX_REQUESTS {
        return Err(root.fail(
            "requests",
            format!(
                "expected at most {MAX_REQUESTS} [[requests]] tables, got {}",
                items.len()
            ),
        ));
    }

    let mut out = Vec::with_capacity(items.len());
    let mut names = UniqueNames::default();
    for (i, item) in items.iter().enumerate() {
        let sec = array_table("requests", i, item, REQUEST_KEYS)?;
        let at = At::Table { i, n: items.len() };
        let r = request(&sec, at, shared, files)?;
        names.check(&sec, "requests", "request", i, &r.name)?;
        out.push(r);
    }
    Ok(out)
}

/// One request definition, from `[target]` or a `[[requests]]` table.
fn request(
    sec: &Section<'_, '_>,
    at: At,
    shared: &Shared<'_>,
    files: &mut Files<'_>,
) -> Result<Request, Fail> {
    let protocol = shared.protocol;
    let body = body(sec, files)?;
    let (method, path) = match protocol {
        Protocol::Tcp => {
            if let Some(key) = ["method", "path"].into_iter().find(|k| sec.has(k)) {
                return Err(sec.fail(
                    key,
                    format!(
                        "protocol \"tcp\" sends bare length-prefixed frames, which have no \
                         {key}; remove it"
                    ),
                ));
            }
            (String::new(), String::new())
        }
        Protocol::Grpc => {
            if sec.has("path") {
                return Err(sec.fail(
                    "path",
                    "for protocol \"grpc\" the method path goes in `method` \
                     (\"/package.Service/Method\"); remove `path`",
                ));
            }
            let m = sec
                .str("method")?
                .ok_or_else(|| sec.missing("method", GRPC_METHOD))?;
            grpc_method(sec, m)?;
            ("POST".to_owned(), m.to_owned())
        }
        Protocol::Http1 | Protocol::Http2 => {
            let method = http_method(sec, &body)?;
            let path = match sec.str("path")? {
                Some(p) => http_path(sec, p)?,
                None => shared.path.clone(),
            };
            (method, path)
        }
    };

    let weight = match sec.uint("weight")? {
        None => 1,
        Some(w) => match u32::try_from(w) {
            Ok(w) if (1..=MAX_WEIGHT).contains(&w) => w,
            _ => {
                return Err(sec.fail(
                    "weight",
                    format!("expected an integer between 1 and {MAX_WEIGHT}, got {w}"),
                ))
            }
        },
    };

    let headers = match at {
        At::Target => shared.headers.to_vec(),
        At::Table { .. } => merge(shared.headers, headers(sec, protocol)?),
    };

    let name = match sec.str("name")? {
        Some(n) if valid_name(n) => n.to_owned(),
        Some(n) => {
            return Err(sec.fail(
                "name",
                format!(
                    "expected 1 to {MAX_NAME} characters with no control characters, got {}",
                    quote(n)
                ),
            ))
        }
        None => match protocol {
            Protocol::Tcp => match at {
                At::Table { i, n } if n > 1 => format!("message {}", i + 1),
                _ => "message".to_owned(),
            },
            Protocol::Grpc => path.clone(),
            Protocol::Http1 | Protocol::Http2 => format!("{method} {path}"),
        },
    };

    Ok(Request {
        name,
        weight,
        method,
        path,
        headers,
        body,
        expect: volley_plan::Expect::default(),
    })
}

fn valid_name(n: &str) -> bool {
    !n.trim().is_empty() && n.chars().count() <= MAX_NAME && !n.chars().any(char::is_control)
}

/// `body_size` generated bytes, or the exact bytes of `body_file`.
fn body(sec: &Section<'_, '_>, files: &mut Files<'_>) -> Result<Body, Fail> {
    let size = sec.size("body_size")?;
    if sec.has("body_file") {
        if size.is_some() {
            return Err(sec.fail(
                "body_file",
                "cannot be combined with `body_size`; use `body_size` for generated bytes or \
                 `body_file` for the exact bytes of a file",
            ));
        }
        if let Some(bytes) = files.read(sec, "body_file")? {
            return Ok(Body::Bytes(bytes));
        }
    }
    let n = size.unwrap_or(0);
    if n > MAX_BODY {
        return Err(sec.fail(
            "body_size",
            format!("expected at most {MAX_BODY} bytes (64 MiB), got {n}"),
        ));
    }
    Ok(Body::Generated(n))
}

/// An HTTP method, upper-cased; `GET` by default, `POST` with a body.
fn http_method(sec: &Section<'_, '_>, body: &Body) -> Result<String, Fail> {
    let Some(m) = sec.str("method")? else {
        return Ok(if body.is_empty() { "GET" } else { "POST" }.to_owned());
    };
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
    Ok(up)
}

/// A request path: `/`, then no spaces or control characters.
fn http_path(sec: &Section<'_, '_>, p: &str) -> Result<String, Fail> {
    let ok = p.starts_with('/') && !p.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'#');
    if !ok {
        return Err(sec.fail(
            "path",
            format!(
                "expected a path starting with / such as \"/items?id=1\", without spaces or #, got {}",
                quote(p)
            ),
        ));
    }
    Ok(p.to_owned())
}

/// `/package.Service/Method`: two non-empty parts.
fn grpc_method(sec: &Section<'_, '_>, m: &str) -> Result<(), Fail> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_graphic() && !b"/?#%".contains(&b))
    };
    let ok = match m.strip_prefix('/').and_then(|r| r.split_once('/')) {
        Some((service, method)) => part_ok(service) && part_ok(method),
        None => false,
    };
    if ok {
        return Ok(());
    }
    let hint = if m.contains('/') {
        ""
    } else {
        " (for protocol \"grpc\", `method` is the full method path, not an HTTP method)"
    };
    Err(sec.fail(
        "method",
        format!("expected {GRPC_METHOD}, got {}{hint}", quote(m)),
    ))
}

/// `target.headers` with a request's own on top: a request's value wins for
/// the same name, compared case-insensitively.
fn merge(shared: &[(String, String)], own: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = shared
        .iter()
        .filter(|(n, _)| !own.iter().any(|(o, _)| o.eq_ignore_ascii_case(n)))
        .cloned()
        .collect();
    out.extend(own);
    out
}

/// A `headers` table of header name → string value (gRPC metadata for
/// protocol "grpc"), checked against what the protocol lets a user set.
pub(super) fn headers(
    sec: &Section<'_, '_>,
    protocol: Protocol,
) -> Result<Vec<(String, String)>, Fail> {
    let Some(v) = sec.get("headers") else {
        return Ok(Vec::new());
    };
    if protocol == Protocol::Tcp {
        return Err(sec.fail(
            "headers",
            "protocol \"tcp\" sends bare length-prefixed frames, which have no headers; remove it",
        ));
    }
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
        let DeValue::String(value) = v.get_ref() else {
            return Err(fail(format!(
                "expected a string, got {}",
                describe(v.get_ref())
            )));
        };
        if let Some(why) = refused_header(&name.to_ascii_lowercase(), value, protocol) {
            return Err(fail(format!("{name} {why}")));
        }
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

/// Why a header (lower-cased name) may not be set, when it may not.
fn refused_header(lower: &str, value: &str, protocol: Protocol) -> Option<&'static str> {
    const BODY: &str = "is set by Volley from the body (`body_size` or `body_file`); remove it";
    const CONNECTION: &str = "is a connection-specific header, which HTTP/2 forbids; remove it";
    const GRPC: &str = "is set by Volley for gRPC calls; remove it";
    const GRPC_RESERVED: &str = "is reserved by gRPC (names starting with grpc- belong to the \
                                 protocol; a call's deadline is `target.timeout`); remove it";
    use Protocol::{Grpc, Http1, Http2};
    match (lower, protocol) {
        ("content-length", _) | ("transfer-encoding", Http1) => Some(BODY),
        ("content-type" | "te", Grpc) => Some(GRPC),
        (l, Grpc) if l.starts_with("grpc-") => Some(GRPC_RESERVED),
        ("te", Http2) if !value.trim().eq_ignore_ascii_case("trailers") => {
            Some("may only be \"trailers\" in HTTP/2; remove it")
        }
        (
            "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade",
            Http2 | Grpc,
        ) => Some(CONNECTION),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn request_headers_win_case_insensitively() {
        let shared = h(&[("X-Tenant", "a"), ("Accept", "*/*")]);
        let merged = merge(
            &shared,
            h(&[("accept", "application/json"), ("X-New", "1")]),
        );
        assert_eq!(
            merged,
            h(&[
                ("X-Tenant", "a"),
                ("accept", "application/json"),
                ("X-New", "1")
            ])
        );
        assert_eq!(merge(&shared, Vec::new()), shared);
    }

    #[test]
    fn refused_headers_depend_on_the_protocol() {
        use Protocol::*;
        assert!(refused_header("content-length", "", Http1).is_some());
        assert!(refused_header("transfer-encoding", "", Http1).is_some());
        assert!(refused_header("connection", "close", Http1).is_none());
        assert!(refused_header("connection", "close", Http2).is_some());
        assert!(refused_header("te", "trailers", Http2).is_none());
        assert!(refused_header("te", "gzip", Http2).is_some());
        assert!(refused_header("te", "trailers", Grpc).is_some());
        assert!(refused_header("content-type", "x", Http2).is_none());
        assert!(refused_header("content-type", "x", Grpc).is_some());
        assert!(refused_header("grpc-timeout", "1S", Grpc).is_some());
        assert!(refused_header("grpc-timeout", "1S", Http2).is_none());
        assert!(refused_header("authorization", "x", Grpc).is_none());
    }
}
