//! The target server driven over real sockets by a raw TCP client.

mod client;
mod grpc;
mod http2;
mod tcp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::{serve, Listeners, Target, TargetConfig, TargetStats};
use client::{Client, PATIENCE};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

struct Server {
    addr: SocketAddr,
    stats: Arc<TargetStats>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

/// Starts a target. The listener is bound before `serve` runs, so clients
/// can connect at once: no waiting for startup.
async fn start(config: TargetConfig) -> Server {
    start_with(config, |l, c, s, stop| tokio::spawn(serve(l, c, s, stop))).await
}

/// Starts `server` (the HTTP `serve` or the framed-TCP `serve_tcp`) on a
/// fresh listener, stopped when the returned [`Server`]'s `stop` fires.
async fn start_with<F>(config: TargetConfig, server: F) -> Server
where
    F: FnOnce(
        TcpListener,
        TargetConfig,
        Arc<TargetStats>,
        std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    ) -> JoinHandle<std::io::Result<()>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(TargetStats::default());
    let (stop, stopped) = oneshot::channel();
    let stopped = Box::pin(async {
        let _ = stopped.await;
    });
    let task = server(listener, config, Arc::clone(&stats), stopped);
    Server {
        addr,
        stats,
        stop,
        task,
    }
}

/// A target with both listeners, sharing one error counter and queue.
struct Both {
    http: SocketAddr,
    tcp: SocketAddr,
    stats: Arc<TargetStats>,
    _stop: oneshot::Sender<()>,
}

async fn start_both(config: TargetConfig) -> Both {
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = (http.local_addr().unwrap(), tcp.local_addr().unwrap());
    let stats = Arc::new(TargetStats::default());
    let target = Target::new(&config, Arc::clone(&stats));
    let (stop, stopped) = oneshot::channel::<()>();
    let listeners = Listeners {
        http: Some(http),
        tcp: Some(tcp),
    };
    tokio::spawn(async move {
        target
            .run(listeners, async {
                let _ = stopped.await;
            })
            .await
    });
    Both {
        http: addrs.0,
        tcp: addrs.1,
        stats,
        _stop: stop,
    }
}

/// `run`, the one start-up of `volley target` and local mode: both
/// listeners answer, and it returns their counts once shut down.
#[tokio::test]
async fn run_serves_every_listener_until_shutdown() {
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (http_addr, tcp_addr) = (http.local_addr().unwrap(), tcp.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let listeners = Listeners {
        http: Some(http),
        tcp: Some(tcp),
    };
    let running = tokio::spawn(super::run(TargetConfig::default(), listeners, async {
        let _ = stopped.await;
    }));
    assert_eq!(
        Client::connect(http_addr).await.request(GET).await.status,
        200
    );
    let mut framed = tcp::Framed::connect(tcp_addr).await;
    framed.send(&[b"hi"]).await;
    assert_eq!(framed.reply().await, b"hi");
    stop.send(()).unwrap();
    let stats = timeout(PATIENCE, running).await.unwrap().unwrap().unwrap();
    assert_eq!((stats.ok(), stats.errors(), stats.connections()), (2, 0, 2));
    // Both listeners are closed.
    assert!(TcpStream::connect(http_addr).await.is_err());
    assert!(TcpStream::connect(tcp_addr).await.is_err());
}

async fn stats_json(addr: SocketAddr) -> String {
    let response = Client::connect(addr)
        .await
        .request(b"GET /__volley/stats HTTP/1.1\r\n\r\n")
        .await;
    assert_eq!(response.header("content-type"), Some("application/json"));
    String::from_utf8(response.body).unwrap()
}

#[tokio::test]
async fn keep_alive_serves_sequential_requests() {
    let server = start(TargetConfig::default()).await;
    let mut client = Client::connect(server.addr).await;
    for _ in 0..5 {
        let response = client.request(GET).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.body, vec![b'x'; 64]);
    }
    assert_eq!(server.stats.requests(), 5);
    assert_eq!(server.stats.connections(), 1);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    // With error rate 0.5 the answers alternate 200, 500, 200… by arrival.
    let config = TargetConfig {
        error_rate: 0.5,
        ..TargetConfig::default()
    };
    let server = start(config).await;
    let mut client = Client::connect(server.addr).await;
    client.send(&GET.repeat(10)).await;
    let statuses = [200, 500].repeat(5);
    for expected in statuses {
        assert_eq!(client.response().await.status, expected);
    }
    // A HEAD and a stats request in the middle of a batch keep their places.
    let batch = [
        GET,
        b"HEAD / HTTP/1.1\r\n\r\n",
        b"GET /__volley/stats HTTP/1.1\r\n\r\n",
        GET,
    ];
    client.send(&batch.concat()).await;
    assert_eq!(client.response().await.status, 200);
    let head = client.read(true).await;
    assert_eq!(
        (head.status, head.header("content-length")),
        (500, Some("30"))
    );
    let stats = client.response().await;
    assert_eq!(
        stats.body,
        br#"{"requests":12,"ok":6,"errors":6,"connections":1}"#
    );
    assert_eq!(client.response().await.status, 200);
}

