//! Why the engine drops a request, one test per cause: each against a
//! server written here that makes that cause the only one possible, and
//! each checking that every second's causes add up to its `dropped`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use volley_plan::{
    DropCause, DropCounts, Load, Plan, Protocol, Request, Share, Stage, Target, Tls,
};
use volley_worker::engine::{self, EngineEvent, EngineSetup};

/// What one engine run reported, summed over its seconds.
#[derive(Debug, Default)]
struct Outcome {
    intended: u64,
    sent: u64,
    ok: u64,
    errors: u64,
    dropped: u64,
    drops: DropCounts,
}

impl Outcome {
    fn by_cause(&self) -> (u64, u64, u64) {
        (
            self.drops[DropCause::ConnectionsBusy],
            self.drops[DropCause::MaxInFlight],
            self.drops[DropCause::BehindSchedule],
        )
    }
}

fn plan(addr: SocketAddr, rps: f64, secs: u64, timeout: Duration, load: Load) -> Plan {
    Plan {
        target: Target {
            url: format!("http://{addr}/"),
            protocol: Protocol::Http1,
            timeout,
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

/// Runs `plan` with t = 0 at `start` (in the past for a generator that is
/// already late) and sums what it reports.
async fn run(plan: Plan, addr: SocketAddr, start: Instant) -> Outcome {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let setup = EngineSetup {
        plan,
        share: Share::whole(),
        share_from: 0.0,
        addrs: vec![addr],
        worker_id: "w1".into(),
    };
    let _handle = engine::start(setup, start, 1, tx).unwrap();
    let mut out = Outcome::default();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("the engine finishes")
    {
        match ev {
            EngineEvent::Interval(d) => {
                assert_eq!(
                    d.drops.total(),
                    d.dropped,
                    "second {}: every drop has exactly one cause",
                    d.index
                );
                out.intended += d.intended;
                out.sent += d.sent;
                out.ok += d.ok;
                out.errors += d.error_total();
                out.dropped += d.dropped;
                out.drops.add(&d.drops);
            }
            EngineEvent::Finished(t) => {
                assert_eq!(t.intended, t.ok + t.errors + t.dropped);
                assert_eq!((t.intended, t.dropped), (out.intended, out.dropped));
                break;
            }
        }
    }
    out
}

/// An HTTP/1.1 server that reads requests and answers each with 200 after
/// `delay` (`None`: never).
async fn http1_server(delay: Option<Duration>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut have = Vec::new();
                loop {
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let Some(delay) = delay else { continue };
                    have.extend_from_slice(&buf[..n]);
                    while let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                        have.drain(..end + 4);
                        tokio::time::sleep(delay).await;
                        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if s.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_queued_behind_busy_connections_are_dropped_as_connections_busy() {
    // Two connections to a target that never answers, and room for ten
    // requests: two on the wire, eight waiting for a connection. From then
    // on every arrival finds the cap reached with requests queued: the
    // connections are the limit, not max_in_flight.
    let addr = http1_server(None).await;
    let load = Load {
        connections: 2,
        max_in_flight: 10,
        ..Load::default()
    };
    let p = plan(addr, 100.0, 2, Duration::from_millis(500), load);
    let out = run(p, addr, Instant::now()).await;
    assert_eq!(out.intended, 200, "{out:?}");
    assert_eq!(out.ok, 0, "{out:?}");
    // At most ten can be outstanding per half-second timeout (measured:
    // 178 of the 200 dropped): most arrivals are dropped, all for the same
    // reason.
    assert!(out.dropped >= 150, "{out:?}");
    assert_eq!(out.by_cause(), (out.dropped, 0, 0), "{out:?}");
    assert_eq!(out.intended, out.errors + out.dropped, "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_max_in_flight_with_free_connections_are_dropped_as_max_in_flight() {
    // Room for 50 connections but only 5 requests in flight: every request
    // has a connection of its own, and the cap is what stops the sixth.
    let addr = http1_server(None).await;
    let load = Load {
        connections: 50,
        max_in_flight: 5,
        ..Load::default()
    };
    let p = plan(addr, 100.0, 2, Duration::from_millis(500), load);
    let out = run(p, addr, Instant::now()).await;
    assert_eq!(out.intended, 200, "{out:?}");
    // Five per half-second timeout go out (measured: 20 sent, 180 dropped).
    assert!(out.sent <= 30, "{out:?}");
    assert!(out.dropped >= 150, "{out:?}");
    assert_eq!(out.by_cause(), (0, out.dropped, 0), "{out:?}");
    assert_eq!(out.intended, out.errors + out.dropped, "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrivals_the_generator_reaches_over_a_second_late_are_dropped_as_behind_schedule() {
    // The engine starts 3 s after its t = 0, as a generator whose thread got
    // no CPU for 3 s: the arrivals of the first two seconds are more than
    // a second late and are dropped; those of the third are late but
    // within the limit and go out, as does everything after. The target
    // answers at once, and the limits are far away.
    let addr = http1_server(Some(Duration::ZERO)).await;
    let load = Load {
        connections: 16,
        max_in_flight: 10_000,
        ..Load::default()
    };
    let p = plan(addr, 100.0, 5, Duration::from_secs(2), load);
    let out = run(p, addr, Instant::now() - Duration::from_secs(3)).await;
    assert_eq!(out.intended, 500, "{out:?}");
    // Exactly the arrivals due before t = 2 s, plus those due in the few
    // milliseconds the engine's thread took to start.
    assert!((200..=215).contains(&out.dropped), "{out:?}");
    assert_eq!(out.by_cause(), (0, 0, out.dropped), "{out:?}");
    assert_eq!(out.ok, out.intended - out.dropped, "{out:?}");
    assert_eq!(out.errors, 0, "{out:?}");
}
