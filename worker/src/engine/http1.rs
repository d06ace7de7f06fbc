//! A lean HTTP/1.1 client: the keep-alive connection loop, one prebuilt
//! request per request definition reused for every send, and a response
//! reader that parses the head with httparse and skips the
//! body without keeping it. No allocation per request once a connection's
//! buffer has grown to fit a response head.
//!
//! A request definition with templates (`{{seq}}` in its path, a header or
//! its body) is instead rendered per request into a buffer of its
//! connection, which is reused likewise. A definition with response checks
//! has its reply head judged while it is parsed and its body kept (or only
//! measured) when a check needs it; without checks, the body is skipped as
//! before.

use super::check::{self, BodyKeeper, Failure};
use super::conn::{Client, Job, Pool};
use super::deadline::Deadline;
use super::dial::Link;
use super::outcome::{is_reset, ErrorKind};
use super::render::{clean_header_value, escape_path};
use std::io::{self, Write};
use std::rc::Rc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};
use volley_plan::model::{url_parts, CompiledRequest};
use volley_plan::template::Context;
use volley_plan::{Checker, Request, Template};

/// Largest response head accepted; anything bigger is a protocol error.
const MAX_HEAD: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;

/// Every request definition, ready to send: the HTTP/1.1 [`Client`].
#[derive(Debug)]
pub struct Requests(Vec<Prepared>);

impl Requests {
    /// `compiled` holds the templates of `requests`, in order.
    pub fn new(
        url: &str,
        requests: &[Request],
        compiled: &[CompiledRequest],
    ) -> Result<Requests, String> {
        requests
            .iter()
            .zip(compiled)
            .map(|(r, c)| Prepared::new(url, r, c))
            .collect::<Result<_, _>>()
            .map(Requests)
    }
}

impl Client for Requests {
    async fn connection(&self, pool: &Rc<Pool>) {
        connection(pool, &self.0).await
    }
}

/// How one request definition goes on the wire.
#[derive(Debug)]
pub enum Prepared {
    /// Nothing depends on the arrival: the bytes are built once.
    Static(RequestTemplate),
    /// Rendered per request.
    Templated(Box<Templated>),
}

impl Prepared {
    /// `compiled` is `request` compiled by the plan. A request whose
    /// templates are all constant (no `{{`, or only `vars`/`env`) is
    /// static.
    pub fn new(
        url: &str,
        request: &Request,
        compiled: &CompiledRequest,
    ) -> Result<Prepared, String> {
        let parts =
            url_parts(url).ok_or_else(|| format!("expected an http(s):// URL, got {url:?}"))?;
        let path = compiled.path.as_static();
        let headers: Option<Vec<(&str, &[u8])>> = compiled
            .headers
            .iter()
            .map(|(n, t)| t.as_static().map(|v| (n.as_str(), v)))
            .collect();
        let body = match &compiled.body {
            None => Some(request.body.to_bytes()),
            Some(t) => t.as_static().map(<[u8]>::to_vec),
        };
        if let (Some(path), Some(headers), Some(body)) = (path, &headers, &body) {
            return Ok(Prepared::Static(RequestTemplate::build(
                &request.method,
                path,
                &parts.authority,
                headers,
                body,
            )));
        }
        let static_body = match &compiled.body {
            None => Some(request.body.to_bytes()),
            Some(_) => None,
        };
        let has_content_type = request
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
        Ok(Prepared::Templated(Box::new(Templated {
            method: format!("{} ", request.method).into_bytes().into(),
            path: compiled.path.clone(),
            after_path: format!(
                " HTTP/1.1\r\nHost: {}\r\nUser-Agent: volley/{}\r\n",
                parts.authority,
                env!("CARGO_PKG_VERSION")
            )
            .into_bytes()
            .into(),
            headers: compiled
                .headers
                .iter()
                .map(|(n, t)| (format!("{n}: ").into_bytes().into(), t.clone()))
                .collect(),
            body: match (static_body, &compiled.body) {
                (Some(b), _) => TemplatedBody::Fixed(body_tail(&b, has_content_type).into()),
                (None, Some(t)) => TemplatedBody::Rendered {
                    template: t.clone(),
                    has_content_type,
                },
                (None, None) => TemplatedBody::Fixed(b"\r\n".to_vec().into()),
            },
            is_head: request.method == "HEAD",
        })))
    }

