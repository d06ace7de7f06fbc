//! HTTP/2, gRPC and framed TCP across real processes (docs/protocols.md):
//! `volley run` against independent servers (nginx, Python's grpcio, small
//! servers written here) and the built-in target, checking that the report's
//! counts agree with what the servers saw, that weighted requests keep their
//! exact mix, and that each way a server can fail ends as its error kind.

mod common;

use common::*;
use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A scenario of one stage: `target` and `load` are the bodies of those
/// tables, `more` is appended (`[[requests]]` tables).
fn scenario(target: &str, load: &str, rate: u32, secs: u32, more: &str) -> String {
    format!(
        "name = \"protocols\"\n[target]\n{target}\n[load]\n{load}\n\
         [[stages]]\nname = \"main\"\nrate = {rate}\nduration = \"{secs}s\"\n{more}"
    )
}

/// One in-process worker: the error-classification runs want every request
/// on the same worker's connections.
const ONE_WORKER: &[&str] = &["--local-workers", "1"];

/// Asserts the run put its rate on the wire: every intended request sent,
/// achieved within 2 % of the target, and a sane latency on loopback.
fn assert_on_rate(r: &Value, what: &str) {
    assert_accounted(&r["requests"], what);
    assert_eq!(u(r, "requests.dropped"), 0, "{what}: {}", r["requests"]);
    assert_eq!(
        u(r, "requests.sent"),
        u(r, "requests.intended"),
        "{what}: {}",
        r["requests"]
    );
    let (target, achieved) = (f(r, "target_rps"), f(r, "achieved_rps"));
    assert!(
        (achieved - target).abs() / target < 0.02,
        "{what}: achieved {achieved} rps vs target {target}"
    );
    let p99 = f(r, "latency_ms.p99");
    assert!(p99 < 100.0, "{what}: p99 {p99} ms on loopback");
}

/// The count of one error kind (0 when the report leaves it out).
fn kind(r: &Value, k: &str) -> u64 {
    r["errors_by_kind"][k].as_u64().unwrap_or(0)
}

/// The report's `per_request` section: one entry per `[[requests]]` table,
/// with its name, weight, counts and latency.
fn per_request(r: &Value) -> Vec<Value> {
    r["per_request"]
        .as_array()
        .unwrap_or_else(|| panic!("report.json has no per_request array: {}", r["per_request"]))
        .clone()
}

/// A per-request entry's count.
fn entry_count(e: &Value, k: &str) -> u64 {
    e[k].as_u64()
        .unwrap_or_else(|| panic!("per_request entry without {k}: {e}"))
}

// ---------------------------------------------------------------------------
// HTTP/2 against nginx
// ---------------------------------------------------------------------------

#[test]
fn http2_against_nginx_every_request_is_served_over_h2_and_counted() {
    let _serial = serial();
    let nginx = start_nginx_h2(64);
    let target = format!(
        "url = \"{}\"\nprotocol = \"http2\"\ntimeout = \"2s\"\nheaders = {{ \"X-Tenant\" = \"t1\" }}",
        nginx.url("/items")
    );
    let toml = scenario(
        &target,
        "connections = 2\nstreams_per_connection = 100",
        300,
        3,
        "",
    );
    let (r, _dir) = run_local_to_report("h2-nginx", &toml, &[]);

    assert_eq!(r["complete"], true);
    assert_eq!(u(&r, "requests.intended"), 900, "300 rps × 3 s");
    assert_on_rate(&r, "http2 vs nginx");
    assert_eq!(u(&r, "requests.ok"), 900, "{}", r["errors_by_kind"]);
    assert_eq!(u(&r, "requests.errors"), 0);

    // nginx's own log: exactly the requests the report counts, all over
    // HTTP/2, to the scenario's path, with the scenario's header.
    let log = nginx.access_log();
    assert_eq!(
        log.len() as u64,
        u(&r, "requests.ok"),
        "nginx served vs report ok"
    );
    for l in &log {
        assert_eq!(l.protocol, "HTTP/2.0", "{l:?}");
        assert_eq!(
            (l.method.as_str(), l.uri.as_str(), l.status),
            ("GET", "/items", 200),
            "{l:?}"
        );
        assert_eq!(l.tenant, "t1", "the scenario's headers are sent: {l:?}");
    }
}

