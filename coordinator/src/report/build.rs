//! Turning merged data into the report model. Pure: no I/O.

use super::*;
use crate::merge::{Acc, Counts, MergedInterval, Resources, SoakWindows};
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

/// The percentiles of the spectrum: 0, 10 … 90, then nine steps in each
/// decade of nines (91 … 99, 99.1 … 99.9, … 99.991 … 99.999), then 100.
fn spectrum_percentiles() -> impl Iterator<Item = f64> {
    let tens = (0..10).map(|k| f64::from(k) * 10.0);
    let nines = (1..=4).flat_map(|decade| {
        let step = 10f64.powi(-decade);
        // 100 − k·10^(1−decade) for k = 9 … 1, e.g. 91 … 99 for decade 1.
        (1..10)
            .rev()
            .map(move |k| 100.0 - f64::from(k) * step * 10.0)
    });
    tens.chain(nines).chain(std::iter::once(100.0))
}

/// The latency spectrum of a histogram in microseconds; empty when it is.
pub fn percentiles(h: &Hist) -> Vec<PercentilePoint> {
    if h.is_empty() {
        return Vec::new();
    }
    spectrum_percentiles()
        .map(|p| PercentilePoint {
            // Rounded so 99.99 stays 99.99 in the JSON, not 99.99000000000001.
            percentile: (p * 1e6).round() / 1e6,
            latency_ms: h.value_at_quantile(p / 100.0) as f64 / 1000.0,
        })
        .collect()
}

pub fn requests(c: &Counts) -> Requests {
    Requests {
        intended: c.intended,
        sent: c.sent,
        ok: c.ok,
        errors: c.errors(),
        dropped: c.dropped,
        unsent: c.unsent,
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
        p90_ms: q(0.9),
        p99_ms: q(0.99),
        max_ms: (!h.is_empty()).then(|| h.max() as f64 / 1000.0),
        workers: m.workers,
        worker_rss_mb_max: (m.rss_max_bytes > 0).then(|| mb(m.rss_max_bytes)),
        worker_cpu_pct_max: m.cpu_pct_max,
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// First versus last tenth of a long stage.
pub fn soak(w: &SoakWindows) -> Soak {
    let secs = f64::from(w.first.end - w.first.start).max(1.0);
    let first_rate = w.first_acc.counts.sent as f64 / secs;
    let last_rate = w.last_acc.counts.sent as f64 / secs;
    let p99 = |a: &Acc| {
        (!a.latency.is_empty()).then(|| a.latency.value_at_quantile(0.99) as f64 / 1000.0)
    };
    let (first_p99, last_p99) = (p99(&w.first_acc), p99(&w.last_acc));
    let rate_drop = if first_rate > 0.0 {
        (first_rate - last_rate) / first_rate
    } else {
        0.0
    };
    let p99_rise = match (first_p99, last_p99) {
        (Some(a), Some(b)) if a > 0.0 => (b - a) / a,
        // Latency vanished (nothing succeeded at the end): as bad as it gets.
        (Some(_), None) => 1.0,
        _ => 0.0,
    };
    Soak {
        window_s: secs,
        first_achieved_rps: first_rate,
        last_achieved_rps: last_rate,
        first_p99_ms: first_p99,
        last_p99_ms: last_p99,
        degradation: rate_drop.max(p99_rise).max(0.0),
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
    pub joined_at_s: Option<f64>,
}

pub struct Inputs<'a> {
    pub run_id: &'a str,
    pub scenario: &'a str,
    pub started_at: std::time::SystemTime,
    pub plan: &'a Plan,
    pub total: &'a Acc,
    pub stages: &'a [Acc],
    pub soak: &'a [Option<SoakWindows>],
    pub workers: &'a [(WorkerInfo, Acc, Resources)],
    /// When the run was stopped early: how long it ran, seconds.
    pub ran_s: Option<f64>,
    pub intervals: Vec<IntervalReport>,
    pub events: Vec<Event>,
    pub incomplete_reason: Option<String>,
}

pub fn report(i: Inputs<'_>) -> Report {
    let curve = RateCurve::new(&i.plan.stages);
    // Rates of a run stopped early are over the time it actually ran.
    let duration = i.ran_s.map_or(curve.end(), |r| r.clamp(0.0, curve.end()));
    let c = &i.total.counts;
    let mut errors_by_kind = BTreeMap::new();
    for (k, n) in KINDS.iter().zip(c.by_kind) {
        errors_by_kind.insert(k.to_string(), n);
    }
    errors_by_kind.insert("lost".to_string(), c.lost);
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
            let ran_in_stage = (duration - starts[n]).clamp(0.0, s.duration.as_secs_f64());
            let secs = if i.ran_s.is_some() {
                ran_in_stage
            } else {
                s.duration.as_secs_f64()
            };
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
                soak: if i.ran_s.is_some() {
                    None
                } else {
                    i.soak.get(n).and_then(|w| w.as_ref()).map(soak)
                },
            }
        })
        .collect();
    let target_rps = per_sec(1, duration) * curve.count_at(duration);
    let workers = i
        .workers
        .iter()
        .map(|(w, acc, res)| WorkerReport {
            id: w.id.clone(),
            hostname: w.hostname.clone(),
            weight: w.weight,
            share: w.share,
            assigned_rps: target_rps * w.share,
            requests: requests(&acc.counts),
            latency_ms: latency(&acc.latency),
            lost_at_s: w.lost_at_s,
            joined_at_s: w.joined_at_s,
            rss_mb_first: (res.rss_first > 0).then(|| mb(res.rss_first)),
            rss_mb_last: (res.rss_last > 0).then(|| mb(res.rss_last)),
            rss_mb_peak: (res.rss_peak > 0).then(|| mb(res.rss_peak)),
            cpu_pct_mean: res.cpu_pct_mean(),
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
        percentiles: percentiles(&i.total.latency),
        stages,
        workers,
        intervals: i.intervals,
        recovery: Vec::new(),
        thresholds: Vec::new(),
        regressions: Vec::new(),
        events: i.events,
    }
}