#[tokio::test]
async fn pipelined_delayed_requests_are_answered_in_order() {
    let config = TargetConfig {
        delay: Duration::from_millis(30),
        error_rate: 0.5,
        ..TargetConfig::default()
    };
    let server = start(config).await;
    let mut client = Client::connect(server.addr).await;
    let sent = Instant::now();
    client.send(&GET.repeat(6)).await;
    for expected in [200, 500].repeat(3) {
        assert_eq!(client.response().await.status, expected);
    }
    assert!(sent.elapsed() >= Duration::from_millis(30));
}

#[tokio::test]
async fn body_size_is_honoured() {
    for body_size in [0, 1, 1000, 1024 * 1024] {
        let server = start(TargetConfig {
            body_size,
            ..TargetConfig::default()
        })
        .await;
        let mut client = Client::connect(server.addr).await;
        client.send(&GET.repeat(3)).await;
        for _ in 0..3 {
            let response = client.response().await;
            assert_eq!(response.status, 200);
            assert_eq!(response.body.len(), body_size);
        }
    }
}

#[tokio::test]
async fn error_fraction_is_exact() {
    let server = start(TargetConfig {
        error_rate: 0.1,
        ..TargetConfig::default()
    })
    .await;
    let mut errors = 0;
    for _ in 0..10 {
        let mut client = Client::connect(server.addr).await;
        for _ in 0..10 {
            errors += usize::from(client.request(GET).await.status == 500);
        }
    }
    assert_eq!(errors, 10);
    assert_eq!((server.stats.ok(), server.stats.errors()), (90, 10));
}

