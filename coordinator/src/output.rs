//! The run directory (`report.json`, `report.md`, `report.html`,
//! `latency.hlog`, `workers.hlog`) and the lines printed while a run goes.

use crate::report::drops::Advice;
use crate::report::format::group;
use crate::report::{html, markdown, LoadInfo, Report, ThresholdStatus};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use volley_plan::{DropCause, DropCounts};
use volley_proto::{histogram, pb};

pub struct RunDir {
    pub dir: PathBuf,
    hlog: Option<BufWriter<File>>,
    workers_hlog: Option<BufWriter<File>>,
}

impl RunDir {
    pub fn create(dir: PathBuf) -> io::Result<RunDir> {
        std::fs::create_dir_all(&dir)?;
        Ok(RunDir {
            dir,
            hlog: None,
            workers_hlog: None,
        })
    }

    /// Whether the interval logs are open.
    pub fn started(&self) -> bool {
        self.hlog.is_some()
    }

    /// Opens the interval logs with t = 0 as their base time.
    pub fn start(&mut self, start_unix_nanos: u64) -> io::Result<()> {
        let base = start_unix_nanos as f64 / 1e9;
        let mut h = BufWriter::new(File::create(self.dir.join("latency.hlog"))?);
        h.write_all(histogram::interval_log_header(base).as_bytes())?;
        let mut w = BufWriter::new(File::create(self.dir.join("workers.hlog"))?);
        w.write_all(histogram::interval_log_header(base).as_bytes())?;
        self.hlog = Some(h);
        self.workers_hlog = Some(w);
        Ok(())
    }

    /// Appends one merged second (and each worker's) as it arrives, so a
    /// crash loses nothing already measured.
    pub fn interval(&mut self, s: &pb::IntervalSummary) -> io::Result<()> {
        if let Some(h) = self.hlog.as_mut() {
            writeln!(h, "{}", s.hlog_line)?;
            h.flush()?;
        }
        if let Some(w) = self.workers_hlog.as_mut() {
            for line in &s.worker_hlog_lines {
                writeln!(w, "{line}")?;
            }
            w.flush()?;
        }
        Ok(())
    }

    pub fn write_report(&self, r: &Report) -> io::Result<()> {
        self.write_report_as(r, r.to_json().as_bytes())
    }

    /// Writes `json` (the report as the coordinator rendered it: reading
    /// and writing it again would move the last digit of some figures) as
    /// report.json, and the pages rendered from `r`, which it is.
    pub fn write_report_as(&self, r: &Report, json: &[u8]) -> io::Result<()> {
        write_atomic(&self.dir.join("report.json"), json)?;
        write_atomic(&self.dir.join("report.md"), markdown::render(r).as_bytes())?;
        write_atomic(&self.dir.join("report.html"), html::render(r).as_bytes())
    }
}

/// Writes through a temporary file and a rename, so a reader never sees half
/// a report.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        // A full disk leaves a partial `.tmp`: take it away, the error says
        // what happened.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The per-second progress: on a terminal one status line redrawn in place
/// (warnings stay on their own lines); otherwise (CI, pipes, Kubernetes logs)
/// one plain line per second with the same figures.
pub struct Live {
    tty: bool,
    total_s: f64,
    drawn: bool,
}

impl Live {
    pub fn new(total_s: f64) -> Live {
        use std::io::IsTerminal;
        Live {
            tty: std::io::stdout().is_terminal(),
            total_s,
            drawn: false,
        }
    }

