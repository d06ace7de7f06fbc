//! HTTP/2 and gRPC requests, prepared once per run and rendered per
//! request: h2 takes owned values, so each templated path, header value and
//! body is one small allocation, and nothing else is rebuilt.

use crate::engine::render::{clean_header_value, escape_path};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, TE, USER_AGENT};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Uri};
use std::str::FromStr;
use volley_plan::model::{url_parts, CompiledRequest};
use volley_plan::template::Context;
use volley_plan::{Target, Template};

/// Every request definition, ready to send.
pub struct Requests {
    prepared: Vec<Prepared>,
    pub(super) grpc: bool,
}

struct Prepared {
    method: Method,
    uri: Uri,
    /// The constant headers (templated ones are appended per request).
    headers: HeaderMap,
    /// The body (for gRPC already framed); cloning `Bytes` is a reference
    /// count, not a copy.
    body: Bytes,
    /// What is rendered per request; `None` for a constant request.
    templated: Option<Box<Templated>>,
}

/// The parts of a request that depend on the arrival.
struct Templated {
    scheme: Scheme,
    authority: Authority,
    /// `None`: the path is constant (`Prepared::uri`).
    path: Option<Template>,
    headers: Vec<(HeaderName, Template)>,
    /// `None`: the body is constant (`Prepared::body`).
    body: Option<Template>,
}

