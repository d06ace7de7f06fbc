//! Threshold expressions: what counts as a pass, k6 style, checked against
//! the merged report so CI gets one exit code.
//!
//! Grammar (whitespace between tokens is optional, a unit may stand apart
//! from its number, names and units are case-insensitive, stage names are
//! matched exactly):
//!
//! ```text
//! threshold := [stage "."] metric op value ["warn" value] ["abort"]
//! op        := "<" | "<=" | ">" | ">=" | "==" | "!="
//! ```
//!
//! | metric | value | example |
//! | --- | --- | --- |
//! | `p50 p90 p95 p99 p999 max mean` | latency; `us`, `ms`, `s`; bare = ms | `p99 < 100ms` |
//! | `success_rate`, `error_rate` | fraction, or percent | `success_rate > 99%` |
//! | `achieved_rps`, `throughput_rps` | req/s, or percent of the target rate | `achieved_rps >= 99%` |
//! | `dropped`, `errors` | count | `errors == 0` |
//! | `recovery_time` | `ms`, `s`, `m`; bare = s | `recovery_time < 30s` |
//!
//! **Tiers** follow the reference guide's target / acceptable / critical
//! columns: `p99 < 100ms warn 50ms` fails at 100 ms or more, warns at 50 ms or
//! more, passes below. The warn level uses the same operator and must be at
//! least as strict as the limit, so the three bands never overlap. `warn` and
//! `abort` may come in either order.
//!
//! **Abort**: a trailing `abort` (`error_rate < 0.05 abort`) asks the
//! coordinator to also check the threshold every second, on that second's
//! figures alone ([`check_interval`]), and stop a run that is already lost.
//!
//! A missing figure never passes: a run in which nothing succeeded has no
//! latency and fails `p99 < 100ms`; a `recovery_time` threshold fails when
//! there is no burst to measure or a burst never recovered.

mod parse;

pub use parse::parse;

use crate::report::{
    IntervalReport, Latency, Recovery, Report, StageReport, ThresholdStatus, ThresholdVerdict,
};

/// A report figure a threshold can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Median latency, in ms from the scheduled send time (as all latencies).
    P50,
    /// 90th percentile latency.
    P90,
    /// 95th percentile latency.
    P95,
    /// 99th percentile latency.
    P99,
    /// 99.9th percentile latency.
    P999,
    /// Slowest response.
    Max,
    /// Mean latency.
    Mean,
    /// ok / intended.
    SuccessRate,
    /// errors / intended.
    ErrorRate,
    /// Requests put on the wire per second.
    AchievedRps,
    /// Successful responses per second.
    ThroughputRps,
    /// Requests that could not be sent on time.
    Dropped,
    /// Requests that failed, of any kind.
    Errors,
    /// Seconds from a burst's end until latency and errors were back to normal.
    RecoveryTime,
    /// Soak degradation of a long stage (first versus last tenth), a
    /// fraction; unscoped, the worst stage's.
    Degradation,
}

use Metric::*;

const METRICS: [(&str, Metric); 15] = [
    ("p50", P50),
    ("p90", P90),
    ("p95", P95),
    ("p99", P99),
    ("p999", P999),
    ("max", Max),
    ("mean", Mean),
    ("success_rate", SuccessRate),
    ("error_rate", ErrorRate),
    ("achieved_rps", AchievedRps),
    ("throughput_rps", ThroughputRps),
    ("dropped", Dropped),
    ("errors", Errors),
    ("recovery_time", RecoveryTime),
    ("degradation", Degradation),
];

/// How a metric's value is written, which decides the units it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Latency,
    Fraction,
    Rate,
    Count,
    Duration,
}