#[test]
fn http2_over_tls_against_nginx_negotiates_h2_and_trusts_only_what_it_is_told() {
    let _serial = serial();
    let certs = TempDir::new("nginx-certs");
    certificates(certs.path());
    let nginx = start_nginx_h2_tls(64, certs.path());
    let url = nginx.url("/secure").replacen("http://", "https://", 1);
    let ca = certs.path().join("ca.pem");
    for (trust, tag) in [
        (format!("tls_ca = \"{}\"", ca.display()), "h2-tls-ca"),
        ("insecure_skip_verify = true".to_string(), "h2-tls-skip"),
    ] {
        let before = nginx.access_log().len() as u64;
        let target = format!("url = \"{url}\"\nprotocol = \"http2\"\ntimeout = \"2s\"\n{trust}");
        let toml = scenario(&target, "connections = 2", 200, 2, "");
        let (r, _dir) = run_local_to_report(tag, &toml, &[]);
        assert_on_rate(&r, tag);
        assert_eq!(u(&r, "requests.ok"), 400, "{tag}: {}", r["errors_by_kind"]);
        let log = nginx.access_log();
        assert_eq!(
            log.len() as u64 - before,
            400,
            "{tag}: nginx served vs report ok"
        );
        assert!(
            log.iter().all(|l| l.protocol == "HTTP/2.0"),
            "{tag}: ALPN chose h2"
        );
    }
    // Trusting only the system roots, the run never starts: the worker's
    // pre-run connection fails the TLS handshake and says so.
    let target = format!("url = \"{url}\"\nprotocol = \"http2\"");
    let s = local_submission("h2-tls-untrusted", &scenario(&target, "", 10, 1, ""), &[]);
    let (out, _) = run_bounded(s.cmd, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TLS handshake"),
        "{}",
        describe(&out)
    );
}

#[test]
fn http2_with_a_body_posts_it_on_every_stream() {
    let _serial = serial();
    let nginx = start_nginx_h2(16);
    let target = format!(
        "url = \"{}\"\nprotocol = \"http2\"\nbody_size = \"1KiB\"",
        nginx.url("/upload")
    );
    let toml = scenario(&target, "connections = 1", 200, 2, "");
    let (r, _dir) = run_local_to_report("h2-post", &toml, ONE_WORKER);
    assert_on_rate(&r, "http2 POST vs nginx");
    assert_eq!(u(&r, "requests.ok"), 400, "{}", r["errors_by_kind"]);
    let log = nginx.access_log();
    assert_eq!(log.len(), 400);
    // A body makes the method POST (as for http1).
    assert!(
        log.iter()
            .all(|l| l.method == "POST" && l.uri == "/upload" && l.protocol == "HTTP/2.0"),
        "{:?}",
        &log[..3.min(log.len())]
    );
}

// ---------------------------------------------------------------------------
// gRPC against grpcio
// ---------------------------------------------------------------------------

fn grpc_scenario(url: &str, method: &str, rate: u32, secs: u32) -> String {
    let target = format!(
        "url = \"{url}\"\nprotocol = \"grpc\"\nmethod = \"{method}\"\nbody_size = 32\ntimeout = \"2s\""
    );
    scenario(&target, "connections = 2", rate, secs, "")
}

#[test]
fn grpc_against_grpcio_echo_every_call_is_answered_and_counted() {
    let _serial = serial();
    let echo = start_grpc_echo(None);
    let toml = grpc_scenario(&echo.url(), "/echo.Echo/Say", 300, 3);
    let (r, _dir) = run_local_to_report("grpc-echo", &toml, &[]);

    assert_eq!(u(&r, "requests.intended"), 900);
    assert_on_rate(&r, "grpc vs grpcio");
    assert_eq!(u(&r, "requests.ok"), 900, "{}", r["errors_by_kind"]);
    let stats = echo.stats();
    assert_eq!(
        u(&stats, "ok"),
        u(&r, "requests.ok"),
        "server ok vs report: {stats}"
    );
    assert_eq!(u(&stats, "errors"), 0);
    // Every call went to the scenario's method with its 32-byte message.
    assert_eq!(
        stats["methods"]["/echo.Echo/Say"].as_u64(),
        Some(900),
        "{stats}"
    );
    assert_eq!(u(&stats, "bytes_in"), 900 * 32, "{stats}");
}

