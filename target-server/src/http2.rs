//! HTTP/2 connections of the target (h2c, prior knowledge): plain requests,
//! answered like HTTP/1.1 ones, and gRPC unary calls to the echo service.
//!
//! Each stream is served by its own task, so a delayed reply holds up
//! nothing but its own stream; the connection task only accepts streams and
//! drives the connection. The windows are large enough that a hundred
//! streams with small bodies never wait for flow control.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::RecvStream;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, SERVER};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;
use tracing::debug;

use super::grpc::{self, Code, Refusal};
use super::request::{MAX_BODY, STATS_PATH};
use super::response::{self, ERROR_CONTENT_TYPE, OK_CONTENT_TYPE};
use super::Shared;

/// Streams a client may have open at once on one connection.
const MAX_CONCURRENT_STREAMS: u32 = 1000;
/// Receive window of each stream.
const STREAM_WINDOW: u32 = 1024 * 1024;
/// Receive window of the whole connection.
const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

const GRPC_STATUS: &str = "grpc-status";
const GRPC_MESSAGE: &str = "grpc-message";

/// Serves one HTTP/2 connection whose preface has been seen (and is read
/// again from `io`) until the client closes it.
pub(super) async fn serve_connection<S>(io: S, shared: Arc<Shared>) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut connection = h2::server::Builder::new()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(into_io)?;
    // Owned here, so the streams end with their connection (and with the
    // server, which aborts this task on shutdown).
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            accepted = connection.accept() => match accepted {
                Some(Ok((request, respond))) => {
                    streams.spawn(serve_stream(request, respond, Arc::clone(&shared)));
                }
                Some(Err(cause)) => return Err(into_io(cause)),
                // Closed, every stream done.
                None => return Ok(()),
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
        }
    }
}

fn into_io(err: h2::Error) -> io::Error {
    if err.is_io() {
        err.into_io()
            .unwrap_or_else(|| io::Error::other("HTTP/2 I/O error"))
    } else {
        io::Error::other(err)
    }
}

async fn serve_stream(
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
    shared: Arc<Shared>,
) {
    let (head, body) = request.into_parts();
    let served = if grpc::is_grpc(head.headers.get(CONTENT_TYPE)) {
        serve_grpc(body, respond, &shared).await
    } else {
        serve_http(&head, body, respond, &shared).await
    };
    // The client reset the stream or dropped the connection: nothing to do.
    if let Err(cause) = served {
        debug!(%cause, "target HTTP/2 stream ended with an error");
    }
}

/// A plain HTTP request: the same answers as over HTTP/1.1.
async fn serve_http(
    head: &http::request::Parts,
    mut body: RecvStream,
    mut respond: SendResponse<Bytes>,
    shared: &Shared,
) -> Result<(), h2::Error> {
    let head_only = head.method == Method::HEAD;
    if (head.method == Method::GET || head_only) && head.uri.path() == STATS_PATH {
        // Observability must not queue behind the load it observes.
        drain(&mut body, MAX_BODY).await?;
        let json = Bytes::from(response::stats_json(&shared.stats));
        return send(
            &mut respond,
            StatusCode::OK,
            "application/json",
            json,
            head_only,
        );
    }
    let declared = head
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY) || !drain(&mut body, MAX_BODY).await? {
        // Refused before (or instead of) reading it all; not counted.
        let refusal = Bytes::from_static(b"body too large\n");
        return send(
            &mut respond,
            StatusCode::PAYLOAD_TOO_LARGE,
            ERROR_CONTENT_TYPE,
            refusal,
            head_only,
        );
    }
    let error = shared.errors.next_is_error();
    wait_until_due(shared).await;
    let (status, content_type) = if error {
        (StatusCode::INTERNAL_SERVER_ERROR, ERROR_CONTENT_TYPE)
    } else {
        (StatusCode::OK, OK_CONTENT_TYPE)
    };
    let bytes = shared.responses.get(error, false).body();
    send(&mut respond, status, content_type, bytes, head_only)?;
    // Counted once queued, before the connection writes it, so a client
    // that has its response also sees it in the stats.
    shared.stats.record(u64::from(!error), u64::from(error));
    Ok(())
}

