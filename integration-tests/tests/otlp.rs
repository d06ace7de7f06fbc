//! OpenTelemetry metrics (`--otlp-endpoint`), checked by an independent
//! receiver: `python/otlp_receiver.py`, an OTLP MetricsService built from
//! the protocol's published protobufs (PyPI opentelemetry-proto, grpcio),
//! gRPC and HTTP/protobuf. Each export's totals are compared with the run's
//! report.json. Most runs export every 60 s, longer than the runs, so
//! what arrives is the flush at the run's end; one exports every second
//! and checks the exports taken while the run goes.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The receiver: its gRPC and HTTP addresses and the JSON file it writes.
struct Receiver {
    _proc: Proc,
    grpc: String,
    http: String,
    out: PathBuf,
    _dir: TempDir,
}

fn start_receiver() -> Receiver {
    let dir = TempDir::new("otlp-recv");
    let out = dir.path().join("received.json");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/otlp_receiver.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg("--out").arg(&out);
    let (proc, line) = spawn_until(cmd, "otlp receiver", "otlp receiver grpc");
    let words: Vec<&str> = line.split_whitespace().collect();
    Receiver {
        _proc: proc,
        grpc: words[3].to_string(),
        http: words[5].to_string(),
        out,
        _dir: dir,
    }
}

