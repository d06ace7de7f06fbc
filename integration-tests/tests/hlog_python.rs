//! `latency.hlog` is a standard HdrHistogram interval log: an independent
//! implementation (Python's `hdrhistogram` package, installed by test.sh)
//! decodes it and finds the same p99 as `report.json`.

mod common;

use common::*;
use std::process::Command;

#[test]
fn an_independent_hdrhistogram_reads_the_interval_log_and_agrees_on_p99() {
    let _serial = serial();
    let (_target, url) = start_target(&["--delay", "3ms"]);
    let (_coord, coord_url) = start_coordinator(&[]);
    let _w = start_worker(&coord_url, &[]);
    let (r, dir) = run_to_report(&coord_url, "hlog", &format!("[target]\nurl = \"{url}\"\n[[stages]]\nrate = 300\nduration = \"3s\"\n[[stages]]\nrate = 600\nduration = \"2s\"\n"), &[]);
    let out = dir.path().join("out");

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/check_hlog.py");
    let py = Command::new("python3")
        .arg(&script)
        .arg(out.join("latency.hlog"))
        .output()
        .expect("python3 runs (test.sh installs the hdrhistogram package)");
    assert!(
        py.status.success(),
        "the Python reader failed (is the `hdrhistogram` package installed? test.sh installs it):\n{}",
        describe(&py)
    );
    let got: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    assert_eq!(got["count"].as_u64(), Some(u(&r, "requests.ok")));
    assert_eq!(
        got["intervals"].as_u64().unwrap() as usize,
        r["intervals"].as_array().unwrap().len()
    );
    let p99_ms = got["p99_us"].as_f64().unwrap() / 1000.0;
    assert_eq!(
        p99_ms,
        f(&r, "latency_ms.p99"),
        "Python p99 {p99_ms} ms vs report"
    );
    let p50_ms = got["p50_us"].as_f64().unwrap() / 1000.0;
    assert_eq!(p50_ms, f(&r, "latency_ms.p50"));
}
