//! Turning merged data into the report model. Pure: no I/O.

use super::*;
use crate::merge::{Acc, Counts, MergedInterval};
use volley_plan::{Plan, RateCurve};
use volley_proto::histogram::Hist;

const KINDS: [&str; 4] = ["connect", "timeout", "status", "protocol"];

pub fn latency(h: &Hist) -> Latency {
    if h.is_empty() {
        return Latency::default();
    }
    let ms = |us: u64| Some(us as f64 / 1000.0);
    Latency {
        p50: ms(h.value_at_quantile(0.5)),
        p90: ms(h.value_at_quantile(0.9)),
        p95: ms(h.value_at_quantile(0.95)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
        mean: Some(h.mean() / 1000.0),
    }
}

pub fn requests(c: &Counts) -> Requests {
    Requests {
        intended: c.intended,
        sent: c.sent,
        ok: c.ok,
        errors: c.errors(),
        dropped: c.dropped,
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// The per-second summary of one merged interval.
pub fn interval(curve: &RateCurve, plan: &Plan, m: &MergedInterval) -> IntervalReport {
    let t = f64::from(m.index);
    let target = curve.count_at(t + 1.0) - curve.count_at(t);
    let h = &m.acc.latency;
    let q = |x: f64| (!h.is_empty()).then(|| h.value_at_quantile(x) as f64 / 1000.0);
    let stage = &plan.stages[curve.stage_at(t)];
    IntervalReport {
        t_s: m.index,
        stage: stage.name.clone(),
        target_rps: target,
        achieved_rps: m.acc.counts.sent as f64,
        intended: m.acc.counts.intended,
        ok: m.acc.counts.ok,
        errors: m.acc.counts.errors(),
        dropped: m.acc.counts.dropped,
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        max_ms: (!h.is_empty()).then(|| h.max() as f64 / 1000.0),
        workers: m.workers,
    }
}

/// Who took part, for the per-worker table.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    pub id: String,
    pub hostname: String,
    pub weight: u32,
    pub share: f64,
    pub lost_at_s: Option<f64>,
}

pub struct Inputs<'a> {
    pub run_id: &'a str,
    pub scenario: &'a str,
    pub started_at: std::time::SystemTime,
    pub plan: &'a Plan,
    pub total: &'a Acc,
    pub stages: &'a [Acc],
    pub workers: &'a [(WorkerInfo, Acc)],
    pub intervals: Vec<IntervalReport>,
    pub events: Vec<Event>,
    pub incomplete_reason: Option<String>,
}

pub fn report(i: Inputs<'_>) -> Report {
    let curve = RateCurve::new(&i.plan.stages);
    let duration = curve.end();
    let c = &i.total.counts;
    let mut errors_by_kind = BTreeMap::new();
    for (k, n) in KINDS.iter().zip(c.by_kind) {
        errors_by_kind.insert(k.to_string(), n);
    }
    let errors_by_status = i
        .total
        .status_codes
        .iter()
        .map(|(code, n)| (code.to_string(), *n))
        .collect();
    let starts: Vec<f64> = curve.stage_starts().collect();
    let stages = i
        .plan
        .stages
        .iter()
        .enumerate()
        .map(|(n, s)| {
            let acc = &i.stages[n];
            let secs = s.duration.as_secs_f64();
            StageReport {
                name: s.name.clone(),
                burst: s.burst,
                start_s: starts[n],
                duration_s: secs,
                target_rps: (s.from_rps + s.to_rps) / 2.0,
                achieved_rps: per_sec(acc.counts.sent, secs),
                throughput_rps: per_sec(acc.counts.ok, secs),
                requests: requests(&acc.counts),
                success_rate: ratio(acc.counts.ok, acc.counts.intended),
                latency_ms: latency(&acc.latency),
            }
        })
        .collect();
    let target_rps = per_sec(1, duration) * curve.total();
    let workers = i
        .workers
        .iter()
        .map(|(w, acc)| WorkerReport {
            id: w.id.clone(),
            hostname: w.hostname.clone(),
            weight: w.weight,
            share: w.share,
            assigned_rps: target_rps * w.share,
            requests: requests(&acc.counts),
            latency_ms: latency(&acc.latency),
            lost_at_s: w.lost_at_s,
        })
        .collect();
    Report {
        schema: SCHEMA.to_string(),
        run_id: i.run_id.to_string(),
        scenario: i.scenario.to_string(),
        started_at: humantime::format_rfc3339_millis(i.started_at).to_string(),
        complete: i.incomplete_reason.is_none(),
        incomplete_reason: i.incomplete_reason,
        duration_s: duration,
        target_rps,
        achieved_rps: per_sec(c.sent, duration),
        throughput_rps: per_sec(c.ok, duration),
        requests: requests(c),
        errors_by_kind,
        errors_by_status,
        success_rate: ratio(c.ok, c.intended),
        error_rate: ratio(c.errors(), c.intended),
        latency_ms: latency(&i.total.latency),
        service_time_ms: latency(&i.total.service),
        stages,
        workers,
        intervals: i.intervals,
        recovery: Vec::new(),
        thresholds: Vec::new(),
        regressions: Vec::new(),
        events: i.events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use volley_proto::histogram::new_hist;

    #[test]
    fn latency_of_empty_is_null_and_of_data_is_ms() {
        assert_eq!(latency(&new_hist()), Latency::default());
        let mut h = new_hist();
        for v in 1..=1000u64 {
            h.record(v * 100).unwrap(); // 0.1 ms .. 100 ms
        }
        let l = latency(&h);
        assert!((l.p50.unwrap() - 50.0).abs() < 0.1);
        assert!((l.p99.unwrap() - 99.0).abs() < 0.1);
        assert!((l.max.unwrap() - 100.0).abs() < 0.1);
        assert!(
            l.p50 <= l.p90
                && l.p90 <= l.p95
                && l.p95 <= l.p99
                && l.p99 <= l.p999
                && l.p999 <= l.max
        );
    }
}