/// Adds the judgements that need the whole report: the recovery of each
/// burst, then the threshold verdicts (which may refer to recovery).
pub fn judge(
    r: &mut Report,
    thresholds: &[String],
    recovery: &crate::scenario::RecoveryOptions,
) -> Result<(), crate::analysis::ThresholdError> {
    r.recovery = crate::analysis::recovery(
        &r.intervals,
        &r.stages,
        recovery.window.as_secs().max(1) as u32,
        recovery.tolerance,
    );
    r.thresholds = crate::analysis::evaluate_all(thresholds, r)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use volley_proto::histogram::new_hist;

    #[test]
    fn soak_degradation_is_the_worse_of_rate_drop_and_p99_rise() {
        let mut w = SoakWindows::for_stage(0.0, 100.0).unwrap();
        for _ in 0..1000 {
            w.first_acc.latency.record(10_000).unwrap();
            w.last_acc.latency.record(11_000).unwrap();
        }
        w.first_acc.counts.sent = 10_000;
        w.last_acc.counts.sent = 9_800;
        let s = soak(&w);
        assert_eq!(s.window_s, 10.0);
        assert_eq!((s.first_achieved_rps, s.last_achieved_rps), (1000.0, 980.0));
        // p99 rose 10 % (10 → 11 ms), the rate dropped 2 %: degradation 10 %.
        assert!((s.degradation - 0.1).abs() < 0.002, "{s:?}");
        w.last_acc.counts.sent = 12_000;
        w.last_acc.latency.reset();
        for _ in 0..10 {
            w.last_acc.latency.record(5_000).unwrap();
        }
        assert_eq!(
            soak(&w).degradation,
            0.0,
            "faster and quicker is no degradation"
        );
    }

    #[test]
    fn percentile_spectrum_climbs_the_nines_to_the_max() {
        assert!(percentiles(&new_hist()).is_empty());
        let mut h = new_hist();
        for v in 1..=100_000u64 {
            h.record(v * 10).unwrap(); // 0.01 ms .. 1000 ms, uniform
        }
        let s = percentiles(&h);
        let at = |p: f64| s.iter().find(|x| x.percentile == p).unwrap().latency_ms;
        assert_eq!(s.first().unwrap().percentile, 0.0);
        assert_eq!(s.last().unwrap().percentile, 100.0);
        for p in [10.0, 50.0, 90.0, 91.0, 99.0, 99.9, 99.99, 99.999] {
            // Uniform: the p-th percentile is p % of 1000 ms, within
            // HdrHistogram's 3 significant digits.
            assert!(
                (at(p) - p * 10.0).abs() <= p * 10.0 * 0.001,
                "p{p} = {}",
                at(p)
            );
        }
        assert_eq!(at(100.0), latency(&h).max.unwrap());
        assert!(s
            .windows(2)
            .all(|w| w[0].percentile < w[1].percentile && w[0].latency_ms <= w[1].latency_ms));
        assert_eq!(s.len(), 10 + 4 * 9 + 1);
    }

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
