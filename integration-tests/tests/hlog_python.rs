//! The interval logs are standard HdrHistogram logs, and the coordinator's
//! merge is exact: an independent implementation (Python's `hdrhistogram`
//! package, installed by test.sh) merges the three workers' raw seconds in
//! `workers.hlog` itself, and finds the same count and percentiles as in
//! the coordinator's merged `latency.hlog` and in `report.json`.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

const WORKERS: usize = 3;

#[test]
fn an_independent_hdrhistogram_merges_the_workers_logs_and_agrees_with_the_report() {
    let _serial = serial();
    let (_target, url) = start_target(&["--delay", "3ms"]);
    let (_coord, coord_url) = start_coordinator(&[]);
    let _workers: Vec<Proc> = (0..WORKERS)
        .map(|_| start_worker(&coord_url, &[]))
        .collect();
    let (r, dir) = run_to_report(
        &coord_url,
        "hlog",
        &format!("[target]\nurl = \"{url}\"\n[[stages]]\nrate = 300\nduration = \"3s\"\n[[stages]]\nrate = 600\nduration = \"2s\"\n"),
        &["--min-workers", &WORKERS.to_string()],
    );
    let out = dir.path().join("out");
    assert_eq!(r["workers"].as_array().unwrap().len(), WORKERS);

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/check_hlog.py");
    let (merged_log, workers_log) = (out.join("latency.hlog"), out.join("workers.hlog"));
    let py = Command::new("python3")
        .arg(&script)
        .arg(&merged_log)
        .arg(&workers_log)
        .output()
        .expect("python3 runs (test.sh installs the hdrhistogram package)");
    assert!(
        py.status.success(),
        "the Python reader failed (is the `hdrhistogram` package installed? test.sh installs it):\n{}",
        describe(&py)
    );
    let got: Value = serde_json::from_slice(&py.stdout).unwrap();
    let merged = &got[merged_log.to_str().unwrap()];
    let workers = &got[workers_log.to_str().unwrap()];

    // latency.hlog: one untagged line per interval of the report.
    assert_eq!(
        merged["lines"].as_u64().unwrap() as usize,
        r["intervals"].as_array().unwrap().len(),
        "{merged}"
    );
    assert_eq!(merged["tags"], serde_json::json!([]), "{merged}");
    // workers.hlog: every line tagged, one tag per worker of the report.
    assert_eq!(workers["untagged"], false, "{workers}");
    let mut ids: Vec<&str> = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let tags: Vec<&str> = workers["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tags, ids, "one tag per worker");

    // Python's merge of the raw worker seconds is the coordinator's merge:
    // same count and the same value at every percentile.
    for k in ["count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us"] {
        assert_eq!(
            workers[k], merged[k],
            "{k}: Python's merge of workers.hlog vs latency.hlog"
        );
    }
    // And both agree with report.json.
    assert_eq!(merged["count"].as_u64(), Some(u(&r, "requests.ok")));
    for (k, report_key) in [
        ("p50_us", "p50"),
        ("p90_us", "p90"),
        ("p99_us", "p99"),
        ("p999_us", "p999"),
    ] {
        let py_ms = workers[k].as_f64().unwrap() / 1000.0;
        assert_eq!(
            py_ms,
            f(&r["latency_ms"], report_key),
            "{k}: Python {py_ms} ms vs report.json"
        );
    }
}