#[test]
fn grpc_non_zero_status_is_a_status_error_counted_by_code() {
    let _serial = serial();
    // Every 10th call fails with UNAVAILABLE.
    let echo = start_grpc_echo(Some(10));
    let toml = grpc_scenario(&echo.url(), "/echo.Echo/Say", 300, 3);
    let (r, _dir) = run_local_to_report("grpc-errors", &toml, &[]);

    assert_on_rate(&r, "grpc vs grpcio --error-every 10");
    let stats = echo.stats();
    assert_eq!(u(&stats, "calls"), 900, "{stats}");
    assert_eq!(u(&stats, "errors"), 90, "{stats}");
    assert_eq!(u(&r, "requests.ok"), u(&stats, "ok"));
    assert_eq!(u(&r, "requests.errors"), u(&stats, "errors"));
    assert_eq!(kind(&r, "status"), 90, "{}", r["errors_by_kind"]);
    assert_eq!(
        r["errors_by_grpc_status"]["UNAVAILABLE"].as_u64(),
        Some(90),
        "errors_by_grpc_status: {}",
        r["errors_by_grpc_status"]
    );
    assert!((f(&r, "error_rate") - 0.1).abs() < 1e-9);
}

// ---------------------------------------------------------------------------
// Every protocol against the built-in target
// ---------------------------------------------------------------------------

/// The `[target]` body for `protocol` against a `volley target` with its
/// HTTP base URL and framed-TCP address.
fn builtin_target_keys(protocol: &str, http_url: &str, tcp_addr: &str) -> String {
    match protocol {
        "http2" => format!("url = \"{http_url}\"\nprotocol = \"http2\""),
        "grpc" => format!(
            "url = \"{}\"\nprotocol = \"grpc\"\nmethod = \"/volley.Echo/Call\"\nbody_size = 64",
            http_url.trim_end_matches('/')
        ),
        "tcp" => format!("url = \"tcp://{tcp_addr}\"\nprotocol = \"tcp\"\nbody_size = 64"),
        other => panic!("no such protocol {other}"),
    }
}

#[test]
fn every_protocol_against_the_builtin_target_agrees_with_its_counts() {
    let _serial = serial();
    for protocol in ["http2", "grpc", "tcp"] {
        let (_target, url, tcp) = start_target_with_tcp(&[]);
        let toml = scenario(
            &builtin_target_keys(protocol, &url, &tcp),
            "connections = 2",
            300,
            2,
            "",
        );
        let (r, _dir) = run_local_to_report(&format!("builtin-{protocol}"), &toml, &[]);
        assert_eq!(u(&r, "requests.intended"), 600, "{protocol}");
        assert_on_rate(&r, protocol);
        assert_eq!(
            u(&r, "requests.ok"),
            600,
            "{protocol}: {}",
            r["errors_by_kind"]
        );
        let stats = target_stats(&url);
        assert_eq!(u(&stats, "ok"), 600, "{protocol}: target stats {stats}");
        assert_eq!(u(&stats, "errors"), 0, "{protocol}: target stats {stats}");
    }
}

#[test]
fn builtin_target_injected_errors_are_status_for_http2_and_grpc_and_reset_for_tcp() {
    let _serial = serial();
    for (protocol, error_kind) in [("http2", "status"), ("grpc", "status"), ("tcp", "reset")] {
        let (_target, url, tcp) = start_target_with_tcp(&["--error-rate", "0.1"]);
        // One message in flight per TCP connection: a closed connection
        // then fails exactly the message the target refused to answer.
        let load = if protocol == "tcp" {
            "connections = 8\npipeline = 1"
        } else {
            "connections = 2"
        };
        let toml = scenario(&builtin_target_keys(protocol, &url, &tcp), load, 300, 2, "");
        let (r, _dir) = run_local_to_report(&format!("builtin-err-{protocol}"), &toml, ONE_WORKER);
        let what = format!("{protocol} --error-rate 0.1");
        assert_accounted(&r["requests"], &what);
        assert_eq!(u(&r, "requests.intended"), 600, "{what}");
        assert_eq!(u(&r, "requests.dropped"), 0, "{what}: {}", r["requests"]);
        let stats = target_stats(&url);
        // The target's error fraction is exact: 60 of 600.
        assert_eq!(u(&stats, "errors"), 60, "{what}: target stats {stats}");
        assert_eq!(u(&r, "requests.ok"), u(&stats, "ok"), "{what}: {stats}");
        assert_eq!(
            u(&r, "requests.errors"),
            60,
            "{what}: {}",
            r["errors_by_kind"]
        );
        assert_eq!(kind(&r, error_kind), 60, "{what}: {}", r["errors_by_kind"]);
        match protocol {
            "http2" => assert_eq!(r["errors_by_status"]["500"].as_u64(), Some(60), "{what}"),
            "grpc" => assert_eq!(
                r["errors_by_grpc_status"]["UNAVAILABLE"].as_u64(),
                Some(60),
                "{what}: {}",
                r["errors_by_grpc_status"]
            ),
            _ => {}
        }
    }
}