    pub fn second(&mut self, s: &pb::IntervalSummary) {
        let line = format!("[{:>4}/{:.0}s] {}", s.t_s + 1, self.total_s, live_line(s));
        let warned = line.contains("  ! ");
        let mut out = std::io::stdout().lock();
        if self.tty {
            let _ = write!(out, "\r\x1b[2K{line}");
            if warned {
                let _ = writeln!(out);
            }
            self.drawn = !warned;
        } else {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }

    /// Ends the status line before other output.
    pub fn done(&mut self) {
        if self.tty && self.drawn {
            println!();
            self.drawn = false;
        }
    }
}

/// One line per second: what a person watching needs.
pub fn live_line(s: &pb::IntervalSummary) -> String {
    let lat = |v: f64, present: bool| {
        if present {
            format!("{v:.1}ms")
        } else {
            "–".to_string()
        }
    };
    let has = s.ok > 0;
    let mut line = format!(
        "{:<10} target {:>8}/s  sent {:>8}/s  ok {:>8}  err {:>6}  drop {:>6}  p50 {:>8}  p99 {:>8}  workers {}",
        truncate(&s.stage, 10),
        group(s.target_rps.round() as u64),
        group(s.achieved_rps.round() as u64),
        group(s.ok),
        group(s.errors),
        group(s.dropped),
        lat(s.p50_ms, has),
        lat(s.p99_ms, has),
        s.workers
    );
    if s.check_errors > 0 {
        line.push_str(&format!("  (check {})", group(s.check_errors)));
    }
    // Why requests are dropped is said once per cause ([`DropNotices`]),
    // not on every second's line.
    if s.dropped == 0 && s.target_rps >= 10.0 && s.achieved_rps < 0.98 * s.target_rps {
        line.push_str("  ! behind target");
    }
    line
}

/// Says why requests are being dropped, once per cause: the first second a
/// cause appears in, it is named with the setting to change; later seconds
/// with the same cause say nothing more (their counts are in the live
/// line's `drop` and in report.json's `drop_reasons`).
#[derive(Debug)]
pub struct DropNotices {
    told: [bool; DropCause::COUNT],
    /// The settings the advice names (absent when following a run whose
    /// scenario this client did not read: `volley attach`).
    load: Option<LoadInfo>,
}

impl DropNotices {
    pub fn new(load: Option<LoadInfo>) -> DropNotices {
        DropNotices {
            told: [false; DropCause::COUNT],
            load,
        }
    }

