//! HTTP/2 with prior knowledge on the HTTP/1.1 port, driven by the `h2`
//! client.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use http::{Method, Request, StatusCode};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::timeout;

use super::client::{Client, PATIENCE};
use super::{start, start_both, TargetConfig, GET};

/// A reply read whole.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) headers: http::HeaderMap,
    pub(super) body: Vec<u8>,
    pub(super) trailers: Option<http::HeaderMap>,
}

/// Opens an h2c connection; the connection is driven by a task of its own.
pub(super) async fn connect(addr: SocketAddr) -> SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(16 << 20)
        .handshake(tcp)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send
}

/// Sends one request (with `body` when given) and reads the whole reply.
pub(super) async fn exchange(
    send: &SendRequest<Bytes>,
    request: Request<()>,
    body: &[Bytes],
) -> Reply {
    let call = async {
        let mut send = send.clone().ready().await.unwrap();
        let (response, mut stream) = send.send_request(request, body.is_empty()).unwrap();
        for (i, chunk) in body.iter().enumerate() {
            stream
                .send_data(chunk.clone(), i + 1 == body.len())
                .unwrap();
        }
        let (head, mut recv) = response.await.unwrap().into_parts();
        let mut bytes = Vec::new();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.unwrap();
            recv.flow_control().release_capacity(chunk.len()).unwrap();
            bytes.extend_from_slice(&chunk);
        }
        let trailers = recv.trailers().await.unwrap();
        Reply {
            status: head.status,
            headers: head.headers,
            body: bytes,
            trailers,
        }
    };
    timeout(PATIENCE, call).await.unwrap()
}

fn get(path: &str) -> Request<()> {
    Request::get(format!("http://t{path}")).body(()).unwrap()
}

async fn fetch(send: &SendRequest<Bytes>, path: &str) -> Reply {
    exchange(send, get(path), &[]).await
}