#[test]
fn builtin_true_serves_every_protocol_in_local_mode() {
    let _serial = serial();
    for protocol in ["http2", "grpc", "tcp"] {
        let mut target = format!("builtin = true\nprotocol = \"{protocol}\"\nbody_size = 32");
        if protocol == "grpc" {
            target.push_str("\nmethod = \"/volley.Echo/Call\"");
        }
        let toml = scenario(&target, "connections = 2", 200, 2, "");
        let (r, _dir) = run_local_to_report(&format!("builtin-true-{protocol}"), &toml, &[]);
        assert_on_rate(&r, protocol);
        assert_eq!(
            u(&r, "requests.ok"),
            400,
            "{protocol}: {}",
            r["errors_by_kind"]
        );
    }
}

// ---------------------------------------------------------------------------
// Weighted requests
// ---------------------------------------------------------------------------

#[test]
fn weighted_requests_keep_their_exact_mix_across_workers() {
    let _serial = serial();
    let nginx = start_nginx_h2(16);
    let target = format!("url = \"{}\"\nprotocol = \"http2\"", nginx.url("/"));
    let requests = r#"
[[requests]]
name = "list items"
weight = 80
method = "GET"
path = "/items"
headers = { "X-Tenant" = "reader" }

[[requests]]
name = "place order"
weight = 20
method = "POST"
path = "/orders"
body_size = 16
"#;
    // 500 rps × 2 s = 1,000 arrivals: ten whole blocks of 100, so exactly
    // 800 and 200 whichever worker sends which.
    let toml = scenario(&target, "connections = 2", 500, 2, requests);
    let (r, _dir) = run_local_to_report("weighted", &toml, &["--local-workers", "2"]);
    assert_on_rate(&r, "weighted");
    assert_eq!(u(&r, "requests.ok"), 1000, "{}", r["errors_by_kind"]);

    let entries = per_request(&r);
    assert_eq!(entries.len(), 2, "{entries:?}");
    let by_name = |n: &str| {
        entries
            .iter()
            .find(|e| e["name"] == n)
            .unwrap_or_else(|| panic!("no per-request entry named {n:?}: {entries:?}"))
    };
    let (items, orders) = (by_name("list items"), by_name("place order"));
    assert_eq!(entry_count(items, "weight"), 80, "{items}");
    assert_eq!(entry_count(orders, "weight"), 20, "{orders}");
    assert_eq!(entry_count(items, "intended"), 800, "{items}");
    assert_eq!(entry_count(orders, "intended"), 200, "{orders}");
    assert_eq!(entry_count(items, "ok"), 800, "{items}");
    assert_eq!(entry_count(orders, "ok"), 200, "{orders}");
    for e in &entries {
        assert_accounted(e, "per_request entry");
        assert!(f(e, "latency_ms.p99") > 0.0, "{e}");
    }
    for k in ["intended", "sent", "ok", "errors", "dropped"] {
        assert_eq!(
            entries.iter().map(|e| entry_count(e, k)).sum::<u64>(),
            u(&r["requests"], k),
            "per-request {k} add up to the total"
        );
    }

    // What nginx saw: the same split, each request as its table says.
    let log = nginx.access_log();
    let count = |m: &str, p: &str| log.iter().filter(|l| l.method == m && l.uri == p).count();
    assert_eq!(count("GET", "/items"), 800);
    assert_eq!(count("POST", "/orders"), 200);
    assert!(log
        .iter()
        .filter(|l| l.uri == "/items")
        .all(|l| l.tenant == "reader"));
    assert!(log
        .iter()
        .filter(|l| l.uri == "/orders")
        .all(|l| l.tenant == "-"));
}

