//! The report's tables as data: headers plus rows of cells, built once from
//! the report. `report.md` and `report.html` only draw them, so the two
//! show the same figures in the same columns.
//!
//! A cell says what it holds (text, code, a verdict), not how it looks:
//! each rendering escapes text its own way and draws a verdict as ✅ or as a
//! coloured pill. The page is wider than a Markdown table read in a terminal
//! or a pull request, so a few columns are marked [`Column::page_only`];
//! Markdown shows worker resources in a table of its own instead.

use super::format::{group, ms, pct, rate};
use super::{Latency, Report, SendLag, ThresholdStatus};

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text: a figure already formatted, or a name from the report, which
    /// each rendering escapes.
    Text(String),
    /// Text set as code (a threshold expression, a worker id).
    Code(String),
    /// A name with a tag after it: "burst (burst)".
    Tagged(String, &'static str),
    /// A verdict.
    Mark(ThresholdStatus),
    /// A yes / no verdict (recovered or not).
    YesNo(bool),
}

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub head: &'static str,
    /// Text rather than a figure (aligned left on the page).
    pub text: bool,
    /// Drawn on the page only, not in Markdown.
    pub page_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table with these headers; the first `text` columns hold text, the
    /// rest figures.
    fn new(heads: &[&'static str], text: usize) -> Table {
        Table {
            columns: heads
                .iter()
                .enumerate()
                .map(|(i, &head)| Column {
                    head,
                    text: i < text,
                    page_only: false,
                })
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Marks the columns with these headers as page-only.
    fn page_only(mut self, heads: &[&str]) -> Table {
        for c in &mut self.columns {
            c.page_only |= heads.contains(&c.head);
        }
        self
    }

    fn rows(mut self, rows: impl IntoIterator<Item = Vec<Cell>>) -> Table {
        self.rows.extend(rows);
        debug_assert!(self.rows.iter().all(|r| r.len() == self.columns.len()));
        self
    }
}

/// A long stage's first tenth against its last.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakTable {
    pub stage: String,
    /// Percent.
    pub degradation: f64,
    pub table: Table,
}

/// Every table of the report, in reading order; a table is `None` where the
/// report has nothing for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tables {
    pub thresholds: Option<Table>,
    pub regressions: Option<Table>,
    pub throughput: Table,
    pub latency: Table,
    pub errors: Option<Table>,
    /// Per request definition, with a request mix.
    pub requests: Option<Table>,
    pub stages: Table,
    pub recovery: Option<Table>,
    pub workers: Table,
    /// Each worker's memory and CPU, when workers reported them (the page
    /// has them in `workers`).
    pub resources: Option<Table>,
    pub soak: Vec<SoakTable>,
}

/// A worker id as shown: its first 8 characters.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "–".to_string())
}

fn latency_row(name: &str, l: &Latency) -> Vec<Cell> {
    let mut row = vec![text(name)];
    row.extend([l.p50, l.p90, l.p95, l.p99, l.p999, l.max, l.mean].map(|v| text(ms(v))));
    row
}

/// Send lag has p50, p99 and max only.
fn send_lag_row(l: &SendLag) -> Vec<Cell> {
    let mut row = vec![text("Send lag (Volley's own)")];
    row.extend([l.p50, None, None, l.p99, None, l.max, None].map(|v| text(ms(v))));
    row
}

