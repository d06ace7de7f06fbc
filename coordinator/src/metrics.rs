//! Prometheus metrics of the coordinator, in the text exposition format,
//! served on `--metrics-listen` at `/metrics`.
//!
//! Updated once per merged second (so scraping costs the run nothing) with
//! labels for the run and the stage:
//! `volley_requests_total{definition,outcome}` (definition: the name of the
//! scenario's request definition, one series each in a mix),
//! `volley_errors_total{kind}` (kind:
//! connect, timeout, status, protocol, reset),
//! `volley_dropped_total`, the latency histogram
//! `volley_latency_seconds_{bucket,sum,count}` (from the scheduled send time,
//! built from the merged HdrHistogram), `volley_target_rps`,
//! `volley_achieved_rps`, `volley_workers`, `volley_runs_total`.
//!
//! A [`Listener`] hears the same seconds as they come (the OTLP exporter,
//! `crate::otlp`), so both views count the same thing.

use crate::report::IntervalReport;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::future::Future;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use volley_plan::{ErrorKind, KindCounts, RequestCounts};
use volley_proto::histogram::Hist;

/// Upper bounds of the latency buckets, seconds.
pub const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// One merged second, as the metrics take it.
#[derive(Debug, Clone, Copy)]
pub struct Second<'a> {
    pub run: &'a str,
    pub interval: &'a IntervalReport,
    /// Latency of the second's ok requests from the scheduled send time.
    pub latency: &'a Hist,
    pub by_kind: &'a KindCounts,
    /// (request definition name, its counts this second): one entry for a
    /// scenario with one request definition, one per definition in a mix.
    pub definitions: &'a [(&'a str, RequestCounts)],
}