#[test]
fn weighted_grpc_methods_reach_the_server_in_their_proportions() {
    let _serial = serial();
    let echo = start_grpc_echo(None);
    let target = format!("url = \"{}\"\nprotocol = \"grpc\"", echo.url());
    let requests = r#"
[[requests]]
weight = 3
method = "/shop.Catalog/List"
body_size = 8

[[requests]]
weight = 1
method = "/shop.Orders/Place"
body_file = "order.bin"
"#;
    // 400 rps × 2 s = 800 arrivals = 200 blocks of 4.
    let toml = scenario(&target, "connections = 2", 400, 2, requests);
    let sub = local_submission("weighted-grpc", &toml, &[]);
    // The exact message bytes, relative to the scenario file.
    std::fs::write(
        sub.dir.path().join("order.bin"),
        [0x0a, 0x03, b'a', b'b', b'c'],
    )
    .unwrap();
    let (output, _) = run_bounded(sub.cmd, Duration::from_secs(90));
    assert!(output.status.success(), "{}", describe(&output));
    let r = read_report(&sub.out);
    assert_on_rate(&r, "weighted grpc");
    assert_eq!(u(&r, "requests.ok"), 800, "{}", r["errors_by_kind"]);
    let stats = echo.stats();
    assert_eq!(
        stats["methods"]["/shop.Catalog/List"].as_u64(),
        Some(600),
        "{stats}"
    );
    assert_eq!(
        stats["methods"]["/shop.Orders/Place"].as_u64(),
        Some(200),
        "{stats}"
    );
    // 600 generated 8-byte messages and 200 copies of the 5-byte file.
    assert_eq!(u(&stats, "bytes_in"), 600 * 8 + 200 * 5, "{stats}");
    // Default names are the method paths.
    let entries = per_request(&r);
    for (name, n) in [("/shop.Catalog/List", 600), ("/shop.Orders/Place", 200)] {
        let e = entries
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no entry named {name:?}: {entries:?}"));
        assert_eq!(entry_count(e, "ok"), n, "{e}");
    }
}

// ---------------------------------------------------------------------------
// Small servers that behave in one exact way
// ---------------------------------------------------------------------------

/// A loopback server running `serve` on a thread per connection until
/// dropped. Connections get a short read timeout so their loops can see the
/// stop flag.
struct TestServer {
    addr: String,
    stop: Arc<AtomicBool>,
    /// Whatever the server counts (frames answered, for the echo).
    count: Arc<AtomicU64>,
}

type Serve = fn(&mut Conn);

/// One accepted connection, with the server's stop flag and counter.
struct Conn {
    s: TcpStream,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
}

