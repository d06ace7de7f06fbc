//! Turning merged data into the report model. Pure: no I/O.

use super::*;
use crate::merge::{Acc, MergedInterval, RequestAcc, Resources, SoakWindows};
use std::sync::Arc;
use volley_plan::outcome::{LOST_KIND, WORKER_LOST_CAUSE};
use volley_plan::{Counts, Plan, RateCurve};
use volley_proto::histogram::Hist;

/// A `grpc-status` as the report names it: "UNAVAILABLE" for 14, "code N"
/// for one beyond the canonical codes.
pub fn grpc_code_name(code: u32) -> String {
    volley_plan::expect::GRPC_CODES
        .get(code as usize)
        .map_or_else(|| format!("code {code}"), |n| n.to_string())
}

/// The URL without a `user:password@` part: a report is shared more widely
/// than the scenario.
fn public_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

pub fn target(plan: &Plan) -> TargetInfo {
    TargetInfo {
        url: public_url(&plan.target.url),
        protocol: plan.target.protocol.as_str().to_string(),
        requests: plan
            .target
            .requests
            .iter()
            .map(|r| r.name.clone())
            .collect(),
    }
}

pub fn load(plan: &Plan) -> LoadInfo {
    LoadInfo {
        connections: plan.load.connections,
        per_connection: plan.load.per_connection,
        max_in_flight: plan.load.max_in_flight,
        wake_gap_us: plan.load.wake_gap.map_or(0, |g| g.as_micros() as u64),
    }
}

/// `dropped` by cause, named as the report names them: every cause a
/// worker reports, and `worker_lost` (what a lost worker never sent) when
/// there is any or `every` is set. Empty when nothing was dropped, unless
/// `every` (the run's own, which always lists every cause).
pub fn drop_reasons(c: &Counts, every: bool) -> BTreeMap<String, u64> {
    drop_causes(c, every)
        .map(|(cause, n)| (cause.to_string(), n))
        .collect()
}

/// A second's [`drop_reasons`], without a heap allocation (see
/// [`SecondDrops`]).
pub fn second_drops(c: &Counts) -> SecondDrops {
    drop_causes(c, false).collect()
}

