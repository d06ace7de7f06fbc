//! Connections replaced during a run (`load.max_requests_per_connection`,
//! `load.connection_lifetime`, docs/scenarios.md): for every protocol, the
//! built-in target sees many connections, and not one request fails or is
//! dropped because its connection was replaced.
//! (Spreading over several addresses of one name is tested in network
//! namespaces: `charts/tests/test_multihost.py`.)

mod common;

use common::*;

/// The `[target]` body for `protocol` against a `volley target`.
fn target_keys(protocol: &str, http_url: &str, tcp_addr: &str) -> String {
    match protocol {
        "http1" => format!("url = \"{http_url}\""),
        "http2" => format!("url = \"{http_url}\"\nprotocol = \"http2\""),
        "grpc" => format!(
            "url = \"{}\"\nprotocol = \"grpc\"\nmethod = \"/volley.Echo/Call\"\nbody_size = 64",
            http_url.trim_end_matches('/')
        ),
        "tcp" => format!("url = \"tcp://{tcp_addr}\"\nprotocol = \"tcp\"\nbody_size = 64"),
        other => panic!("no such protocol {other}"),
    }
}

/// Runs 300 req/s for 3 s with `load` on one worker and returns the report
/// and the target's own counters.
fn run(protocol: &str, load: &str, tag: &str) -> (serde_json::Value, serde_json::Value) {
    let (_target, url, tcp) = start_target_with_tcp(&[]);
    let toml = format!(
        "name = \"renewal\"\n[target]\n{}\ntimeout = \"2s\"\n[load]\n{load}\n\
         [[stages]]\nrate = 300\nduration = \"3s\"\n",
        target_keys(protocol, &url, &tcp)
    );
    let (r, _dir) = run_local_to_report(tag, &toml, &["--local-workers", "1"]);
    (r, target_stats(&url))
}

/// Every request intended was answered ok, by the target too: none was lost
/// to a replaced connection.
fn assert_all_ok(r: &serde_json::Value, stats: &serde_json::Value, what: &str) {
    assert_accounted(&r["requests"], what);
    assert_eq!(u(r, "requests.intended"), 900, "{what}: {}", r["requests"]);
    assert_eq!(
        u(r, "requests.ok"),
        900,
        "{what}: {} {}",
        r["requests"],
        r["errors_by_kind"]
    );
    assert_eq!(
        u(r, "requests.errors"),
        0,
        "{what}: {}",
        r["errors_by_kind"]
    );
    assert_eq!(u(r, "requests.dropped"), 0, "{what}: {}", r["requests"]);
    assert_eq!(u(stats, "ok"), 900, "{what}: target stats {stats}");
}

#[test]
fn max_requests_per_connection_replaces_connections_without_failing_a_request() {
    let _serial = serial();
    for protocol in ["http1", "http2", "grpc", "tcp"] {
        let load = match protocol {
            "http1" => "connections = 8\nmax_requests_per_connection = 10",
            "tcp" => "connections = 4\npipeline = 4\nmax_requests_per_connection = 10",
            _ => "connections = 4\nstreams_per_connection = 4\nmax_requests_per_connection = 10",
        };
        let what = format!("{protocol}, 10 requests per connection");
        let (r, stats) = run(protocol, load, &format!("renew-max-{protocol}"));
        assert_all_ok(&r, &stats, &what);
        // 900 requests, at most 10 on one connection: at least 90
        // connections (plus the start-up probe and the stats request).
        let conns = u(&stats, "connections");
        assert!(
            (90..=200).contains(&conns),
            "{what}: the target saw {conns} connections, expected at least 90"
        );
    }
}

#[test]
fn connection_lifetime_replaces_connections_without_failing_a_request() {
    let _serial = serial();
    for protocol in ["http1", "http2"] {
        let load = "connections = 2\nconnection_lifetime = \"100ms\"";
        let what = format!("{protocol}, 100 ms connections");
        let (r, stats) = run(protocol, load, &format!("renew-life-{protocol}"));
        assert_all_ok(&r, &stats, &what);
        // 3 s of steady traffic over connections of 100 ms: dozens of them
        // (how many depends on how many the pool keeps busy).
        let conns = u(&stats, "connections");
        assert!(
            conns >= 20,
            "{what}: the target saw {conns} connections, expected at least 20"
        );
    }
}
