//! HTTP/1.1: a stalled connection, response checks, and TLS for both HTTP versions.

use volley_plan::{Body, Protocol, Request, Rule, StatusMatch};

use crate::servers::*;
use crate::support::*;

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