fn drop_causes(c: &Counts, every: bool) -> impl Iterator<Item = (&'static str, u64)> + '_ {
    let named = every || c.dropped > 0;
    let lost = (every || c.unsent > 0).then_some((WORKER_LOST_CAUSE, c.unsent));
    c.drops
        .iter()
        .map(|(cause, n)| (cause.as_str(), n))
        .chain(lost)
        .filter(move |_| named)
}

/// Each request definition's figures, in plan order; empty unless the plan
/// has more than one (and the merge kept one accumulator per definition).
pub fn per_request(
    plan: &Plan,
    requests: &[RequestAcc],
    checks: &BTreeMap<(u32, u32), u64>,
    duration_s: f64,
) -> Vec<RequestReport> {
    let defs = &plan.target.requests;
    if defs.len() <= 1 || requests.len() != defs.len() {
        return Vec::new();
    }
    defs.iter()
        .zip(requests)
        .enumerate()
        .map(|(i, (d, acc))| {
            let c = &acc.counts;
            RequestReport {
                name: d.name.clone(),
                weight: d.weight,
                intended: c.intended,
                sent: c.sent,
                ok: c.ok,
                errors: c.errors,
                dropped: c.dropped,
                success_rate: ratio(c.ok, c.intended),
                throughput_rps: per_sec(c.ok, duration_s),
                latency_ms: latency(&acc.latency),
                errors_by_check: errors_by_check(plan, checks, Some(i as u32)),
            }
        })
        .collect()
}

/// Failed checks by the check's name, of one request definition or (with
/// `None`) of all. Every check of the plan appears, with 0 when it never
/// failed, so a script can tell "passed" from "not checked".
pub fn errors_by_check(
    plan: &Plan,
    checks: &BTreeMap<(u32, u32), u64>,
    request: Option<u32>,
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let defs = &plan.target.requests;
    for (r, d) in defs.iter().enumerate() {
        if request.is_some_and(|q| q as usize != r) {
            continue;
        }
        for c in &d.expect.checks {
            out.entry(c.name.clone()).or_insert(0);
        }
    }
    for (&(r, c), &n) in checks {
        if request.is_some_and(|q| q != r) {
            continue;
        }
        let name = defs
            .get(r as usize)
            .and_then(|d| d.expect.checks.get(c as usize))
            .map_or_else(|| format!("check {c} of request {r}"), |c| c.name.clone());
        *out.entry(name).or_default() += n;
    }
    out
}

pub fn send_lag(h: &Hist) -> SendLag {
    if h.is_empty() {
        return SendLag::default();
    }
    let ms = |us: u64| Some(us as f64 / 1000.0);
    SendLag {
        p50: ms(h.value_at_quantile(0.5)),
        p99: ms(h.value_at_quantile(0.99)),
        max: ms(h.max()),
    }
}

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

/// The plan's stage names, shared by every second's summary
/// ([`interval`]): a second then keeps no string of its own.
pub fn stage_names(plan: &Plan) -> Vec<Arc<str>> {
    plan.stages
        .iter()
        .map(|s| Arc::from(s.name.as_str()))
        .collect()
}

/// The per-second summary of one merged interval; `stage_names` from
/// [`stage_names`].
pub fn interval(curve: &RateCurve, stage_names: &[Arc<str>], m: &MergedInterval) -> IntervalReport {
    let t = f64::from(m.index);
    let target = curve.count_at(t + 1.0) - curve.count_at(t);
    let h = &m.acc.latency;
    let q = |x: f64| (!h.is_empty()).then(|| h.value_at_quantile(x) as f64 / 1000.0);
    IntervalReport {
        t_s: m.index,
        stage: stage_names[curve.stage_at(t)].clone(),
        target_rps: target,
        achieved_rps: m.acc.counts.sent as f64,
        intended: m.acc.counts.intended,
        ok: m.acc.counts.ok,
        errors: m.acc.counts.errors(),
        dropped: m.acc.counts.dropped,
        drop_reasons: second_drops(&m.acc.counts),
        p50_ms: q(0.5),
        p90_ms: q(0.9),
        p99_ms: q(0.99),
        max_ms: (!h.is_empty()).then(|| h.max() as f64 / 1000.0),
        workers: m.workers,
        worker_rss_mb_max: (m.rss_max_bytes > 0).then(|| mb(m.rss_max_bytes)),
        worker_cpu_pct_max: m.cpu_pct_max,
        send_lag_ms: send_lag(&m.acc.send_lag),
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
    pub threads: Option<u32>,
    pub share: f64,
    pub lost_at_s: Option<f64>,
    pub left_at_s: Option<f64>,
    pub joined_at_s: Option<f64>,
}

pub struct Inputs<'a> {
    pub run_id: &'a str,
    pub scenario: &'a str,
    pub started_at: std::time::SystemTime,
    pub plan: &'a Plan,
    pub total: &'a Acc,
    /// Per request definition, in plan order (empty with a single one).
    pub requests: &'a [RequestAcc],
    pub stages: &'a [Acc],
    pub soak: &'a [Option<SoakWindows>],
    /// Per worker: who, its counters, its latency (summarized as each
    /// worker's books are turned into a histogram, one at a time: at 10,000
    /// workers all of them at once would be 270 MB), its resources.
    pub workers: &'a [(WorkerInfo, Counts, Latency, Resources)],
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
    let mut errors_by_kind: BTreeMap<String, u64> = c
        .kinds()
        .map(|(k, n)| (k.as_str().to_string(), n))
        .collect();
    errors_by_kind.insert(LOST_KIND.to_string(), c.lost);
    let errors_by_status = i
        .total
        .status_codes
        .iter()
        .map(|(code, n)| (code.to_string(), *n))
        .collect();
    let mut errors_by_grpc_status = BTreeMap::new();
    for (&code, &n) in &i.total.grpc_status_codes {
        *errors_by_grpc_status
            .entry(grpc_code_name(code))
            .or_default() += n;
    }
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
        .map(|(w, counts, latency_ms, res)| WorkerReport {
            id: w.id.clone(),
            hostname: w.hostname.clone(),
            weight: w.weight,
            threads: w.threads,
            share: w.share,
            assigned_rps: target_rps * w.share,
            requests: requests(counts),
            drop_reasons: drop_reasons(counts, false),
            latency_ms: *latency_ms,
            lost_at_s: w.lost_at_s,
            left_at_s: w.left_at_s,
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
        target: Some(target(i.plan)),
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
        errors_by_grpc_status,
        success_rate: ratio(c.ok, c.intended),
        error_rate: ratio(c.errors(), c.intended),
        latency_ms: latency(&i.total.latency),
        service_time_ms: latency(&i.total.service),
        send_lag_ms: send_lag(&i.total.send_lag),
        percentiles: percentiles(&i.total.latency),
        per_request: per_request(i.plan, i.requests, &i.total.checks, duration),
        errors_by_check: errors_by_check(i.plan, &i.total.checks, None),
        drop_reasons: drop_reasons(c, true),
        load: Some(load(i.plan)),
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

    fn plan(names: &[(&str, u32)]) -> Plan {
        use std::time::Duration;
        use volley_plan::{Body, Load, Protocol, Request, Stage, Target, Tls};
        Plan {
            target: Target {
                url: "http://user:secret@127.0.0.1:9/x?q=a@b".into(),
                protocol: Protocol::Grpc,
                timeout: Duration::from_secs(1),
                requests: names
                    .iter()
                    .map(|&(name, weight)| Request {
                        name: name.into(),
                        weight,
                        method: "POST".into(),
                        path: format!("/svc.S/{name}"),
                        headers: vec![],
                        body: Body::Generated(0),
                        expect: Default::default(),
                    })
                    .collect(),
                tls: Tls::default(),
            },
            load: Load::default(),
            stages: vec![Stage {
                name: "steady".into(),
                duration: Duration::from_secs(4),
                from_rps: 100.0,
                to_rps: 100.0,
                burst: false,
            }],
            vars: Vec::new(),
            env: Vec::new(),
            data: Vec::new(),
        }
    }

    /// A worker's second: `ok[i]` successes of definition i at `us`, one
    /// reset on the last definition, and one UNAVAILABLE call on the first.
    fn second(index: u32, ok: &[u64], us: u64) -> crate::merge::WorkerInterval {
        use crate::merge::{RequestInterval, WorkerInterval};
        use volley_plan::{ErrorKind, KindCounts, RequestCounts};
        let hist = |n: u64| {
            let mut h = new_hist();
            for _ in 0..n {
                h.record(us).unwrap();
            }
            h
        };
        let n = ok.len();
        let total_ok: u64 = ok.iter().sum();
        let requests = ok
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let errors = u64::from(i == 0) + u64::from(i == n - 1);
                RequestInterval {
                    index: i as u32,
                    counts: RequestCounts {
                        intended: k + errors,
                        sent: k + errors,
                        ok: k,
                        errors,
                        dropped: 0,
                    },
                    latency: hist(k).into(),
                }
            })
            .collect();
        WorkerInterval {
            index,
            counts: Counts {
                intended: total_ok + 2,
                sent: total_ok + 2,
                ok: total_ok,
                by_kind: KindCounts::from_fn(|k| {
                    u64::from(matches!(k, ErrorKind::Status | ErrorKind::Reset))
                }),
                ..Counts::default()
            },
            status_codes: vec![],
            grpc_status_codes: vec![(14, 1)],
            requests: if n > 1 { requests } else { vec![] },
            checks: vec![],
            latency: hist(total_ok).into(),
            service: hist(total_ok).into(),
            send_lag: hist(total_ok + 2).into(),
            in_flight: 0,
            rss_bytes: 0,
            cpu_nanos: 0,
            latency_encoded: vec![],
        }
    }

    fn run(plan: &Plan, ok: &[u64]) -> Report {
        use crate::merge::Merger;
        let weights: Vec<u32> = plan.target.requests.iter().map(|r| r.weight).collect();
        let mut m = Merger::new(3, vec![0; 4], &[(0.0, 4.0)]).with_requests(&weights);
        for w in 0..3usize {
            for i in 0..4u32 {
                m.add(w, second(i, ok, 1000 * (w as u64 + 1))).unwrap();
            }
            m.finish_worker(w);
        }
        m.ready().unwrap();
        // Worker 2 was lost with 5 requests it owned never sent.
        let delta = m.settle_lost(2, 5);
        m.stages[0].counts.add(&delta);
        let total = m.total().unwrap();
        report(Inputs {
            run_id: "r",
            scenario: "s",
            started_at: std::time::UNIX_EPOCH,
            plan,
            total: &total,
            requests: &m.requests,
            stages: &m.stages,
            soak: &m.soak,
            workers: &[],
            ran_s: None,
            intervals: vec![],
            events: vec![],
            incomplete_reason: None,
        })
    }

    #[test]
    fn failed_checks_are_named_summed_by_name_and_listed_when_zero() {
        use volley_plan::{Check, Rule};
        let mut p = plan(&[("Create", 1), ("Get", 1)]);
        let named = |name: &str, rule: Rule| Check {
            name: name.into(),
            rule,
        };
        p.target.requests[0].expect.checks = vec![
            named("status", Rule::Status(vec![])),
            named("order ok", Rule::BodyContains("ok".into())),
        ];
        p.target.requests[1].expect.checks = vec![named("status", Rule::Status(vec![]))];
        let checks: BTreeMap<(u32, u32), u64> = [((0, 0), 3), ((1, 0), 2), ((0, 1), 600)]
            .into_iter()
            .collect();
        let all = errors_by_check(&p, &checks, None);
        assert_eq!(all["status"], 5, "one name, two requests: summed");
        assert_eq!(all["order ok"], 600);
        let get = errors_by_check(&p, &checks, Some(1));
        assert_eq!(get.len(), 1);
        assert_eq!(get["status"], 2);
        let none = errors_by_check(&p, &BTreeMap::new(), None);
        assert_eq!(none["order ok"], 0, "a check that never failed is listed");
        let r = run(&p, &[10, 10]);
        assert_eq!(r.errors_by_check["order ok"], 0);
        assert_eq!(r.per_request[0].errors_by_check.len(), 2);
    }

    #[test]
    fn per_request_figures_add_up_to_the_run() {
        let p = plan(&[("List", 3), ("Get", 1), ("Put", 1)]);
        let r = run(&p, &[30, 10, 10]);
        assert_eq!(r.per_request.len(), 3);
        assert_eq!(
            r.per_request
                .iter()
                .map(|x| (x.name.as_str(), x.weight))
                .collect::<Vec<_>>(),
            vec![("List", 3), ("Get", 1), ("Put", 1)]
        );
        let sum = |f: fn(&RequestReport) -> u64| r.per_request.iter().map(f).sum::<u64>();
        let q = &r.requests;
        assert_eq!(sum(|x| x.intended), q.intended);
        assert_eq!(sum(|x| x.sent), q.sent);
        assert_eq!(sum(|x| x.ok), q.ok);
        assert_eq!(sum(|x| x.errors), q.errors);
        assert_eq!(sum(|x| x.dropped), q.dropped);
        assert_eq!(q.dropped, 5);
        // 5 never sent, split 3 : 1 : 1.
        assert_eq!(
            r.per_request.iter().map(|x| x.dropped).collect::<Vec<_>>(),
            vec![3, 1, 1]
        );
        let list = &r.per_request[0];
        assert_eq!(list.ok, 3 * 4 * 30);
        assert_eq!(list.throughput_rps, 90.0);
        assert!((list.success_rate - 360.0 / (360.0 + 12.0 + 3.0)).abs() < 1e-12);
        assert!(list.latency_ms.p50.is_some());
        assert_eq!(list.latency_ms.max, r.latency_ms.max);
        assert_eq!(r.errors_by_kind["reset"], 12);
        assert_eq!(r.errors_by_kind["status"], 12);
        assert_eq!(r.errors_by_kind["lost"], 0);
        assert_eq!(
            r.errors_by_grpc_status,
            BTreeMap::from([("UNAVAILABLE".to_string(), 12)])
        );
        let t = r.target.as_ref().unwrap();
        assert_eq!(
            t.url, "http://127.0.0.1:9/x?q=a@b",
            "no credentials in the report"
        );
        assert_eq!(t.protocol, "grpc");
        assert_eq!(t.requests, vec!["List", "Get", "Put"]);
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["per_request"][1]["name"], "Get");
        assert!(json["per_request"][1]["latency_ms"]["p99"].is_f64());
        assert_eq!(json["errors_by_grpc_status"]["UNAVAILABLE"], 12);
        assert_eq!(json["target"]["protocol"], "grpc");
        // serde_json's float parsing may differ in the last bit: compare counts.
        let back: Report = serde_json::from_value(json).unwrap();
        let counts = |r: &Report| -> Vec<(String, u64, u64, u64, u64, u64)> {
            r.per_request
                .iter()
                .map(|q| {
                    (
                        q.name.clone(),
                        q.intended,
                        q.sent,
                        q.ok,
                        q.errors,
                        q.dropped,
                    )
                })
                .collect()
        };
        assert_eq!(counts(&back), counts(&r), "round trip");
        assert_eq!(
            (back.target, back.errors_by_grpc_status),
            (r.target, r.errors_by_grpc_status)
        );
    }

    #[test]
    fn one_request_definition_has_no_breakdown() {
        let p = plan(&[("Only", 1)]);
        let r = run(&p, &[10]);
        assert!(r.per_request.is_empty());
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert!(json.get("per_request").is_none());
        assert!(
            json["requests"]["intended"].is_u64(),
            "`requests` keeps its meaning"
        );
    }

    #[test]
    fn no_grpc_errors_no_grpc_section() {
        let mut r = run(&plan(&[("Only", 1)]), &[10]);
        r.errors_by_grpc_status.clear();
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert!(json.get("errors_by_grpc_status").is_none());
    }

    #[test]
    fn grpc_codes_have_their_canonical_names() {
        assert_eq!(grpc_code_name(1), "CANCELLED");
        assert_eq!(grpc_code_name(4), "DEADLINE_EXCEEDED");
        assert_eq!(grpc_code_name(14), "UNAVAILABLE");
        assert_eq!(grpc_code_name(16), "UNAUTHENTICATED");
        assert_eq!(grpc_code_name(17), "code 17");
        assert_eq!(grpc_code_name(u32::MAX), format!("code {}", u32::MAX));
    }

    #[test]
    fn credentials_never_reach_the_report() {
        assert_eq!(public_url("https://a:b@h:1/p"), "https://h:1/p");
        assert_eq!(public_url("https://h/p@x"), "https://h/p@x");
        assert_eq!(public_url("tcp://u@h:9"), "tcp://h:9");
        assert_eq!(public_url("http://h?x=@"), "http://h?x=@");
        assert_eq!(public_url("nonsense"), "nonsense");
    }

    #[test]
    fn an_old_report_still_reads() {
        let r: Report = serde_json::from_str(include_str!("../../tests/data/report.json")).unwrap();
        assert!(
            r.target.is_none() && r.per_request.is_empty() && r.errors_by_grpc_status.is_empty()
        );
    }
}