impl Metric {
    /// The name as written in expressions.
    pub fn name(self) -> &'static str {
        METRICS
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("?", |(n, _)| n)
    }

    fn kind(self) -> Kind {
        match self {
            P50 | P90 | P95 | P99 | P999 | Max | Mean => Kind::Latency,
            SuccessRate | ErrorRate | Degradation => Kind::Fraction,
            AchievedRps | ThroughputRps => Kind::Rate,
            Dropped | Errors => Kind::Count,
            RecoveryTime => Kind::Duration,
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    /// Whether `actual op limit` holds. Values equal to within a relative
    /// 1e-9 count as equal, so `p99 <= 0.1s` is not lost to the rounding of
    /// a unit conversion.
    pub fn holds(self, actual: f64, limit: f64) -> bool {
        let eq = (actual - limit).abs() <= 1e-9 * actual.abs().max(limit.abs()).max(1.0);
        match self {
            Op::Lt => actual < limit && !eq,
            Op::Le => actual < limit || eq,
            Op::Gt => actual > limit && !eq,
            Op::Ge => actual > limit || eq,
            Op::Eq => eq,
            Op::Ne => !eq,
        }
    }

    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            _ => return None,
        })
    }
}

/// A threshold's bound, in the metric's natural unit (ms, fraction, req/s,
/// count, seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// An absolute bound.
    Value(f64),
    /// A fraction of the target rate (`achieved_rps >= 99%` is 0.99), for
    /// rate metrics: resolved against the run's, stage's or second's target.
    OfTarget(f64),
}

impl Limit {
    fn resolve(self, target_rps: f64) -> f64 {
        match self {
            Limit::Value(v) => v,
            Limit::OfTarget(f) => f * target_rps,
        }
    }
}

/// One parsed threshold expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as written, echoed in the verdict.
    pub expr: String,
    /// The stage it is scoped to (`burst.p99`); `None` for the whole run.
    pub stage: Option<String>,
    /// What is measured.
    pub metric: Metric,
    /// How it is compared with the limits.
    pub op: Op,
    /// Failing this fails the threshold.
    pub limit: Limit,
    /// Failing this (but not `limit`) makes the verdict "warn".
    pub warn: Option<Limit>,
    /// Also checked every second during the run; see [`check_interval`].
    pub abort: bool,
}

/// A threshold that cannot be parsed: names the expression and says what was
/// expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("threshold `{expr}`: {message}")]
pub struct ThresholdError {
    /// The expression as written.
    pub expr: String,
    /// What was wrong and what was expected.
    pub message: String,
}

