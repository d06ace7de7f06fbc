//! A lean HTTP/1.1 client: the keep-alive connection loop, one prebuilt
//! request per request definition reused for every send, and a response
//! reader that parses the head with httparse and skips the
//! body without keeping it. No allocation per request once a connection's
//! buffer has grown to fit a response head.

use super::conn::{Job, Shared, Wire};
use super::deadline::Deadline;
use super::net::Io;
use super::outcome::ErrorKind;
use super::recorder::Status;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};
use volley_plan::model::url_parts;
use volley_plan::Request;

/// Largest response head accepted; anything bigger is a protocol error.
const MAX_HEAD: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;

/// The request bytes of a scenario, built once.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    pub bytes: std::rc::Rc<[u8]>,
    /// HEAD responses have no body whatever their headers say.
    pub is_head: bool,
}

impl RequestTemplate {
    /// The request bytes of `request` sent to `url` (an `http[s]://` URL).
    pub fn new(url: &str, request: &Request) -> Result<RequestTemplate, String> {
        let parts =
            url_parts(url).ok_or_else(|| format!("expected an http(s):// URL, got {url:?}"))?;
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: volley/{}\r\n",
            request.method,
            request.path,
            parts.authority,
            env!("CARGO_PKG_VERSION")
        );
        let mut has_content_type = false;
        for (name, value) in &request.headers {
            has_content_type |= name.eq_ignore_ascii_case("content-type");
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !request.body.is_empty() {
            if !has_content_type {
                head.push_str("Content-Type: application/octet-stream\r\n");
            }
            head.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend(request.body.to_bytes());
        Ok(RequestTemplate {
            bytes: bytes.into(),
            is_head: request.method == "HEAD",
        })
    }
}

/// One keep-alive connection: sends queued jobs one at a time until the pool
/// stops.
pub async fn connection(sh: &Shared) {
    let Wire::Http1(templates) = &sh.wire else {
        return;
    };
    let mut stream: Option<Io> = None;
    let mut reader = Reader::default();
    let deadline = sh.deadlines.slot();
    while let Some(job) = sh.next_job().await {
        let template = &templates[usize::from(job.tag.req)];
        serve(sh, template, job, &mut stream, &mut reader, &deadline).await;
    }
}

/// Sends one request and records how it ended, exactly once.
async fn serve(
    sh: &Shared,
    template: &RequestTemplate,
    job: Job,
    stream: &mut Option<Io>,
    reader: &mut Reader,
    timer: &Deadline,
) {
    let start = Instant::now();
    if sh.expired(&job, start) {
        return;
    }
    let deadline = start + sh.timeout;
    let mut retried = false;
    let mut counted_sent = false;
    loop {
        let reused = stream.is_some();
        if stream.is_none() {
            match timeout_at(deadline, sh.connector.connect()).await {
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
        let Some(s) = stream.as_mut() else { return };
        if !counted_sent {
            sh.rec.borrow_mut().sent(job.tag);
            counted_sent = true;
        }
        // On a kept-alive connection nothing happened since `start`: no
        // second clock read.
        let send = if reused { start } else { Instant::now() };
        let result = timer
            .run(
                &sh.deadlines,
                deadline,
                reader.exchange(s, &template.bytes, template.is_head),
            )
            .await;
        let now = Instant::now();
        match result {
            Ok(Ok(info)) => {
                if info.status < 400 {
                    sh.rec.borrow_mut().ok(job.tag, now - job.sched, now - send);
                } else {
                    sh.rec.borrow_mut().error(
                        job.tag,
                        ErrorKind::Status,
                        Some(Status::Http(info.status)),
                    );
                }
                if info.close {
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

/// Whether an I/O error means the peer reset or closed the connection.
pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
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
}

impl Reader {
    /// Writes the request and reads one complete response.
    pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        request: &[u8],
        is_head: bool,
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
        self.read_response(stream, is_head).await
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
                        Some((n, status, close, body))
                    }
                    Ok(httparse::Status::Partial) => None,
                    Err(_) => return Err(ReadError::Malformed("malformed response head")),
                }
            };
            let Some((n, status, close, body)) = parsed else {
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
            let close = match body {
                Body::None => close,
                Body::Length(l) => {
                    self.skip(stream, l).await?;
                    close
                }
                Body::Chunked => {
                    self.skip_chunked(stream).await?;
                    close
                }
                Body::UntilClose => {
                    self.pos = self.end;
                    while self.fill(stream).await? > 0 {
                        self.pos = self.end;
                    }
                    true
                }
            };
            return Ok(ResponseInfo { status, close });
        }
    }

    async fn skip<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        mut left: u64,
    ) -> Result<(), ReadError> {
        loop {
            let have = (self.end - self.pos) as u64;
            if have >= left {
                self.pos += left as usize;
                return Ok(());
            }
            left -= have;
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
            self.skip(stream, size + 2).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

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
                r.read_response(&mut client, false)
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
                close: false
            }
        );
        assert_eq!(
            out[1].as_ref().unwrap(),
            &ResponseInfo {
                status: 503,
                close: true
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
                close: true
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
            .read_response(&mut client, false)
            .await
            .unwrap_err();
        assert!(matches!(err, ReadError::Malformed(_)), "{err:?}");
    }
}