impl Requests {
    /// `compiled` holds the templates of `target.requests`, in order.
    pub fn new(
        target: &Target,
        compiled: &[CompiledRequest],
        grpc: bool,
    ) -> Result<Requests, String> {
        let parts =
            url_parts(&target.url).ok_or_else(|| format!("bad target URL {:?}", target.url))?;
        let scheme = if parts.tls { "https" } else { "http" };
        let agent = HeaderValue::from_str(&format!("volley/{}", env!("CARGO_PKG_VERSION")))
            .map_err(|e| e.to_string())?;
        let prepared = target
            .requests
            .iter()
            .zip(compiled)
            .map(|(r, c)| {
                // A constant path is the rendered one (it may be `{{vars.X}}`);
                // a templated one is checked here with arrival 0's value.
                let path = match c.path.as_static() {
                    Some(p) => String::from_utf8_lossy(p).into_owned(),
                    None => "/".to_owned(),
                };
                let uri = Uri::from_str(&format!("{scheme}://{}{path}", parts.authority))
                    .map_err(|e| format!("{}: bad path {:?}: {e}", r.name, r.path))?;
                let method = Method::from_bytes(r.method.as_bytes())
                    .map_err(|e| format!("{}: bad method: {e}", r.name))?;
                let mut headers = HeaderMap::new();
                headers.insert(USER_AGENT, agent.clone());
                if grpc {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
                    headers.insert(TE, HeaderValue::from_static("trailers"));
                }
                let mut templated_headers = Vec::new();
                for (name, value) in &c.headers {
                    let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                        .map_err(|e| format!("{}: header {name}: {e}", r.name))?;
                    match value.as_static() {
                        Some(v) => {
                            let value = HeaderValue::from_bytes(v)
                                .map_err(|e| format!("{}: header {name}: {e}", r.name))?;
                            headers.append(name, value);
                        }
                        None => templated_headers.push((name, value.clone())),
                    }
                }
                let body_template = c.body.as_ref().filter(|b| b.as_static().is_none());
                let payload = match &c.body {
                    Some(b) => b.as_static().unwrap_or_default().to_vec(),
                    None => r.body.to_bytes(),
                };
                let body = if grpc {
                    let mut framed = Vec::with_capacity(5 + payload.len());
                    grpc_frame(&mut framed, |m| m.extend_from_slice(&payload))
                        .map_err(|_| format!("{}: gRPC message too large", r.name))?;
                    Bytes::from(framed)
                } else {
                    Bytes::from(payload)
                };
                let path = c.path.as_static().is_none().then(|| c.path.clone());
                let templated =
                    (path.is_some() || !templated_headers.is_empty() || body_template.is_some())
                        .then(|| {
                            Box::new(Templated {
                                scheme: uri.scheme().cloned().unwrap_or(Scheme::HTTP),
                                authority: uri
                                    .authority()
                                    .cloned()
                                    .unwrap_or_else(|| Authority::from_static("localhost")),
                                path,
                                headers: templated_headers,
                                body: body_template.cloned(),
                            })
                        });
                Ok(Prepared {
                    method,
                    uri,
                    headers,
                    body,
                    templated,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Requests { prepared, grpc })
    }

    /// The request of `req` and its body, rendered in `ctx` when it has
    /// templates (`ctx` is called only then). `None` when the rendered path
    /// is not a valid `:path` (longer than 64 KiB).
    pub(super) fn request<'c>(
        &self,
        req: u16,
        ctx: impl FnOnce() -> Context<'c>,
    ) -> Option<(Request<()>, Bytes)> {
        let p = &self.prepared[usize::from(req)];
        let mut r = Request::new(());
        *r.method_mut() = p.method.clone();
        *r.headers_mut() = p.headers.clone();
        let Some(t) = &p.templated else {
            *r.uri_mut() = p.uri.clone();
            return Some((r, p.body.clone()));
        };
        let ctx = ctx();
        *r.uri_mut() = match &t.path {
            None => p.uri.clone(),
            Some(path) => {
                let mut buf = Vec::with_capacity(64);
                path.render(&ctx, &mut buf);
                escape_path(&mut buf, 0);
                let mut parts = http::uri::Parts::default();
                parts.scheme = Some(t.scheme.clone());
                parts.authority = Some(t.authority.clone());
                parts.path_and_query =
                    Some(PathAndQuery::from_maybe_shared(Bytes::from(buf)).ok()?);
                Uri::from_parts(parts).ok()?
            }
        };
        for (name, value) in &t.headers {
            let mut buf = Vec::with_capacity(40);
            value.render(&ctx, &mut buf);
            clean_header_value(&mut buf);
            // Cleaned above, so always a valid value.
            if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(buf)) {
                r.headers_mut().append(name.clone(), v);
            }
        }
        let body = match &t.body {
            None => p.body.clone(),
            Some(body) => {
                let mut buf = Vec::with_capacity(p.body.len().max(64));
                if self.grpc {
                    grpc_frame(&mut buf, |m| body.render(&ctx, m)).ok()?;
                } else {
                    body.render(&ctx, &mut buf);
                }
                Bytes::from(buf)
            }
        };
        Some((r, body))
    }
}

/// Appends one gRPC message (written by `message`) with its 5-byte prefix:
/// uncompressed, then the length. `Err` when longer than 4 GiB.
fn grpc_frame(out: &mut Vec<u8>, message: impl FnOnce(&mut Vec<u8>)) -> Result<(), ()> {
    let at = out.len();
    out.extend_from_slice(&[0; 5]);
    message(out);
    let len = u32::try_from(out.len() - at - 5).map_err(|_| ())?;
    out[at + 1..at + 5].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::render::testing;
    use volley_plan::{Body, Protocol};
    type Request = volley_plan::Request;

    fn request(grpc: bool) -> Request {
        let mut r = Request::get(if grpc { "/echo.Echo/Say" } else { "/a?b=1" });
        if grpc {
            r.method = "POST".into();
            r.body = Body::Bytes(b"hi".to_vec());
        }
        r.headers.push(("X-Tenant".into(), "t1".into()));
        r
    }

    fn requests(url: &str, r: Request, grpc: bool) -> Requests {
        let protocol = if grpc {
            Protocol::Grpc
        } else {
            Protocol::Http2
        };
        let mut plan = testing::plan(protocol, url, vec![r]);
        plan.data = vec![testing::cities()];
        Requests::new(&plan.target, &testing::compile(&plan), grpc).unwrap()
    }

    fn sent(r: &Requests, seq: u64) -> (http::Request<()>, Bytes) {
        let data = [testing::cities()];
        r.request(0, || testing::ctx_with(seq, &data)).unwrap()
    }

    #[test]
    fn templated_requests_render_path_metadata_and_framed_message() {
        let mut r = request(true);
        r.path = "/svc.S/{{pick(\"Get\")}}".into();
        r.headers.push(("X-Seq".into(), "{{seq}}\n".into()));
        r.body = Body::Template("m{{seq}}".into());
        let r = requests("http://h:81", r, true);
        let (req, body) = sent(&r, 42);
        assert_eq!(req.uri().to_string(), "http://h:81/svc.S/Get");
        assert_eq!(req.headers()["x-tenant"], "t1");
        assert_eq!(req.headers()["x-seq"], "42 ");
        assert_eq!(req.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(&body[..], &[0, 0, 0, 0, 3, b'm', b'4', b'2'][..]);
        let (_, body) = sent(&r, 1000);
        assert_eq!(&body[..5], &[0, 0, 0, 0, 5][..]);
    }

    #[test]
    fn a_templated_http2_path_is_escaped_into_the_uri() {
        let mut r = request(false);
        r.path = "/q/{{seq}}?city={{data.cities.city}}".into();
        r.headers
            .push(("X-City".into(), "{{data.cities.city}}".into()));
        let r = requests("https://h", r, false);
        let (req, body) = sent(&r, 4);
        assert_eq!(req.uri().to_string(), "https://h/q/4?city=new%20york");
        assert!(body.is_empty());
        let (req, _) = sent(&r, 5);
        assert_eq!(req.uri().to_string(), "https://h/q/5?city=x%0D%0AEvil:%201");
        assert_eq!(req.headers()["x-city"], "x  Evil: 1");
    }

    #[test]
    fn requests_carry_scheme_authority_path_and_headers() {
        let r = requests("http://h:81/ignored", request(false), false);
        let (req, body) = sent(&r, 0);
        assert_eq!(req.uri().to_string(), "http://h:81/a?b=1");
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.headers()["x-tenant"], "t1");
        assert!(body.is_empty());
    }

    #[test]
    fn grpc_requests_are_framed_posts() {
        let r = requests("https://h", request(true), true);
        let (req, body) = sent(&r, 0);
        assert_eq!(req.uri().to_string(), "https://h/echo.Echo/Say");
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(req.headers()[TE], "trailers");
        assert_eq!(&body[..], &[0, 0, 0, 0, 2, b'h', b'i'][..]);
    }
}
