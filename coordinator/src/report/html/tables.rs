//! The report's tables: thresholds and regressions (shown first), then
//! throughput, latency, errors, requests, stages, recovery and workers, as in
//! `report.md`.

use super::{esc, ms, pct, pill, rate};
use crate::report::markdown::group;
use crate::report::{Latency, Report, ThresholdStatus};
use std::fmt::Write;

/// A table whose first `left` columns are text and the rest numbers. Cells
/// are HTML: callers escape what comes from the report.
pub(super) fn table(
    o: &mut String,
    head: &[&str],
    left: usize,
    rows: impl IntoIterator<Item = Vec<String>>,
) {
    let class = |i: usize| if i < left { " class=\"l\"" } else { "" };
    o.push_str("<div class=\"tw\"><table><thead><tr>");
    for (i, h) in head.iter().enumerate() {
        let _ = write!(o, "<th{}>{h}</th>", class(i));
    }
    o.push_str("</tr></thead><tbody>\n");
    for row in rows {
        o.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let _ = write!(o, "<td{}>{cell}</td>", class(i));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody></table></div>\n");
}

/// Thresholds and regressions with their marks: what a reader checks first.
pub(super) fn judgements(o: &mut String, r: &Report) {
    if !r.thresholds.is_empty() {
        o.push_str("<h2>Thresholds</h2>\n");
        let rows = r.thresholds.iter().map(|t| {
            let actual = t.actual.map_or("–".to_string(), |v| format!("{v:.4}"));
            vec![
                pill(t.status),
                format!("<code>{}</code>", esc(&t.expr)),
                actual,
            ]
        });
        table(o, &["", "Threshold", "Actual"], 2, rows);
    }
    if !r.regressions.is_empty() {
        o.push_str("<h2>Regressions against the baseline</h2>\n");
        let rows = r.regressions.iter().map(|x| {
            vec![
                match &x.note {
                    Some(note) => esc(&format!("– ({note})")),
                    None => pill(ThresholdStatus::from_pass(x.pass)),
                },
                esc(&x.metric),
                format!("{:.2}", x.baseline),
                format!("{:.2}", x.current),
                format!("{:+.1} %", x.change_pct),
            ]
        });
        table(o, &["", "Metric", "Baseline", "Current", "Change"], 2, rows);
    }
}

fn lat_row(name: &str, l: &Latency) -> Vec<String> {
    let mut row = vec![name.to_string()];
    row.extend([l.p50, l.p90, l.p95, l.p99, l.p999, l.max, l.mean].map(ms));
    row
}

/// The figures behind the charts.
pub(super) fn tables(o: &mut String, r: &Report) {
    o.push_str("<h2>Throughput</h2>\n");
    let q = &r.requests;
    let rows = [
        ("Target rate", format!("{} req/s", rate(r.target_rps))),
        (
            "Achieved rate (sent)",
            format!("{} req/s", rate(r.achieved_rps)),
        ),
        (
            "Throughput (ok)",
            format!("{} req/s", rate(r.throughput_rps)),
        ),
        ("Intended", group(q.intended)),
        ("Sent", group(q.sent)),
        ("Ok", group(q.ok)),
        ("Errors", group(q.errors)),
        ("Dropped", group(q.dropped)),
        ("Success rate", pct(r.success_rate)),
    ];
    table(
        o,
        &["Metric", "Value"],
        1,
        rows.map(|(k, v)| vec![k.to_string(), v]),
    );

    o.push_str("<h2>Latency</h2>\n<p class=\"note\">From the scheduled send time (coordinated-omission correct); service time is from the actual send.</p>\n");
    let head = ["", "p50", "p90", "p95", "p99", "p99.9", "max", "mean"];
    let rows = [
        lat_row("Latency", &r.latency_ms),
        lat_row("Service time", &r.service_time_ms),
    ];
    table(o, &head, 1, rows);

    if q.errors > 0 {
        o.push_str("<h2>Errors</h2>\n");
        let kinds = r.errors_by_kind.iter().filter(|(_, n)| **n > 0);
        let rows = kinds
            .map(|(k, n)| vec![esc(k), group(*n)])
            .chain(
                r.errors_by_status
                    .iter()
                    .map(|(c, n)| vec![format!("HTTP {}", esc(c)), group(*n)]),
            )
            .chain(
                r.errors_by_grpc_status
                    .iter()
                    .map(|(c, n)| vec![format!("gRPC {}", esc(c)), group(*n)]),
            )
            .chain(
                r.errors_by_check
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(c, n)| vec![format!("check: {}", esc(c)), group(*n)]),
            );
        table(o, &["Kind", "Count"], 1, rows);
    }

    if !r.per_request.is_empty() {
        o.push_str("<h2>Requests</h2>\n");
        let rows = r.per_request.iter().map(|q| {
            vec![
                esc(&q.name),
                q.weight.to_string(),
                group(q.sent),
                group(q.ok),
                group(q.errors),
                group(q.dropped),
                pct(q.success_rate),
                ms(q.latency_ms.p50),
                ms(q.latency_ms.p99),
                ms(q.latency_ms.max),
            ]
        });
        let head = [
            "Request", "Weight", "Sent", "Ok", "Errors", "Dropped", "Success", "p50", "p99", "max",
        ];
        table(o, &head, 1, rows);
    }

    o.push_str("<h2>Stages</h2>\n");
    let rows = r.stages.iter().map(|s| {
        vec![
            format!(
                "{}{}",
                esc(&s.name),
                if s.burst { " <em>(burst)</em>" } else { "" }
            ),
            format!("{:.0}–{:.0} s", s.start_s, s.start_s + s.duration_s),
            rate(s.target_rps),
            rate(s.achieved_rps),
            group(s.requests.ok),
            group(s.requests.errors),
            group(s.requests.dropped),
            pct(s.success_rate),
            ms(s.latency_ms.p50),
            ms(s.latency_ms.p99),
            ms(s.latency_ms.max),
        ]
    });
    let head = [
        "Stage", "Time", "Target", "Achieved", "Ok", "Errors", "Dropped", "Success", "p50", "p99",
        "max",
    ];
    table(o, &head, 1, rows);

    if !r.recovery.is_empty() {
        o.push_str("<h2>Recovery</h2>\n");
        let rows = r.recovery.iter().map(|x| {
            vec![
                esc(&x.stage),
                ms(x.baseline_p99_ms),
                ms(x.peak_p99_ms),
                pill(ThresholdStatus::from_pass(x.recovered)),
                format!(
                    "{}{:.0} s",
                    if x.recovered { "" } else { "&gt; " },
                    x.recovery_time_s
                ),
            ]
        });
        table(
            o,
            &["Burst", "Baseline p99", "Peak p99", "Recovered", "Time"],
            1,
            rows,
        );
    }

    o.push_str("<h2>Workers</h2>\n");
    let mb = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.0}"));
    let rows = r.workers.iter().map(|w| {
        vec![
            format!("<code>{}</code>", esc(w.id.get(..8).unwrap_or(&w.id))),
            if w.hostname.is_empty() {
                "–".to_string()
            } else {
                esc(&w.hostname)
            },
            w.weight.to_string(),
            format!("{} req/s", rate(w.assigned_rps)),
            group(w.requests.intended),
            group(w.requests.ok),
            group(w.requests.errors),
            group(w.requests.dropped),
            ms(w.latency_ms.p99),
            format!(
                "{} → {} ({})",
                mb(w.rss_mb_first),
                mb(w.rss_mb_last),
                mb(w.rss_mb_peak)
            ),
            w.cpu_pct_mean
                .map_or("–".to_string(), |c| format!("{c:.0} %")),
            w.lost_at_s.map_or("–".to_string(), |t| format!("{t:.1} s")),
        ]
    });
    let head = [
        "Worker",
        "Host",
        "Weight",
        "Assigned",
        "Intended",
        "Ok",
        "Errors",
        "Dropped",
        "p99",
        "RSS MB first → last (peak)",
        "CPU",
        "Lost at",
    ];
    table(o, &head, 2, rows);
}
