//! `report.md`, in the shape of the benchmarking guide's report format:
//! a summary with pass / warn / fail marks, then throughput, latency,
//! errors, stages, workers, recovery, thresholds and regressions.

use super::format::{group, ms, pct, rate};
use super::table::{Cell, Table, Tables};
use super::*;
use std::fmt::Write;

/// Text for a Markdown table cell: a `|` would end the cell, a newline the
/// row.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\r', '\n'], " ")
}

fn mark(status: ThresholdStatus) -> &'static str {
    match status {
        ThresholdStatus::Pass => "✅",
        ThresholdStatus::Warn => "⚠️",
        ThresholdStatus::Fail => "❌",
    }
}

fn draw_cell(c: &Cell) -> String {
    match c {
        Cell::Text(s) => cell(s),
        Cell::Code(s) => format!("`{}`", cell(s)),
        Cell::Tagged(s, tag) => format!("{} ({tag})", cell(s)),
        Cell::Mark(status) => mark(*status).to_string(),
        Cell::YesNo(true) => "✅ yes".to_string(),
        Cell::YesNo(false) => "❌ no".to_string(),
    }
}

/// One table row: `| a | b |`, an empty cell as `| |`.
fn line(o: &mut String, cells: impl IntoIterator<Item = String>) {
    o.push('|');
    for c in cells {
        if c.is_empty() {
            o.push_str(" |");
        } else {
            let _ = write!(o, " {c} |");
        }
    }
    o.push('\n');
}

/// A table, without its page-only columns.
fn draw(o: &mut String, t: &Table) {
    let shown: Vec<usize> = (0..t.columns.len())
        .filter(|&i| !t.columns[i].page_only)
        .collect();
    line(o, shown.iter().map(|&i| t.columns[i].head.to_string()));
    line(o, shown.iter().map(|_| "---".to_string()));
    for row in &t.rows {
        line(o, shown.iter().map(|&i| draw_cell(&row[i])));
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
    if let Some(why) = super::drops::sentence(r) {
        let _ = writeln!(o, "- ⚠️ {why}");
    }
    if let Some(late) = super::send_lag::warning(r) {
        let _ = writeln!(o, "- ⚠️ {late}");
    }
    for e in r.events.iter().filter(|e| e.level != "info") {
        let _ = writeln!(o, "- ⚠️ at {:.1} s: {}", e.t_s, e.text);
    }

    let t = Tables::new(r);
    if let Some(t) = &t.thresholds {
        let _ = writeln!(o, "\n## Thresholds\n");
        draw(&mut o, t);
    }
    if let Some(t) = &t.regressions {
        let _ = writeln!(o, "\n## Regressions\n");
        draw(&mut o, t);
    }
    let _ = writeln!(o, "\n## Throughput\n");
    draw(&mut o, &t.throughput);
    let _ = writeln!(
        o,
        "\n## Latency\n\nFrom the scheduled send time (coordinated-omission correct); service time is from the actual send; send lag is Volley's own lateness (actual − scheduled send), which latency includes.\n"
    );
    draw(&mut o, &t.latency);
    if let Some(t) = &t.errors {
        let _ = writeln!(o, "\n## Errors\n");
        draw(&mut o, t);
    }
    if let Some(t) = &t.requests {
        let _ = writeln!(o, "\n## Requests\n");
        draw(&mut o, t);
    }
    let _ = writeln!(o, "\n## Stages\n");
    draw(&mut o, &t.stages);
    if let Some(t) = &t.recovery {
        let _ = writeln!(o, "\n## Recovery\n");
        draw(&mut o, t);
    }
    let _ = writeln!(o, "\n## Workers\n");
    draw(&mut o, &t.workers);
    if let Some(t) = &t.resources {
        let _ = writeln!(
            o,
            "\n## Resource usage\n\nThe generator's own memory and CPU: a growing RSS is a leak in the workers, a CPU near 100 % a worker that cannot keep up.\n"
        );
        draw(&mut o, t);
    }
    for s in &t.soak {
        let _ = writeln!(o, "\n## Soak: {}\n", s.stage);
        draw(&mut o, &s.table);
        let _ = writeln!(o, "\nDegradation: {:.1} %", s.degradation);
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
            "## Requests\n\n| Request | Weight | Sent | Ok | Errors | Dropped | p50 | p99 | max |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n\
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
    fn regressions_lead_with_their_mark_as_thresholds_do() {
        let mut r = crate::analysis::fixture::report();
        r.regressions = vec![Regression {
            metric: "p99_ms".into(),
            baseline: 70.0,
            current: 80.0,
            change_pct: 14.3,
            pass: false,
            note: None,
        }];
        let md = render(&r);
        assert!(
            md.contains(
                "## Regressions\n\n| | Metric | Baseline | Current | Change |\n\
                 | --- | --- | --- | --- | --- |\n| ❌ | p99_ms | 70.00 | 80.00 | +14.3 % |\n"
            ),
            "{md}"
        );
    }
}
