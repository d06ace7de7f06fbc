use super::*;
use crate::analysis::fixture;
use serde_json::json;

/// The fixture's 60 s run (steady, then a 10 s burst) with a second per
/// interval, a latency spike in the burst, errors, drops, a recovery, two
/// workers, thresholds of each status and a regression.
fn burst_report() -> Report {
    let mut r = fixture::report();
    r.intervals = (0..60u32)
        .map(|t| {
            let burst = (50..56).contains(&t);
            let p50 = if burst {
                40.0 + f64::from(t - 50) * 60.0
            } else {
                5.0
            };
            // From JSON, so fields added later take their defaults.
            serde_json::from_value(json!({
                "t_s": t,
                "stage": if t < 50 { "steady" } else { "burst" },
                "target_rps": if t < 50 { 1000.0 } else { 3000.0 },
                "achieved_rps": if t < 50 { 999.0 } else { 2900.0 },
                "intended": 1000,
                "ok": 990,
                "errors": if burst { 8 } else { 0 },
                "dropped": u64::from(t == 52) * 30,
                "p50_ms": p50,
                "p90_ms": p50 * 2.0,
                "p99_ms": p50 * 4.0,
                "max_ms": (t != 20).then_some(p50 * 8.0),
                "workers": 2,
            }))
            .unwrap()
        })
        .collect();
    r.percentiles = [0.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0]
        .iter()
        .zip([1.0, 5.0, 9.0, 80.0, 300.0, 900.0, 2000.0])
        .map(|(&percentile, latency_ms)| PercentilePoint {
            percentile,
            latency_ms,
        })
        .collect();
    r.recovery = vec![Recovery {
        stage: "burst".into(),
        baseline_p99_ms: Some(20.0),
        calm_p99_ms: Some(22.0),
        peak_p99_ms: Some(1400.0),
        recovered: true,
        recovery_time_s: 4.0,
    }];
    r.workers = vec![worker("0123456789abcdef", "host-a"), worker("fedcba98", "")];
    r.thresholds = ThresholdStatus::ALL
        .into_iter()
        .map(|s| ThresholdVerdict::new(format!("p99 < 100ms # {}", s.as_str()), Some(80.0), s))
        .collect();
    r.regressions = vec![Regression {
        metric: "p99_ms".into(),
        baseline: 70.0,
        current: 80.0,
        change_pct: 14.3,
        pass: false,
        note: None,
    }];
    r.events = vec![Event {
        t_s: 51.0,
        level: "warn".into(),
        text: "worker fedcba98 lost".into(),
    }];
    r.requests.errors = 48;
    r.errors_by_kind.insert("timeout".into(), 40);
    r.errors_by_kind.insert("status".into(), 8);
    r.errors_by_grpc_status.insert("UNAVAILABLE".into(), 8);
    r.target = Some(TargetInfo {
        url: "https://127.0.0.1:8443/items".into(),
        protocol: "http2".into(),
        requests: vec!["list items".into(), "place order".into()],
    });
    r.per_request = ["list items", "place order"]
        .iter()
        .zip([4u32, 1])
        .map(|(name, weight)| {
            serde_json::from_value(json!({
                "name": name,
                "weight": weight,
                "intended": 12_000 * u64::from(weight),
                "sent": 11_994 * u64::from(weight),
                "ok": 11_988 * u64::from(weight),
                "errors": 6 * weight,
                "dropped": 6 * weight,
                "success_rate": 0.999,
                "throughput_rps": 199.8 * f64::from(weight),
                "latency_ms": fixture::latency(5.0, 80.0),
            }))
            .unwrap()
        })
        .collect();
    r
}

fn worker(id: &str, host: &str) -> WorkerReport {
    serde_json::from_value(json!({
        "id": id,
        "hostname": host,
        "weight": 1,
        "share": 0.5,
        "assigned_rps": 500.0,
        "requests": fixture::requests(30_000, 29_970, 15),
        "latency_ms": fixture::latency(5.0, 80.0),
        "lost_at_s": null,
        "rss_mb_first": 30.0,
        "rss_mb_last": 31.0,
        "rss_mb_peak": 40.0,
        "cpu_pct_mean": 45.0,
    }))
    .unwrap()
}

/// The `<svg …>…</svg>` elements of a page.
fn svgs(html: &str) -> Vec<&str> {
    html.match_indices("<svg")
        .map(|(at, _)| {
            let end = html[at..].find("</svg>").expect("every svg is closed");
            &html[at..at + end]
        })
        .collect()
}

#[test]
fn the_page_fetches_nothing() {
    let html = render(&burst_report());
    for banned in [
        "<script",
        "<link",
        "@import",
        "url(",
        "<iframe",
        "<img",
        "@font-face",
    ] {
        assert!(!html.contains(banned), "the page contains {banned:?}");
    }
    // No URL in any attribute that could load something, nor anywhere else.
    for attr in ["src=", "href=", "xlink:href", "srcset="] {
        assert!(!html.contains(attr), "the page has a {attr} attribute");
    }
    for scheme in ["http://", "https://", "=\"//", "='//"] {
        assert!(!html.contains(scheme), "the page refers to {scheme}");
    }
    assert!(
        html.contains("Content-Security-Policy\" content=\"default-src 'none'"),
        "the browser is told to refuse any fetch"
    );
}

