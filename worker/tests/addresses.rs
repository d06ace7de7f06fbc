//! A target with several addresses (what a headless Service's name resolves
//! to): the engine spreads its connections over all of them, avoids one that
//! refuses, and replaces connections (`max_requests_per_connection`) without
//! failing a request. Each address is a server on its own loopback port
//! here; the same with a host name re-resolved mid-run, across network
//! namespaces, is `charts/tests/test_service_addresses.py`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use volley_plan::{Load, Plan, Protocol, Request, Share, Stage, Target, Tls};
use volley_worker::engine::{self, EngineEvent, EngineSetup};

/// What a server saw.
#[derive(Default)]
struct Seen {
    requests: AtomicU64,
    connections: AtomicU64,
}

/// An HTTP/1.1 server answering every GET with an empty 200, counting
/// requests and connections.
async fn server() -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counts.connections.fetch_add(1, Ordering::Relaxed);
            let counts = counts.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut have = Vec::new();
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => have.extend_from_slice(&buf[..n]),
                    }
                    // GETs without a body: each ends with an empty line.
                    while let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                        have.drain(..end + 4);
                        counts.requests.fetch_add(1, Ordering::Relaxed);
                        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                        if s.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}

fn plan(rps: f64, secs: u64, load: Load) -> Plan {
    Plan {
        target: Target {
            url: "http://svc.volley.test:80/".into(),
            protocol: Protocol::Http1,
            timeout: Duration::from_secs(2),
            requests: vec![Request::get("/")],
            tls: Tls::default(),
        },
        load,
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

/// Runs `plan` against `addrs` (the name is never resolved: `resolve_every`
/// is off) and returns intended, ok, errors, dropped.
async fn run(plan: Plan, addrs: Vec<SocketAddr>) -> (u64, u64, u64, u64) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let setup = EngineSetup {
        plan,
        share: Share::whole(),
        share_from: 0.0,
        addrs,
        worker_id: "w1".into(),
    };
    let _handle = engine::start(setup, Instant::now(), 1, tx).unwrap();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("the engine finishes")
            .expect("the engine reports");
        if let EngineEvent::Finished(t) = ev {
            return (t.intended, t.ok, t.errors, t.dropped);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_spread_evenly_over_every_address_and_are_replaced_without_a_failure() {
    let servers = [server().await, server().await];
    let load = Load {
        connections: 4,
        resolve_every: None,
        max_requests_per_connection: Some(10),
        ..Load::default()
    };
    let addrs = servers.iter().map(|(a, _)| *a).collect();
    let (intended, ok, errors, dropped) = run(plan(500.0, 2, load), addrs).await;
    assert_eq!((intended, ok, errors, dropped), (1000, 1000, 0, 0));
    let requests: Vec<u64> = servers
        .iter()
        .map(|(_, s)| s.requests.load(Ordering::Relaxed))
        .collect();
    let connections: u64 = servers
        .iter()
        .map(|(_, s)| s.connections.load(Ordering::Relaxed))
        .sum();
    assert_eq!(requests.iter().sum::<u64>(), 1000);
    for r in &requests {
        assert!(
            r.abs_diff(500) <= 50,
            "each address gets half within 10 %: {requests:?}"
        );
    }
    // At most 10 requests per connection.
    assert!(connections >= 100, "{connections} connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_refuses_is_avoided_and_no_request_fails_for_it() {
    let (up, seen) = server().await;
    // A port nothing listens on any more: connecting is refused.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let load = Load {
        connections: 4,
        resolve_every: None,
        max_requests_per_connection: Some(10),
        ..Load::default()
    };
    let (intended, ok, errors, dropped) = run(plan(200.0, 2, load), vec![down, up]).await;
    assert_eq!((intended, ok, errors, dropped), (400, 400, 0, 0));
    assert_eq!(seen.requests.load(Ordering::Relaxed), 400);
}