#[tokio::test]
async fn request_bodies_are_skipped() {
    let server = start(TargetConfig::default()).await;
    let mut client = Client::connect(server.addr).await;
    let post = b"POST /a HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world";
    assert_eq!(client.request(post).await.status, 200);

    // A chunked body arriving in pieces, with an extension and a trailer.
    client
        .send(b"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        .await;
    client.send(b"lo\r\n6;ext=1\r\n world\r\n0\r\n").await;
    client.send(b"Trailer: x\r\n\r\n").await;
    assert_eq!(client.response().await.status, 200);

    // A 1 MiB body, and a request right behind it in the same write.
    let mut big = b"PUT /c HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n".to_vec();
    big.resize(big.len() + 1024 * 1024, b'y');
    big.extend_from_slice(GET);
    client.send(&big).await;
    assert_eq!(client.response().await.status, 200);
    assert_eq!(client.response().await.status, 200);
    assert_eq!(server.stats.requests(), 4);
}

#[tokio::test]
async fn expect_continue_gets_an_interim_response() {
    let server = start(TargetConfig::default()).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        .await;
    // The interim response comes before the body is sent.
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    while client.buf.len() < interim.len() {
        client.fill().await;
    }
    assert!(client.buf.starts_with(interim));
    client.buf.drain(..interim.len());
    client.send(b"abc").await;
    assert_eq!(client.response().await.status, 200);
    assert_eq!(server.stats.requests(), 1);
}

#[tokio::test]
async fn connection_close_and_http10_close() {
    let server = start(TargetConfig::default()).await;
    let mut client = Client::connect(server.addr).await;
    let response = client
        .request(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(
        (response.status, response.header("connection")),
        (200, Some("close"))
    );
    assert!(client.closed().await);

    let mut client = Client::connect(server.addr).await;
    assert_eq!(client.request(b"GET / HTTP/1.0\r\n\r\n").await.status, 200);
    assert!(client.closed().await);

    let mut client = Client::connect(server.addr).await;
    let keep = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    let response = client.request(keep).await;
    assert_eq!(response.header("connection"), Some("keep-alive"));
    assert_eq!(client.request(keep).await.status, 200);
}

#[tokio::test]
async fn malformed_requests_get_400_and_close() {
    let server = start(TargetConfig::default()).await;
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
    ] {
        let mut client = Client::connect(server.addr).await;
        // A good request first: it is answered before the bad one is refused.
        client.send(&[GET, garbage].concat()).await;
        assert_eq!(client.response().await.status, 200);
        assert_eq!(client.response().await.status, 400);
        assert!(client.closed().await);
    }
    let mut client = Client::connect(server.addr).await;
    client
        .send(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        .await;
    assert_eq!(client.response().await.status, 400);
    assert_eq!(server.stats.requests(), 3, "refusals are not counted");
}

#[tokio::test]
async fn oversized_requests_are_refused() {
    let server = start(TargetConfig::default()).await;
    // A head that never ends.
    let mut client = Client::connect(server.addr).await;
    let mut endless = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    endless.resize(200 * 1024, b'a');
    client.send(&endless).await;
    assert_eq!(client.response().await.status, 431);
    assert!(client.closed().await);

    // Too many headers.
    let mut client = Client::connect(server.addr).await;
    let many: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();
    let response = client
        .request(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes())
        .await;
    assert_eq!(response.status, 431);

    // A body over the limit is refused before it is read.
    let mut client = Client::connect(server.addr).await;
    let response = client
        .request(b"POST / HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\nxx")
        .await;
    assert_eq!(response.status, 413);
    assert!(client.closed().await);

    // The server is still fine.
    assert_eq!(
        Client::connect(server.addr).await.request(GET).await.status,
        200
    );
}

#[tokio::test]
async fn delay_is_a_lower_bound() {
    let delay = Duration::from_millis(50);
    let server = start(TargetConfig {
        delay,
        ..TargetConfig::default()
    })
    .await;
    let mut client = Client::connect(server.addr).await;
    for _ in 0..3 {
        let sent = Instant::now();
        assert_eq!(client.request(GET).await.status, 200);
        let elapsed = sent.elapsed();
        assert!(elapsed >= delay, "{elapsed:?}");
        assert!(elapsed < delay * 10, "{elapsed:?}");
    }
    // The stats endpoint does not wait.
    let sent = Instant::now();
    stats_json(server.addr).await;
    assert!(sent.elapsed() < delay, "{:?}", sent.elapsed());
}

#[tokio::test]
async fn capacity_serves_a_burst_one_interval_apart() {
    // 100 requests/s: a burst of 20 leaves at 10, 20, …, 200 ms.
    let server = start(TargetConfig {
        capacity: Some(100.0),
        ..TargetConfig::default()
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(Client::connect(server.addr).await);
    }
    let start = Instant::now();
    for client in &mut clients {
        client.send(GET).await;
    }
    let waits = clients.into_iter().map(|mut client| {
        tokio::spawn(async move {
            assert_eq!(client.response().await.status, 200);
            start.elapsed()
        })
    });
    let mut arrivals = Vec::new();
    for wait in waits.collect::<Vec<_>>() {
        arrivals.push(wait.await.unwrap());
    }
    arrivals.sort();
    assert!(arrivals[19] >= Duration::from_millis(190), "{arrivals:?}");
    for (k, arrival) in (1u64..).zip(&arrivals) {
        let expected = Duration::from_millis(10 * k);
        assert!(
            arrival.abs_diff(expected) <= Duration::from_millis(50),
            "k={k}: {arrivals:?}"
        );
    }
}

#[tokio::test]
async fn stats_endpoint_counts_and_excludes_itself() {
    let server = start(TargetConfig {
        error_rate: 0.25,
        ..TargetConfig::default()
    })
    .await;
    let mut client = Client::connect(server.addr).await;
    for _ in 0..8 {
        client.request(GET).await;
    }
    let expected = r#"{"requests":8,"ok":6,"errors":2,"connections":2}"#;
    assert_eq!(stats_json(server.addr).await, expected);
    let expected = r#"{"requests":8,"ok":6,"errors":2,"connections":3}"#;
    assert_eq!(stats_json(server.addr).await, expected);
    assert_eq!(server.stats.requests(), 8);
    // Only GET (and HEAD) of the exact path is the stats endpoint.
    let response = client
        .request(b"POST /__volley/stats HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        .await;
    assert_eq!(response.body.len(), 64);
    assert_eq!(server.stats.requests(), 9);
}

#[tokio::test]
async fn shutdown_closes_listener_and_connections() {
    let server = start(TargetConfig::default()).await;
    let mut client = Client::connect(server.addr).await;
    assert_eq!(client.request(GET).await.status, 200);
    server.stop.send(()).unwrap();
    timeout(PATIENCE, server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(client.closed().await);
    assert!(TcpStream::connect(server.addr).await.is_err());
}
