//! `report.md`, in the shape of the benchmarking guide's report format:
//! a summary with pass / warn / fail marks, then throughput, latency,
//! errors, stages, workers, recovery, thresholds and regressions.

use super::*;
use std::fmt::Write;

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0} ms"),
        Some(v) if v >= 10.0 => format!("{v:.1} ms"),
        Some(v) => format!("{v:.2} ms"),
        None => "–".to_string(),
    }
}

fn rate(v: f64) -> String {
    if v >= 100.0 {
        group(v.round() as u64)
    } else {
        format!("{v:.1}")
    }
}

/// 1234567 → "1,234,567".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Text for a Markdown table cell: a `|` would end the cell, a newline the
/// row.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\r', '\n'], " ")
}

fn pct(v: f64) -> String {
    format!("{:.2} %", v * 100.0)
}

fn mark(status: ThresholdStatus) -> &'static str {
    match status {
        ThresholdStatus::Pass => "✅",
        ThresholdStatus::Warn => "⚠️",
        ThresholdStatus::Fail => "❌",
    }
}

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Volley report: {}\n", r.scenario);
    let _ = writeln!(o, "- Run: `{}`", r.run_id);
    if let Some(t) = &r.target {
        let _ = write!(o, "- Target: `{}` ({})", t.url, t.protocol);
        match t.requests.as_slice() {
            [one] => {
                let _ = writeln!(o, ", {}", cell(one));
            }
            many => {
                let _ = writeln!(o, ", {} request definitions", many.len());
            }
        }
    }
    let _ = writeln!(o, "- Started: {}", r.started_at);
    let _ = writeln!(
        o,
        "- Duration: {:.0} s, {} worker(s)",
        r.duration_s,
        r.workers.len()
    );
    if let Some(why) = &r.incomplete_reason {
        let _ = writeln!(o, "- **Incomplete**: {why}");
    }
    let _ = writeln!(o, "\n## Summary\n");
    let fails = r
        .thresholds
        .iter()
        .filter(|t| t.status == ThresholdStatus::Fail || !t.pass)
        .count();
    let warns = r
        .thresholds
        .iter()
        .filter(|t| t.status == ThresholdStatus::Warn)
        .count();
    let regress = r.regressions.iter().filter(|x| !x.pass).count();
    if r.thresholds.is_empty() {
        let _ = writeln!(o, "- No thresholds set");
    } else if fails == 0 && warns == 0 {
        let _ = writeln!(o, "- ✅ All {} thresholds met", r.thresholds.len());
    } else {
        if fails > 0 {
            let _ = writeln!(
                o,
                "- ❌ {fails} of {} thresholds failed",
                r.thresholds.len()
            );
        }
        if warns > 0 {
            let _ = writeln!(o, "- ⚠️ {warns} threshold(s) in the warning band");
        }
    }
    if !r.regressions.is_empty() {
        if regress == 0 {
            let _ = writeln!(o, "- ✅ No regression against the baseline");
        } else {
            let _ = writeln!(o, "- ❌ {regress} regression(s) against the baseline");
        }
    }
    let _ = writeln!(
        o,
        "- {} of {} intended requests succeeded ({}); {} errors, {} dropped",
        group(r.requests.ok),
        group(r.requests.intended),
        pct(r.success_rate),
        group(r.requests.errors),
        group(r.requests.dropped)
    );
    let _ = writeln!(
        o,
        "- Rate: {} req/s achieved of {} req/s target ({}); p99 {}",
        rate(r.achieved_rps),
        rate(r.target_rps),
        pct(if r.target_rps > 0.0 {
            r.achieved_rps / r.target_rps
        } else {
            0.0
        }),
        ms(r.latency_ms.p99)
    );
    for e in r.events.iter().filter(|e| e.level != "info") {
        let _ = writeln!(o, "- ⚠️ at {:.1} s: {}", e.t_s, e.text);
    }

    if !r.thresholds.is_empty() {
        let _ = writeln!(
            o,
            "\n## Thresholds\n\n| | Threshold | Actual |\n| --- | --- | --- |"
        );
        for t in &r.thresholds {
            let actual = t.actual.map_or("–".to_string(), |v| format!("{v:.4}"));
            let _ = writeln!(o, "| {} | `{}` | {} |", mark(t.status), t.expr, actual);
        }
    }
    if !r.regressions.is_empty() {
        let _ = writeln!(o, "\n## Regressions\n\n| Metric | Baseline | Current | Change | |\n| --- | --- | --- | --- | --- |");
        for x in &r.regressions {
            let _ = writeln!(
                o,
                "| {} | {:.2} | {:.2} | {:+.1} % | {} |",
                x.metric,
                x.baseline,
                x.current,
                x.change_pct,
                match &x.note {
                    Some(note) => format!("– ({note})"),
                    None => mark(ThresholdStatus::from_pass(x.pass)).to_string(),
                }
            );
        }
    }

    let _ = writeln!(o, "\n## Throughput\n\n| Metric | Value |\n| --- | --- |");
    let _ = writeln!(o, "| Target rate | {} req/s |", rate(r.target_rps));
    let _ = writeln!(
        o,
        "| Achieved rate (sent) | {} req/s |",
        rate(r.achieved_rps)
    );
    let _ = writeln!(o, "| Throughput (ok) | {} req/s |", rate(r.throughput_rps));
    let _ = writeln!(o, "| Intended | {} |", group(r.requests.intended));
    let _ = writeln!(o, "| Sent | {} |", group(r.requests.sent));
    let _ = writeln!(o, "| Ok | {} |", group(r.requests.ok));
    let _ = writeln!(o, "| Errors | {} |", group(r.requests.errors));
    let _ = writeln!(o, "| Dropped | {} |", group(r.requests.dropped));
    let _ = writeln!(o, "| Success rate | {} |", pct(r.success_rate));

    let _ = writeln!(
        o,
        "\n## Latency\n\nFrom the scheduled send time (coordinated-omission correct); service time is from the actual send.\n"
    );
    let _ = writeln!(o, "| | p50 | p90 | p95 | p99 | p99.9 | max | mean |\n| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, l) in [
        ("Latency", &r.latency_ms),
        ("Service time", &r.service_time_ms),
    ] {
        let _ = writeln!(
            o,
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            ms(l.p50),
            ms(l.p90),
            ms(l.p95),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
            ms(l.mean)
        );
    }

    if r.requests.errors > 0 {
        let _ = writeln!(o, "\n## Errors\n\n| Kind | Count |\n| --- | --- |");
        for (k, n) in r.errors_by_kind.iter().filter(|(_, n)| **n > 0) {
            let _ = writeln!(o, "| {k} | {} |", group(*n));
        }
        for (code, n) in &r.errors_by_status {
            let _ = writeln!(o, "| HTTP {code} | {} |", group(*n));
        }
        for (name, n) in &r.errors_by_grpc_status {
            let _ = writeln!(o, "| gRPC {name} | {} |", group(*n));
        }
        for (name, n) in r.errors_by_check.iter().filter(|(_, n)| **n > 0) {
            let _ = writeln!(o, "| check: {} | {} |", cell(name), group(*n));
        }
    }

    if !r.per_request.is_empty() {
        let _ = writeln!(
            o,
            "\n## Requests\n\n| Request | Weight | Sent | OK | Errors | Dropped | p50 | p99 | max |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for q in &r.per_request {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&q.name),
                q.weight,
                group(q.sent),
                group(q.ok),
                group(q.errors),
                group(q.dropped),
                ms(q.latency_ms.p50),
                ms(q.latency_ms.p99),
                ms(q.latency_ms.max)
            );
        }
    }

    let _ = writeln!(
        o,
        "\n## Stages\n\n| Stage | Target | Achieved | Ok | Errors | Dropped | Success | p50 | p99 | max |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for s in &r.stages {
        let _ = writeln!(
            o,
            "| {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.name,
            if s.burst { " (burst)" } else { "" },
            rate(s.target_rps),
            rate(s.achieved_rps),
            group(s.requests.ok),
            group(s.requests.errors),
            group(s.requests.dropped),
            pct(s.success_rate),
            ms(s.latency_ms.p50),
            ms(s.latency_ms.p99),
            ms(s.latency_ms.max)
        );
    }

    if !r.recovery.is_empty() {
        let _ = writeln!(o, "\n## Recovery\n\n| Burst | Baseline p99 | Peak p99 | Recovered | Time |\n| --- | --- | --- | --- | --- |");
        for x in &r.recovery {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {}{:.0} s |",
                x.stage,
                ms(x.baseline_p99_ms),
                ms(x.peak_p99_ms),
                if x.recovered { "✅ yes" } else { "❌ no" },
                if x.recovered { "" } else { "> " },
                x.recovery_time_s
            );
        }
    }

    let _ = writeln!(
        o,
        "\n## Workers\n\n| Worker | Host | Weight | Assigned | Intended | Ok | Errors | Dropped | p99 | Lost at |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for w in &r.workers {
        let _ = writeln!(
            o,
            "| `{}` | {} | {} | {} req/s | {} | {} | {} | {} | {} | {} |",
            w.id.get(..8).unwrap_or(&w.id),
            if w.hostname.is_empty() {
                "–"
            } else {
                &w.hostname
            },
            w.weight,
            rate(w.assigned_rps),
            group(w.requests.intended),
            group(w.requests.ok),
            group(w.requests.errors),
            group(w.requests.dropped),
            ms(w.latency_ms.p99),
            w.lost_at_s.map_or("–".to_string(), |t| format!("{t:.1} s"))
        );
    }
    if r.workers.iter().any(|w| w.rss_mb_peak.is_some()) {
        let _ = writeln!(
            o,
            "\n## Resource usage\n\nThe generator's own memory and CPU: a growing RSS is a leak in the workers, a CPU near 100 % a worker that cannot keep up.\n\n| Worker | RSS first | RSS last | RSS peak | CPU (mean, % of a core) |\n| --- | --- | --- | --- | --- |"
        );
        let mb = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.1} MB"));
        for w in &r.workers {
            let _ = writeln!(
                o,
                "| `{}` | {} | {} | {} | {} |",
                w.id.get(..8).unwrap_or(&w.id),
                mb(w.rss_mb_first),
                mb(w.rss_mb_last),
                mb(w.rss_mb_peak),
                w.cpu_pct_mean
                    .map_or("–".to_string(), |c| format!("{c:.0} %"))
            );
        }
    }
    for s in r.stages.iter() {
        if let Some(k) = s.soak {
            let _ = writeln!(
                o,
                "\n## Soak: {}\n\n| | First tenth | Last tenth |\n| --- | --- | --- |\n| Achieved rate | {} req/s | {} req/s |\n| p99 | {} | {} |\n\nDegradation: {:.1} %",
                s.name,
                rate(k.first_achieved_rps),
                rate(k.last_achieved_rps),
                ms(k.first_p99_ms),
                ms(k.last_p99_ms),
                k.degradation * 100.0
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_grpc_codes_and_target_are_rendered() {
        let mut r = crate::analysis::fixture::report();
        r.target = Some(TargetInfo {
            url: "http://127.0.0.1:9/".into(),
            protocol: "grpc".into(),
            requests: vec!["a|b".into(), "c".into()],
        });
        r.requests.errors = 7;
        r.errors_by_kind.insert("reset".into(), 3);
        r.errors_by_kind.insert("status".into(), 4);
        r.errors_by_status.insert("503".into(), 1);
        r.errors_by_grpc_status.insert("UNAVAILABLE".into(), 3);
        let req = |name: &str, weight, ok| RequestReport {
            name: name.into(),
            weight,
            intended: ok + 1,
            sent: ok + 1,
            ok,
            errors: 1,
            dropped: 0,
            success_rate: 0.9,
            throughput_rps: 10.0,
            latency_ms: Latency {
                p50: Some(1.5),
                p99: Some(12.4),
                max: Some(140.0),
                ..Latency::default()
            },
            errors_by_check: Default::default(),
        };
        r.per_request = vec![req("a|b", 3, 1200), req("c", 1, 400)];
        let md = render(&r);
        assert!(
            md.contains("- Target: `http://127.0.0.1:9/` (grpc), 2 request definitions\n"),
            "{md}"
        );
        assert!(md.contains("| reset | 3 |\n"), "{md}");
        assert!(
            md.contains("| HTTP 503 | 1 |\n| gRPC UNAVAILABLE | 3 |\n"),
            "{md}"
        );
        assert!(md.contains(
            "## Requests\n\n| Request | Weight | Sent | OK | Errors | Dropped | p50 | p99 | max |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n\
             | a\\|b | 3 | 1,201 | 1,200 | 1 | 0 | 1.50 ms | 12.4 ms | 140 ms |\n\
             | c | 1 | 401 | 400 | 1 | 0 | 1.50 ms | 12.4 ms | 140 ms |\n"
        ), "{md}");
        r.per_request.clear();
        r.target.as_mut().unwrap().requests.truncate(1);
        let md = render(&r);
        assert!(!md.contains("## Requests"));
        assert!(md.contains("(grpc), a\\|b\n"), "{md}");
    }

    #[test]
    fn grouping() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }
}
