//! What every engine test shares: a plan, a run of the engine to its end,
//! and what it reported, summed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use volley_plan::data::{Format, OnEnd, Order};
use volley_plan::{
    Body, DataSet, Expect, Load, Plan, Protocol, Request, Rule, Share, Stage, Target, Tls,
};
use volley_worker::engine::{self, EngineEvent, EngineSetup};

/// What one engine run reported, summed over its seconds.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) intended: u64,
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    pub(crate) dropped: u64,
    /// connect, timeout, status, protocol, reset, check
    pub(crate) errors: [u64; 6],
    pub(crate) grpc: Vec<(u32, u64)>,
    pub(crate) http: Vec<(u32, u64)>,
    /// intended, ok per request definition
    pub(crate) per_request: Vec<(u64, u64)>,
    /// (request, check, failures)
    pub(crate) checks: Vec<(u16, u16, u64)>,
    /// (second, intended) of every reported second, in the order reported.
    pub(crate) seconds: Vec<(u32, u64)>,
    /// Every second's send lag (actual − scheduled send), merged.
    pub(crate) send_lag: Option<volley_proto::histogram::SecondHist>,
}

pub(crate) fn plan(
    url: String,
    protocol: Protocol,
    requests: Vec<Request>,
    rps: f64,
    secs: u64,
) -> Plan {
    Plan {
        target: Target {
            url,
            protocol,
            timeout: Duration::from_millis(500),
            requests,
            tls: Tls::default(),
        },
        load: Load {
            connections: 4,
            per_connection: protocol.default_per_connection(),
            ..Load::default()
        },
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

pub(crate) fn message(bytes: &[u8]) -> Request {
    Request {
        name: "m".into(),
        weight: 1,
        method: "POST".into(),
        path: "/echo.Echo/Say".into(),
        headers: vec![],
        body: Body::Bytes(bytes.to_vec()),
        expect: Default::default(),
    }
}

pub(crate) async fn run(plan: Plan, addr: SocketAddr) -> Outcome {
    run_threads(plan, addr, 1).await
}

/// [`run`] with up to `threads` engine threads (`volley-worker --threads`).
pub(crate) async fn run_threads(plan: Plan, addr: SocketAddr, threads: usize) -> Outcome {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let setup = EngineSetup {
        plan,
        share: Share::whole(),
        share_from: 0.0,
        addrs: vec![addr],
        worker_id: "w1".into(),
    };
    let _handle = engine::start(setup, Instant::now(), threads, tx).unwrap();
    let mut out = Outcome::default();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("the engine finishes")
    {
        match ev {
            EngineEvent::Interval(d) => {
                out.seconds.push((d.index, d.intended));
                out.send_lag
                    .get_or_insert_with(volley_proto::histogram::new_second_hist)
                    .add(&d.send_lag)
                    .unwrap();
                out.intended += d.intended;
                out.sent += d.sent;
                out.ok += d.ok;
                out.dropped += d.dropped;
                for (a, b) in out.errors.iter_mut().zip(d.errors) {
                    *a += b;
                }
                out.grpc.extend(d.grpc_codes.iter().copied());
                out.http.extend(d.status_codes.iter().copied());
                assert_eq!(
                    d.check_failures.iter().map(|c| c.count).sum::<u64>(),
                    d.errors[CHECK],
                    "per-check counts add up to errors[check]"
                );
                for c in &d.check_failures {
                    match out
                        .checks
                        .iter_mut()
                        .find(|x| (x.0, x.1) == (c.req, c.check))
                    {
                        Some(x) => x.2 += c.count,
                        None => out.checks.push((c.req, c.check, c.count)),
                    }
                }
                if out.per_request.len() < d.requests.len() {
                    out.per_request.resize(d.requests.len(), (0, 0));
                }
                for (acc, r) in out.per_request.iter_mut().zip(&d.requests) {
                    acc.0 += r.intended;
                    acc.1 += r.ok;
                }
            }
            EngineEvent::Finished(t) => {
                assert_eq!(t.intended, t.ok + t.errors + t.dropped);
                assert_eq!(t.intended, out.intended);
                break;
            }
        }
    }
    out
}

pub(crate) fn sum(codes: &[(u32, u64)], code: u32) -> u64 {
    codes.iter().filter(|c| c.0 == code).map(|c| c.1).sum()
}

pub(crate) const CONNECT: usize = 0;
pub(crate) const TIMEOUT: usize = 1;
pub(crate) const STATUS: usize = 2;
pub(crate) const PROTOCOL: usize = 3;
pub(crate) const RESET: usize = 4;
pub(crate) const CHECK: usize = 5;

pub(crate) fn checks(rules: Vec<Rule>) -> Expect {
    Expect::from_rules(rules)
}

pub(crate) fn data(name: &str, csv: &str, on_end: OnEnd) -> DataSet {
    DataSet::parse(name, Format::Csv, Order::Sequential, on_end, csv.as_bytes()).unwrap()
}
