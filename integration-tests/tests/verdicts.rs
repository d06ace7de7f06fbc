//! Thresholds and regressions change the exit code as the contract says.

mod common;

use common::*;
use std::time::Duration;

struct Env {
    _target: Proc,
    _coord: Proc,
    _worker: Proc,
    url: String,
    coord_url: String,
}

fn env(target_args: &[&str]) -> Env {
    let (t, url) = start_target(target_args);
    let (c, coord_url) = start_coordinator(&[]);
    let w = start_worker(&coord_url, &[]);
    Env {
        _target: t,
        _coord: c,
        _worker: w,
        url,
        coord_url,
    }
}

fn scenario(url: &str, thresholds: &[&str], secs: u32) -> String {
    let list: Vec<String> = thresholds.iter().map(|t| format!("{t:?}")).collect();
    format!(
        "name = \"verdict\"\nthresholds = [{}]\n[target]\nurl = \"{url}\"\n[[stages]]\nname = \"main\"\nrate = 200\nduration = \"{secs}s\"\n",
        list.join(", ")
    )
}

fn run(
    e: &Env,
    toml: &str,
    extra: &[&str],
    tag: &str,
) -> (Option<i32>, serde_json::Value, TempDir) {
    let s = submission(&e.coord_url, tag, toml, extra);
    let (dir, out, cmd) = (s.dir, s.out, s.cmd);
    let (output, _) = run_bounded(cmd, Duration::from_secs(60));
    let code = output.status.code();
    let r = if out.join("report.json").exists() {
        read_report(&out)
    } else {
        serde_json::Value::Null
    };
    assert!(code.is_some(), "{}", describe(&output));
    (code, r, dir)
}

