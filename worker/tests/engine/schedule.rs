//! The schedule and what is drawn from it: every arrival index once, the
//! wake gap, engine threads, templates, data sets and stage names.

use std::time::Duration;

use volley_plan::data::OnEnd;
use volley_plan::{Body, Protocol, Request};

use crate::servers::*;
use crate::support::*;

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
    p.load.wake_gap = Some(Duration::from_millis(8));
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

/// `wake_gap = "auto"` (the default) sends each request about on time:
/// against a fast server at 1,000 rps, nothing is in flight when the next
/// request falls due, so the worker wakes for it, and its median send lag
/// is a small fraction of what an explicit 8 ms gap gives in the same test.
/// (A relative bound, with a wide margin: how precise it is, and what it
/// costs, is measured by `bench/precision.sh`.)
#[tokio::test(flavor = "current_thread")]
async fn auto_sends_on_time_where_an_explicit_gap_batches() {
    let (addr, _seen) = http1_server(ok_json).await;
    let mut lags = Vec::new();
    for gap in [None, Some(Duration::from_millis(8))] {
        let mut p = plan(
            format!("http://{addr}/"),
            Protocol::Http1,
            vec![Request::get("/")],
            1000.0,
            1,
        );
        p.load.wake_gap = gap;
        let out = run(p, addr).await;
        assert_eq!((out.sent, out.ok), (1000, 1000), "{gap:?}: {out:?}");
        let lag = out.send_lag.expect("seconds were reported");
        assert_eq!(lag.len(), 1000, "{gap:?}: one lag per sent request");
        lags.push(lag.value_at_quantile(0.5));
    }
    let (auto, batched) = (lags[0], lags[1]);
    assert!(batched >= 2_000, "an 8 ms gap batches: median {batched} µs");
    assert!(
        auto * 4 < batched,
        "auto's median send lag {auto} µs should be well under the 8 ms gap's {batched} µs"
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