    /// Whether replies have no body whatever their headers say.
    #[inline]
    pub fn is_head(&self) -> bool {
        match self {
            Prepared::Static(t) => t.is_head,
            Prepared::Templated(t) => t.is_head,
        }
    }
}

/// The end of a request whose body is known: its body headers, the blank
/// line and the body.
fn body_tail(body: &[u8], has_content_type: bool) -> Vec<u8> {
    let mut tail = Vec::with_capacity(body.len() + 64);
    if !body.is_empty() {
        if !has_content_type {
            tail.extend_from_slice(b"Content-Type: application/octet-stream\r\n");
        }
        let _ = write!(tail, "Content-Length: {}\r\n", body.len());
    }
    tail.extend_from_slice(b"\r\n");
    tail.extend_from_slice(body);
    tail
}

/// The request bytes of a scenario, built once.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    pub bytes: std::rc::Rc<[u8]>,
    /// HEAD responses have no body whatever their headers say.
    pub is_head: bool,
}

impl RequestTemplate {
    /// The request bytes of `request` sent to `url` (an `http[s]://` URL),
    /// taking its path and header values as they are.
    pub fn new(url: &str, request: &Request) -> Result<RequestTemplate, String> {
        let parts =
            url_parts(url).ok_or_else(|| format!("expected an http(s):// URL, got {url:?}"))?;
        let headers: Vec<(&str, &[u8])> = request
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        Ok(RequestTemplate::build(
            &request.method,
            request.path.as_bytes(),
            &parts.authority,
            &headers,
            &request.body.to_bytes(),
        ))
    }