/// Something else that hears every merged second and the coordinator's
/// events (the OTLP exporter). Called on the run's task: it must be quick.
pub trait Listener: Send + Sync + std::fmt::Debug {
    fn second(&self, s: &Second<'_>);
    fn workers(&self, n: u64);
    fn run_started(&self);
    /// The run's last second has been observed.
    fn run_ended(&self);
}

#[derive(Debug, Default, Clone)]
struct Series {
    /// Definition → (ok, errors, dropped).
    by_def: BTreeMap<String, [u64; 3]>,
    ok: u64,
    errors: u64,
    dropped: u64,
    by_kind: KindCounts,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_s: f64,
    target_rps: f64,
    achieved_rps: f64,
}

#[derive(Debug, Default)]
struct State {
    /// (run, stage) → totals so far.
    series: BTreeMap<(String, String), Series>,
    workers: u64,
    runs: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    state: Mutex<State>,
    listener: std::sync::OnceLock<std::sync::Arc<dyn Listener>>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands every later second and event to `l` too (one listener; a
    /// second call is ignored).
    pub fn listen(&self, l: std::sync::Arc<dyn Listener>) {
        let _ = self.listener.set(l);
    }

    pub fn run_started(&self) {
        self.lock().runs += 1;
        if let Some(l) = self.listener.get() {
            l.run_started();
        }
    }

    /// The run's last second is in.
    pub fn run_ended(&self) {
        if let Some(l) = self.listener.get() {
            l.run_ended();
        }
    }

    pub fn set_workers(&self, n: usize) {
        self.lock().workers = n as u64;
        if let Some(l) = self.listener.get() {
            l.workers(n as u64);
        }
    }

    /// Adds one merged second: its counts (per request definition too), its
    /// latency histogram and its errors by kind.
    pub fn observe(&self, second: &Second<'_>) {
        if let Some(l) = self.listener.get() {
            l.second(second);
        }
        let Second {
            run,
            interval: i,
            latency,
            by_kind,
            definitions,
        } = *second;
        let mut st = self.lock();
        let s = st
            .series
            .entry((run.to_string(), i.stage.to_string()))
            .or_default();
        for (name, c) in definitions {
            let d = s.by_def.entry((*name).to_string()).or_default();
            d[0] += c.ok;
            d[1] += c.errors;
            d[2] += c.dropped;
        }
        s.ok += i.ok;
        s.errors += i.errors;
        s.dropped += i.dropped;
        s.by_kind.add(by_kind);
        for (b, le) in s.buckets.iter_mut().zip(BUCKETS) {
            *b += latency.count_between(0, (le * 1e6) as u64);
        }
        s.count += latency.len();
        s.sum_s += latency.mean() * latency.len() as f64 / 1e6;
        s.target_rps = i.target_rps;
        s.achieved_rps = i.achieved_rps;
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let st = self.lock();
        let mut o = String::new();
        let esc = |v: &str| {
            v.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        let _ = writeln!(o, "# HELP volley_workers Workers connected to the coordinator.\n# TYPE volley_workers gauge");
        let _ = writeln!(o, "volley_workers {}", st.workers);
        let _ = writeln!(o, "# HELP volley_runs_total Runs started by this coordinator.\n# TYPE volley_runs_total counter");
        let _ = writeln!(o, "volley_runs_total {}", st.runs);
        let _ = writeln!(
            o,
            "# HELP volley_requests_total Intended requests by how they ended.\n# TYPE volley_requests_total counter"
        );
        for ((run, stage), s) in &st.series {
            for (def, [ok, errors, dropped]) in &s.by_def {
                let l = format!(
                    "run=\"{}\",stage=\"{}\",definition=\"{}\"",
                    esc(run),
                    esc(stage),
                    esc(def)
                );
                for (outcome, n) in [("ok", ok), ("error", errors), ("dropped", dropped)] {
                    let _ = writeln!(o, "volley_requests_total{{{l},outcome=\"{outcome}\"}} {n}");
                }
            }
        }
        let _ = writeln!(o, "# HELP volley_errors_total Failed requests by kind.\n# TYPE volley_errors_total counter");
        for ((run, stage), s) in &st.series {
            let l = format!("run=\"{}\",stage=\"{}\"", esc(run), esc(stage));
            let mut kinds: Vec<(ErrorKind, u64)> = s.by_kind.iter().collect();
            kinds.sort_by_key(|(k, _)| k.as_str());
            for (k, n) in kinds {
                let _ = writeln!(o, "volley_errors_total{{{l},kind=\"{}\"}} {n}", k.as_str());
            }
        }
        let _ = writeln!(
            o,
            "# HELP volley_dropped_total Requests that could not be sent on time.\n# TYPE volley_dropped_total counter"
        );
        for ((run, stage), s) in &st.series {
            let _ = writeln!(
                o,
                "volley_dropped_total{{run=\"{}\",stage=\"{}\"}} {}",
                esc(run),
                esc(stage),
                s.dropped
            );
        }
        let _ = writeln!(
            o,
            "# HELP volley_latency_seconds Latency of ok requests from the scheduled send time.\n# TYPE volley_latency_seconds histogram"
        );
        for ((run, stage), s) in &st.series {
            let l = format!("run=\"{}\",stage=\"{}\"", esc(run), esc(stage));
            for (b, le) in s.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(o, "volley_latency_seconds_bucket{{{l},le=\"{le}\"}} {b}");
            }
            let _ = writeln!(
                o,
                "volley_latency_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(o, "volley_latency_seconds_sum{{{l}}} {}", s.sum_s);
            let _ = writeln!(o, "volley_latency_seconds_count{{{l}}} {}", s.count);
        }
        for (name, help, pick) in [
            (
                "volley_target_rps",
                "Target rate of the last merged second.",
                0,
            ),
            (
                "volley_achieved_rps",
                "Requests sent in the last merged second.",
                1,
            ),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge");
            for ((run, stage), s) in &st.series {
                let v = if pick == 0 {
                    s.target_rps
                } else {
                    s.achieved_rps
                };
                let _ = writeln!(
                    o,
                    "{name}{{run=\"{}\",stage=\"{}\"}} {v}",
                    esc(run),
                    esc(stage)
                );
            }
        }
        o
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes: a tiny
/// HTTP/1.1 responder, enough for Prometheus and curl.
pub async fn serve(
    metrics: std::sync::Arc<Metrics>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (mut s, _) = tokio::select! {
            _ = &mut shutdown => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let m = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") && n < buf.len() {
                match tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf[n..]))
                    .await
                {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                    Ok(Ok(k)) => n += k,
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let (status, body) =
                if head.starts_with("GET /metrics ") || head.starts_with("GET /metrics?") {
                    ("200 OK", m.render())
                } else {
                    ("404 Not Found", "try /metrics\n".to_string())
                };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use volley_proto::histogram::new_hist;

    fn second(stage: &str) -> IntervalReport {
        IntervalReport {
            t_s: 0,
            stage: stage.into(),
            target_rps: 100.0,
            achieved_rps: 99.0,
            intended: 100,
            ok: 97,
            errors: 2,
            dropped: 1,
            drop_reasons: Default::default(),
            p50_ms: None,
            p90_ms: None,
            p99_ms: None,
            max_ms: None,
            workers: 1,
            worker_rss_mb_max: None,
            worker_cpu_pct_max: None,
            send_lag_ms: Default::default(),
        }
    }

    #[test]
    fn exposition_has_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.set_workers(3);
        let mut h = new_hist();
        for us in [300u64, 800, 4_000, 20_000, 20_000] {
            h.record(us).unwrap();
        }
        let kinds = |status, reset| {
            let mut k = KindCounts::default();
            k[ErrorKind::Status] = status;
            k[ErrorKind::Reset] = reset;
            k
        };
        let one = |ok, errors, dropped| RequestCounts {
            intended: ok + errors + dropped,
            sent: ok + errors,
            ok,
            errors,
            dropped,
        };
        let i = second("steady");
        let (k1, k2) = (kinds(2, 0), kinds(1, 1));
        let defs = [("list", one(90, 2, 1)), ("order", one(7, 0, 0))];
        let at = |by_kind, definitions| Second {
            run: "r1",
            interval: &i,
            latency: &h,
            by_kind,
            definitions,
        };
        m.observe(&at(&k1, &defs[..]));
        m.observe(&at(&k2, &defs[..]));
        let text = m.render();
        assert!(text.contains("volley_workers 3"));
        let req = |def: &str, outcome: &str| {
            format!(
                r#"volley_requests_total{{run="r1",stage="steady",definition="{def}",outcome="{outcome}"}} "#
            )
        };
        assert!(text.contains(&(req("list", "ok") + "180")), "{text}");
        assert!(text.contains(&(req("order", "ok") + "14")), "{text}");
        assert!(text.contains(&(req("list", "error") + "4")), "{text}");
        assert!(text.contains(&(req("list", "dropped") + "2")), "{text}");
        assert!(text.contains(&(req("order", "dropped") + "0")), "{text}");
        assert!(text.contains(r#"volley_errors_total{run="r1",stage="steady",kind="status"} 3"#));
        assert!(text.contains(r#"volley_errors_total{run="r1",stage="steady",kind="reset"} 1"#));
        assert!(
            text.contains(r#"volley_latency_seconds_bucket{run="r1",stage="steady",le="0.001"} 4"#),
            "{text}"
        );
        assert!(
            text.contains(r#"volley_latency_seconds_bucket{run="r1",stage="steady",le="+Inf"} 10"#)
        );
        assert!(text.contains(r#"volley_latency_seconds_count{run="r1",stage="steady"} 10"#));
        // Buckets are cumulative.
        let counts: Vec<u64> = text
            .lines()
            .filter(|l| l.starts_with("volley_latency_seconds_bucket"))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]));
    }
}
