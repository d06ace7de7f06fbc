//! The small servers the engine tests run against, one per behaviour.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A framed-TCP server: `reply` decides what to do with each message.
#[derive(Clone, Copy)]
pub(crate) enum TcpMode {
    Echo,
    /// Echo, but close the connection instead of answering every n-th.
    CloseEvery(u64),
    /// Answer with a length prefix of 0xFFFFFFFF.
    BadFrame,
    /// Read and never answer.
    Silent,
}

pub(crate) struct TcpServer {
    pub(crate) addr: SocketAddr,
    pub(crate) answered: Arc<AtomicU64>,
}

pub(crate) async fn tcp_server(mode: TcpMode) -> TcpServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answered = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(AtomicU64::new(0));
    let a = answered.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            s.set_nodelay(true).unwrap();
            let (a, seen) = (a.clone(), seen.clone());
            tokio::spawn(async move {
                loop {
                    let mut len = [0u8; 4];
                    if s.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
                    if s.read_exact(&mut payload).await.is_err() {
                        return;
                    }
                    let n = seen.fetch_add(1, Ordering::Relaxed) + 1;
                    match mode {
                        TcpMode::Echo => {}
                        TcpMode::CloseEvery(every) if n.is_multiple_of(every) => return,
                        TcpMode::CloseEvery(_) => {}
                        TcpMode::BadFrame => {
                            let _ = s.write_all(&[0xff; 4]).await;
                            continue;
                        }
                        TcpMode::Silent => continue,
                    }
                    let mut frame = len.to_vec();
                    frame.extend_from_slice(&payload);
                    if s.write_all(&frame).await.is_err() {
                        return;
                    }
                    a.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    TcpServer { addr, answered }
}

/// An echo server that holds each reply back `delay` after its message came
/// in, reading on meanwhile: messages pile up on a connection that
/// pipelines. It counts each payload it answered and records the most
/// messages it held unanswered at once on one connection.
pub(crate) struct DelayedEcho {
    pub(crate) addr: SocketAddr,
    pub(crate) by_payload: Arc<std::sync::Mutex<std::collections::BTreeMap<Vec<u8>, u64>>>,
    pub(crate) most_in_flight: Arc<AtomicU64>,
}

pub(crate) async fn delayed_echo_server(delay: Duration) -> DelayedEcho {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let by_payload = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let most_in_flight = Arc::new(AtomicU64::new(0));
    let (counts, most) = (by_payload.clone(), most_in_flight.clone());
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            s.set_nodelay(true).unwrap();
            let (mut rd, mut wr) = s.into_split();
            let in_flight = Arc::new(AtomicU64::new(0));
            let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
            let (held, most) = (in_flight.clone(), most.clone());
            tokio::spawn(async move {
                loop {
                    let mut len = [0u8; 4];
                    if rd.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
                    if rd.read_exact(&mut payload).await.is_err() {
                        return;
                    }
                    let n = held.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    if tx.send((Instant::now() + delay, payload)).is_err() {
                        return;
                    }
                }
            });
            let counts = counts.clone();
            tokio::spawn(async move {
                while let Some((due, payload)) = rx.recv().await {
                    tokio::time::sleep_until(due.into()).await;
                    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
                    frame.extend_from_slice(&payload);
                    if wr.write_all(&frame).await.is_err() {
                        return;
                    }
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    *counts.lock().unwrap().entry(payload).or_insert(0) += 1;
                }
            });
        }
    });
    DelayedEcho {
        addr,
        by_payload,
        most_in_flight,
    }
}

/// What an HTTP/2 server answered: in all, and per path (answered, failed).
#[derive(Default)]
pub(crate) struct Served {
    pub(crate) total: AtomicU64,
    pub(crate) by_path: std::sync::Mutex<std::collections::BTreeMap<String, (u64, u64)>>,
}

impl Served {
    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    pub(crate) fn path(&self, path: &str) -> (u64, u64) {
        self.by_path
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or_default()
    }
}

/// An HTTP/2 server: gRPC-style when the request says so; every `fail_every`
/// th request fails (HTTP 503, or grpc-status 14).
pub(crate) async fn h2_server(fail_every: u64) -> (SocketAddr, Arc<Served>) {
    h2_server_failing_with(fail_every, "14").await
}

/// [`h2_server`] whose failing gRPC calls end with grpc-status `code`.
pub(crate) async fn h2_server_failing_with(
    fail_every: u64,
    code: &'static str,
) -> (SocketAddr, Arc<Served>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(Served::default());
    let count = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve_h2(s, fail_every, code, count.clone()));
        }
    });
    (addr, served)
}

