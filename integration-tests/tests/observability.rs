//! What people watch while a run goes: Prometheus metrics, the progress
//! lines, machine-readable logs.

mod common;

use common::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("metrics port");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    assert!(buf.starts_with("HTTP/1.1 200"), "{buf}");
    buf.split("\r\n\r\n").nth(1).unwrap().to_string()
}

fn parse_prometheus(text: &str) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/parse_metrics.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the reference Prometheus parser rejected the text (test.sh installs prometheus-client):\n{}\n{text}",
        describe(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn metrics_are_scraped_during_a_run_and_parse_as_prometheus_text() {
    let _serial = serial();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let maddr = format!("127.0.0.1:{port}");
    let (_target, url) = start_target(&[]);
    let (_coord, coord_url) = start_coordinator(&["--metrics-listen", &maddr]);
    let _w = start_worker(&coord_url, &[]);
    let dir = TempDir::new("metrics");
    let file = dir.write("s.toml", &format!("[target]\nurl = \"{url}\"\n[[stages]]\nname = \"main\"\nrate = 200\nduration = \"5s\"\n"));
    let mut cmd = volley();
    cmd.args([
        "run",
        file.to_str().unwrap(),
        "--coordinator",
        &coord_url,
        "--quiet",
    ])
    .args(["--out", dir.path().join("out").to_str().unwrap()]);
    let run = std::thread::spawn(move || run_bounded(cmd, Duration::from_secs(60)));
    let find = |samples: &serde_json::Value, name: &str, outcome: Option<&str>| -> Option<f64> {
        samples.as_array().unwrap().iter().find_map(|s| {
            let ok = s["name"] == name
                && s["labels"]["stage"] == "main"
                && outcome.is_none_or(|o| s["labels"]["outcome"] == o);
            ok.then(|| s["value"].as_f64().unwrap())
        })
    };
    // Scrape until the run's first merged second is counted, however long
    // the setup takes on a loaded machine; the run is still going then.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let ok_during = loop {
        let samples = parse_prometheus(&scrape(&maddr));
        if let Some(ok) = find(&samples, "volley_requests_total", Some("ok")).filter(|&v| v > 0.0) {
            break ok;
        }
        assert!(
            std::time::Instant::now() < deadline && !run.is_finished(),
            "no ok request counted in /metrics while the run went"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (out, _) = run.join().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let r = read_report(&dir.path().join("out"));
    let after = parse_prometheus(&scrape(&maddr));
    assert!(
        ok_during > 0.0 && ok_during < 1000.0,
        "mid-run: {ok_during}"
    );
    assert_eq!(
        find(&after, "volley_requests_total", Some("ok")),
        Some(u(&r, "requests.ok") as f64)
    );
    assert_eq!(
        find(&after, "volley_latency_seconds_count", None),
        Some(u(&r, "requests.ok") as f64)
    );
    assert_eq!(find(&after, "volley_dropped_total", None), Some(0.0));
    assert_eq!(
        find(&after, "volley_target_rps", None).map(|v| v.round()),
        Some(200.0)
    );
    let workers = after
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "volley_workers")
        .unwrap();
    assert_eq!(workers["value"].as_f64(), Some(1.0));
    assert!(after
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["labels"]["run"] == r["run_id"]));
}

/// The samples named `name` whose labels include every (key, value) of
/// `with`.
fn samples<'a>(
    all: &'a serde_json::Value,
    name: &str,
    with: &[(&str, &str)],
) -> Vec<&'a serde_json::Value> {
    all.as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == name && with.iter().all(|(k, v)| s["labels"][*k] == *v))
        .collect()
}

fn value(all: &serde_json::Value, name: &str, with: &[(&str, &str)]) -> f64 {
    let found = samples(all, name, with);
    assert_eq!(found.len(), 1, "one {name} {with:?}: {found:?}");
    found[0]["value"].as_f64().unwrap()
}