fn latency(m: Metric, l: &Latency) -> Option<f64> {
    match m {
        P50 => l.p50,
        P90 => l.p90,
        P95 => l.p95,
        P99 => l.p99,
        P999 => l.p999,
        Max => l.max,
        Mean => l.mean,
        _ => None,
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// A figure to judge: `None` fails whatever the operator, and so does a burst
/// that never recovered.
struct Measured {
    actual: Option<f64>,
    target_rps: f64,
    unrecovered: bool,
}

fn recovery_time<'a>(recs: impl Iterator<Item = &'a Recovery>) -> Measured {
    let mut m = Measured {
        actual: None,
        target_rps: 0.0,
        unrecovered: false,
    };
    for r in recs {
        m.actual = Some(
            m.actual
                .map_or(r.recovery_time_s, |a: f64| a.max(r.recovery_time_s)),
        );
        m.unrecovered |= !r.recovered;
    }
    m
}

fn measure_run(m: Metric, r: &Report) -> Measured {
    let actual = match m {
        SuccessRate => Some(r.success_rate),
        ErrorRate => Some(r.error_rate),
        AchievedRps => Some(r.achieved_rps),
        ThroughputRps => Some(r.throughput_rps),
        Dropped => Some(r.requests.dropped as f64),
        Errors => Some(r.requests.errors as f64),
        RecoveryTime => return recovery_time(r.recovery.iter()),
        Degradation => r
            .stages
            .iter()
            .filter_map(|s| s.soak.map(|k| k.degradation))
            .reduce(f64::max),
        _ => latency(m, &r.latency_ms),
    };
    Measured {
        actual,
        target_rps: r.target_rps,
        unrecovered: false,
    }
}

fn measure_stage(m: Metric, s: &StageReport, r: &Report) -> Measured {
    let q = &s.requests;
    let actual = match m {
        SuccessRate => Some(s.success_rate),
        ErrorRate => Some(ratio(q.errors, q.intended)),
        AchievedRps => Some(s.achieved_rps),
        ThroughputRps => Some(s.throughput_rps),
        Dropped => Some(q.dropped as f64),
        Errors => Some(q.errors as f64),
        RecoveryTime => return recovery_time(r.recovery.iter().filter(|x| x.stage == s.name)),
        Degradation => s.soak.map(|k| k.degradation),
        _ => latency(m, &s.latency_ms),
    };
    Measured {
        actual,
        target_rps: s.target_rps,
        unrecovered: false,
    }
}

/// Judges a threshold on the merged report (or its stage, when scoped).
pub fn evaluate(t: &Threshold, r: &Report) -> ThresholdVerdict {
    let m = match &t.stage {
        None => measure_run(t.metric, r),
        Some(name) => match r.stages.iter().find(|s| s.name == *name) {
            Some(s) => measure_stage(t.metric, s, r),
            None => Measured {
                actual: None,
                target_rps: 0.0,
                unrecovered: false,
            },
        },
    };
    let status = match m.actual {
        Some(a) if !m.unrecovered && t.op.holds(a, t.limit.resolve(m.target_rps)) => match t.warn {
            Some(w) if !t.op.holds(a, w.resolve(m.target_rps)) => ThresholdStatus::Warn,
            _ => ThresholdStatus::Pass,
        },
        _ => ThresholdStatus::Fail,
    };
    ThresholdVerdict::new(t.expr.clone(), m.actual, status)
}

/// Parses every expression against the report's stage names, then judges
/// them all; the first unparsable expression is the error.
pub fn evaluate_all(exprs: &[String], r: &Report) -> Result<Vec<ThresholdVerdict>, ThresholdError> {
    let names: Vec<&str> = r.stages.iter().map(|s| s.name.as_str()).collect();
    let parsed = exprs
        .iter()
        .map(|e| parse(e, &names))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(parsed.iter().map(|t| evaluate(t, r)).collect())
}

/// Judges a threshold on one second's figures, for `abort` thresholds the
/// coordinator checks while the run goes on. `Some(false)` means that second
/// alone already breaks the limit (warn levels play no part).
///
/// `None` when the second cannot say: the metric has no per-second figure
/// (p90, p95, p999, mean, recovery_time), the second intended no requests
/// (draining), it belongs to another stage than the threshold's, or nothing
/// has finished yet. A second whose requests all failed has no latency and
/// fails latency thresholds, as a run would. Counts (`dropped`, `errors`) are
/// that second's, judged only for upper bounds (`<`, `<=`, `== 0`): one second
/// over such a bound dooms the run total, while one second under a lower bound
/// proves nothing.
pub fn check_interval(t: &Threshold, i: &IntervalReport) -> Option<bool> {
    if t.stage.as_ref().is_some_and(|s| **s != *i.stage) || i.intended == 0 {
        return None;
    }
    let limit = t.limit.resolve(i.target_rps);
    let actual = match t.metric {
        P50 | P99 | Max => {
            let v = match t.metric {
                P50 => i.p50_ms,
                P99 => i.p99_ms,
                _ => i.max_ms,
            };
            match v {
                Some(v) => v,
                None => return (i.errors + i.dropped > 0).then_some(false),
            }
        }
        ErrorRate => ratio(i.errors, i.intended),
        SuccessRate => ratio(i.ok, i.intended),
        AchievedRps => i.achieved_rps,
        ThroughputRps => i.ok as f64,
        Dropped | Errors => {
            let upper = matches!(t.op, Op::Lt | Op::Le) || (t.op == Op::Eq && limit == 0.0);
            if !upper {
                return None;
            }
            (if t.metric == Dropped {
                i.dropped
            } else {
                i.errors
            }) as f64
        }
        P90 | P95 | P999 | Mean | RecoveryTime | Degradation => return None,
    };
    Some(t.op.holds(actual, limit))
}

#[cfg(test)]
mod tests;