impl Conn {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Reads exactly `buf.len()` bytes; false on EOF, error or stop.
    fn read_exact(&mut self, buf: &mut [u8]) -> bool {
        let mut at = 0;
        while at < buf.len() {
            if self.stopped() {
                return false;
            }
            match self.s.read(&mut buf[at..]) {
                Ok(0) => return false,
                Ok(n) => at += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// Reads one frame of the framed-TCP protocol: its payload.
    fn read_frame(&mut self) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        if !self.read_exact(&mut len) {
            return None;
        }
        let n = u32::from_be_bytes(len) as usize;
        assert!(n <= 1 << 20, "a test frame of {n} bytes");
        let mut payload = vec![0u8; n];
        self.read_exact(&mut payload).then_some(payload)
    }

    fn write(&mut self, bytes: &[u8]) -> bool {
        self.s.write_all(bytes).is_ok()
    }

    /// Holds the connection open, reading and discarding, until the peer
    /// closes it or the server stops.
    fn hang(&mut self) {
        let mut buf = [0u8; 4096];
        while !self.stopped() {
            match self.s.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
    }
}

impl TestServer {
    fn start(serve: Serve) -> TestServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let (stop2, count2) = (stop.clone(), count.clone());
        l.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                        let _ = s.set_nodelay(true);
                        let mut c = Conn {
                            s,
                            stop: stop2.clone(),
                            count: count2.clone(),
                        };
                        std::thread::spawn(move || serve(&mut c));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        TestServer { addr, stop, count }
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An address that accepts one connection, the worker's reachability
/// check before the run starts (`probe` in worker/src/assignment.rs), and
/// refuses every connection after it: the run's own connects all fail.
/// Use with one worker (one check).
fn refusing_after_probe() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    // The listener closes once the check's connection is taken.
    std::thread::spawn(move || drop(l.accept()));
    addr
}

#[test]
fn a_target_refusing_connections_from_the_start_fails_the_run_with_exit_3() {
    for (protocol, url) in [
        ("http2", "http://127.0.0.1:PORT/"),
        ("grpc", "http://127.0.0.1:PORT"),
        ("tcp", "tcp://127.0.0.1:PORT"),
    ] {
        // A port that was just free: nothing listens there.
        let port = free_port();
        let mut target = format!(
            "url = \"{}\"\nprotocol = \"{protocol}\"",
            url.replace("PORT", &port.to_string())
        );
        if protocol == "grpc" {
            target.push_str("\nmethod = \"/echo.Echo/Say\"");
        }
        let s = local_submission(
            &format!("refused-{protocol}"),
            &scenario(&target, "connections = 2", 100, 60, ""),
            ONE_WORKER,
        );
        let (out, took) = run_bounded(s.cmd, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(3), "{protocol}: {}", describe(&out));
        assert!(took < Duration::from_secs(15), "{protocol} took {took:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("unreachable") && err.contains(&port.to_string()),
            "{protocol}: {err}"
        );
    }
}

// Framed TCP servers.

/// The generated body of `n` bytes (docs/protocols.md: a deterministic
/// a..z pattern).
fn generated(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

/// An independent framed-TCP echo that checks each message is the 100-byte
/// generated body and counts the replies it wrote.
fn tcp_echo(c: &mut Conn) {
    let want = generated(100);
    while let Some(p) = c.read_frame() {
        if p != want {
            // A wrong message: close, so the run shows errors.
            return;
        }
        let mut reply = (p.len() as u32).to_be_bytes().to_vec();
        reply.extend_from_slice(&p);
        if !c.write(&reply) {
            return;
        }
        c.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Answers every message with an empty frame: still ok (framed TCP has no
/// status).
fn tcp_empty_reply(c: &mut Conn) {
    while c.read_frame().is_some() {
        if !c.write(&[0, 0, 0, 0]) {
            return;
        }
        c.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads a message, then closes without answering.
fn tcp_close_after_message(c: &mut Conn) {
    let _ = c.read_frame();
}

/// Reads and never answers.
fn tcp_silent(c: &mut Conn) {
    c.hang();
}

/// Answers a frame header announcing 4 GiB − 1 bytes: a bad frame.
fn tcp_bad_frame(c: &mut Conn) {
    while c.read_frame().is_some() {
        if !c.write(&[0xFF, 0xFF, 0xFF, 0xFF]) {
            return;
        }
    }
}

fn tcp_scenario(addr: &str, load: &str, rate: u32, secs: u32) -> String {
    scenario(
        &format!(
            "url = \"tcp://{addr}\"\nprotocol = \"tcp\"\nbody_size = 100\ntimeout = \"300ms\""
        ),
        load,
        rate,
        secs,
        "",
    )
}

#[test]
fn tcp_against_an_independent_echo_every_frame_is_answered_in_order() {
    let _serial = serial();
    let server = TestServer::start(tcp_echo);
    let toml = tcp_scenario(&server.addr, "connections = 2\npipeline = 16", 400, 3);
    let (r, _dir) = run_local_to_report("tcp-echo", &toml, &[]);
    assert_on_rate(&r, "tcp vs echo");
    assert_eq!(u(&r, "requests.ok"), 1200, "{}", r["errors_by_kind"]);
    assert_eq!(server.count(), 1200, "frames the echo answered");

    // A reply frame is ok whatever it holds, an empty one too.
    let server = TestServer::start(tcp_empty_reply);
    let toml = tcp_scenario(&server.addr, "connections = 2", 200, 2);
    let (r, _dir) = run_local_to_report("tcp-empty", &toml, ONE_WORKER);
    assert_eq!(u(&r, "requests.ok"), 400, "{}", r["errors_by_kind"]);
    assert_eq!(server.count(), 400);
}

/// Runs `toml` and checks all `n` requests failed as `error_kind`.
fn assert_all_failed_as(tag: &str, toml: &str, n: u64, error_kind: &str) -> Value {
    let s = local_submission(tag, toml, ONE_WORKER);
    let (output, took) = run_bounded(s.cmd, Duration::from_secs(60));
    assert!(
        s.out.join("report.json").exists(),
        "{tag}: no report\n{}",
        describe(&output)
    );
    let r = read_report(&s.out);
    assert_accounted(&r["requests"], tag);
    assert_eq!(u(&r, "requests.intended"), n, "{tag}");
    assert_eq!(u(&r, "requests.ok"), 0, "{tag}: {}", r["requests"]);
    assert_eq!(
        kind(&r, error_kind),
        n,
        "{tag}: every request is {error_kind}: {} / {}",
        r["requests"],
        r["errors_by_kind"]
    );
    // 2 s of load, a timeout of at most 1 s and setup: never a hung worker.
    assert!(took < Duration::from_secs(20), "{tag} took {took:?}");
    r
}

#[test]
fn tcp_failures_are_classified() {
    let _serial = serial();
    let one = "connections = 16\npipeline = 1";

    // Nothing listens (after the worker's reachability check): connect.
    let addr = refusing_after_probe();
    assert_all_failed_as(
        "tcp-refused",
        &tcp_scenario(&addr, one, 40, 2),
        80,
        "connect",
    );

    // The server closes with the message outstanding: reset (pipelined
    // messages on the connection too).
    let s = TestServer::start(tcp_close_after_message);
    assert_all_failed_as(
        "tcp-reset",
        &tcp_scenario(&s.addr, "connections = 4\npipeline = 16", 40, 2),
        80,
        "reset",
    );

    // No reply within the 300 ms timeout: timeout.
    let s = TestServer::start(tcp_silent);
    assert_all_failed_as(
        "tcp-timeout",
        &tcp_scenario(&s.addr, one, 40, 2),
        80,
        "timeout",
    );

    // A frame longer than 64 MiB: protocol.
    let s = TestServer::start(tcp_bad_frame);
    assert_all_failed_as(
        "tcp-bad-frame",
        &tcp_scenario(&s.addr, one, 40, 2),
        80,
        "protocol",
    );
}

#[test]
fn tcp_a_timed_out_message_resets_the_ones_pipelined_behind_it() {
    let _serial = serial();
    let s = TestServer::start(tcp_silent);
    // One connection: at 40 rps about a dozen messages queue behind the
    // oldest before its 300 ms timeout closes the connection.
    let toml = tcp_scenario(&s.addr, "connections = 1\npipeline = 16", 40, 2);
    let sub = local_submission("tcp-pipeline-timeout", &toml, ONE_WORKER);
    let (output, _) = run_bounded(sub.cmd, Duration::from_secs(60));
    assert!(
        sub.out.join("report.json").exists(),
        "{}",
        describe(&output)
    );
    let r = read_report(&sub.out);
    assert_accounted(&r["requests"], "pipelined timeout");
    assert_eq!(u(&r, "requests.ok"), 0);
    let (timeouts, resets) = (kind(&r, "timeout"), kind(&r, "reset"));
    assert!(timeouts >= 1 && resets >= 1, "{}", r["errors_by_kind"]);
    assert!(
        resets > timeouts,
        "one timeout per connection, the rest behind it reset: {}",
        r["errors_by_kind"]
    );
    assert_eq!(
        timeouts + resets + u(&r, "requests.dropped"),
        80,
        "{} / {}",
        r["requests"],
        r["errors_by_kind"]
    );
}

// A raw HTTP/2 server: enough of RFC 9113 to take a client's streams and
// answer each in one chosen way.

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const INTERNAL_ERROR: u32 = 0x2;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len() as u32;
    let mut f = n.to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[derive(Clone, Copy)]
enum H2Answer {
    /// RST_STREAM(INTERNAL_ERROR) on each stream.
    RstStream,
    /// GOAWAY(last stream 0, INTERNAL_ERROR) on the first stream, then close.
    Goaway,
    /// Never answers a stream (the connection stays healthy: settings and
    /// pings are acknowledged).
    Silent,
    /// `:status 200`, end of stream, nothing else: an ok HTTP/2 reply, and a
    /// gRPC reply without `grpc-status`.
    BareOk,
}

/// Serves one connection: the preface, settings, flow control, and each
/// stream's HEADERS answered as `answer` says.
fn h2_serve(c: &mut Conn, answer: H2Answer) {
    let mut preface = [0u8; 24];
    if !c.read_exact(&mut preface) || preface != PREFACE {
        return;
    }
    if !c.write(&frame(SETTINGS, 0, 0, &[])) {
        return;
    }
    loop {
        let mut head = [0u8; 9];
        if !c.read_exact(&mut head) {
            return;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7FFF_FFFF;
        let mut payload = vec![0u8; len];
        if !c.read_exact(&mut payload) {
            return;
        }
        let reply = match (kind, answer) {
            (SETTINGS, _) if flags & ACK == 0 => frame(SETTINGS, ACK, 0, &[]),
            (PING, _) if flags & ACK == 0 => frame(PING, ACK, 0, &payload),
            // Give back the connection window the bodies use up.
            (DATA, _) if len > 0 => frame(WINDOW_UPDATE, 0, 0, &(len as u32).to_be_bytes()),
            (HEADERS, H2Answer::RstStream) => {
                frame(RST_STREAM, 0, stream, &INTERNAL_ERROR.to_be_bytes())
            }
            (HEADERS, H2Answer::Goaway) => {
                let mut p = 0u32.to_be_bytes().to_vec();
                p.extend_from_slice(&INTERNAL_ERROR.to_be_bytes());
                let _ = c.write(&frame(GOAWAY, 0, 0, &p));
                // Let the frame reach the client before the close.
                std::thread::sleep(Duration::from_millis(20));
                return;
            }
            // HPACK 0x88: `:status: 200` from the static table.
            (HEADERS, H2Answer::BareOk) => {
                frame(HEADERS, END_HEADERS | END_STREAM, stream, &[0x88])
            }
            _ => continue,
        };
        if !c.write(&reply) {
            return;
        }
        if kind == HEADERS {
            c.count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn h2_rst_stream(c: &mut Conn) {
    h2_serve(c, H2Answer::RstStream)
}
fn h2_goaway(c: &mut Conn) {
    h2_serve(c, H2Answer::Goaway)
}
fn h2_silent(c: &mut Conn) {
    h2_serve(c, H2Answer::Silent)
}
fn h2_bare_ok(c: &mut Conn) {
    h2_serve(c, H2Answer::BareOk)
}

fn h2_scenario(protocol: &str, addr: &str, load: &str) -> String {
    let mut target =
        format!("url = \"http://{addr}/\"\nprotocol = \"{protocol}\"\ntimeout = \"300ms\"");
    if protocol == "grpc" {
        target = format!(
            "url = \"http://{addr}\"\nprotocol = \"grpc\"\ntimeout = \"300ms\"\nmethod = \"/echo.Echo/Say\"\nbody_size = 8"
        );
    }
    scenario(&target, load, 40, 2, "")
}

#[test]
fn http2_and_grpc_failures_are_classified() {
    let _serial = serial();
    for protocol in ["http2", "grpc"] {
        let load = "connections = 4";
        let tag = |t: &str| format!("{protocol}-{t}");

        let addr = refusing_after_probe();
        assert_all_failed_as(
            &tag("refused"),
            &h2_scenario(protocol, &addr, load),
            80,
            "connect",
        );

        let s = TestServer::start(h2_rst_stream);
        assert_all_failed_as(
            &tag("rst-stream"),
            &h2_scenario(protocol, &s.addr, load),
            80,
            "reset",
        );

        let s = TestServer::start(h2_goaway);
        assert_all_failed_as(
            &tag("goaway"),
            &h2_scenario(protocol, &s.addr, load),
            80,
            "reset",
        );

        let s = TestServer::start(h2_silent);
        assert_all_failed_as(
            &tag("silent"),
            &h2_scenario(protocol, &s.addr, load),
            80,
            "timeout",
        );
    }

    // A bare `200` ends an HTTP/2 request fine, but is no gRPC reply.
    let s = TestServer::start(h2_bare_ok);
    let (r, _dir) = run_local_to_report(
        "http2-bare-ok",
        &h2_scenario("http2", &s.addr, "connections = 2"),
        ONE_WORKER,
    );
    assert_eq!(u(&r, "requests.ok"), 80, "{}", r["errors_by_kind"]);
    assert_eq!(s.count(), 80);
    let s = TestServer::start(h2_bare_ok);
    assert_all_failed_as(
        "grpc-no-status",
        &h2_scenario("grpc", &s.addr, "connections = 2"),
        80,
        "protocol",
    );
}
