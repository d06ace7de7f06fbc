//! Framed TCP: pipelining, replies matched in order, every failure classified.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use volley_plan::data::OnEnd;
use volley_plan::{Body, Protocol, Rule};

use crate::servers::*;
use crate::support::*;

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
