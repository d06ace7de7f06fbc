//! HTTP/2 and gRPC unary calls, on the `h2` crate (hyper's HTTP/2).
//!
//! Cleartext connections use prior knowledge (h2c); `https://` negotiates
//! `h2` with ALPN. Each connection carries up to `streams_per_connection`
//! requests at once (and no more than the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`). One task per connection hands queued
//! jobs to new streams and reads their replies, which come back in any
//! order: each is a future in the connection's [`Flight`], polled when h2
//! wakes it, with no task or allocation of its own.
//!
//! A gRPC unary call is a `POST` to the method path with
//! `content-type: application/grpc` and `te: trailers`, whose body is one
//! length-prefixed message; it succeeded when the HTTP status is 200 and
//! `grpc-status` (in the trailers, or in the headers of a trailers-only
//! reply) is 0.
//!
//! A request definition with templates is rendered per request: h2 takes
//! owned values, so each templated path, header value and body is one small
//! allocation, and nothing else is rebuilt. Response checks see the reply
//! head, the body (for gRPC the message, without its 5-byte prefix, and
//! only when a check reads it) and the gRPC status.

use super::check::{self, BodyKeeper, Failure};
use super::conn::{Client, Job, Pool};
use super::deadline::Deadline;
use super::dial::{Dialer, Lease, Link};
use super::flight::Flight;
use super::net::{Connector, Io};
use super::outcome::ErrorKind;
use super::recorder::Status;
use super::render::{clean_header_value, escape_path};
use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, TE, USER_AGENT};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Uri};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::str::FromStr;
use std::task::Poll;
use tokio::time::{timeout_at, Instant};
use volley_plan::model::{url_parts, CompiledRequest};
use volley_plan::template::Context;
use volley_plan::{Checker, Target, Template};

/// Flow-control windows: large enough that a hundred streams with
/// kilobyte replies never wait for a WINDOW_UPDATE.
const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;