#[test]
fn text_from_the_report_is_escaped() {
    let evil = "<script>alert(1)</script>";
    let mut r = burst_report();
    r.scenario = format!("{evil} & \"co\"");
    r.run_id = evil.into();
    r.stages[1].name = format!("b{evil}");
    r.recovery[0].stage = r.stages[1].name.clone();
    r.thresholds[0].expr = format!("p99 < 100ms {evil}");
    r.regressions[0].metric = evil.into();
    r.events[0].text = evil.into();
    r.workers[0].hostname = evil.into();
    r.workers[1].id = evil.into();
    r.errors_by_kind.insert(evil.into(), 1);
    r.errors_by_status.insert(evil.into(), 1);
    r.errors_by_grpc_status.insert(evil.into(), 1);
    r.per_request[0].name = evil.into();
    r.target.as_mut().unwrap().url = format!("tcp://{evil}");
    r.target.as_mut().unwrap().protocol = evil.into();
    r.incomplete_reason = Some(evil.into());
    let html = render(&r);
    assert!(!html.contains("<script"), "raw markup got through");
    assert!(!html.contains("alert(1)</"), "raw markup got through");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;co&quot;"));
    assert!(html.contains("<title>Volley report: &lt;script&gt;"));
}

#[test]
fn every_chart_is_an_inline_scalable_svg_with_data() {
    let html = render(&burst_report());
    let svgs = svgs(&html);
    assert_eq!(
        svgs.len(),
        5,
        "latency log and linear, rate, errors, spectrum"
    );
    for (n, svg) in svgs.iter().enumerate() {
        assert!(
            svg.starts_with("<svg class=\"chart\" viewBox=\"0 0 "),
            "chart {n}"
        );
        assert!(!svg[..80].contains("width="), "chart {n} has a fixed width");
        assert!(svg.contains("<text"), "chart {n} has no axis text");
        let lines = svg.matches("<polyline").count() + svg.matches("<path").count();
        assert!(lines > 0, "chart {n} has no line data");
    }
    // Latency charts: four series (max has a gap) and the legend; the burst
    // and the recovery window are shaded and named in the legend.
    for svg in &svgs[..2] {
        for label in ["p50", "p90", "p99", "max", "burst", "recovery"] {
            assert!(
                svg.contains(&format!(">\n{label}\n</text>")),
                "legend {label}"
            );
        }
    }
    // The errors chart has a bar per second with errors or drops.
    let (error_bars, drop_bars) = (6, 1);
    assert!(svgs[3].matches("<rect").count() >= error_bars + drop_bars);
    assert!(svgs[4].contains(">\n99.9%\n</text>"), "nines axis");
}

#[test]
fn marks_and_verdict_follow_the_thresholds() {
    let html = render(&burst_report());
    assert!(html.contains("<section class=\"verdict fail\">"));
    assert!(html.contains("1 of 3 thresholds failed"));
    assert!(html.contains("1 regression(s) against the baseline"));
    for s in ThresholdStatus::ALL.map(ThresholdStatus::as_str) {
        assert!(
            html.contains(&format!("<span class=\"pill {s}\">")),
            "{s} pill"
        );
    }
    // Thresholds and regressions come before the charts.
    let charts = html.find("<svg").unwrap();
    assert!(html.find("<h2>Thresholds").unwrap() < charts);
    assert!(html.find("<h2>Regressions").unwrap() < charts);
    assert!(html.contains("worker fedcba98 lost"));
    assert!(html.contains("<code>01234567</code>"), "short worker id");

    let mut r = burst_report();
    r.thresholds.retain(|t| t.status == ThresholdStatus::Pass);
    r.regressions.clear();
    r.events.clear();
    assert!(render(&r).contains("<section class=\"verdict pass\">All 1 thresholds met"));
}

#[test]
fn empty_and_old_reports_render() {
    let mut r = fixture::report();
    r.latency_ms = Latency::default();
    r.service_time_ms = Latency::default();
    r.stages.clear();
    r.duration_s = 0.0;
    r.requests = Requests::default();
    let html = render(&r);
    assert!(html.ends_with("</html>\n"));
    assert!(html.contains("No thresholds set"));
    assert_eq!(svgs(&html).len(), 5, "empty charts still have axes");

    // A report saved before p90 and the spectrum existed.
    let old: Report =
        serde_json::from_str(include_str!("../../../tests/data/report.json")).unwrap();
    assert!(old.percentiles.is_empty());
    let html = render(&old);
    assert_eq!(svgs(&html).len(), 5);
}

#[test]
fn print_and_small_screens_are_styled() {
    let html = render(&burst_report());
    assert!(html.contains("@media print"));
    assert!(html.contains("name=\"viewport\""));
    assert!(html.contains("svg.chart { display: block; width: 100%; height: auto; }"));
}

#[test]
fn requests_target_and_grpc_codes_are_shown() {
    let html = render(&burst_report());
    assert!(
        html.contains(
            "Target <code>127.0.0.1:8443/items</code> (http2, TLS, 2 request definitions) · Run"
        ),
        "{html}"
    );
    assert!(html.contains("<td class=\"l\">gRPC UNAVAILABLE</td><td>8</td>"));
    let requests = html.find("<h2>Requests</h2>").expect("a requests table");
    assert!(html.find("<h2>Errors</h2>").unwrap() < requests);
    assert!(requests < html.find("<h2>Stages</h2>").unwrap());
    assert!(html.contains(
        "<tr><td class=\"l\">place order</td><td>1</td><td>11,994</td><td>11,988</td><td>6</td><td>6</td>"
    ));
    let mut r = burst_report();
    r.per_request.clear();
    r.target.as_mut().unwrap().requests.truncate(1);
    let html = render(&r);
    assert!(!html.contains("<h2>Requests</h2>"));
    assert!(html.contains("(http2, TLS, list items) · "));
}
