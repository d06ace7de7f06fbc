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
//! Requests are prepared once per run and rendered per request
//! ([`requests`]). Response checks see the reply
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
use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use http::HeaderMap;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use tokio::time::{timeout_at, Instant};
use volley_plan::Checker;

mod requests;
pub use requests::Requests;

/// Flow-control windows: large enough that a hundred streams with
/// kilobyte replies never wait for a WINDOW_UPDATE.
const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;

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
    use http::HeaderValue;

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