fn statuses(r: &serde_json::Value) -> Vec<String> {
    r["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn passing_failing_and_warning_thresholds_set_the_exit_code() {
    let _serial = serial();
    // 5 ms of delay: p99 ≈ 5-7 ms; one request in ten fails.
    let e = env(&["--delay", "5ms", "--error-rate", "0.1"]);

    let all_pass = [
        "p50 < 1s",
        "p99 < 1s",
        "max < 5s",
        "mean > 1ms",
        "success_rate > 0.85",
        "error_rate < 0.15",
        "achieved_rps >= 95%",
        "dropped == 0",
        "main.p99 < 1s",
    ];
    let (code, r, _d) = run(&e, &scenario(&e.url, &all_pass, 2), &[], "pass");
    assert_eq!(code, Some(0), "{r}");
    assert!(
        statuses(&r).iter().all(|s| s == "pass"),
        "{:?}",
        r["thresholds"]
    );

    // One failing threshold of each family: latency, rate, count, stage.
    for failing in [
        "p99 < 1ms",
        "success_rate > 0.95",
        "error_rate < 0.05",
        "errors == 0",
        "main.p50 < 1ms",
    ] {
        let (code, r, _d) = run(
            &e,
            &scenario(&e.url, &["p99 < 1s", failing], 2),
            &[],
            "fail",
        );
        assert_eq!(
            code,
            Some(1),
            "`{failing}` must fail the run: {}",
            r["thresholds"]
        );
        assert_eq!(statuses(&r), vec!["pass", "fail"], "{failing}");
    }

    // In the warning band: exit 0, but 1 with --strict.
    let warn = ["p99 < 1s warn 1ms"];
    let (code, r, _d) = run(&e, &scenario(&e.url, &warn, 2), &[], "warn");
    assert_eq!(code, Some(0));
    assert_eq!(statuses(&r), vec!["warn"]);
    let (code, _, _d) = run(&e, &scenario(&e.url, &warn, 2), &["--strict"], "strict");
    assert_eq!(code, Some(1));

    // A malformed threshold is a scenario error: exit 2 before any traffic.
    let (code, r, _d) = run(&e, &scenario(&e.url, &["p99 <"], 2), &[], "malformed");
    assert_eq!(code, Some(2));
    assert!(r.is_null(), "no run happened");
}

#[test]
fn an_abort_threshold_stops_the_load_within_seconds() {
    let _serial = serial();
    // Half the requests fail: `error_rate < 0.1 abort` breaks in second 0.
    let e = env(&["--error-rate", "0.5"]);
    let (code, r, _d) = run(
        &e,
        &scenario(&e.url, &["error_rate < 0.1 abort"], 30),
        &[],
        "abort",
    );
    assert_eq!(code, Some(1), "{r}");
    assert_eq!(r["complete"], false);
    assert!(
        r["incomplete_reason"].as_str().unwrap().contains("aborted"),
        "{r}"
    );
    // 30 s × 200 rps = 6000 were planned; the load stopped within ~2 s.
    let intended = u(&r, "requests.intended");
    assert!(intended < 1000, "the load went on: {intended} intended");
    assert_accounted(&r["requests"], "aborted run");
}

#[test]
fn a_regression_against_the_baseline_exits_1() {
    let _serial = serial();
    let e = env(&["--delay", "10ms"]);
    let (code, _, base_dir) = run(&e, &scenario(&e.url, &[], 2), &[], "base");
    assert_eq!(code, Some(0));
    let base = base_dir.path().join("out/report.json");

    // The same system again: no regression (exit 0), with the table filled.
    // The p99 and p99.9 of 400 requests are their 4th slowest and slowest,
    // which differ by 50-100 % between two runs on a busy machine: they are
    // shown but not judged (too few requests); the p50 is, and it moves by
    // a few percent.
    let (code, r, _d) = run(
        &e,
        &scenario(&e.url, &[], 2),
        &["--baseline", base.to_str().unwrap(), "--threshold", "25%"],
        "same",
    );
    assert_eq!(code, Some(0), "{}", r["regressions"]);
    let rows = r["regressions"].as_array().unwrap();
    assert!(rows.iter().any(|x| x["metric"] == "p99_ms"));
    assert!(rows.iter().all(|x| x["pass"] == true), "{rows:?}");
    for m in ["p99_ms", "p999_ms"] {
        let row = rows.iter().find(|x| x["metric"] == m).unwrap();
        assert!(
            row["note"]
                .as_str()
                .unwrap_or_default()
                .contains("not judged"),
            "{row}"
        );
    }
    let p50 = rows.iter().find(|x| x["metric"] == "p50_ms").unwrap();
    assert!(p50.get("note").is_none(), "{p50}");

    // A baseline that was twice as fast: p50 rose ~100 % > 10 %.
    let mut fast: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap();
    for k in ["p50", "p90", "p95", "p99", "p999", "max", "mean"] {
        fast["latency_ms"][k] = serde_json::json!(f(&fast["latency_ms"], k) / 2.0);
    }
    let fast_path = base_dir.path().join("fast.json");
    std::fs::write(&fast_path, fast.to_string()).unwrap();
    let current = _d.path().join("out/report.json");
    let mut cmd = volley();
    cmd.args([
        "report",
        current.to_str().unwrap(),
        "--baseline",
        fast_path.to_str().unwrap(),
    ]);
    let (out, _) = run_bounded(cmd, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(
        md.contains("| Metric | Baseline | Current | Change |"),
        "{md}"
    );
    // Within a generous threshold it passes.
    let mut cmd = volley();
    cmd.args([
        "report",
        current.to_str().unwrap(),
        "--baseline",
        fast_path.to_str().unwrap(),
        "--threshold",
        "150%",
    ]);
    let (out, _) = run_bounded(cmd, Duration::from_secs(10));
    assert_eq!(
        out.status.code(),
        Some(2),
        "150% is not a sane threshold: {}",
        describe(&out)
    );
    let mut cmd = volley();
    cmd.args([
        "report",
        current.to_str().unwrap(),
        "--baseline",
        fast_path.to_str().unwrap(),
        // p50 "doubled" = 2 × current/base − 1: 99 % would fail the moment
        // this run is 1 % faster than the base run, so leave room for that.
        "--threshold",
        "80%",
    ]);
    let (out, _) = run_bounded(cmd, Duration::from_secs(10));
    assert_eq!(
        out.status.code(),
        Some(1),
        "a doubling is still beyond 80 %: {}",
        describe(&out)
    );

    // A real regression, end to end, and the threshold that decides it.
    // The same scenario against a target 13 ms slow instead of 10 ms: the
    // p50 rises by 3 ms on ~11 (measured: 11.3 → 14.3 ms, +26 %); the
    // overhead a loaded machine adds to both runs would have to pass 19 ms
    // to bring the rise under 10 %. 10 % fails it; 80 % passes it as long
    // as the slow run's p50 stays below 1.8 × the base's.
    let (_slow, slow_url) = start_target(&["--delay", "13ms"]);
    let against = |threshold: &str, url: &str, rate: u32, tag: &str| {
        let toml = scenario(url, &[], 2).replace("rate = 200", &format!("rate = {rate}"));
        run(
            &e,
            &toml,
            &[
                "--baseline",
                base.to_str().unwrap(),
                "--threshold",
                threshold,
            ],
            tag,
        )
    };
    let row = |r: &serde_json::Value, m: &str| -> serde_json::Value {
        r["regressions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["metric"] == m)
            .unwrap_or_else(|| panic!("no {m} row: {}", r["regressions"]))
            .clone()
    };
    let (code, r, _d3) = against("10%", &slow_url, 200, "slow-10");
    assert_eq!(code, Some(1), "{}", r["regressions"]);
    assert_eq!(row(&r, "p50_ms")["pass"], false, "{}", r["regressions"]);
    let change = f(&row(&r, "p50_ms"), "change_pct");
    assert!((10.0..80.0).contains(&change), "p50 change {change} %");
    let (code, r, _d4) = against("80%", &slow_url, 200, "slow-80");
    assert_eq!(
        code,
        Some(0),
        "80 % lets a 30 % rise pass: {}",
        r["regressions"]
    );
    assert!(
        r["regressions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["pass"] == true),
        "{}",
        r["regressions"]
    );

    // Throughput: half the rate is half the ok requests a second (−50 %).
    // 10 % fails it; 60 % passes it.
    let (code, r, _d5) = against("10%", &e.url, 100, "rate-10");
    assert_eq!(code, Some(1), "{}", r["regressions"]);
    let tp = row(&r, "throughput_rps");
    assert_eq!(tp["pass"], false, "{tp}");
    assert!((f(&tp, "change_pct") + 50.0).abs() < 2.0, "{tp}");
    assert_eq!(row(&r, "success_rate")["pass"], true);
    let (code, r, _d6) = against("60%", &e.url, 100, "rate-60");
    assert_eq!(
        code,
        Some(0),
        "60 % lets a 50 % drop pass: {}",
        r["regressions"]
    );
    assert_eq!(row(&r, "throughput_rps")["pass"], true);

    // Success rate: one request in ten fails where none did. The failure
    // fraction grows from 0 to 0.1, beyond any threshold's share of 0 and
    // beyond the 0.1-point floor, so even a wide threshold fails it (while
    // the 10 % throughput drop it also causes passes at 60 %).
    let (_failing, failing_url) = start_target(&["--delay", "10ms", "--error-rate", "0.1"]);
    let (code, r, _d7) = against("60%", &failing_url, 200, "errors-60");
    assert_eq!(code, Some(1), "{}", r["regressions"]);
    let sr = row(&r, "success_rate");
    assert_eq!(
        (sr["pass"].clone(), f(&sr, "current")),
        (false.into(), 0.9),
        "{sr}"
    );
    assert_eq!(row(&r, "error_rate")["pass"], false);
    assert_eq!(row(&r, "throughput_rps")["pass"], true);

    // A missing baseline is bad input, caught before the run.
    let (code, r, _d2) = run(
        &e,
        &scenario(&e.url, &[], 2),
        &["--baseline", "/nonexistent/report.json"],
        "nobase",
    );
    assert_eq!(code, Some(2));
    assert!(r.is_null());
}
