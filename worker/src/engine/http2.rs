//! HTTP/2 and gRPC unary calls, on the `h2` crate (hyper's HTTP/2).
//!
//! Cleartext connections use prior knowledge (h2c); `https://` negotiates
//! `h2` with ALPN. Each connection carries up to `streams_per_connection`
//! requests at once (and no more than the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`). One task per connection hands queued
//! jobs to new streams; each stream's reply is awaited by a small task of
//! its own, because replies come back in any order.
//!
//! A gRPC unary call is a `POST` to the method path with
//! `content-type: application/grpc` and `te: trailers`, whose body is one
//! length-prefixed message; it succeeded when the HTTP status is 200 and
//! `grpc-status` (in the trailers, or in the headers of a trailers-only
//! reply) is 0.

use super::conn::{Job, Shared, Wire};
use super::deadline::Deadline;
use super::net::{Connector, Io};
use super::outcome::ErrorKind;
use super::recorder::Status;
use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, TE, USER_AGENT};
use http::{HeaderMap, Method, Request, Uri};
use std::cell::Cell;
use std::rc::Rc;
use std::str::FromStr;
use tokio::sync::Notify;
use tokio::time::{timeout_at, Instant};
use volley_plan::model::url_parts;
use volley_plan::Target;

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
    headers: HeaderMap,
    /// The body (for gRPC already framed); cloning `Bytes` is a reference
    /// count, not a copy.
    body: Bytes,
}