/// Answers HTTP/2 requests on one connection (see [`h2_server`]).
pub(crate) async fn serve_h2<S>(s: S, fail_every: u64, fail_code: &'static str, count: Arc<Served>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Ok(mut conn) = h2::server::handshake(s).await else {
        return;
    };
    while let Some(Ok((req, mut respond))) = conn.accept().await {
        let count = count.clone();
        tokio::spawn(async move {
            let path = req.uri().path().to_string();
            let grpc = req
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
            let mut body = req.into_body();
            let mut got = Vec::new();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
                got.extend_from_slice(&chunk);
            }
            let n = count.total.fetch_add(1, Ordering::SeqCst) + 1;
            let fail = fail_every > 0 && n.is_multiple_of(fail_every);
            {
                let mut by_path = count.by_path.lock().unwrap();
                let e = by_path.entry(path).or_default();
                e.0 += 1;
                e.1 += u64::from(fail);
            }
            if !grpc {
                let status = if fail { 503 } else { 200 };
                let resp = http::Response::builder().status(status).body(()).unwrap();
                let mut stream = respond.send_response(resp, false).unwrap();
                let _ = stream.send_data(Bytes::from_static(b"hello"), true);
                return;
            }
            let resp = http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .body(())
                .unwrap();
            let mut stream = respond.send_response(resp, false).unwrap();
            let _ = stream.send_data(Bytes::from(got), false);
            let mut trailers = http::HeaderMap::new();
            let code = if fail { fail_code } else { "0" };
            trailers.insert("grpc-status", code.parse().unwrap());
            let _ = stream.send_trailers(trailers);
        });
    }
}

/// An HTTP/2 server that answers each request after `delay` and records
/// the most streams it had open at once on any one connection, and how
/// many connections it accepted.
pub(crate) async fn slow_h2_server(
    delay: Duration,
) -> (SocketAddr, Arc<AtomicU64>, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (most, conns) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (most2, conns2) = (most.clone(), conns.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            conns2.fetch_add(1, Ordering::SeqCst);
            let most = most2.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(s).await else {
                    return;
                };
                let open = Arc::new(AtomicU64::new(0));
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    let (open, most) = (open.clone(), most.clone());
                    tokio::spawn(async move {
                        most.fetch_max(open.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        open.fetch_sub(1, Ordering::SeqCst);
                        let resp = http::Response::builder().status(200).body(()).unwrap();
                        let _ = respond.send_response(resp, true);
                    });
                }
            });
        }
    });
    (addr, most, conns)
}

pub(crate) fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs (test.sh installs it)");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA, and a certificate for 127.0.0.1 signed by it, in `dir`.
pub(crate) fn certificates(dir: &std::path::Path) {
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    let args = |s: String| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let run = |s: String| {
        let a = args(s);
        openssl(dir, &a.iter().map(String::as_str).collect::<Vec<_>>());
    };
    run(format!(
        "req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=volley-engine-test-ca"
    ));
    run(format!(
        "req {ec} -keyout server.key -out server.csr -subj /CN=localhost"
    ));
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run("x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext".into());
}

/// A TLS server offering ALPN h2 and http/1.1: HTTP/2 as [`serve_h2`],
/// HTTP/1.1 answering every request `200 ok`.
pub(crate) async fn tls_server(dir: &std::path::Path) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                    serve_h2(tls, 0, "14", Arc::default()).await;
                    return;
                }
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if tls.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// An HTTP/1.1 server whose first connection reads and never answers; every
/// later one answers each request with 200.
pub(crate) async fn http1_stalls_first_connection() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut s, _)) = listener.accept().await {
            let stall = std::mem::take(&mut first);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut have = Vec::new();
                loop {
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if stall {
                        continue;
                    }
                    have.extend_from_slice(&buf[..n]);
                    while let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                        have.drain(..end + 4);
                        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if s.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// One request as an HTTP/1.1 test server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// Which of the server's connections it came on (0, 1, …).
    pub(crate) conn: u64,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Seen {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The arrival index a test put last in the path (`/…/{{seq}}`).
    pub(crate) fn seq(&self) -> u64 {
        self.path.rsplit('/').next().unwrap().parse().unwrap()
    }
}

pub(crate) type Seens = Arc<std::sync::Mutex<Vec<Seen>>>;

/// An HTTP/1.1 server that keeps every request it reads and answers each
/// with `reply(request)`: a status and a body.
pub(crate) async fn http1_server(reply: fn(&Seen) -> (u16, &'static str)) -> (SocketAddr, Seens) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seens = Arc::default();
    let all = seen.clone();
    tokio::spawn(async move {
        let mut conns = 0..;
        while let Ok((mut s, _)) = listener.accept().await {
            let conn = conns.next().unwrap();
            let all = all.clone();
            tokio::spawn(async move {
                let mut have = Vec::new();
                let mut chunk = vec![0u8; 16 * 1024];
                loop {
                    // Every complete request buffered, in order.
                    loop {
                        let mut headers = [httparse::EMPTY_HEADER; 32];
                        let mut req = httparse::Request::new(&mut headers);
                        let Ok(httparse::Status::Complete(n)) = req.parse(&have) else {
                            break;
                        };
                        let headers: Vec<(String, String)> = req
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_string(),
                                    String::from_utf8_lossy(h.value).into_owned(),
                                )
                            })
                            .collect();
                        let len: usize = headers
                            .iter()
                            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                            .map_or(0, |(_, v)| v.parse().unwrap());
                        if have.len() < n + len {
                            break;
                        }
                        let got = Seen {
                            conn,
                            path: req.path.unwrap().to_string(),
                            headers,
                            body: have[n..n + len].to_vec(),
                        };
                        have.drain(..n + len);
                        let (status, body) = reply(&got);
                        all.lock().unwrap().push(got);
                        let resp = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if s.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => have.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (addr, seen)
}

pub(crate) fn ok_json(_: &Seen) -> (u16, &'static str) {
    (200, r#"{"status":"ok"}"#)
}
