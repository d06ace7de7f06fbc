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
    std::thread::sleep(Duration::from_millis(3500));
    let during = parse_prometheus(&scrape(&maddr));
    let (out, _) = run.join().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let r = read_report(&dir.path().join("out"));
    let after = parse_prometheus(&scrape(&maddr));

    let find = |samples: &serde_json::Value, name: &str, outcome: Option<&str>| -> Option<f64> {
        samples.as_array().unwrap().iter().find_map(|s| {
            let ok = s["name"] == name
                && s["labels"]["stage"] == "main"
                && outcome.is_none_or(|o| s["labels"]["outcome"] == o);
            ok.then(|| s["value"].as_f64().unwrap())
        })
    };
    let ok_during =
        find(&during, "volley_requests_total", Some("ok")).expect("ok counter during the run");
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