impl Requests {
    pub fn new(target: &Target, grpc: bool) -> Result<Requests, String> {
        let parts =
            url_parts(&target.url).ok_or_else(|| format!("bad target URL {:?}", target.url))?;
        let scheme = if parts.tls { "https" } else { "http" };
        let agent = HeaderValue::from_str(&format!("volley/{}", env!("CARGO_PKG_VERSION")))
            .map_err(|e| e.to_string())?;
        let prepared = target
            .requests
            .iter()
            .map(|r| {
                let uri = Uri::from_str(&format!("{scheme}://{}{}", parts.authority, r.path))
                    .map_err(|e| format!("{}: bad path {:?}: {e}", r.name, r.path))?;
                let method = Method::from_bytes(r.method.as_bytes())
                    .map_err(|e| format!("{}: bad method: {e}", r.name))?;
                let mut headers = HeaderMap::new();
                headers.insert(USER_AGENT, agent.clone());
                if grpc {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
                    headers.insert(TE, HeaderValue::from_static("trailers"));
                }
                for (name, value) in &r.headers {
                    let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                        .map_err(|e| format!("{}: header {name}: {e}", r.name))?;
                    let value = HeaderValue::from_str(value)
                        .map_err(|e| format!("{}: header {name}: {e}", r.name))?;
                    headers.append(name, value);
                }
                let payload = r.body.to_bytes();
                let body = if grpc {
                    let len = u32::try_from(payload.len())
                        .map_err(|_| format!("{}: gRPC message too large", r.name))?;
                    let mut framed = Vec::with_capacity(5 + payload.len());
                    framed.push(0);
                    framed.extend_from_slice(&len.to_be_bytes());
                    framed.extend_from_slice(&payload);
                    Bytes::from(framed)
                } else {
                    Bytes::from(payload)
                };
                Ok(Prepared {
                    method,
                    uri,
                    headers,
                    body,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Requests { prepared, grpc })
    }

    fn request(&self, req: u16) -> (Request<()>, &Bytes) {
        let p = &self.prepared[usize::from(req)];
        let mut r = Request::new(());
        *r.method_mut() = p.method.clone();
        *r.uri_mut() = p.uri.clone();
        *r.headers_mut() = p.headers.clone();
        (r, &p.body)
    }
}

/// One HTTP/2 connection and how busy it is.
struct Conn {
    send: SendRequest<Bytes>,
    /// Streams of ours in flight.
    active: Rc<Cell<usize>>,
    /// Signalled when a stream ends or the connection breaks.
    room: Rc<Notify>,
    /// Set when the connection is gone.
    broken: Rc<Cell<bool>>,
}

async fn open(connector: &Connector) -> Result<Conn, String> {
    let io = connector.connect().await.map_err(|e| e.to_string())?;
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
    let room = Rc::new(Notify::new());
    let broken = Rc::new(Cell::new(false));
    let (room2, broken2) = (room.clone(), broken.clone());
    tokio::task::spawn_local(async move {
        // Runs the connection (frames in and out) until it ends.
        let _ = driver.await;
        broken2.set(true);
        room2.notify_one();
    });
    Ok(Conn {
        send,
        active: Rc::new(Cell::new(0)),
        room,
        broken,
    })
}

/// One connection: opens streams for queued jobs while it has room, until
/// the pool stops.
pub async fn connection(sh: &Rc<Shared>) {
    let Wire::Http2(requests) = &sh.wire else {
        return;
    };
    let mut conn: Option<Conn> = None;
    let timer = sh.deadlines.slot();
    loop {
        // Take a job only with room for it, so a full connection is not
        // idle and the pool opens another.
        if let Some(c) = &conn {
            while c.active.get() >= sh.per_conn && !c.broken.get() {
                c.room.notified().await;
            }
        }
        let Some(job) = sh.next_job().await else {
            break;
        };
        let now = Instant::now();
        if sh.expired(&job, now) {
            continue;
        }
        let deadline = now + sh.timeout;
        // A connection the server closed (GOAWAY after its request limit,
        // idle timeout) is replaced once, as HTTP clients do.
        let mut attempts = 0;
        loop {
            attempts += 1;
            if conn.as_ref().is_some_and(|c| c.broken.get()) {
                conn = None;
            }
            if conn.is_none() {
                match timeout_at(deadline, open(&sh.connector)).await {
                    Ok(Ok(c)) => conn = Some(c),
                    Ok(Err(_)) | Err(_) => {
                        sh.fail(&job, ErrorKind::Connect);
                        break;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { break };
            match start(sh, requests, c, job, deadline, &timer).await {
                Ok(()) => break,
                Err(Started::Timeout) => {
                    sh.fail(&job, ErrorKind::Timeout);
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
    // Let the replies still in flight finish before the connection closes
    // (they hold their own handles to it).
}

enum Started {
    /// No stream became available before the request's deadline.
    Timeout,
    /// The connection cannot take streams any more.
    Closed(ErrorKind),
}

/// Opens a stream for `job` and leaves its reply to a task of its own.
async fn start(
    sh: &Rc<Shared>,
    requests: &Requests,
    c: &mut Conn,
    job: Job,
    deadline: Instant,
    timer: &Deadline,
) -> Result<(), Started> {
    // The server's stream limit may be below ours.
    let ready = std::future::poll_fn(|cx| c.send.poll_ready(cx));
    match timer.run(&sh.deadlines, deadline, ready).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(Started::Closed(kind_of(&e))),
        Err(_) => return Err(Started::Timeout),
    }
    let (request, body) = requests.request(job.tag.req);
    let (response, mut stream) = c
        .send
        .send_request(request, body.is_empty())
        .map_err(|e| Started::Closed(kind_of(&e)))?;
    if !body.is_empty() {
        // h2 queues what the flow-control window does not take yet.
        stream
            .send_data(body.clone(), true)
            .map_err(|e| Started::Closed(kind_of(&e)))?;
    }
    let sent = Instant::now();
    sh.rec.borrow_mut().sent(job.tag);
    c.active.set(c.active.get() + 1);
    let (sh, active, room, grpc) = (sh.clone(), c.active.clone(), c.room.clone(), requests.grpc);
    tokio::task::spawn_local(async move {
        let timer = sh.deadlines.slot();
        let outcome = timer
            .run(&sh.deadlines, deadline, reply(response, grpc))
            .await;
        sh.deadlines.put(timer);
        let now = Instant::now();
        let mut rec = sh.rec.borrow_mut();
        match outcome {
            Ok(Ok(())) => rec.ok(job.tag, now - job.sched, now - sent),
            Ok(Err((kind, status))) => rec.error(job.tag, kind, status),
            // Dropping the reply resets the stream (RST_STREAM CANCEL).
            Err(_elapsed) => rec.error(job.tag, ErrorKind::Timeout, None),
        }
        drop(rec);
        active.set(active.get() - 1);
        room.notify_one();
    });
    Ok(())
}

type Failure = (ErrorKind, Option<Status>);

/// Reads a whole reply and judges it.
async fn reply(response: ResponseFuture, grpc: bool) -> Result<(), Failure> {
    let fail = |e: h2::Error| (kind_of(&e), None);
    let response = response.await.map_err(fail)?;
    let status = response.status().as_u16();
    let (parts, mut body) = response.into_parts();
    // A trailers-only gRPC reply carries grpc-status in its headers.
    let early = grpc_status(&parts.headers);
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(fail)?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    if !grpc {
        return if status < 400 {
            Ok(())
        } else {
            Err((ErrorKind::Status, Some(Status::Http(status))))
        };
    }
    if status != 200 {
        return Err((ErrorKind::Status, Some(Status::Http(status))));
    }
    let code = match early {
        Some(code) => Some(code),
        None => body
            .trailers()
            .await
            .map_err(fail)?
            .and_then(|t| grpc_status(&t)),
    };
    match code {
        Some(Ok(0)) => Ok(()),
        Some(Ok(code)) => Err((ErrorKind::Status, Some(Status::Grpc(code)))),
        Some(Err(())) | None => Err((ErrorKind::Protocol, None)),
    }
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
    use std::time::Duration;
    use volley_plan::{Body, Protocol, Request, Tls};

    fn target(url: &str, grpc: bool) -> Target {
        let mut r = Request::get(if grpc { "/echo.Echo/Say" } else { "/a?b=1" });
        if grpc {
            r.method = "POST".into();
            r.body = Body::Bytes(b"hi".to_vec());
        }
        r.headers.push(("X-Tenant".into(), "t1".into()));
        Target {
            url: url.into(),
            protocol: if grpc {
                Protocol::Grpc
            } else {
                Protocol::Http2
            },
            timeout: Duration::from_secs(1),
            requests: vec![r],
            tls: Tls::default(),
        }
    }

    #[test]
    fn requests_carry_scheme_authority_path_and_headers() {
        let r = Requests::new(&target("http://h:81/ignored", false), false).unwrap();
        let (req, body) = r.request(0);
        assert_eq!(req.uri().to_string(), "http://h:81/a?b=1");
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.headers()["x-tenant"], "t1");
        assert!(body.is_empty());
    }

    #[test]
    fn grpc_requests_are_framed_posts() {
        let r = Requests::new(&target("https://h", true), true).unwrap();
        let (req, body) = r.request(0);
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