#[tokio::test]
async fn h2c_answers_like_http1_on_the_same_port() {
    let server = start(TargetConfig::default()).await;
    let send = connect(server.addr).await;
    let reply = fetch(&send, "/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, vec![b'x'; 64]);
    assert_eq!(reply.headers["content-length"], "64");
    assert_eq!(reply.headers["content-type"], "application/octet-stream");

    // A HEAD gets the length but no body; a POST body is read and ignored.
    let head = Request::head("http://t/").body(()).unwrap();
    let reply = exchange(&send, head, &[]).await;
    assert_eq!((reply.status, reply.body.len()), (StatusCode::OK, 0));
    assert_eq!(reply.headers["content-length"], "64");
    let post = Request::post("http://t/orders").body(()).unwrap();
    let chunks = [
        Bytes::from_static(b"hello "),
        Bytes::from(vec![b'y'; 100_000]),
    ];
    let reply = exchange(&send, post, &chunks).await;
    assert_eq!(reply.status, 200);

    // HTTP/1.1 is still served beside it.
    let mut client = Client::connect(server.addr).await;
    assert_eq!(client.request(GET).await.status, 200);

    let stats = fetch(&send, "/__volley/stats").await;
    assert_eq!(stats.headers["content-type"], "application/json");
    assert_eq!(
        stats.body,
        br#"{"requests":4,"ok":4,"errors":0,"connections":2}"#
    );
    assert_eq!(server.stats.requests(), 4);
}

#[tokio::test]
async fn body_size_and_declared_oversize() {
    let server = start(TargetConfig {
        body_size: 1024 * 1024,
        ..TargetConfig::default()
    })
    .await;
    let send = connect(server.addr).await;
    assert_eq!(fetch(&send, "/").await.body.len(), 1024 * 1024);
    let huge = Request::post("http://t/")
        .header("content-length", "1000000000")
        .body(())
        .unwrap();
    // Refused on the declared length, before any of the body is sent.
    let refused = async {
        let mut send = send.clone().ready().await.unwrap();
        let (response, _body) = send.send_request(huge, false).unwrap();
        response.await.unwrap().status()
    };
    let status = timeout(PATIENCE, refused).await.unwrap();
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(server.stats.requests(), 1, "refusals are not counted");
}

#[tokio::test]
async fn error_fraction_is_exact_over_concurrent_streams() {
    let server = start(TargetConfig {
        error_rate: 0.1,
        ..TargetConfig::default()
    })
    .await;
    let send = connect(server.addr).await;
    let mut calls = JoinSet::new();
    for _ in 0..200 {
        let send = send.clone();
        calls.spawn(async move { fetch(&send, "/").await });
    }
    let mut errors = 0;
    while let Some(reply) = calls.join_next().await {
        let reply = reply.unwrap();
        if reply.status == 500 {
            errors += 1;
            assert_eq!(reply.body, b"volley target: injected error\n");
        } else {
            assert_eq!(reply.status, 200);
        }
    }
    assert_eq!(errors, 20);
    assert_eq!((server.stats.ok(), server.stats.errors()), (180, 20));
}

#[tokio::test]
async fn delayed_streams_do_not_block_each_other() {
    let delay = Duration::from_millis(200);
    let server = start(TargetConfig {
        delay,
        ..TargetConfig::default()
    })
    .await;
    let send = connect(server.addr).await;
    let started = Instant::now();
    let mut calls = JoinSet::new();
    for _ in 0..500 {
        let send = send.clone();
        calls.spawn(async move {
            let sent = Instant::now();
            let reply = fetch(&send, "/").await;
            (reply.status, sent.elapsed())
        });
    }
    while let Some(call) = calls.join_next().await {
        let (status, elapsed) = call.unwrap();
        assert_eq!(status, 200);
        assert!(elapsed >= delay, "{elapsed:?}");
    }
    // One after another would take 100 s; all at once, about one delay.
    let elapsed = started.elapsed();
    assert!(elapsed < delay * 5, "{elapsed:?}");
    assert_eq!(server.stats.requests(), 500);
    // The stats endpoint does not wait.
    let sent = Instant::now();
    fetch(&send, "/__volley/stats").await;
    assert!(sent.elapsed() < delay, "{:?}", sent.elapsed());
}

#[tokio::test]
async fn capacity_queue_is_shared_with_http1() {
    // 100 requests/s: 10 HTTP/2 streams and 10 HTTP/1.1 requests at once
    // leave one every 10 ms, the last at about 200 ms.
    let server = start(TargetConfig {
        capacity: Some(100.0),
        ..TargetConfig::default()
    })
    .await;
    let send = connect(server.addr).await;
    let started = Instant::now();
    let mut calls = JoinSet::new();
    for i in 0..20 {
        let send = send.clone();
        let addr = server.addr;
        calls.spawn(async move {
            if i % 2 == 0 {
                assert_eq!(fetch(&send, "/").await.status, 200);
            } else {
                let mut client = Client::connect(addr).await;
                assert_eq!(client.request(GET).await.status, 200);
            }
            started.elapsed()
        });
    }
    let mut done = Vec::new();
    while let Some(call) = calls.join_next().await {
        done.push(call.unwrap());
    }
    done.sort();
    assert!(done[19] >= Duration::from_millis(190), "{done:?}");
    assert!(done[19] < Duration::from_millis(400), "{done:?}");
}

#[tokio::test]
async fn one_error_fraction_for_every_protocol() {
    // Rate 0.5 fails every second request, whichever protocol it came by.
    let server = start_both(TargetConfig {
        error_rate: 0.5,
        ..TargetConfig::default()
    })
    .await;
    let mut http1 = Client::connect(server.http).await;
    let send = connect(server.http).await;
    let mut tcp = super::tcp::Framed::connect(server.tcp).await;
    assert_eq!(http1.request(GET).await.status, 200);
    assert_eq!(fetch(&send, "/").await.status, 500);
    assert_eq!(fetch(&send, "/").await.status, 200);
    let req = Request::builder()
        .method(Method::POST)
        .uri("http://t/echo.Echo/Say")
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let reply = exchange(&send, req, &[super::grpc::message(b"hi")]).await;
    assert_eq!(reply.headers["grpc-status"], "14");
    tcp.send(&[b"ok"]).await;
    assert_eq!(tcp.reply().await, b"ok");
    assert_eq!(http1.request(GET).await.status, 500);
    assert_eq!((server.stats.ok(), server.stats.errors()), (3, 3));
}
