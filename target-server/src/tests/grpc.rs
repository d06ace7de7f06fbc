//! gRPC unary calls to the echo service.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use tokio::task::JoinSet;

use super::http2::{connect, exchange, Reply};
use super::{start, TargetConfig};

/// One length-prefixed, uncompressed message.
pub(super) fn message(payload: &[u8]) -> Bytes {
    prefixed(0, payload)
}

fn prefixed(flag: u8, payload: &[u8]) -> Bytes {
    let mut frame = vec![flag];
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(payload);
    Bytes::from(frame)
}

fn call(method: &str) -> Request<()> {
    Request::post(format!("http://t{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

/// The call's grpc-status, from the trailers or a trailers-only response.
fn status(reply: &Reply) -> String {
    let from = |headers: &HeaderMap| {
        headers
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    reply
        .trailers
        .as_ref()
        .and_then(from)
        .or_else(|| from(&reply.headers))
        .expect("a grpc-status")
}

#[tokio::test]
async fn any_method_echoes_the_message() {
    let server = start(TargetConfig::default()).await;
    let send = connect(server.addr).await;
    for (method, payload) in [
        ("/echo.Echo/Say", &b"hello"[..]),
        ("/pkg.v1.Other/Method", b""),
        ("/x/y", &[7; 100_000][..]),
    ] {
        let sent = message(payload);
        let reply = exchange(&send, call(method), std::slice::from_ref(&sent)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.headers["content-type"], "application/grpc");
        assert_eq!(reply.body, sent, "{method}");
        let trailers = reply.trailers.as_ref().expect("trailers");
        assert_eq!(trailers["grpc-status"], "0");
    }
    // A message split over several DATA frames comes back whole.
    let whole = message(b"split across frames");
    let parts = [whole.slice(..3), whole.slice(3..10), whole.slice(10..)];
    let reply = exchange(&send, call("/a/b"), &parts).await;
    assert_eq!(
        (status(&reply), reply.body),
        ("0".to_owned(), whole.to_vec())
    );
    assert_eq!(server.stats.ok(), 4);
}

#[tokio::test]
async fn injected_errors_are_unavailable() {
    let server = start(TargetConfig {
        error_rate: 0.25,
        ..TargetConfig::default()
    })
    .await;
    let send = connect(server.addr).await;
    // In order first: every fourth call fails.
    for i in 0..8 {
        let reply = exchange(&send, call("/a/b"), &[message(b"m")]).await;
        if i % 4 == 3 {
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(reply.headers["grpc-status"], "14");
            assert_eq!(reply.headers["content-type"], "application/grpc");
            assert!(reply.headers.contains_key("grpc-message"));
            assert!(reply.body.is_empty() && reply.trailers.is_none());
        } else {
            assert_eq!(status(&reply), "0");
        }
    }
    // Then at once on one connection: exactly a quarter.
    let mut calls = JoinSet::new();
    for _ in 0..100 {
        let send = send.clone();
        calls.spawn(async move { exchange(&send, call("/a/b"), &[message(b"m")]).await });
    }
    let mut unavailable = 0;
    while let Some(reply) = calls.join_next().await {
        unavailable += usize::from(status(&reply.unwrap()) == "14");
    }
    assert_eq!(unavailable, 25);
    assert_eq!((server.stats.ok(), server.stats.errors()), (81, 27));
}

#[tokio::test]
async fn bad_messages_are_refused_and_not_counted() {
    let server = start(TargetConfig {
        error_rate: 1.0,
        ..TargetConfig::default()
    })
    .await;
    let send = connect(server.addr).await;
    let compressed = exchange(&send, call("/a/b"), &[prefixed(1, b"zz")]).await;
    assert_eq!(status(&compressed), "12");
    let truncated = message(b"truncated");
    let cases = [
        vec![truncated.slice(..7)],
        vec![],
        vec![message(b"one"), message(b"two")],
        vec![prefixed(9, b"flag")],
    ];
    for body in cases {
        let reply = exchange(&send, call("/a/b"), &body).await;
        assert_eq!(status(&reply), "13", "{body:?}");
    }
    let huge = message(&vec![0; 4 * 1024 * 1024 + 1]);
    assert_eq!(status(&exchange(&send, call("/a/b"), &[huge]).await), "8");
    assert_eq!(server.stats.requests(), 0);
}

#[tokio::test]
async fn delay_holds_the_reply() {
    let delay = std::time::Duration::from_millis(100);
    let server = start(TargetConfig {
        delay,
        ..TargetConfig::default()
    })
    .await;
    let send = connect(server.addr).await;
    let sent = std::time::Instant::now();
    let reply = exchange(&send, call("/a/b"), &[message(b"late")]).await;
    assert!(sent.elapsed() >= delay, "{:?}", sent.elapsed());
    assert_eq!(status(&reply), "0");
}

#[tokio::test]
async fn a_tonic_client_accepts_the_replies() {
    use volley_proto::pb::run_control_client::RunControlClient;
    use volley_proto::pb::GetReportRequest;

    // GetReportRequest { run_id = 1 } and GetReportResponse { report_json
    // = 1 } have the same wire form, so the echo is a valid reply.
    let server = start(TargetConfig {
        error_rate: 0.5,
        ..TargetConfig::default()
    })
    .await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = RunControlClient::new(channel);
    let request = || GetReportRequest {
        run_id: "echo me".to_owned(),
    };
    let reply = client.get_report(request()).await.unwrap().into_inner();
    assert_eq!(reply.report_json, "echo me");
    let status = client.get_report(request()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "volley target: injected error");
}
