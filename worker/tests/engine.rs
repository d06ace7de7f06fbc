//! The traffic engine against small servers written here, one per
//! behaviour, for every protocol: counts add up, replies are matched to
//! their requests, and each way of failing lands in its own error kind.
//! (The cross-process tests against nginx, grpcio and the built-in target
//! are in `integration-tests/tests/protocols.rs`.)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use volley_plan::data::{Format, OnEnd, Order};
use volley_plan::{
    Body, DataSet, Expect, Load, Plan, Protocol, Request, Rule, Share, Stage, StatusMatch, Target,
    Tls,
};
use volley_worker::engine::{self, EngineEvent, EngineSetup};

/// What one engine run reported, summed over its seconds.
#[derive(Debug, Default)]
struct Outcome {
    intended: u64,
    sent: u64,
    ok: u64,
    dropped: u64,
    /// connect, timeout, status, protocol, reset, check
    errors: [u64; 6],
    grpc: Vec<(u32, u64)>,
    http: Vec<(u32, u64)>,
    /// intended, ok per request definition
    per_request: Vec<(u64, u64)>,
    /// (request, check, failures)
    checks: Vec<(u16, u16, u64)>,
    /// (second, intended) of every reported second, in the order reported.
    seconds: Vec<(u32, u64)>,
    /// Every second's send lag (actual − scheduled send), merged.
    send_lag: Option<volley_proto::histogram::SecondHist>,
}

fn plan(url: String, protocol: Protocol, requests: Vec<Request>, rps: f64, secs: u64) -> Plan {
    Plan {
        target: Target {
            url,
            protocol,
            timeout: Duration::from_millis(500),
            requests,
            tls: Tls::default(),
        },
        load: Load {
            connections: 4,
            per_connection: protocol.default_per_connection(),
            ..Load::default()
        },
        stages: vec![Stage {
            name: "s".into(),
            duration: Duration::from_secs(secs),
            from_rps: rps,
            to_rps: rps,
            burst: false,
        }],
        vars: Vec::new(),
        env: Vec::new(),
        data: Vec::new(),
    }
}

fn message(bytes: &[u8]) -> Request {
    Request {
        name: "m".into(),
        weight: 1,
        method: "POST".into(),
        path: "/echo.Echo/Say".into(),
        headers: vec![],
        body: Body::Bytes(bytes.to_vec()),
        expect: Default::default(),
    }
}

async fn run(plan: Plan, addr: SocketAddr) -> Outcome {
    run_threads(plan, addr, 1).await
}

/// [`run`] with up to `threads` engine threads (`volley-worker --threads`).
async fn run_threads(plan: Plan, addr: SocketAddr, threads: usize) -> Outcome {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let setup = EngineSetup {
        plan,
        share: Share::whole(),
        share_from: 0.0,
        addrs: vec![addr],
        worker_id: "w1".into(),
    };
    let _handle = engine::start(setup, Instant::now(), threads, tx).unwrap();
    let mut out = Outcome::default();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("the engine finishes")
    {
        match ev {
            EngineEvent::Interval(d) => {
                out.seconds.push((d.index, d.intended));
                out.send_lag
                    .get_or_insert_with(volley_proto::histogram::new_second_hist)
                    .add(&d.send_lag)
                    .unwrap();
                out.intended += d.intended;
                out.sent += d.sent;
                out.ok += d.ok;
                out.dropped += d.dropped;
                for (a, b) in out.errors.iter_mut().zip(d.errors) {
                    *a += b;
                }
                out.grpc.extend(d.grpc_codes.iter().copied());
                out.http.extend(d.status_codes.iter().copied());
                assert_eq!(
                    d.check_failures.iter().map(|c| c.count).sum::<u64>(),
                    d.errors[CHECK],
                    "per-check counts add up to errors[check]"
                );
                for c in &d.check_failures {
                    match out
                        .checks
                        .iter_mut()
                        .find(|x| (x.0, x.1) == (c.req, c.check))
                    {
                        Some(x) => x.2 += c.count,
                        None => out.checks.push((c.req, c.check, c.count)),
                    }
                }
                if out.per_request.len() < d.requests.len() {
                    out.per_request.resize(d.requests.len(), (0, 0));
                }
                for (acc, r) in out.per_request.iter_mut().zip(&d.requests) {
                    acc.0 += r.intended;
                    acc.1 += r.ok;
                }
            }
            EngineEvent::Finished(t) => {
                assert_eq!(t.intended, t.ok + t.errors + t.dropped);
                assert_eq!(t.intended, out.intended);
                break;
            }
        }
    }
    out
}

