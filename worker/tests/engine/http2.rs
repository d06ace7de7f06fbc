//! HTTP/2 and gRPC: multiplexed streams, the stream limit, statuses and checks.

use std::sync::atomic::Ordering;
use std::time::Duration;

use volley_plan::{Protocol, Request, Rule, StatusMatch};

use crate::servers::*;
use crate::support::*;

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