impl Tables {
    pub fn new(r: &Report) -> Tables {
        let thresholds = (!r.thresholds.is_empty()).then(|| {
            Table::new(&["", "Threshold", "Actual"], 2).rows(r.thresholds.iter().map(|t| {
                vec![
                    Cell::Mark(t.status),
                    Cell::Code(t.expr.clone()),
                    text(or_dash(t.actual.map(|v| format!("{v:.4}")))),
                ]
            }))
        });
        let regressions = (!r.regressions.is_empty()).then(|| {
            Table::new(&["", "Metric", "Baseline", "Current", "Change"], 2).rows(
                r.regressions.iter().map(|x| {
                    vec![
                        match &x.note {
                            Some(note) => text(format!("– ({note})")),
                            None => Cell::Mark(ThresholdStatus::from_pass(x.pass)),
                        },
                        text(&x.metric),
                        text(format!("{:.2}", x.baseline)),
                        text(format!("{:.2}", x.current)),
                        text(format!("{:+.1} %", x.change_pct)),
                    ]
                }),
            )
        });
        let q = &r.requests;
        let throughput = Table::new(&["Metric", "Value"], 1).rows(
            [
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
            ]
            .map(|(k, v)| vec![text(k), text(v)]),
        );
        let latency = Table::new(&["", "p50", "p90", "p95", "p99", "p99.9", "max", "mean"], 1)
            .rows([
                latency_row("Latency", &r.latency_ms),
                latency_row("Service time", &r.service_time_ms),
                send_lag_row(&r.send_lag_ms),
            ]);
        let errors = (q.errors > 0).then(|| {
            let count = |label: String, n: &u64| vec![text(label), text(group(*n))];
            let kinds = r.errors_by_kind.iter().filter(|(_, n)| **n > 0);
            let checks = r.errors_by_check.iter().filter(|(_, n)| **n > 0);
            Table::new(&["Kind", "Count"], 1).rows(
                kinds
                    .map(|(k, n)| count(k.clone(), n))
                    .chain(
                        r.errors_by_status
                            .iter()
                            .map(|(c, n)| count(format!("HTTP {c}"), n)),
                    )
                    .chain(
                        r.errors_by_grpc_status
                            .iter()
                            .map(|(c, n)| count(format!("gRPC {c}"), n)),
                    )
                    .chain(checks.map(|(c, n)| count(format!("check: {c}"), n))),
            )
        });
        let requests = (!r.per_request.is_empty()).then(|| {
            Table::new(
                &[
                    "Request", "Weight", "Sent", "Ok", "Errors", "Dropped", "Success", "p50",
                    "p99", "max",
                ],
                1,
            )
            .page_only(&["Success"])
            .rows(r.per_request.iter().map(|q| {
                vec![
                    text(&q.name),
                    text(q.weight.to_string()),
                    text(group(q.sent)),
                    text(group(q.ok)),
                    text(group(q.errors)),
                    text(group(q.dropped)),
                    text(pct(q.success_rate)),
                    text(ms(q.latency_ms.p50)),
                    text(ms(q.latency_ms.p99)),
                    text(ms(q.latency_ms.max)),
                ]
            }))
        });
        let stages = Table::new(
            &[
                "Stage", "Time", "Target", "Achieved", "Ok", "Errors", "Dropped", "Success", "p50",
                "p99", "max",
            ],
            1,
        )
        .page_only(&["Time"])
        .rows(r.stages.iter().map(|s| {
            vec![
                if s.burst {
                    Cell::Tagged(s.name.clone(), "burst")
                } else {
                    text(&s.name)
                },
                text(format!(
                    "{:.0}–{:.0} s",
                    s.start_s,
                    s.start_s + s.duration_s
                )),
                text(rate(s.target_rps)),
                text(rate(s.achieved_rps)),
                text(group(s.requests.ok)),
                text(group(s.requests.errors)),
                text(group(s.requests.dropped)),
                text(pct(s.success_rate)),
                text(ms(s.latency_ms.p50)),
                text(ms(s.latency_ms.p99)),
                text(ms(s.latency_ms.max)),
            ]
        }));
        let recovery = (!r.recovery.is_empty()).then(|| {
            Table::new(
                &[
                    "Burst",
                    "Baseline p99",
                    "Calm at or below",
                    "Peak p99",
                    "Recovered",
                    "Time",
                ],
                1,
            )
            .rows(r.recovery.iter().map(|x| {
                vec![
                    text(&x.stage),
                    text(ms(x.baseline_p99_ms)),
                    text(ms(x.calm_p99_ms)),
                    text(ms(x.peak_p99_ms)),
                    Cell::YesNo(x.recovered),
                    text(format!(
                        "{}{:.0} s",
                        if x.recovered { "" } else { "> " },
                        x.recovery_time_s
                    )),
                ]
            }))
        });
        let cpu = |c: Option<f64>| text(or_dash(c.map(|c| format!("{c:.0} %"))));
        let workers = Table::new(
            &[
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
                "Lost / left at",
            ],
            2,
        )
        .page_only(&["RSS MB first → last (peak)", "CPU"])
        .rows(r.workers.iter().map(|w| {
            let mb = |v: Option<f64>| or_dash(v.map(|v| format!("{v:.0}")));
            vec![
                Cell::Code(short(&w.id).to_string()),
                text(if w.hostname.is_empty() {
                    "–"
                } else {
                    &w.hostname
                }),
                text(w.weight.to_string()),
                text(format!("{} req/s", rate(w.assigned_rps))),
                text(group(w.requests.intended)),
                text(group(w.requests.ok)),
                text(group(w.requests.errors)),
                text(group(w.requests.dropped)),
                text(ms(w.latency_ms.p99)),
                text(format!(
                    "{} → {} ({})",
                    mb(w.rss_mb_first),
                    mb(w.rss_mb_last),
                    mb(w.rss_mb_peak)
                )),
                cpu(w.cpu_pct_mean),
                text(or_dash(lost_or_left(w))),
            ]
        }));
        let resources = r.workers.iter().any(|w| w.rss_mb_peak.is_some()).then(|| {
            let mb = |v: Option<f64>| text(or_dash(v.map(|v| format!("{v:.1} MB"))));
            Table::new(
                &[
                    "Worker",
                    "RSS first",
                    "RSS last",
                    "RSS peak",
                    "CPU (mean, % of a core)",
                ],
                1,
            )
            .rows(r.workers.iter().map(|w| {
                vec![
                    Cell::Code(short(&w.id).to_string()),
                    mb(w.rss_mb_first),
                    mb(w.rss_mb_last),
                    mb(w.rss_mb_peak),
                    cpu(w.cpu_pct_mean),
                ]
            }))
        });
        let soak = r
            .stages
            .iter()
            .filter_map(|s| {
                let k = s.soak?;
                let table = Table::new(&["", "First tenth", "Last tenth"], 1).rows([
                    vec![
                        text("Achieved rate"),
                        text(format!("{} req/s", rate(k.first_achieved_rps))),
                        text(format!("{} req/s", rate(k.last_achieved_rps))),
                    ],
                    vec![
                        text("p99"),
                        text(ms(k.first_p99_ms)),
                        text(ms(k.last_p99_ms)),
                    ],
                ]);
                Some(SoakTable {
                    stage: s.name.clone(),
                    degradation: k.degradation * 100.0,
                    table,
                })
            })
            .collect();
        Tables {
            thresholds,
            regressions,
            throughput,
            latency,
            errors,
            requests,
            stages,
            recovery,
            workers,
            resources,
            soak,
        }
    }
}