/// `/metrics` against an independent count: the target's own counters
/// (`GET /__volley/stats`) and the latency and error rate it imposes, not
/// the coordinator's report.
#[test]
fn metrics_agree_with_what_the_target_counted_and_imposed() {
    let _serial = serial();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let maddr = format!("127.0.0.1:{port}");
    // Every 5th request fails with HTTP 500; every answer waits 20 ms.
    let (_target, url) = start_target(&["--delay", "20ms", "--error-rate", "0.2"]);
    let (_coord, coord_url) = start_coordinator(&["--metrics-listen", &maddr]);
    let _w = start_worker(&coord_url, &[]);
    let toml = format!(
        "[target]\nurl = \"{url}\"\ntimeout = \"2s\"\n[[stages]]\nname = \"main\"\nrate = 100\nduration = \"6s\"\n"
    );
    let s = submission(&coord_url, "metrics-truth", &toml, &[]);
    let cmd = s.cmd;
    let run = std::thread::spawn(move || run_bounded(cmd, Duration::from_secs(60)));

    // Mid-run: the achieved-rate gauge is the configured rate.
    wait_served(&url, 300, Duration::from_secs(30));
    let during = parse_prometheus(&scrape(&maddr));
    let main = [("stage", "main")];
    assert_eq!(value(&during, "volley_target_rps", &main), 100.0);
    let achieved = value(&during, "volley_achieved_rps", &main);
    assert!(
        (achieved - 100.0).abs() <= 5.0,
        "achieved {achieved} rps mid-run, configured 100"
    );

    let (out, _) = run.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stats = target_stats(&url);
    let after = parse_prometheus(&scrape(&maddr));
    let (t_ok, t_err) = (
        stats["ok"].as_u64().unwrap() as f64,
        stats["errors"].as_u64().unwrap() as f64,
    );
    assert_eq!(
        t_ok + t_err,
        600.0,
        "the target answered every request: {stats}"
    );

    // Counters: what the target answered, by outcome and error kind.
    let outcome = |o: &str| {
        value(
            &after,
            "volley_requests_total",
            &[("stage", "main"), ("outcome", o)],
        )
    };
    assert_eq!(outcome("ok"), t_ok, "ok = the target's 200s");
    assert_eq!(outcome("error"), t_err, "errors = the target's 500s");
    assert_eq!(outcome("dropped"), 0.0);
    assert_eq!(t_err, 120.0, "--error-rate 0.2 of 600 is exact");
    assert_eq!(
        value(
            &after,
            "volley_errors_total",
            &[("stage", "main"), ("kind", "status")]
        ),
        t_err,
        "the 500s are errors of kind status"
    );
    assert!(
        samples(&after, "volley_errors_total", &main)
            .iter()
            .all(|s| s["labels"]["kind"] == "status" || s["value"] == 0.0),
        "no other kind: {:?}",
        samples(&after, "volley_errors_total", &main)
    );
    assert_eq!(value(&after, "volley_dropped_total", &main), 0.0);

    // The histogram: cumulative and monotone, +Inf = count = the target's
    // ok answers, and nothing faster than the 20 ms the target waits.
    let mut buckets: Vec<(f64, f64)> = samples(&after, "volley_latency_seconds_bucket", &main)
        .iter()
        .map(|s| {
            let le = s["labels"]["le"].as_str().unwrap();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (le, s["value"].as_f64().unwrap())
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() > 10, "{buckets:?}");
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "cumulative buckets never decrease: {buckets:?}"
    );
    let count = value(&after, "volley_latency_seconds_count", &main);
    assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, count));
    assert_eq!(count, t_ok, "one latency per ok answer of the target");
    for &(le, n) in &buckets {
        if le < 0.020 {
            assert_eq!(
                n, 0.0,
                "nothing faster than the target's 20 ms delay: le={le} {buckets:?}"
            );
        }
    }
    let within = |le: f64| buckets.iter().find(|b| b.0 == le).unwrap().1;
    assert!(
        within(0.05) >= 0.9 * count,
        "most answers within 50 ms of a 20 ms target: {buckets:?}"
    );
    let mean = value(&after, "volley_latency_seconds_sum", &main) / count;
    assert!((0.020..0.050).contains(&mean), "mean {mean} s");
}

#[test]
fn without_a_terminal_there_is_one_progress_line_per_second() {
    let _serial = serial();
    let (_target, url) = start_target(&[]);
    let dir = TempDir::new("lines");
    let file = dir.write("s.toml", &format!("[target]\nurl = \"{url}\"\n[[stages]]\nname = \"main\"\nrate = 100\nduration = \"4s\"\n"));
    let mut cmd = volley();
    cmd.args([
        "run",
        file.to_str().unwrap(),
        "--local-workers",
        "1",
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    let (out, _) = run_bounded(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let progress: Vec<&str> = stdout.lines().filter(|l| l.contains("/4s]")).collect();
    assert_eq!(
        progress.len(),
        4,
        "one line per second of a 4 s run:\n{stdout}"
    );
    for (i, l) in progress.iter().enumerate() {
        assert!(l.starts_with(&format!("[{:>4}/4s] main", i + 1)), "{l}");
        assert!(
            l.contains("target") && l.contains("p99") && l.contains("workers 1"),
            "{l}"
        );
        assert!(
            !l.contains('\r') && !l.contains('\x1b'),
            "plain text without a terminal: {l:?}"
        );
    }
}

#[test]
fn json_logs_for_log_collectors() {
    let (_coord, coord_url) = start_coordinator(&[]);
    let mut w = worker_cmd();
    w.args(["--coordinator", &coord_url, "--log-format", "json"])
        .env("RUST_LOG", "info");
    let mut p = spawn(w, "worker");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut lines = String::new();
    while std::time::Instant::now() < deadline && !lines.contains("connected to coordinator") {
        std::thread::sleep(Duration::from_millis(100));
        lines.push_str(&p.stderr_so_far());
    }
    let _ = p.child.kill();
    let line = lines
        .lines()
        .find(|l| l.contains("connected to coordinator"))
        .expect(&lines);
    let v: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(v["level"], "INFO");
    assert!(v["fields"]["message"]
        .as_str()
        .unwrap()
        .contains("connected"));
}