    /// The notices second `s` brings: one per cause not told before.
    pub fn second(&mut self, s: &pb::IntervalSummary) -> Vec<String> {
        let drops = s.drops.as_ref().map(DropCounts::from).unwrap_or_default();
        let mut out = Vec::new();
        for (cause, n) in drops.iter() {
            if n == 0 || std::mem::replace(&mut self.told[cause.index()], true) {
                continue;
            }
            if let Some(a) = Advice::of(cause.as_str(), self.load.as_ref()) {
                out.push(format!(
                    "dropping requests from second {} on: {} ({}): {}",
                    s.t_s + 1,
                    a.why,
                    cause.as_str(),
                    a.fix
                ));
            }
        }
        out
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The closing summary printed after a run.
pub fn summary(r: &Report, dir: &Path) -> String {
    let l = &r.latency_ms;
    let ms = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}ms"));
    let mut o = format!(
        "\n{} — {}\n  requests  intended {}  sent {}  ok {}  errors {}  dropped {}  success {:.2}%\n  rate      target {:.1}/s  achieved {:.1}/s  throughput {:.1}/s\n  latency   p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\n",
        r.scenario,
        if r.complete { "complete" } else { "INCOMPLETE" },
        group(r.requests.intended),
        group(r.requests.sent),
        group(r.requests.ok),
        group(r.requests.errors),
        group(r.requests.dropped),
        r.success_rate * 100.0,
        r.target_rps,
        r.achieved_rps,
        r.throughput_rps,
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.p999),
        ms(l.max),
    );
    let errs: Vec<String> = r
        .errors_by_kind
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if !errs.is_empty() {
        o.push_str(&format!("  errors    {}\n", errs.join(", ")));
    }
    if let Some(why) = crate::report::drops::sentence(r) {
        o.push_str(&format!("  dropped   {why}\n"));
    }
    let failed: Vec<String> = r
        .errors_by_check
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {}", group(*n)))
        .collect();
    if !failed.is_empty() {
        o.push_str(&format!("  checks    {}\n", failed.join(", ")));
    }
    // With a request mix, one line per request definition.
    let width = r
        .per_request
        .iter()
        .map(|q| q.name.chars().count())
        .max()
        .unwrap_or(0);
    for q in &r.per_request {
        o.push_str(&format!(
            "  request   {:<width$}  ok {}  errors {}  dropped {}  p50 {}  p99 {}\n",
            q.name,
            group(q.ok),
            group(q.errors),
            group(q.dropped),
            ms(q.latency_ms.p50),
            ms(q.latency_ms.p99),
        ));
    }
    for t in &r.thresholds {
        o.push_str(&format!(
            "  {} {}\n",
            match t.status {
                ThresholdStatus::Warn => "WARN",
                _ if t.pass => "PASS",
                _ => "FAIL",
            },
            t.expr
        ));
    }
    if let Some(why) = &r.incomplete_reason {
        o.push_str(&format!("  incomplete: {why}\n"));
    }
    o.push_str(&format!(
        "  report    {}\n",
        dir.join("report.md").display()
    ));
    o
}

/// report.md as `--print-report` prints it after the summary: between two
/// marker lines, so that a log reader can cut it out.
pub fn printed_report(r: &Report, dir: &Path) -> String {
    let path = dir.join("report.md");
    format!(
        "----- {} -----\n{}----- end of report -----",
        path.display(),
        markdown::render(r)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_atomic_write_leaves_no_tmp_file_behind() {
        let dir = std::env::temp_dir().join(format!("volley-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("report.json");
        write_atomic(&ok, b"{}").unwrap();
        assert_eq!(std::fs::read(&ok).unwrap(), b"{}");
        // The rename onto a directory fails after the .tmp was written, as
        // a write fails on a full disk after the file was created.
        let blocked = dir.join("blocked.json");
        std::fs::create_dir_all(blocked.join("inside")).unwrap();
        assert!(write_atomic(&blocked, b"{}").is_err());
        assert!(
            !dir.join("blocked.tmp").exists(),
            "the partial file is removed"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    use crate::report::{Latency, RequestReport};

    #[test]
    fn each_drop_cause_is_told_once_with_its_setting() {
        let mut n = DropNotices::new(Some(LoadInfo {
            wake_gap_us: 1000,
            connections: 8,
            per_connection: 1,
            max_in_flight: 100,
        }));
        let sec = |t_s, busy, cap, late| pb::IntervalSummary {
            t_s,
            dropped: busy + cap + late,
            drops: Some(pb::DropCounts {
                connections_busy: busy,
                max_in_flight: cap,
                behind_schedule: late,
            }),
            ..Default::default()
        };
        assert!(n.second(&sec(0, 0, 0, 0)).is_empty());
        assert_eq!(
            n.second(&sec(1, 40, 0, 0)),
            vec![
                "dropping requests from second 2 on: all 8 connections of a worker were busy \
                 (connections_busy): raise `load.connections` (or add workers)"
            ]
        );
        assert!(
            n.second(&sec(2, 90, 0, 0)).is_empty(),
            "said once, not every second"
        );
        let later = n.second(&sec(3, 5, 3, 1));
        assert_eq!(later.len(), 2, "{later:?}");
        assert!(later[0].contains("`load.max_in_flight` = 100"), "{later:?}");
        assert!(later[1].contains("add workers or cores"), "{later:?}");
        assert!(n.second(&sec(4, 5, 3, 1)).is_empty());
        assert!(!live_line(&sec(4, 5, 3, 1)).contains('!'));
    }

    #[test]
    fn the_summary_has_a_line_per_request_of_a_mix() {
        let mut r = crate::analysis::fixture::report();
        let plain = summary(&r, Path::new("runs/x"));
        assert!(!plain.contains("request "), "{plain}");
        let entry = |name: &str, ok: u64, p99: f64| RequestReport {
            name: name.into(),
            weight: 1,
            intended: ok,
            sent: ok,
            ok,
            errors: 0,
            dropped: 0,
            success_rate: 1.0,
            throughput_rps: ok as f64,
            latency_ms: Latency {
                p50: Some(1.0),
                p99: Some(p99),
                ..Latency::default()
            },
            errors_by_check: Default::default(),
        };
        r.per_request = vec![entry("list items", 8000, 2.5), entry("order", 2000, 9.0)];
        let s = summary(&r, Path::new("runs/x"));
        assert!(
            s.contains(
                "  request   list items  ok 8,000  errors 0  dropped 0  p50 1.00ms  p99 2.50ms\n"
            ),
            "{s}"
        );
        assert!(
            s.contains(
                "  request   order       ok 2,000  errors 0  dropped 0  p50 1.00ms  p99 9.00ms\n"
            ),
            "{s}"
        );
    }
}