impl Receiver {
    fn exports(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["exports"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The last export (cumulative: it holds the totals), waiting up to
    /// `within` for one whose `volley.requests` add up to `total`.
    fn last_with_total(&self, total: u64, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let exports = self.exports();
            if let Some(last) = exports.last() {
                if sum(last, "volley.requests", &[]) == total {
                    return last.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no export with {total} requests within {within:?}; received: {exports:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The data points of `metric` in an export whose attributes include
/// every (key, value) of `with`.
fn points<'a>(export: &'a Value, metric: &str, with: &[(&str, &str)]) -> Vec<&'a Value> {
    export["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metric"] == metric)
        .filter(|p| with.iter().all(|(k, v)| p["attributes"][*k] == *v))
        .collect()
}

fn sum(export: &Value, metric: &str, with: &[(&str, &str)]) -> u64 {
    points(export, metric, with)
        .iter()
        .map(|p| p["value"].as_u64().or(p["count"].as_u64()).unwrap())
        .sum()
}

fn unix_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A mix of two request definitions, 3 : 1, against `url`.
fn mix_scenario(url: &str, rate: u32, duration: &str) -> String {
    format!(
        "name = \"otlp\"\n[target]\nurl = \"{url}\"\n\
         [[requests]]\nname = \"read\"\nweight = 3\npath = \"/read\"\n\
         [[requests]]\nname = \"write\"\nweight = 1\nmethod = \"POST\"\npath = \"/write\"\n\
         [[stages]]\nname = \"main\"\nrate = {rate}\nduration = \"{duration}\"\n"
    )
}

/// Every counter of the export against report.json: requests by outcome
/// (and per request definition), errors by kind, dropped, the latency
/// histogram's count, the run counter and the resource.
fn assert_export_matches(export: &Value, r: &Value) {
    let run = r["run_id"].as_str().unwrap();
    let at = [("run", run), ("stage", "main")];
    for (outcome, field) in [("ok", "ok"), ("error", "errors"), ("dropped", "dropped")] {
        let with = [at[0], at[1], ("outcome", outcome)];
        assert_eq!(
            sum(export, "volley.requests", &with),
            u(r, &format!("requests.{field}")),
            "volley.requests outcome={outcome}"
        );
    }
    let kinds = r["errors_by_kind"].as_object().unwrap();
    let mut exported = BTreeMap::new();
    for p in points(export, "volley.errors", &at) {
        let kind = p["attributes"]["kind"].as_str().unwrap().to_string();
        exported.insert(kind, p["value"].as_u64().unwrap());
    }
    for (kind, n) in kinds {
        let n = n.as_u64().unwrap();
        assert_eq!(
            exported.get(kind).copied().unwrap_or(0),
            n,
            "volley.errors kind={kind}: exported {exported:?}, report {kinds:?}"
        );
    }
    assert!(
        exported.keys().all(|k| kinds.contains_key(k)),
        "{exported:?}"
    );
    assert_eq!(sum(export, "volley.dropped", &at), u(r, "requests.dropped"));
    let lat = points(export, "volley.latency", &at);
    assert_eq!(lat.len(), 1, "one latency histogram: {lat:?}");
    let count = lat[0]["count"].as_u64().unwrap();
    assert_eq!(count, u(r, "requests.ok"), "latency count = ok requests");
    let buckets: u64 = lat[0]["bucket_counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .sum();
    assert_eq!(buckets, count, "the buckets hold every request");
    assert_eq!(lat[0]["unit"], "s");
    assert_eq!(lat[0]["temporality"], 2, "cumulative");
    let mean_s = lat[0]["sum"].as_f64().unwrap() / count as f64;
    let report_mean_s = f(r, "latency_ms.mean") / 1000.0;
    assert!(
        (mean_s - report_mean_s).abs() <= report_mean_s * 0.05 + 1e-5,
        "mean latency {mean_s} s vs the report's {report_mean_s} s"
    );
    assert_eq!(sum(export, "volley.runs", &[]), 1);
    assert!(points(export, "volley.requests", &[])
        .iter()
        .all(|p| p["service"] == "volley" && p["temporality"] == 2));
    let target = points(export, "volley.rate.target", &at);
    assert_eq!(target.len(), 1);
    let (exported, configured) = (target[0]["value"].as_f64().unwrap(), f(r, "target_rps"));
    assert!(
        (exported - configured).abs() < 1e-6 * configured,
        "target rate {exported} vs {configured}"
    );
}

/// The per-definition attribute splits the mix as the report does, 3 : 1
/// (exactly for a run of whole blocks of 4 arrivals, else within a block).
fn assert_mix_split(export: &Value, r: &Value) {
    let run = r["run_id"].as_str().unwrap();
    let per = r["per_request"].as_array().unwrap();
    assert_eq!(per.len(), 2);
    let mut intended = Vec::new();
    for q in per {
        let name = q["name"].as_str().unwrap();
        let mut total = 0;
        for (outcome, field) in [("ok", "ok"), ("error", "errors"), ("dropped", "dropped")] {
            let n = sum(
                export,
                "volley.requests",
                &[("run", run), ("definition", name), ("outcome", outcome)],
            );
            assert_eq!(n, u(q, field), "{name} {outcome}");
            total += n;
        }
        assert_eq!(total, u(q, "intended"), "{name}");
        intended.push(total);
    }
    if u(r, "requests.intended").is_multiple_of(4) {
        assert_eq!(intended[0], 3 * intended[1], "a 3 : 1 mix: {intended:?}");
    } else {
        assert!(
            intended[0].abs_diff(3 * intended[1]) <= 3,
            "a 3 : 1 mix: {intended:?}"
        );
    }
}

/// `volley run` in local mode (one worker) of the 3 : 1 mix at 200 req/s
/// for `duration` against `url`, exporting to `endpoint`; with the
/// directory it writes in (kept alive by the caller) and its --out.
fn local_run(
    tag: &str,
    url: &str,
    duration: &str,
    endpoint: &str,
    protocol: &str,
    interval: &str,
) -> (TempDir, std::path::PathBuf, std::process::Command) {
    let dir = TempDir::new(tag);
    let file = dir.write("s.toml", &mix_scenario(url, 200, duration));
    let out = dir.path().join("out");
    let mut cmd = volley();
    cmd.args(["run", file.to_str().unwrap(), "--local-workers", "1"])
        .args(["--out", out.to_str().unwrap()])
        .args(["--otlp-endpoint", endpoint, "--otlp-protocol", protocol])
        .args(["--otlp-interval", interval]);
    (dir, out, cmd)
}

#[test]
fn a_local_run_is_exported_over_grpc_when_it_ends() {
    let _serial = serial();
    let recv = start_receiver();
    let (_target, url) = start_target(&["--error-rate", "0.1"]);
    let endpoint = format!("http://{}", recv.grpc);
    let (_dir, out, mut cmd) = local_run("otlp-local", &url, "2s", &endpoint, "grpc", "60s");
    cmd.arg("--quiet");
    let started = unix_s();
    let (o, _) = run_bounded(cmd, Duration::from_secs(60));
    assert!(o.status.success(), "{}", describe(&o));
    let r = read_report(&out);
    assert_eq!(u(&r, "requests.intended"), 400);
    assert!(u(&r, "requests.errors") > 0, "the target fails 10 %");
    // Already there when `volley run` returns: it waits for its flush.
    let exports = recv.exports();
    let last = exports.last().expect("an export before volley run exits");
    assert_eq!(last["transport"], "grpc");
    assert!(
        exports
            .iter()
            .all(|e| e["received_unix_s"].as_f64().unwrap() >= started + 2.0),
        "every export came after the run's 2 s (the interval is 60 s): the flush at its end"
    );
    assert_export_matches(last, &r);
    assert_mix_split(last, &r);
}

#[test]
fn serve_exports_over_http_protobuf_when_a_run_ends() {
    let _serial = serial();
    let recv = start_receiver();
    let (_target, url) = start_target(&["--error-rate", "0.1"]);
    let (_coord, coord_url) = start_coordinator(&[
        "--otlp-endpoint",
        &format!("http://{}", recv.http),
        "--otlp-protocol",
        "http/protobuf",
        "--otlp-interval",
        "60s",
    ]);
    let _w = start_worker(&coord_url, &[]);
    let s = submission(
        &coord_url,
        "otlp-serve",
        &mix_scenario(&url, 200, "2s"),
        &[],
    );
    let started = unix_s();
    let (o, _) = run_bounded(s.cmd, Duration::from_secs(60));
    assert!(o.status.success(), "{}", describe(&o));
    let r = read_report(&s.out);
    let last = recv.last_with_total(u(&r, "requests.intended"), Duration::from_secs(15));
    assert_eq!(last["transport"], "http");
    assert!(last["received_unix_s"].as_f64().unwrap() >= started + 2.0);
    assert_export_matches(&last, &r);
    assert_mix_split(&last, &r);
    let workers = points(&last, "volley.workers", &[]);
    assert_eq!(workers[0]["value"], 1, "{workers:?}");
}

#[test]
fn exports_arrive_every_interval_while_a_run_goes() {
    let _serial = serial();
    let recv = start_receiver();
    let (_target, url) = start_target(&[]);
    let endpoint = format!("http://{}", recv.grpc);
    let (_dir, out, mut cmd) = local_run("otlp-periodic", &url, "6s", &endpoint, "grpc", "1s");
    cmd.arg("--quiet");
    let (o, _) = run_bounded(cmd, Duration::from_secs(60));
    let ended = unix_s();
    assert!(o.status.success(), "{}", describe(&o));
    let r = read_report(&out);
    assert_eq!(u(&r, "requests.intended"), 1200);
    assert_eq!(u(&r, "requests.dropped"), 0, "{}", r["requests"]);
    let run = r["run_id"].as_str().unwrap().to_string();
    let at = [("run", run.as_str()), ("stage", "main")];
    let exports = recv.exports();
    // Cumulative counters: the exports taken while the run went hold part
    // of its requests, never fewer than the export before.
    let totals: Vec<u64> = exports
        .iter()
        .map(|e| sum(e, "volley.requests", &at))
        .collect();
    assert!(
        totals.windows(2).all(|w| w[0] <= w[1]),
        "cumulative: {totals:?}"
    );
    let during: Vec<&Value> = exports
        .iter()
        .filter(|e| (1..1200).contains(&sum(e, "volley.requests", &at)))
        .collect();
    // A 6 s run exported every second: about five mid-run exports; three
    // leave room for a slow start and a late first tick.
    assert!(
        during.len() >= 3,
        "exports during the run every 1 s, not only the flush at its end: totals {totals:?}"
    );
    let first = during[0]["received_unix_s"].as_f64().unwrap();
    assert!(
        first < ended - 2.0,
        "the first mid-run export came {:.1} s before the run ended",
        ended - first
    );
    // The achieved-rate gauge is the last merged second's sent requests,
    // each counted in the second it was due: the schedule's 200 in every
    // second of a run that dropped nothing, however late the machine.
    for e in &during {
        for p in points(e, "volley.rate.achieved", &at) {
            let v = p["value"].as_f64().unwrap();
            assert!((v - 200.0).abs() <= 2.0, "achieved {v} req/s of 200");
        }
    }
    assert!(
        during
            .iter()
            .any(|e| !points(e, "volley.rate.achieved", &at).is_empty()),
        "the achieved rate is exported while the run goes"
    );
    let last = exports.last().expect("the flush at the end");
    assert_eq!(sum(last, "volley.requests", &at), 1200);
    assert_export_matches(last, &r);
}

#[test]
fn an_interrupted_local_run_is_exported_too() {
    let _serial = serial();
    let recv = start_receiver();
    let (_target, url) = start_target(&[]);
    let endpoint = format!("http://{}", recv.grpc);
    let (_dir, out, cmd) = local_run("otlp-term", &url, "60s", &endpoint, "grpc", "60s");
    let mut p = spawn(cmd, "volley run");
    p.wait_stderr(STARTED, Duration::from_secs(30));
    wait_served(&url, 300, Duration::from_secs(20));
    p.signal("TERM");
    let status = p
        .wait_exit(Duration::from_secs(30))
        .expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(3), "a partial run exits 3");
    let r = read_report(&out);
    assert_eq!(r["complete"], false);
    let last = recv
        .exports()
        .last()
        .cloned()
        .expect("exported before exit");
    assert_export_matches(&last, &r);
    assert_mix_split(&last, &r);
}

#[test]
fn an_unreachable_collector_never_stops_or_slows_the_run() {
    let _serial = serial();
    let (_target, url) = start_target(&[]);
    // Refused: nothing listens. Black hole: accepts, never answers.
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_addr = hole.local_addr().unwrap();
    let _keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in hole.incoming().take(64) {
            held.push(s);
        }
    });
    for (what, endpoint, protocol) in [
        ("refused", format!("http://{refused}"), "grpc"),
        ("black hole", format!("http://{hole_addr}"), "http/protobuf"),
    ] {
        let (_dir, out, mut cmd) = local_run("otlp-down", &url, "3s", &endpoint, protocol, "1s");
        cmd.arg("--quiet");
        let (o, took) = run_bounded(cmd, Duration::from_secs(60));
        assert!(o.status.success(), "{what}: {}", describe(&o));
        let r = read_report(&out);
        assert_eq!(r["complete"], true, "{what}");
        assert_eq!(u(&r, "requests.intended"), 600, "{what}");
        assert_eq!(u(&r, "requests.ok"), 600, "{what}: nothing lost");
        assert!(
            (f(&r, "achieved_rps") - 200.0).abs() < 10.0,
            "{what}: the rate held: {}",
            r["achieved_rps"]
        );
        // 3 s of load, start-up, and at most the final flush's 6 s wait
        // (an exporter that blocked the run took 41 s here).
        assert!(took < Duration::from_secs(20), "{what}: took {took:?}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains("OTLP export failed") && stderr.contains(&endpoint),
            "{what}: a warning names the collector:\n{stderr}"
        );
    }
}

#[test]
fn bad_otlp_flags_are_bad_input() {
    let dir = TempDir::new("otlp-bad");
    let file = dir.write("s.toml", &mix_scenario("http://127.0.0.1:9/", 10, "1s"));
    let f = file.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["run", f, "--otlp-endpoint", "collector:4317"],
            "--otlp-endpoint",
        ),
        (
            &[
                "run",
                f,
                "--otlp-endpoint",
                "http://c:4318",
                "--otlp-protocol",
                "http/json",
            ],
            "--otlp-protocol",
        ),
        (
            &[
                "run",
                f,
                "--otlp-endpoint",
                "http://c:4317",
                "--coordinator",
                "http://127.0.0.1:9",
            ],
            "--otlp-endpoint",
        ),
        (
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--otlp-endpoint",
                "http://",
            ],
            "--otlp-endpoint",
        ),
        (
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--otlp-endpoint",
                "http://c:4317",
                "--otlp-protocol",
                "kafka",
            ],
            "--otlp-protocol",
        ),
    ];
    for (args, flag) in cases {
        let mut cmd = volley();
        cmd.args(args);
        let (o, _) = run_bounded(cmd, Duration::from_secs(20));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", describe(&o));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.starts_with(&format!("volley: {flag}")),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