/// When a worker stopped taking part: lost (its in-flight requests are
/// errors, what it never sent is dropped) or left gracefully (nothing of it
/// is missing).
fn lost_or_left(w: &super::WorkerReport) -> Option<String> {
    match (w.lost_at_s, w.left_at_s) {
        (Some(t), _) => Some(format!("lost {t:.1} s")),
        (None, Some(t)) => Some(format!("left {t:.0} s")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_a_cell_per_column_and_empty_parts_have_no_table() {
        let mut r = crate::analysis::fixture::report();
        let t = Tables::new(&r);
        for table in [&t.throughput, &t.latency, &t.stages, &t.workers] {
            assert!(table
                .rows
                .iter()
                .all(|row| row.len() == table.columns.len()));
        }
        assert!(t.thresholds.is_none() && t.regressions.is_none() && t.recovery.is_none());
        assert!(t.requests.is_none());
        r.requests.errors = 3;
        r.errors_by_kind.insert("reset".into(), 3);
        r.errors_by_kind.insert("timeout".into(), 0);
        r.errors_by_check.insert("status".into(), 2);
        let errors = Tables::new(&r).errors.expect("an errors table");
        assert_eq!(
            errors.rows,
            vec![
                vec![text("reset"), text("3")],
                vec![text("check: status"), text("2")],
            ],
            "kinds and checks without errors are left out"
        );
    }
}