/// A unary call to the echo service.
async fn serve_grpc(
    mut body: RecvStream,
    mut respond: SendResponse<Bytes>,
    shared: &Shared,
) -> Result<(), h2::Error> {
    let Some(message) = collect(&mut body, grpc::MAX_BODY).await? else {
        return send_status(&mut respond, grpc::TOO_LARGE.code, grpc::TOO_LARGE.message);
    };
    if let Err(Refusal { code, message }) = grpc::check_body(&message) {
        // Refused at once and not counted, like a malformed HTTP request.
        return send_status(&mut respond, code, message);
    }
    let error = shared.errors.next_is_error();
    wait_until_due(shared).await;
    if error {
        send_status(&mut respond, Code::Unavailable, grpc::INJECTED)?;
    } else {
        let mut reply = Response::new(());
        reply
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(grpc::CONTENT_TYPE));
        let mut stream = respond.send_response(reply, false)?;
        // The body is one uncompressed message with its prefix: the reply
        // frame is the request frame.
        stream.send_data(message, false)?;
        let mut trailers = HeaderMap::with_capacity(1);
        trailers.insert(GRPC_STATUS, Code::Ok.header());
        stream.send_trailers(trailers)?;
    }
    shared.stats.record(u64::from(!error), u64::from(error));
    Ok(())
}

/// Waits for the reply's turn: the capacity queue, then the delay.
async fn wait_until_due(shared: &Shared) {
    if shared.timed() {
        let due = shared.due(Instant::now());
        tokio::time::sleep_until(due.into()).await;
    }
}

/// Sends a whole HTTP response.
fn send(
    respond: &mut SendResponse<Bytes>,
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
    head_only: bool,
) -> Result<(), h2::Error> {
    let mut response = Response::new(());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(SERVER, HeaderValue::from_static("volley"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    let end = head_only || body.is_empty();
    let mut stream = respond.send_response(response, end)?;
    if !end {
        stream.send_data(body, true)?;
    }
    Ok(())
}

/// Ends a call with a trailers-only response: status 200 and the gRPC
/// status in the headers.
fn send_status(
    respond: &mut SendResponse<Bytes>,
    code: Code,
    message: &'static str,
) -> Result<(), h2::Error> {
    let mut response = Response::new(());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(grpc::CONTENT_TYPE));
    headers.insert(GRPC_STATUS, code.header());
    headers.insert(GRPC_MESSAGE, HeaderValue::from_static(message));
    respond.send_response(response, true)?;
    Ok(())
}

/// Reads and discards a request body; `false` when it is longer than
/// `limit` (the rest is then left unread, and the stream is reset when the
/// reply ends it).
async fn drain(body: &mut RecvStream, limit: u64) -> Result<bool, h2::Error> {
    let mut seen = 0u64;
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        body.flow_control().release_capacity(chunk.len())?;
        seen += chunk.len() as u64;
        if seen > limit {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Reads a whole request body of at most `limit` bytes; `None` when it is
/// longer. A body that arrives in one DATA frame is not copied.
async fn collect(body: &mut RecvStream, limit: usize) -> Result<Option<Bytes>, h2::Error> {
    let mut first: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    let mut seen = 0;
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        body.flow_control().release_capacity(chunk.len())?;
        seen += chunk.len();
        if seen > limit {
            return Ok(None);
        }
        if chunk.is_empty() {
            continue;
        }
        match first.take() {
            None if joined.is_empty() => first = Some(chunk),
            earlier => {
                if let Some(earlier) = earlier {
                    joined.extend_from_slice(&earlier);
                }
                joined.extend_from_slice(&chunk);
            }
        }
    }
    Ok(Some(first.unwrap_or_else(|| joined.freeze())))
}
