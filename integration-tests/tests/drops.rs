//! Dropped requests come with their reason, end to end: `volley run` in
//! local mode against `volley target --delay`, with limits that make one
//! cause the only one possible. The warning at the start, the live notice
//! (once per cause), `report.json`'s `drop_reasons` and the sentence of
//! `report.md` and `report.html` all name it and the setting to change.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

/// Runs `load` at 100 req/s for 3 s against a target answering in 2 s with
/// a 3 s timeout, on one local worker; returns the report, report.md,
/// report.html and stderr.
fn run_slow(tag: &str, load: &str) -> (Value, String, String, String) {
    let (_target, url) = start_target(&["--delay", "2s"]);
    let toml = format!(
        "[target]\nurl = \"{url}/\"\ntimeout = \"3s\"\n\n[load]\n{load}\n\n\
         [[stages]]\nname = \"steady\"\nrate = 100\nduration = \"3s\"\n"
    );
    let s = local_submission(tag, &toml, &["--local-workers", "1"]);
    let (output, _) = run_bounded(s.cmd, Duration::from_secs(90));
    assert!(output.status.success(), "{}", describe(&output));
    let read = |f: &str| std::fs::read_to_string(s.out.join(f)).unwrap();
    (
        read_report(&s.out),
        read("report.md"),
        read("report.html"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The run's `drop_reasons` add up to `requests.dropped`, and so do the
/// per-second ones; returns the run's as (connections_busy, max_in_flight,
/// behind_schedule, worker_lost).
fn drop_reasons(r: &Value) -> (u64, u64, u64, u64) {
    let d = &r["drop_reasons"];
    let by = (
        u(d, "connections_busy"),
        u(d, "max_in_flight"),
        u(d, "behind_schedule"),
        u(d, "worker_lost"),
    );
    let dropped = u(r, "requests.dropped");
    assert_eq!(by.0 + by.1 + by.2 + by.3, dropped, "{d}");
    let mut per_second = 0;
    for i in r["intervals"].as_array().unwrap() {
        let n = u(i, "dropped");
        let reasons = i["drop_reasons"].as_object();
        let sum: u64 = reasons.map_or(0, |m| m.values().map(|v| v.as_u64().unwrap()).sum());
        assert_eq!(sum, n, "second {}: {i}", u(i, "t_s"));
        per_second += sum;
    }
    assert_eq!(per_second, dropped);
    by
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn busy_connections_are_named_once_live_and_in_every_report() {
    let _serial = serial();
    // Four connections held 2 s each, room for 20 in flight: 16 wait for a
    // connection, and the arrivals after them are dropped because the
    // connections are busy.
    let (r, md, html, stderr) =
        run_slow("drops-connections", "connections = 4\nmax_in_flight = 20");
    assert_accounted(&r["requests"], "run");
    let dropped = u(&r, "requests.dropped");
    assert!(dropped >= 150, "{}", r["requests"]);
    assert_eq!(drop_reasons(&r), (dropped, 0, 0, 0));
    assert_eq!(u(&r, "load.connections"), 4);
    // At the start: 100 req/s × 3 s = 300 may be in flight, above 20.
    assert_eq!(
        count(&stderr, "volley: warn: may drop requests: at the peak of 100 req/s per worker and a 3s timeout, up to 300 requests can be in flight on a worker, above load.max_in_flight = 20"),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("only 4 of them can be on its connections at once (load.connections = 4), so raise load.connections too"),
        "{stderr}"
    );
    // Live: once, though requests were dropped in several seconds.
    let seconds_dropping = r["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| u(i, "dropped") > 0)
        .count();
    assert!(seconds_dropping >= 2, "{}", r["intervals"]);
    assert_eq!(
        count(&stderr, "dropping requests from second"),
        1,
        "{stderr}"
    );
    assert_eq!(
        count(
            &stderr,
            "dropping requests from second 1 on: all 4 connections of a worker were busy (connections_busy): raise `load.connections` (or add workers)"
        ),
        1,
        "{stderr}"
    );
    let sentence = format!(
        "{} requests were dropped because all 4 connections of a worker were busy: raise `load.connections` (or add workers).",
        group(dropped)
    );
    assert!(md.contains(&format!("- ⚠️ {sentence}")), "{md}");
    assert!(
        html.contains(&format!(
            "{} requests were dropped because all 4 connections of a worker were busy: raise <code>load.connections</code> (or add workers).",
            group(dropped)
        )),
        "the page says it too"
    );
    // The requests that waited for a connection went out about 2 s late:
    // that wait is Volley's own lateness (send lag), part of their latency
    // and not of the target's service time, and the reports say so.
    let lag = &r["send_lag_ms"];
    let (lag_p50, lag_p99, lag_max) = (f(lag, "p50"), f(lag, "p99"), f(lag, "max"));
    assert!(lag_p50 <= lag_p99 && lag_p99 <= lag_max, "{lag}");
    assert!(lag_max >= 1500.0, "queued for a busy connection: {lag}");
    assert!(
        f(&r, "latency_ms.max") >= lag_max + 1900.0,
        "latency includes the lag and the 2 s service: {} vs {lag}",
        r["latency_ms"]
    );
    assert!(
        f(&r, "service_time_ms.max") < 2500.0,
        "{}",
        r["service_time_ms"]
    );
    let late_second = r["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["send_lag_ms"]["max"].as_f64())
        .fold(0.0, f64::max);
    assert!(late_second >= 1500.0, "per second too: {}", r["intervals"]);
    assert!(md.contains("- ⚠️ Volley sent late: send lag p99"), "{md}");
    assert!(md.contains("| Send lag (Volley's own) |"), "{md}");
    assert!(
        html.contains("Volley sent late: send lag p99"),
        "the page too"
    );
}

#[test]
fn a_full_in_flight_cap_is_named_with_its_setting() {
    let _serial = serial();
    // Fifty connections but room for five in flight: each request has a
    // connection, and the cap is what stops the sixth.
    let (r, md, _, stderr) = run_slow("drops-cap", "connections = 50\nmax_in_flight = 5");
    assert_accounted(&r["requests"], "run");
    let dropped = u(&r, "requests.dropped");
    assert!(dropped >= 150, "{}", r["requests"]);
    assert_eq!(drop_reasons(&r), (0, dropped, 0, 0));
    assert_eq!(
        count(
            &stderr,
            "(max_in_flight): raise `load.max_in_flight` (or add workers)"
        ),
        1,
        "{stderr}"
    );
    // 50 connections are more than 5 in flight: they are not named.
    assert!(!stderr.contains("raise load.connections too"), "{stderr}");
    assert!(
        md.contains(&format!(
            "- ⚠️ {} requests were dropped because a worker already had `load.max_in_flight` = 5 requests in flight: raise `load.max_in_flight` (or add workers).",
            group(dropped)
        )),
        "{md}"
    );
}

/// 12345 → "12,345", as the reports write counts.
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