    fn build(
        method: &str,
        path: &[u8],
        authority: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> RequestTemplate {
        let mut bytes = Vec::with_capacity(256 + body.len());
        bytes.extend_from_slice(method.as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(path);
        let _ = write!(
            bytes,
            " HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: volley/{}\r\n",
            env!("CARGO_PKG_VERSION")
        );
        let mut has_content_type = false;
        for (name, value) in headers {
            has_content_type |= name.eq_ignore_ascii_case("content-type");
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(&body_tail(body, has_content_type));
        RequestTemplate {
            bytes: bytes.into(),
            is_head: method == "HEAD",
        }
    }
}

/// A request rendered per arrival: the constant pieces prebuilt, the
/// templates between them.
#[derive(Debug)]
pub struct Templated {
    /// `METHOD `
    method: Box<[u8]>,
    path: Template,
    /// ` HTTP/1.1`, `Host` and `User-Agent` lines.
    after_path: Box<[u8]>,
    /// `Name: ` and the value's template.
    headers: Vec<(Box<[u8]>, Template)>,
    body: TemplatedBody,
    is_head: bool,
}

#[derive(Debug)]
enum TemplatedBody {
    /// The body does not depend on the arrival: body headers, blank line
    /// and body, prebuilt.
    Fixed(Box<[u8]>),
    Rendered {
        template: Template,
        has_content_type: bool,
    },
}

impl Templated {
    /// Renders the whole request into `out` (cleared first); `scratch` holds
    /// a rendered body while its length goes into the head. Both are the
    /// connection's, so this allocates nothing once they have grown.
    pub fn render(&self, ctx: &Context<'_>, out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.method);
        let path_at = out.len();
        self.path.render(ctx, out);
        escape_path(out, path_at);
        out.extend_from_slice(&self.after_path);
        for (name, value) in &self.headers {
            out.extend_from_slice(name);
            let at = out.len();
            value.render(ctx, out);
            clean_header_value(&mut out[at..]);
            out.extend_from_slice(b"\r\n");
        }
        match &self.body {
            TemplatedBody::Fixed(tail) => out.extend_from_slice(tail),
            TemplatedBody::Rendered {
                template,
                has_content_type,
            } => {
                scratch.clear();
                template.render(ctx, scratch);
                if !scratch.is_empty() && !has_content_type {
                    out.extend_from_slice(b"Content-Type: application/octet-stream\r\n");
                }
                let _ = write!(out, "Content-Length: {}\r\n\r\n", scratch.len());
                out.extend_from_slice(scratch);
            }
        }
    }
}

/// One keep-alive connection: sends queued jobs one at a time until the pool
/// stops.
async fn connection(sh: &Pool, prepared: &[Prepared]) {
    let mut stream: Option<Link> = None;
    let mut reader = Reader::default();
    // Where templated requests are rendered (empty for static ones).
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    let deadline = sh.deadlines.slot();
    while let Some(job) = sh.next_job().await {
        let prepared = &prepared[usize::from(job.tag.req)];
        let checker = sh.checker(job.tag.req);
        let conn = Conn {
            stream: &mut stream,
            reader: &mut reader,
            timer: &deadline,
        };
        match prepared {
            Prepared::Static(t) => serve(sh, &t.bytes, t.is_head, checker, job, conn).await,
            Prepared::Templated(t) => {
                if sh.expired(&job, Instant::now()) {
                    continue;
                }
                t.render(&sh.renderer.context(&job), &mut out, &mut scratch);
                serve(sh, &out, t.is_head, checker, job, conn).await
            }
        }
    }
}

/// A connection's state that outlives one request.
struct Conn<'a> {
    stream: &'a mut Option<Link>,
    reader: &'a mut Reader,
    timer: &'a Deadline,
}

/// Sends one request and records how it ended, exactly once.
async fn serve(
    sh: &Pool,
    request: &[u8],
    is_head: bool,
    checker: Option<&Checker>,
    job: Job,
    conn: Conn<'_>,
) {
    let Conn {
        stream,
        reader,
        timer,
    } = conn;
    let start = Instant::now();
    if sh.expired(&job, start) {
        return;
    }
    let deadline = start + sh.timeout;
    let mut retried = false;
    let mut counted_sent = false;
    // A connection past its lifetime (or whose address is gone) is closed
    // before it takes this request.
    if stream.as_ref().is_some_and(|l| l.lease.worn(start)) {
        *stream = None;
    }
    loop {
        let reused = stream.is_some();
        if stream.is_none() {
            match timeout_at(deadline, sh.dialer.connect()).await {
                Ok(Ok(s)) => {
                    *stream = Some(s);
                    *reader = Reader::default();
                }
                Ok(Err(_)) | Err(_) => {
                    sh.fail(&job, ErrorKind::Connect);
                    return;
                }
            }
        }
        let Some(link) = stream.as_mut() else { return };
        link.lease.take();
        let s = &mut link.io;
        // On a kept-alive connection nothing happened since `start`: no
        // second clock read.
        let send = if reused { start } else { Instant::now() };
        if !counted_sent {
            sh.rec
                .borrow_mut()
                .sent(job.tag, send.saturating_duration_since(job.sched));
            counted_sent = true;
        }
        let result = timer
            .run(
                &sh.deadlines,
                deadline,
                reader.exchange(s, request, is_head, checker),
            )
            .await;
        let now = Instant::now();
        match result {
            Ok(Ok(info)) => {
                sh.complete(&job, info.verdict, now, send);
                // Replaced after the response that reaches its limit
                // (`load.max_requests_per_connection`, `connection_lifetime`):
                // nothing is on it, so nothing fails.
                if info.close || stream.as_ref().is_some_and(|l| l.lease.worn(now)) {
                    *stream = None;
                }
                return;
            }
            // A keep-alive connection the server had already closed: retry
            // once on a fresh one, as browsers and HTTP libraries do.
            Ok(Err(ReadError::Closed { clean: true })) if reused && !retried => {
                retried = true;
                *stream = None;
            }
            Ok(Err(e)) => {
                *stream = None;
                let kind = match e {
                    ReadError::Closed { .. } => ErrorKind::Reset,
                    ReadError::Io(e) if is_reset(&e) => ErrorKind::Reset,
                    ReadError::Io(_) | ReadError::Malformed(_) => ErrorKind::Protocol,
                };
                sh.fail(&job, kind);
                return;
            }
            Err(_elapsed) => {
                *stream = None;
                sh.fail(&job, ErrorKind::Timeout);
                return;
            }
        }
    }
}

/// Why a response could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection; `clean` when it did so before sending a
    /// single byte of this response (a stale keep-alive connection).
    Closed {
        clean: bool,
    },
    Io(io::Error),
    Malformed(&'static str),
}

/// A response head's facts the client needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseInfo {
    pub status: u16,
    /// The server will close the connection after this response.
    pub close: bool,
    /// Whether the reply is ok: the status (default rule or `status`
    /// check), then the other checks of the request, if any.
    pub verdict: Result<(), Failure>,
}

enum Body {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Per-connection read state, reused across requests.
#[derive(Debug, Default)]
pub struct Reader {
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// The body of the current reply, when a check looks at it.
    body: BodyKeeper,
}

impl Reader {
    /// Writes the request and reads one complete response.
    pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        request: &[u8],
        is_head: bool,
        checker: Option<&Checker>,
    ) -> Result<ResponseInfo, ReadError> {
        stream
            .write_all(request)
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                    ReadError::Closed { clean: true }
                }
                _ => ReadError::Io(e),
            })?;
        self.read_response(stream, is_head, checker).await
    }

    async fn fill<S: AsyncRead + Unpin>(&mut self, stream: &mut S) -> Result<usize, ReadError> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        } else if self.pos > 0 && self.buf.len() - self.end < READ_CHUNK / 2 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.buf.len() - self.end < READ_CHUNK / 2 {
            let want = (self.end + READ_CHUNK).min(MAX_HEAD + READ_CHUNK);
            if want <= self.buf.len() {
                return Err(ReadError::Malformed("response head too large"));
            }
            self.buf.resize(want, 0);
        }
        let n = stream
            .read(&mut self.buf[self.end..])
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                    ReadError::Closed { clean: false }
                }
                _ => ReadError::Io(e),
            })?;
        self.end += n;
        Ok(n)
    }

    pub async fn read_response<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        is_head: bool,
        checker: Option<&Checker>,
    ) -> Result<ResponseInfo, ReadError> {
        let mut got_any = self.end > self.pos;
        loop {
            // Parse a head from what is buffered.
            let parsed = {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.buf[self.pos..self.end]) {
                    Ok(httparse::Status::Complete(n)) => {
                        let status = resp.code.unwrap_or(0);
                        let http10 = resp.version == Some(0);
                        let mut close = http10;
                        let mut body = Body::UntilClose;
                        let mut chunked = false;
                        let mut length = None;
                        for h in resp.headers.iter() {
                            if h.name.eq_ignore_ascii_case("content-length") {
                                let v = std::str::from_utf8(h.value)
                                    .ok()
                                    .and_then(|s| s.trim().parse::<u64>().ok())
                                    .ok_or(ReadError::Malformed("bad Content-Length"))?;
                                length = Some(v);
                            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                                chunked = h.value.eq_ignore_ascii_case(b"chunked")
                                    || h.value.to_ascii_lowercase().ends_with(b"chunked");
                            } else if h.name.eq_ignore_ascii_case("connection") {
                                let v = h.value.to_ascii_lowercase();
                                if v.windows(5).any(|w| w == b"close") {
                                    close = true;
                                } else if v.windows(10).any(|w| w == b"keep-alive") {
                                    close = false;
                                }
                            }
                        }
                        if is_head || status == 204 || status == 304 || (100..200).contains(&status)
                        {
                            body = Body::None;
                        } else if chunked {
                            body = Body::Chunked;
                        } else if let Some(l) = length {
                            body = Body::Length(l);
                        }
                        // Judged while the headers are borrowed from the
                        // buffer: no copy of them is kept.
                        let verdict = check::http_head(
                            checker,
                            status,
                            resp.headers.iter().map(|h| (h.name.as_bytes(), h.value)),
                        );
                        Some((n, status, close, body, verdict))
                    }
                    Ok(httparse::Status::Partial) => None,
                    Err(_) => return Err(ReadError::Malformed("malformed response head")),
                }
            };
            let Some((n, status, close, body, mut verdict)) = parsed else {
                if self.end - self.pos >= MAX_HEAD {
                    return Err(ReadError::Malformed("response head too large"));
                }
                if self.fill(stream).await? == 0 {
                    return Err(ReadError::Closed { clean: !got_any });
                }
                got_any = true;
                continue;
            };
            self.pos += n;
            if (100..200).contains(&status) {
                continue; // interim response; the real one follows
            }
            // The body is looked at only when the head passed and a check
            // needs it; otherwise it is skipped without being kept.
            let judged = match checker {
                Some(c) if verdict.is_ok() && check::wants_body(checker) => {
                    self.body.start(c.needs_body());
                    Some(c)
                }
                _ => None,
            };
            let keep = judged.is_some();
            let close = match body {
                Body::None => close,
                Body::Length(l) => {
                    self.skip(stream, l, keep).await?;
                    close
                }
                Body::Chunked => {
                    self.skip_chunked(stream, keep).await?;
                    close
                }
                Body::UntilClose => {
                    if keep {
                        self.body.take(&self.buf[self.pos..self.end]);
                    }
                    self.pos = self.end;
                    while self.fill(stream).await? > 0 {
                        if keep {
                            self.body.take(&self.buf[self.pos..self.end]);
                        }
                        self.pos = self.end;
                    }
                    true
                }
            };
            if let Some(c) = judged {
                verdict = self.body.judge(c).map_err(Failure::Check);
            }
            return Ok(ResponseInfo {
                status,
                close,
                verdict,
            });
        }
    }

    /// Skips `left` bytes of the body; `keep`: hands them to `self.body`
    /// first.
    async fn skip<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        mut left: u64,
        keep: bool,
    ) -> Result<(), ReadError> {
        loop {
            let have = (self.end - self.pos) as u64;
            if have >= left {
                if keep {
                    self.body
                        .take(&self.buf[self.pos..self.pos + left as usize]);
                }
                self.pos += left as usize;
                return Ok(());
            }
            left -= have;
            if keep {
                self.body.take(&self.buf[self.pos..self.end]);
            }
            self.pos = self.end;
            if self.fill(stream).await? == 0 {
                return Err(ReadError::Closed { clean: false });
            }
        }
    }

    /// Reads one CRLF-terminated line's length (including CRLF) at `pos`.
    async fn line<S: AsyncRead + Unpin>(&mut self, stream: &mut S) -> Result<usize, ReadError> {
        loop {
            if let Some(i) = self.buf[self.pos..self.end]
                .windows(2)
                .position(|w| w == b"\r\n")
            {
                return Ok(i + 2);
            }
            if self.end - self.pos > 4096 {
                return Err(ReadError::Malformed("chunk line too long"));
            }
            if self.fill(stream).await? == 0 {
                return Err(ReadError::Closed { clean: false });
            }
        }
    }

    async fn skip_chunked<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        keep: bool,
    ) -> Result<(), ReadError> {
        loop {
            let n = self.line(stream).await?;
            let line = &self.buf[self.pos..self.pos + n - 2];
            let hex = line.split(|&b| b == b';').next().unwrap_or(b"");
            let size = std::str::from_utf8(hex)
                .ok()
                .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                .ok_or(ReadError::Malformed("bad chunk size"))?;
            self.pos += n;
            if size == 0 {
                // Trailers, then an empty line.
                loop {
                    let n = self.line(stream).await?;
                    self.pos += n;
                    if n == 2 {
                        return Ok(());
                    }
                }
            }
            if keep {
                self.skip(stream, size, true).await?;
                self.skip(stream, 2, false).await?;
            } else {
                self.skip(stream, size + 2, false).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::recorder::Status;
    use crate::engine::render::testing;
    use tokio::io::duplex;
    use volley_plan::expect::{Expect, Rule, StatusMatch};
    use volley_plan::{Body, Protocol};

    fn prepared(request: Request) -> Prepared {
        let mut plan = testing::plan(Protocol::Http1, "http://h:8080/", vec![request.clone()]);
        plan.data = vec![testing::cities()];
        let compiled = testing::compile(&plan);
        Prepared::new(&plan.target.url, &request, &compiled[0]).unwrap()
    }

    fn rendered(request: Request, seq: u64) -> String {
        let Prepared::Templated(t) = prepared(request) else {
            panic!("expected a templated request");
        };
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        let data = [testing::cities()];
        t.render(&testing::ctx_with(seq, &data), &mut out, &mut scratch);
        String::from_utf8(out).unwrap()
    }

    fn content_length(head: &str) -> Option<usize> {
        head.lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map(|v| v.parse().unwrap())
    }

    #[test]
    fn a_request_without_templates_is_built_once_as_before() {
        let (url, r) = target("http://h:8080/a?b=1", "POST", 5);
        let Prepared::Static(t) = prepared(r.clone()) else {
            panic!("expected a static request");
        };
        assert_eq!(t.bytes, RequestTemplate::new(&url, &r).unwrap().bytes);
    }

    #[test]
    fn templated_requests_render_path_headers_and_content_length() {
        let mut r = Request::get("/orders/{{seq}}?w={{worker}}");
        r.method = "POST".into();
        r.headers = vec![
            ("X-Seq".into(), "s{{seq}}".into()),
            ("Content-Type".into(), "application/json".into()),
        ];
        r.body = Body::Template(r#"{"n":{{seq}},"pad":"{{rand_hex(20)}}"}"#.into());
        let s = rendered(r.clone(), 12345);
        let (head, body) = s.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with(
                "POST /orders/12345?w=w1 HTTP/1.1\r\nHost: h:8080\r\nUser-Agent: volley/"
            ),
            "{s}"
        );
        assert!(head.contains("\r\nX-Seq: s12345\r\nContent-Type: application/json\r\n"));
        assert!(
            !head.contains("octet-stream"),
            "the scenario's content type only"
        );
        assert!(body.starts_with(r#"{"n":12345,"pad":""#), "{body}");
        assert_eq!(content_length(head), Some(body.len()));
        // The body's length follows the arrival.
        let s = rendered(r, 7);
        let (head, body) = s.split_once("\r\n\r\n").unwrap();
        assert_eq!(content_length(head), Some(body.len()));
        assert!(body.starts_with(r#"{"n":7,"#));
    }

    #[test]
    fn a_templated_path_keeps_a_constant_body_and_rendered_text_stays_in_its_place() {
        let mut r = Request::get("/u/{{data.cities.city}}");
        r.method = "PUT".into();
        r.headers = vec![("X-City".into(), "{{data.cities.city}}".into())];
        r.body = Body::Bytes(b"abc".to_vec());
        let tail = "Content-Type: application/octet-stream\r\nContent-Length: 3\r\n\r\nabc";
        let s = rendered(r.clone(), 0);
        assert!(s.starts_with("PUT /u/paris HTTP/1.1\r\n"), "{s}");
        assert!(s.contains("\r\nX-City: paris\r\n"), "{s}");
        assert!(s.ends_with(tail), "{s}");
        let s = rendered(r.clone(), 1);
        assert!(s.starts_with("PUT /u/new%20york HTTP/1.1\r\n"), "{s}");
        assert!(s.contains("\r\nX-City: new york\r\n"), "{s}");
        let s = rendered(r, 2);
        assert!(s.starts_with("PUT /u/x%0D%0AEvil:%201 HTTP/1.1\r\n"), "{s}");
        assert!(s.contains("\r\nX-City: x  Evil: 1\r\n"), "{s}");
        assert!(s.ends_with(tail), "{s}");
    }

    fn checker(rules: Vec<Rule>) -> Checker {
        Checker::new(&Expect::from_rules(rules)).unwrap()
    }

    async fn judged(chunks: Vec<&'static [u8]>, c: &Checker) -> Vec<Result<(), Failure>> {
        let (mut client, mut server) = duplex(64);
        let n = chunks.len();
        tokio::spawn(async move {
            for c in chunks {
                server.write_all(c).await.unwrap();
            }
        });
        let mut r = Reader::default();
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(
                r.read_response(&mut client, false, Some(c))
                    .await
                    .unwrap()
                    .verdict,
            );
        }
        out
    }

    #[tokio::test]
    async fn checked_bodies_are_read_whole_in_every_framing() {
        let c = checker(vec![
            Rule::BodyContains("\"ok\"".into()),
            Rule::Status(vec![StatusMatch::Code(200), StatusMatch::Code(404)]),
        ]);
        let out = judged(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n\"o\"\r\n1\r\n\"\r\n0\r\n\r\n",
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\n\"ok\"",
                b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\n\"ok\"",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n\"o\r\n2\r\nk\"\r\n0\r\n\r\n",
                b"HTTP/1.0 200 OK\r\n\r\n{\"status\":\"ok\"}",
            ],
            &c,
        )
        .await;
        assert_eq!(
            out,
            vec![
                Ok(()),
                Err(Failure::Check(0)),
                Ok(()),
                Err(Failure::Check(1)),
                Ok(()),
                Ok(()),
            ]
        );
    }

    #[tokio::test]
    async fn headers_and_length_are_judged_without_keeping_the_body() {
        let c = checker(vec![
            Rule::MaxBodyBytes(4),
            Rule::Header {
                name: "Content-Type".into(),
                value: "application/json".into(),
            },
        ]);
        let out = judged(
            vec![
                b"HTTP/1.1 200 OK\r\ncontent-type:  application/json \r\nContent-Length: 4\r\n\r\nabcd",
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nabcde",
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
                b"HTTP/1.1 500 Oops\r\nContent-Length: 1\r\n\r\na",
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n",
            ],
            &c,
        )
        .await;
        assert_eq!(
            out,
            vec![
                Ok(()),
                Err(Failure::Check(0)),
                Err(Failure::Check(1)),
                Err(Failure::Status(Status::Http(500))),
                Ok(()),
            ]
        );
    }

    fn target(url: &str, method: &str, body: u64) -> (String, Request) {
        let path = volley_plan::model::url_parts(url).unwrap().path;
        let request = Request {
            name: "r".into(),
            weight: 1,
            method: method.into(),
            path,
            headers: vec![("X-Test".into(), "1".into())],
            body: volley_plan::Body::Generated(body),
            expect: Default::default(),
        };
        (url.into(), request)
    }

    #[test]
    fn request_template() {
        let t = {
            let (url, r) = target("http://example.test:8080/a/b?c=1", "POST", 3);
            RequestTemplate::new(&url, &r).unwrap()
        };
        let s = std::str::from_utf8(&t.bytes).unwrap();
        assert!(
            s.starts_with("POST /a/b?c=1 HTTP/1.1\r\nHost: example.test:8080\r\n"),
            "{s}"
        );
        assert!(s.contains("X-Test: 1\r\n"));
        assert!(s.ends_with("Content-Length: 3\r\n\r\nabc"));
        let (url, r) = target("http://h", "GET", 0);
        let t = RequestTemplate::new(&url, &r).unwrap();
        assert!(std::str::from_utf8(&t.bytes)
            .unwrap()
            .starts_with("GET / HTTP/1.1\r\nHost: h\r\n"));
    }

    async fn read_all(chunks: Vec<&'static [u8]>, n: usize) -> Vec<Result<ResponseInfo, String>> {
        let (mut client, mut server) = duplex(64);
        tokio::spawn(async move {
            for c in chunks {
                server.write_all(c).await.unwrap();
            }
        });
        let mut r = Reader::default();
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(
                r.read_response(&mut client, false, None)
                    .await
                    .map_err(|e| format!("{e:?}")),
            );
        }
        out
    }

    #[tokio::test]
    async fn content_length_keep_alive_and_split_reads() {
        let out = read_all(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Le",
                b"ngth: 5\r\n\r\nhel",
                b"loHTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ],
            2,
        )
        .await;
        assert_eq!(
            out[0].as_ref().unwrap(),
            &ResponseInfo {
                status: 200,
                close: false,
                verdict: Ok(()),
            }
        );
        assert_eq!(
            out[1].as_ref().unwrap(),
            &ResponseInfo {
                status: 503,
                close: true,
                verdict: Err(Failure::Status(Status::Http(503))),
            }
        );
    }

    #[tokio::test]
    async fn chunked_and_interim_responses() {
        let out = read_all(
            vec![
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nX-Trailer: y\r\n\r\n",
                b"HTTP/1.1 204 No Content\r\n\r\n",
            ],
            2,
        )
        .await;
        assert_eq!(out[0].as_ref().unwrap().status, 200);
        assert_eq!(out[1].as_ref().unwrap().status, 204);
    }

    #[tokio::test]
    async fn body_until_close() {
        let out = read_all(vec![b"HTTP/1.0 200 OK\r\n\r\nall of it"], 1).await;
        assert_eq!(
            out[0].as_ref().unwrap(),
            &ResponseInfo {
                status: 200,
                close: true,
                verdict: Ok(()),
            }
        );
    }

    #[tokio::test]
    async fn broken_responses_are_errors() {
        let out = read_all(vec![b"SSH-2.0-OpenSSH\r\n\r\n"], 1).await;
        assert!(out[0].as_ref().unwrap_err().contains("Malformed"));
        let out = read_all(
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"],
            1,
        )
        .await;
        assert!(out[0]
            .as_ref()
            .unwrap_err()
            .contains("Closed { clean: false }"));
        let out = read_all(vec![], 1).await;
        assert!(out[0]
            .as_ref()
            .unwrap_err()
            .contains("Closed { clean: true }"));
        let out = read_all(vec![b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"], 1).await;
        assert!(out[0].as_ref().unwrap_err().contains("Content-Length"));
    }

    #[tokio::test]
    async fn endless_head_is_refused() {
        let (mut client, mut server) = duplex(1 << 16);
        tokio::spawn(async move {
            let _ = server.write_all(b"HTTP/1.1 200 OK\r\n").await;
            let line = [b'x'; 1024];
            loop {
                if server.write_all(&line).await.is_err() {
                    break;
                }
            }
        });
        let err = Reader::default()
            .read_response(&mut client, false, None)
            .await
            .unwrap_err();
        assert!(matches!(err, ReadError::Malformed(_)), "{err:?}");
    }
}