fn sum(codes: &[(u32, u64)], code: u32) -> u64 {
    codes.iter().filter(|c| c.0 == code).map(|c| c.1).sum()
}

const CONNECT: usize = 0;
const TIMEOUT: usize = 1;
const STATUS: usize = 2;
const PROTOCOL: usize = 3;
const RESET: usize = 4;
const CHECK: usize = 5;

/// A framed-TCP server: `reply` decides what to do with each message.
#[derive(Clone, Copy)]
enum TcpMode {
    Echo,
    /// Echo, but close the connection instead of answering every n-th.
    CloseEvery(u64),
    /// Answer with a length prefix of 0xFFFFFFFF.
    BadFrame,
    /// Read and never answer.
    Silent,
}

struct TcpServer {
    addr: SocketAddr,
    answered: Arc<AtomicU64>,
}

async fn tcp_server(mode: TcpMode) -> TcpServer {
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
struct DelayedEcho {
    addr: SocketAddr,
    by_payload: Arc<std::sync::Mutex<std::collections::BTreeMap<Vec<u8>, u64>>>,
    most_in_flight: Arc<AtomicU64>,
}

async fn delayed_echo_server(delay: Duration) -> DelayedEcho {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_messages_are_pipelined_and_all_answered() {
    // Four definitions with distinct payloads, each checking that its reply
    // echoes its own payload: a reply matched to another message fails a
    // check (the smooth round robin sends one definition twice in a row only
    // where one block of the mix meets the next, so a shifted matching fails
    // nearly every reply).
    let names = ["alpha", "bravo", "charlie", "delta"];
    let requests = names
        .iter()
        .map(|n| {
            let mut r = message(format!("payload-{n}").as_bytes());
            r.name = (*n).into();
            r.expect = checks(vec![Rule::BodyContains(format!("payload-{n}"))]);
            r
        })
        .collect();
    // Each reply comes 5 ms after its message: at 2 messages per ms about
    // 10 are outstanding at any time. Without pipelining 4 connections
    // would carry at most 4 / 5 ms = 800 per second, not 2,000.
    let server = delayed_echo_server(Duration::from_millis(5)).await;
    let url = format!("tcp://{}", server.addr);
    let out = run(plan(url, Protocol::Tcp, requests, 2000.0, 2), server.addr).await;
    assert_eq!(out.intended, 4000);
    assert_eq!(
        out.errors, [0; 6],
        "no reply judged against another's payload: {out:?}"
    );
    assert_eq!((out.ok, out.sent, out.dropped), (4000, 4000, 0), "{out:?}");
    assert_eq!(out.per_request, vec![(1000, 1000); 4]);
    let answered = server.by_payload.lock().unwrap().clone();
    let expected: std::collections::BTreeMap<Vec<u8>, u64> = names
        .iter()
        .map(|n| (format!("payload-{n}").into_bytes(), 1000))
        .collect();
    assert_eq!(
        answered, expected,
        "the server answered each payload 1,000 times"
    );
    let most = server.most_in_flight.load(Ordering::SeqCst);
    assert!(
        most > 1,
        "at most {most} message in flight on a connection: not pipelined"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_failures_are_classified() {
    // A closed connection: the unanswered message and any behind it reset.
    let server = tcp_server(TcpMode::CloseEvery(50)).await;
    let out = run(
        plan(
            format!("tcp://{}", server.addr),
            Protocol::Tcp,
            vec![message(b"x")],
            500.0,
            1,
        ),
        server.addr,
    )
    .await;
    assert_eq!(out.ok, server.answered.load(Ordering::Relaxed));
    assert!(out.errors[RESET] >= 10, "{out:?}");
    assert_eq!(out.ok + out.errors[RESET], 500, "{out:?}");

    let server = tcp_server(TcpMode::BadFrame).await;
    let out = run(
        plan(
            format!("tcp://{}", server.addr),
            Protocol::Tcp,
            vec![message(b"x")],
            50.0,
            1,
        ),
        server.addr,
    )
    .await;
    assert_eq!(out.ok, 0);
    assert!(out.errors[PROTOCOL] >= 1, "{out:?}");
    assert_eq!(out.errors[PROTOCOL] + out.errors[RESET], 50, "{out:?}");

    let server = tcp_server(TcpMode::Silent).await;
    let out = run(
        plan(
            format!("tcp://{}", server.addr),
            Protocol::Tcp,
            vec![message(b"x")],
            20.0,
            1,
        ),
        server.addr,
    )
    .await;
    assert_eq!(out.ok, 0);
    assert!(out.errors[TIMEOUT] >= 1, "{out:?}");
    assert_eq!(out.errors[TIMEOUT] + out.errors[RESET], 20, "{out:?}");

    // Nothing listening.
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let out = run(
        plan(
            format!("tcp://{addr}"),
            Protocol::Tcp,
            vec![message(b"x")],
            20.0,
            1,
        ),
        addr,
    )
    .await;
    assert_eq!(out.errors[CONNECT], 20, "{out:?}");
}

/// What an HTTP/2 server answered: in all, and per path (answered, failed).
#[derive(Default)]
struct Served {
    total: AtomicU64,
    by_path: std::sync::Mutex<std::collections::BTreeMap<String, (u64, u64)>>,
}

impl Served {
    fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    fn path(&self, path: &str) -> (u64, u64) {
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
async fn h2_server(fail_every: u64) -> (SocketAddr, Arc<Served>) {
    h2_server_failing_with(fail_every, "14").await
}

/// [`h2_server`] whose failing gRPC calls end with grpc-status `code`.
async fn h2_server_failing_with(fail_every: u64, code: &'static str) -> (SocketAddr, Arc<Served>) {
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
async fn serve_h2<S>(s: S, fail_every: u64, fail_code: &'static str, count: Arc<Served>)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_multiplex_and_statuses_count() {
    let (addr, served) = h2_server(10).await;
    let mut get = Request::get("/items");
    get.name = "items".into();
    let out = run(
        plan(
            format!("http://{addr}/"),
            Protocol::Http2,
            vec![get],
            1000.0,
            2,
        ),
        addr,
    )
    .await;
    assert_eq!(served.total(), 2000);
    assert_eq!((out.ok, out.errors[STATUS]), (1800, 200), "{out:?}");
    assert_eq!(sum(&out.http, 503), 200);
    assert_eq!(out.errors.iter().sum::<u64>(), 200);
}

/// An HTTP/2 server that answers each request after `delay` and records
/// the most streams it had open at once on any one connection, and how
/// many connections it accepted.
async fn slow_h2_server(delay: Duration) -> (SocketAddr, Arc<AtomicU64>, Arc<AtomicU64>) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_replies_in_any_order_never_exceed_the_streams_per_connection() {
    // 240 rps of 25 ms replies would need six streams at once: one
    // connection with room for four carries them all at 160 a second,
    // the rest waiting for a stream, and finishes the backlog well within
    // the timeout. Replies finish out of order as their streams do.
    let (addr, most, conns) = slow_h2_server(Duration::from_millis(25)).await;
    let mut p = plan(
        format!("http://{addr}/"),
        Protocol::Http2,
        vec![Request::get("/slow")],
        240.0,
        1,
    );
    p.target.timeout = Duration::from_secs(5);
    p.load.connections = 1;
    p.load.per_connection = 4;
    let out = run(p, addr).await;
    assert_eq!((out.intended, out.sent, out.ok), (240, 240, 240), "{out:?}");
    assert_eq!(conns.load(Ordering::SeqCst), 1);
    assert_eq!(most.load(Ordering::SeqCst), 4, "streams open at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_judge_grpc_status_and_weighted_requests_split() {
    let (addr, served) = h2_server(4).await;
    let mut a = message(b"a");
    a.weight = 3;
    let mut b = message(b"bb");
    b.path = "/echo.Echo/Other".into();
    let out = run(
        plan(
            format!("http://{addr}"),
            Protocol::Grpc,
            vec![a, b],
            800.0,
            1,
        ),
        addr,
    )
    .await;
    assert_eq!(served.total(), 800);
    assert_eq!((out.ok, out.errors[STATUS]), (600, 200), "{out:?}");
    assert_eq!(sum(&out.grpc, 14), 200);
    assert!(out.http.is_empty());
    // Each definition against what the server saw on its method: 3:1,
    // exact over whole blocks of 4 arrivals, and each one's ok count is
    // the calls the server answered with status 0 on that method.
    let (say, other) = (
        served.path("/echo.Echo/Say"),
        served.path("/echo.Echo/Other"),
    );
    assert_eq!(
        (say.0, other.0),
        (600, 200),
        "calls per method at the server"
    );
    assert_eq!(
        out.per_request,
        vec![(say.0, say.0 - say.1), (other.0, other.0 - other.1)],
        "per definition (intended, ok) against the server's (answered, answered - failed)"
    );
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs (test.sh installs it)");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA, and a certificate for 127.0.0.1 signed by it, in `dir`.
fn certificates(dir: &std::path::Path) {
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
async fn tls_server(dir: &std::path::Path) -> SocketAddr {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_custom_ca_for_http1_and_http2_and_nothing_without_it() {
    let dir = std::env::temp_dir().join(format!("volley-engine-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir);
    let ca = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    let addr = tls_server(&dir).await;
    let url = format!("https://{addr}/x");
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let mut p = plan(url.clone(), protocol, vec![Request::get("/x")], 200.0, 1);
        p.target.tls.ca_pem = Some(ca.clone());
        let out = run(p, addr).await;
        assert_eq!((out.ok, out.errors), (200, [0; 6]), "{protocol:?} {out:?}");

        // Not trusted: every request fails to connect.
        let p = plan(url.clone(), protocol, vec![Request::get("/x")], 20.0, 1);
        let out = run(p, addr).await;
        assert_eq!(out.errors[CONNECT], 20, "{protocol:?} {out:?}");

        // Trusted blindly, only when asked.
        let mut p = plan(url.clone(), protocol, vec![Request::get("/x")], 20.0, 1);
        p.target.tls.insecure_skip_verify = true;
        let out = run(p, addr).await;
        assert_eq!(out.ok, 20, "{protocol:?} {out:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An HTTP/1.1 server whose first connection reads and never answers; every
/// later one answers each request with 200.
async fn http1_stalls_first_connection() -> SocketAddr {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_mid_run_frees_the_connection_for_the_requests_behind_it() {
    // One connection, a 500 ms timeout, 20 rps for 3 s. The first request
    // stalls: it must time out while the run goes on (not only when the
    // run drains), so that the requests queued behind it go out on a new
    // connection and succeed instead of expiring in the queue.
    let addr = http1_stalls_first_connection().await;
    let get = Request {
        name: "get".into(),
        weight: 1,
        method: "GET".into(),
        path: "/".into(),
        headers: vec![],
        body: Body::Bytes(vec![]),
        expect: Default::default(),
    };
    let mut p = plan(
        format!("http://{addr}/"),
        Protocol::Http1,
        vec![get],
        20.0,
        3,
    );
    p.load.connections = 1;
    let out = run(p, addr).await;
    assert_eq!(out.intended, 60, "{out:?}");
    assert_eq!(out.errors[TIMEOUT], 1, "{out:?}");
    assert_eq!(out.ok, 59, "{out:?}");
}

/// One request as an HTTP/1.1 test server saw it.
#[derive(Debug, Clone)]
struct Seen {
    /// Which of the server's connections it came on (0, 1, …).
    conn: u64,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The arrival index a test put last in the path (`/…/{{seq}}`).
    fn seq(&self) -> u64 {
        self.path.rsplit('/').next().unwrap().parse().unwrap()
    }
}

type Seens = Arc<std::sync::Mutex<Vec<Seen>>>;

/// An HTTP/1.1 server that keeps every request it reads and answers each
/// with `reply(request)`: a status and a body.
async fn http1_server(reply: fn(&Seen) -> (u16, &'static str)) -> (SocketAddr, Seens) {
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

fn ok_json(_: &Seen) -> (u16, &'static str) {
    (200, r#"{"status":"ok"}"#)
}

fn checks(rules: Vec<Rule>) -> Expect {
    Expect::from_rules(rules)
}

fn data(name: &str, csv: &str, on_end: OnEnd) -> DataSet {
    DataSet::parse(name, Format::Csv, Order::Sequential, on_end, csv.as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_templated_path_sends_every_arrival_index_exactly_once() {
    let (addr, seen) = http1_server(ok_json).await;
    let out = run(
        plan(
            format!("http://{addr}/"),
            Protocol::Http1,
            vec![Request::get("/orders/{{seq}}")],
            1000.0,
            1,
        ),
        addr,
    )
    .await;
    assert_eq!((out.ok, out.sent), (1000, 1000), "{out:?}");
    let mut seqs: Vec<u64> = seen.lock().unwrap().iter().map(Seen::seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..1000).collect::<Vec<_>>());
}

/// `load.wake_gap` reaches the scheduler: with a gap of 8 ms at 1,000 rps
/// the arrivals of each 8 ms leave together when it wakes, so the median
/// request leaves milliseconds late, and that lateness is reported as send
/// lag for every sent request. (Only that direction is asserted: a busy
/// machine can make any gap later, never earlier. How precise short gaps
/// are is measured by `bench/precision.sh`.)
#[tokio::test(flavor = "current_thread")]
async fn the_wake_gap_batches_the_sends_and_their_lag_is_reported() {
    let (addr, _seen) = http1_server(ok_json).await;
    let mut p = plan(
        format!("http://{addr}/"),
        Protocol::Http1,
        vec![Request::get("/")],
        1000.0,
        1,
    );
    p.load.wake_gap = Duration::from_millis(8);
    let out = run(p, addr).await;
    assert_eq!((out.sent, out.ok), (1000, 1000), "{out:?}");
    let lag = out.send_lag.expect("seconds were reported");
    assert_eq!(lag.len(), 1000, "one lag per sent request");
    assert!(
        lag.value_at_quantile(0.5) >= 2_000,
        "median send lag {} µs with an 8 ms gap",
        lag.value_at_quantile(0.5)
    );
    assert!(
        lag.min() < 4_000,
        "the last arrival of a batch leaves about on time: lag is per request, not per batch"
    );
}

/// One worker, three engine threads: every arrival is sent exactly once by
/// exactly one of them, over at most the plan's connections, and the
/// worker reports one series of seconds, each with its whole second's
/// arrivals, as a one-thread engine does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_threads_send_every_arrival_once_and_report_one_series() {
    let (addr, seen) = http1_server(ok_json).await;
    let mut p = plan(
        format!("http://{addr}/"),
        Protocol::Http1,
        vec![Request::get("/orders/{{seq}}")],
        1000.0,
        2,
    );
    p.load.connections = 3;
    let out = run_threads(p.clone(), addr, 8).await;
    assert_eq!(
        (out.intended, out.sent, out.ok),
        (2000, 2000, 2000),
        "{out:?}"
    );
    let mut seqs: Vec<u64> = seen.lock().unwrap().iter().map(Seen::seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..2000).collect::<Vec<_>>());
    let indices: Vec<u32> = out.seconds.iter().map(|s| s.0).collect();
    assert_eq!(indices, (0..indices.len() as u32).collect::<Vec<_>>());
    assert_eq!(&out.seconds[..2], &[(0, 1000), (1, 1000)]);
    assert!(
        out.seconds[2..].iter().all(|s| s.1 == 0),
        "{:?}",
        out.seconds
    );
    let opened = seen.lock().unwrap().iter().map(|s| s.conn).max().unwrap() + 1;
    assert_eq!(
        opened, 3,
        "one connection per engine for load.connections = 3"
    );
    // The one-thread engine reports the same series.
    seen.lock().unwrap().clear();
    let one = run(p, addr).await;
    assert_eq!(one.seconds, out.seconds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templated_headers_and_bodies_are_drawn_from_seed_and_seq() {
    let (addr, seen) = http1_server(ok_json).await;
    let mut r = Request::get("/orders/{{seq}}");
    r.method = "POST".into();
    r.headers = vec![
        ("Idempotency-Key".into(), "{{uuid}}".into()),
        ("Content-Type".into(), "application/json".into()),
    ];
    r.body =
        Body::Template(r#"{"id":"{{uuid}}","by":"{{worker}}","qty":{{rand_int(1, 5)}}}"#.into());
    let mut p = plan(
        format!("http://{addr}/"),
        Protocol::Http1,
        vec![r],
        500.0,
        1,
    );
    p.load.seed = 42;
    let out = run(p, addr).await;
    assert_eq!(out.ok, 500, "{out:?}");
    let seen = seen.lock().unwrap();
    let mut keys = std::collections::HashSet::new();
    for s in seen.iter() {
        let uuid = volley_plan::template::uuid_of(42, s.seq()).to_string();
        assert_eq!(s.header("idempotency-key"), Some(uuid.as_str()), "{s:?}");
        let body = String::from_utf8(s.body.clone()).unwrap();
        assert!(
            body.starts_with(&format!(r#"{{"id":"{uuid}","by":"w1","qty":"#)),
            "{body}"
        );
        assert!(keys.insert(uuid));
    }
    assert_eq!(keys.len(), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_checks_are_errors_of_kind_check_counted_per_check() {
    // Every 10th arrival gets `200 {"status":"error"}`, every 25th a 201.
    fn reply(s: &Seen) -> (u16, &'static str) {
        match s.seq() {
            n if n % 25 == 24 => (201, r#"{"status":"ok"}"#),
            n if n % 10 == 9 => (200, r#"{"status":"error"}"#),
            _ => ok_json(s),
        }
    }
    let (addr, _) = http1_server(reply).await;
    let mut r = Request::get("/orders/{{seq}}");
    r.expect = checks(vec![
        Rule::BodyContains(r#""status":"ok""#.into()),
        Rule::Status(vec![StatusMatch::Code(200)]),
        Rule::Header {
            name: "content-type".into(),
            value: "application/json".into(),
        },
    ]);
    let out = run(
        plan(
            format!("http://{addr}/"),
            Protocol::Http1,
            vec![r],
            1000.0,
            1,
        ),
        addr,
    )
    .await;
    // 1000 arrivals: 40 get a 201 (status is judged first, check 1); of the
    // other 960, those ending in 9 (100, less the 20 that are also 25th).
    assert_eq!(out.errors[CHECK], 120, "{out:?}");
    assert_eq!(out.errors.iter().sum::<u64>(), 120, "{out:?}");
    let mut got = out.checks.clone();
    got.sort_unstable();
    assert_eq!(got, vec![(0, 0, 80), (0, 1, 40)]);
    assert_eq!(out.ok, 880);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_check_replaces_the_default_rule() {
    let (addr, served) = h2_server(10).await;
    let mut r = Request::get("/items");
    r.expect = checks(vec![
        Rule::Status(vec![StatusMatch::Code(200), StatusMatch::Code(503)]),
        Rule::BodyContains("hello".into()),
    ]);
    let out = run(
        plan(
            format!("http://{addr}/"),
            Protocol::Http2,
            vec![r],
            500.0,
            1,
        ),
        addr,
    )
    .await;
    assert_eq!(served.total(), 500);
    assert_eq!((out.ok, out.errors), (500, [0; 6]), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_status_checks_judge_the_code_and_bodies_the_message() {
    // Every 4th call ends NOT_FOUND.
    let (addr, _) = h2_server_failing_with(4, "5").await;
    let mut only_ok = message(b"a");
    only_ok.expect = checks(vec![
        Rule::BodyRegex("^a$".into()),
        Rule::GrpcStatus(vec![0]),
    ]);
    let out = run(
        plan(
            format!("http://{addr}"),
            Protocol::Grpc,
            vec![only_ok],
            400.0,
            1,
        ),
        addr,
    )
    .await;
    assert_eq!((out.ok, out.errors[CHECK]), (300, 100), "{out:?}");
    assert_eq!(out.checks, vec![(0, 1, 100)]);
    assert!(out.grpc.is_empty(), "a check failure is not a status error");

    let (addr, _) = h2_server_failing_with(4, "5").await;
    let mut not_found_too = message(b"a");
    not_found_too.expect = checks(vec![Rule::GrpcStatus(vec![0, 5])]);
    let out = run(
        plan(
            format!("http://{addr}"),
            Protocol::Grpc,
            vec![not_found_too],
            400.0,
            1,
        ),
        addr,
    )
    .await;
    assert_eq!((out.ok, out.errors), (400, [0; 6]), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_payloads_render_from_data_and_replies_are_checked() {
    let server = tcp_server(TcpMode::Echo).await;
    let mut r = message(b"");
    r.body = Body::Template("{{data.words.word}}-{{seq}}".into());
    r.expect = checks(vec![Rule::BodyContains("ok-".into())]);
    let mut p = plan(
        format!("tcp://{}", server.addr),
        Protocol::Tcp,
        vec![r],
        800.0,
        1,
    );
    p.data = vec![data("words", "word\nok\nok\nbad\nok\n", OnEnd::Wrap)];
    let out = run(p, server.addr).await;
    assert_eq!((out.ok, out.errors[CHECK]), (600, 200), "{out:?}");
    assert_eq!(out.checks, vec![(0, 0, 200)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_set_that_stops_caps_the_arrivals_exactly() {
    let (addr, seen) = http1_server(ok_json).await;
    let rows: String = (0..137).map(|i| format!("u{i}\n")).collect();
    let mut p = plan(
        format!("http://{addr}/"),
        Protocol::Http1,
        vec![Request::get("/users/{{data.users.id}}/{{seq}}")],
        1000.0,
        1,
    );
    p.data = vec![data("users", &format!("id\n{rows}"), OnEnd::Stop)];
    let out = run(p, addr).await;
    assert_eq!(
        (out.intended, out.sent, out.ok, out.dropped),
        (137, 137, 137, 0),
        "{out:?}"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 137);
    for s in seen.iter() {
        assert_eq!(s.path, format!("/users/u{}/{}", s.seq(), s.seq()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_names_follow_the_scheduled_time_of_each_arrival() {
    let (addr, seen) = http1_server(ok_json).await;
    let mut p = plan(
        format!("http://{addr}/"),
        Protocol::Http1,
        vec![Request::get("/{{stage}}/{{seq}}")],
        200.0,
        1,
    );
    let mut second = p.stages[0].clone();
    second.name = "peak".into();
    p.stages.push(second);
    let out = run(p, addr).await;
    assert_eq!(out.ok, 400, "{out:?}");
    for s in seen.lock().unwrap().iter() {
        let stage = if s.seq() < 200 { "s" } else { "peak" };
        assert_eq!(s.path, format!("/{stage}/{}", s.seq()));
    }
}