/// Every request definition, ready to send.
pub struct Requests {
    prepared: Vec<Prepared>,
    grpc: bool,
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
    fn request<'c>(
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

/// One HTTP/2 connection.
struct Conn {
    send: SendRequest<Bytes>,
    /// When it stops taking streams. Dropping `send` with it closes the
    /// connection gracefully: h2 lets the streams still open finish, then
    /// sends GOAWAY.
    lease: Lease,
    /// Set when the connection is gone.
    broken: Rc<Cell<bool>>,
}

async fn open(dialer: &Dialer) -> Result<Conn, String> {
    let Link { io, lease } = dialer.connect().await.map_err(|e| e.to_string())?;
    if !Connector::negotiated_h2(&io) {
        return Err("the server did not agree to HTTP/2 (ALPN h2)".into());
    }
    let (send, driver) = h2::client::Builder::new()
        .enable_push(false)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake::<Io, Bytes>(io)
        .await
        .map_err(|e| e.to_string())?;
    let broken = Rc::new(Cell::new(false));
    let broken2 = broken.clone();
    tokio::task::spawn_local(async move {
        // Runs the connection (frames in and out) until it ends; its
        // streams fail then, which frees their room.
        let _ = driver.await;
        broken2.set(true);
    });
    Ok(Conn {
        send,
        lease,
        broken,
    })
}

impl Client for Requests {
    async fn connection(&self, pool: &Rc<Pool>) {
        connection(pool, self).await
    }
}

/// One connection task: opens streams for queued jobs while it has room,
/// until the pool stops, and reads their replies itself (see
/// [`Flight`]): `streams_per_connection` replies at most are in flight on
/// it, counting those still finishing on a connection it has replaced.
async fn connection(sh: &Rc<Pool>, requests: &Requests) {
    let flight = RefCell::new(Flight::new(sh.per_conn));
    let room = || {
        std::future::poll_fn(|_| {
            // The task is woken whenever a reply finishes (`Flight::poll`
            // below runs first), so this is looked at again then.
            if flight.borrow().has_room() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    };
    let intake = async {
        let mut conn: Option<Conn> = None;
        let timer = sh.deadlines.slot();
        loop {
            // Take a job only with room for it, so a full connection is
            // not idle and the pool opens another.
            room().await;
            let Some(job) = sh.next_job().await else {
                break;
            };
            let now = Instant::now();
            if sh.expired(&job, now) {
                continue;
            }
            let deadline = now + sh.timeout;
            // A worn connection (`load.max_requests_per_connection`,
            // `connection_lifetime`, its address gone) opens no new stream:
            // it is dropped here, its streams finish on their own, and a new
            // one takes this request.
            if conn.as_ref().is_some_and(|c| c.lease.worn(now)) {
                conn = None;
            }
            // A connection the server closed (GOAWAY after its request
            // limit, idle timeout) is replaced once, as HTTP clients do.
            let mut attempts = 0;
            loop {
                attempts += 1;
                if conn.as_ref().is_some_and(|c| c.broken.get()) {
                    conn = None;
                }
                if conn.is_none() {
                    match timeout_at(deadline, open(&sh.dialer)).await {
                        Ok(Ok(c)) => conn = Some(c),
                        Ok(Err(_)) | Err(_) => {
                            sh.fail(&job, ErrorKind::Connect);
                            break;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else { break };
                match start(sh, requests, c, &job, deadline, &timer).await {
                    Ok((response, sent)) => {
                        let mut reply = stream(sh, job, response, deadline, sent, requests.grpc);
                        // There was room when the job was taken, and only
                        // this loop adds to the flight.
                        loop {
                            let pushed = flight.borrow_mut().push(reply);
                            match pushed {
                                Ok(_) => break,
                                Err(r) => reply = r,
                            }
                            room().await;
                        }
                        // That was its last request: let it go now rather
                        // than wait for room on it.
                        if conn.as_ref().is_some_and(|c| c.lease.worn(now)) {
                            conn = None;
                        }
                        break;
                    }
                    Err(Started::Timeout) => {
                        sh.fail(&job, ErrorKind::Timeout);
                        break;
                    }
                    Err(Started::Unsendable) => {
                        sh.fail(&job, ErrorKind::Protocol);
                        break;
                    }
                    Err(Started::Closed(_)) if attempts < 2 => conn = None,
                    Err(Started::Closed(kind)) => {
                        conn = None;
                        sh.fail(&job, kind);
                        break;
                    }
                }
            }
        }
        sh.deadlines.put(timer);
    };
    // The replies and the intake share this task: each wake-up first polls
    // the replies that were woken, then the intake.
    let mut intake = pin!(intake);
    let mut taking = true;
    std::future::poll_fn(|cx| {
        flight.borrow_mut().poll(cx);
        if taking && intake.as_mut().poll(cx).is_ready() {
            taking = false;
        }
        // The replies still in flight finish before the task ends.
        if !taking && flight.borrow().is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

enum Started {
    /// No stream became available before the request's deadline.
    Timeout,
    /// The rendered request is not a valid HTTP/2 request (a path past
    /// 64 KiB): it fails as `protocol` without being sent.
    Unsendable,
    /// The connection cannot take streams any more.
    Closed(ErrorKind),
}

/// Opens a stream for `job` and sends the request: its reply, and when it
/// was sent.
async fn start(
    sh: &Pool,
    requests: &Requests,
    c: &mut Conn,
    job: &Job,
    deadline: Instant,
    timer: &Deadline,
) -> Result<(ResponseFuture, Instant), Started> {
    // The server's stream limit may be below ours.
    let ready = std::future::poll_fn(|cx| c.send.poll_ready(cx));
    match timer.run(&sh.deadlines, deadline, ready).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(Started::Closed(kind_of(&e))),
        Err(_) => return Err(Started::Timeout),
    }
    let Some((request, body)) = requests.request(job.tag.req, || sh.renderer.context(job)) else {
        // Not a request at all: it never goes on the wire.
        return Err(Started::Unsendable);
    };
    let (response, mut stream) = c
        .send
        .send_request(request, body.is_empty())
        .map_err(|e| Started::Closed(kind_of(&e)))?;
    if !body.is_empty() {
        // h2 queues what the flow-control window does not take yet.
        stream
            .send_data(body, true)
            .map_err(|e| Started::Closed(kind_of(&e)))?;
    }
    let sent = Instant::now();
    sh.rec
        .borrow_mut()
        .sent(job.tag, sent.saturating_duration_since(job.sched));
    c.lease.take();
    Ok((response, sent))
}

/// One stream's reply, read and recorded; it runs in the connection's
/// [`Flight`].
async fn stream(
    sh: &Pool,
    job: Job,
    response: ResponseFuture,
    deadline: Instant,
    sent: Instant,
    grpc: bool,
) {
    let timer = sh.deadlines.slot();
    let checker = sh.checker(job.tag.req);
    let outcome = timer
        .run(&sh.deadlines, deadline, reply(response, grpc, checker))
        .await;
    sh.deadlines.put(timer);
    let now = Instant::now();
    match outcome {
        Ok(Ok(verdict)) => sh.complete(&job, verdict, now, sent),
        Ok(Err(kind)) => sh.fail(&job, kind),
        // Dropping the reply resets the stream (RST_STREAM CANCEL).
        Err(_elapsed) => sh.fail(&job, ErrorKind::Timeout),
    }
}

/// Reads a whole reply and judges it: `Err` when it broke off or broke
/// the protocol, else the verdict on the complete reply.
async fn reply(
    response: ResponseFuture,
    grpc: bool,
    checker: Option<&Checker>,
) -> Result<Result<(), Failure>, ErrorKind> {
    let fail = |e: h2::Error| kind_of(&e);
    let response = response.await.map_err(fail)?;
    let status = response.status().as_u16();
    let (parts, mut body) = response.into_parts();
    // A trailers-only gRPC reply carries grpc-status in its headers.
    let early = grpc_status(&parts.headers);
    let mut kept = match checker {
        Some(c) if check::wants_body(checker) => {
            let mut k = BodyKeeper::default();
            k.start(c.needs_body());
            Some(k)
        }
        _ => None,
    };
    // gRPC checks read the message, not its 5-byte prefix.
    let mut prefix = if grpc { 5 } else { 0 };
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(fail)?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if let Some(k) = kept.as_mut() {
            let skip = prefix.min(chunk.len());
            prefix -= skip;
            k.take(&chunk[skip..]);
        }
    }
    // The checks walk the headers once per header check, which h2's
    // iterator cannot do (it is not `Clone`): a list, only when needed.
    let header_list: Vec<(&[u8], &[u8])> = if checker.is_some_and(|c| c.has_headers()) {
        parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
            .collect()
    } else {
        Vec::new()
    };
    let headers = header_list.iter().copied();
    let body_verdict = |kept: &Option<BodyKeeper>| match (checker, kept) {
        (Some(c), Some(k)) => k.judge(c).map_err(Failure::Check),
        _ => Ok(()),
    };
    if !grpc {
        return Ok(check::http_head(checker, status, headers).and_then(|()| body_verdict(&kept)));
    }
    match checker.and_then(|c| c.status(status)) {
        Some(Err(i)) => return Ok(Err(Failure::Check(i))),
        Some(Ok(())) => {}
        None if status != 200 => return Ok(Err(Failure::Status(Status::Http(status)))),
        None => {}
    }
    let code = match early {
        Some(code) => Some(code),
        None => body
            .trailers()
            .await
            .map_err(fail)?
            .and_then(|t| grpc_status(&t)),
    };
    let Some(Ok(code)) = code else {
        return Err(ErrorKind::Protocol);
    };
    match checker.and_then(|c| c.grpc_status(code)) {
        Some(Err(i)) => return Ok(Err(Failure::Check(i))),
        Some(Ok(())) => {}
        None if code != 0 => return Ok(Err(Failure::Status(Status::Grpc(code)))),
        None => {}
    }
    if let Some(c) = checker.filter(|c| c.has_headers()) {
        if let Err(i) = c.headers(headers) {
            return Ok(Err(Failure::Check(i)));
        }
    }
    Ok(body_verdict(&kept))
}

/// `grpc-status` of a header block: `None` when absent, `Err` when not a
/// number.
fn grpc_status(headers: &HeaderMap) -> Option<Result<u32, ()>> {
    headers.get("grpc-status").map(|v| {
        v.to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or(())
    })
}

/// Which error kind an h2 failure is: the connection broke or the server
/// refused or reset the stream (`reset`), or the server broke the protocol
/// and our side of h2 said so (`protocol`).
fn kind_of(e: &h2::Error) -> ErrorKind {
    if e.is_io() || e.is_remote() || e.is_go_away() {
        ErrorKind::Reset
    } else if e.is_reset() {
        match e.reason() {
            Some(h2::Reason::PROTOCOL_ERROR)
            | Some(h2::Reason::FRAME_SIZE_ERROR)
            | Some(h2::Reason::COMPRESSION_ERROR) => ErrorKind::Protocol,
            _ => ErrorKind::Reset,
        }
    } else {
        ErrorKind::Protocol
    }
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

    #[test]
    fn grpc_status_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(grpc_status(&h), None);
        h.insert("grpc-status", HeaderValue::from_static("14"));
        assert_eq!(grpc_status(&h), Some(Ok(14)));
        h.insert("grpc-status", HeaderValue::from_static("x"));
        assert_eq!(grpc_status(&h), Some(Err(())));
    }
}
