//! A raw HTTP/1.1 client for the tests: it sends exactly the bytes given
//! and parses exactly what comes back, so framing bugs cannot hide behind a
//! forgiving client library.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Generous bound on any single wait, so a bug fails a test instead of
/// hanging it.
pub(super) const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Response {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        let found = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name));
        found.map(|(_, v)| v.as_str())
    }
}

pub(super) struct Client {
    stream: TcpStream,
    /// Received bytes not yet returned as responses.
    pub(super) buf: Vec<u8>,
}

impl Client {
    pub(super) async fn connect(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    pub(super) async fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).await.unwrap();
    }

    pub(super) async fn fill(&mut self) -> usize {
        let mut chunk = [0; 64 * 1024];
        let n = timeout(PATIENCE, self.stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads one response; `head_only` for the answer to a `HEAD`.
    pub(super) async fn read(&mut self, head_only: bool) -> Response {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut parsed = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) = parsed.parse(&self.buf).unwrap() {
                let headers: Vec<(String, String)> = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8(h.value.to_vec()).unwrap(),
                        )
                    })
                    .collect();
                let status = parsed.code.unwrap();
                let mut response = Response {
                    status,
                    headers,
                    body: Vec::new(),
                };
                let length: usize = response.header("content-length").unwrap().parse().unwrap();
                let end = len + if head_only { 0 } else { length };
                if self.buf.len() >= end {
                    response.body = self.buf[len..end].to_vec();
                    self.buf.drain(..end);
                    return response;
                }
            }
            assert!(self.fill().await > 0, "connection closed mid-response");
        }
    }

    pub(super) async fn response(&mut self) -> Response {
        self.read(false).await
    }

    pub(super) async fn request(&mut self, raw: &[u8]) -> Response {
        self.send(raw).await;
        self.response().await
    }

    /// Whether the server closed the connection (after any unread bytes).
    pub(super) async fn closed(&mut self) -> bool {
        let mut chunk = [0; 1024];
        matches!(
            timeout(PATIENCE, self.stream.read(&mut chunk))
                .await
                .unwrap(),
            Ok(0) | Err(_)
        )
    }
}
