//! Threshold expressions: what counts as a pass, k6 style, checked against
//! the merged report so CI gets one exit code.
//!
//! Grammar (whitespace between tokens is optional, names are
//! case-insensitive, stage names are matched exactly):
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
//! more, passes below. The warn level uses the same operator and must be the
//! stricter of the two, so the three bands never overlap.
//!
//! **Abort**: a trailing `abort` (`error_rate < 0.05 abort`) asks the
//! coordinator to also check the threshold every second, on that second's
//! figures alone ([`check_interval`]), and stop a run that is already lost.
//!
//! A missing figure never passes: a run in which nothing succeeded has no
//! latency and fails `p99 < 100ms`; a `recovery_time` threshold fails when
//! there is no burst to measure or a burst never recovered.

use crate::report::{IntervalReport, Latency, Recovery, Report, StageReport, ThresholdVerdict};

/// A report figure a threshold can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    P50,
    P90,
    P95,
    P99,
    P999,
    Max,
    Mean,
    SuccessRate,
    ErrorRate,
    AchievedRps,
    ThroughputRps,
    Dropped,
    Errors,
    RecoveryTime,
}

use Metric::*;

const METRICS: [(&str, Metric); 14] = [
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
];

const SYNTAX: &str = "expected `<metric> <op> <value>` (optionally `<stage>.<metric>`, then \
     `warn <value>` and/or `abort`), metric one of p50, p90, p95, p99, p999, max, mean, \
     success_rate, error_rate, achieved_rps, throughput_rps, dropped, errors, recovery_time";

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
        METRICS.iter().find(|(_, m)| *m == self).map_or("?", |(n, _)| n)
    }

    fn kind(self) -> Kind {
        match self {
            P50 | P90 | P95 | P99 | P999 | Max | Mean => Kind::Latency,
            SuccessRate | ErrorRate => Kind::Fraction,
            AchievedRps | ThroughputRps => Kind::Rate,
            Dropped | Errors => Kind::Count,
            RecoveryTime => Kind::Duration,
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
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
    pub metric: Metric,
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
    pub expr: String,
    pub message: String,
}

/// Parses one expression. `stages` are the scenario's stage names, used to
/// reject a scope that names no stage; pass `&[]` when they are not known.
pub fn parse(expr: &str, stages: &[&str]) -> Result<Threshold, ThresholdError> {
    parse_inner(expr, stages).map_err(|message| ThresholdError {
        expr: expr.to_owned(),
        message,
    })
}

fn parse_inner(expr: &str, stages: &[&str]) -> Result<Threshold, String> {
    let s = expr.trim();
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
    let name_end = s.find(|c: char| !is_name(c)).unwrap_or(s.len());
    let (name, rest) = s.split_at(name_end);
    if name.is_empty() {
        return Err(format!("{SYNTAX}; got {s:?}"));
    }
    let (stage, metric_name) = match name.split_once('.') {
        None => (None, name),
        Some((st, m)) => (Some(st), m),
    };
    let lower = metric_name.to_ascii_lowercase();
    let Some(&(_, metric)) = METRICS.iter().find(|(n, _)| *n == lower) else {
        return Err(format!("unknown metric `{metric_name}`: {SYNTAX}"));
    };
    if let Some(st) = stage {
        if st.is_empty() || st.contains('.') {
            return Err(format!(
                "expected a stage name of letters, digits, '_' or '-' before `.{metric_name}`, got `{st}`"
            ));
        }
        if !stages.is_empty() && !stages.contains(&st) {
            return Err(format!(
                "unknown stage `{st}`: expected one of {}",
                stages.join(", ")
            ));
        }
    }

    let rest = rest.trim_start();
    let op_end = rest
        .find(|c: char| !"<>=!".contains(c))
        .unwrap_or(rest.len());
    let (op_text, rest) = rest.split_at(op_end);
    let op = match Op::parse(op_text) {
        Some(op) => op,
        None if op_text == "=" => return Err("expected `==` for equality, got `=`".into()),
        None => {
            let got = if op_text.is_empty() { rest.split_whitespace().next().unwrap_or("nothing") } else { op_text };
            return Err(format!(
                "expected an operator (<, <=, >, >=, ==, !=) after `{name}`, got `{got}`"
            ));
        }
    };

    let mut words = rest.split_whitespace();
    let Some(value_text) = words.next() else {
        return Err(format!("expected a value after `{op_text}`, as in `{}`", example(metric)));
    };
    let limit = value(metric, value_text)?;
    let (mut warn, mut abort) = (None, false);
    while let Some(w) = words.next() {
        match w.to_ascii_lowercase().as_str() {
            "warn" if warn.is_none() => {
                let v = words
                    .next()
                    .ok_or_else(|| format!("expected a value after `warn`, as in `{}`", example_warn(metric)))?;
                warn = Some(value(metric, v)?);
            }
            "abort" if !abort => abort = true,
            "warn" | "abort" => return Err(format!("`{w}` is given twice")),
            _ => {
                return Err(format!(
                    "unexpected `{w}` after the value: expected `warn <value>` or `abort`"
                ))
            }
        }
    }
    if let Some(w) = warn {
        check_warn(metric, op, limit, w)?;
    }
    Ok(Threshold {
        expr: expr.to_owned(),
        stage: stage.map(str::to_owned),
        metric,
        op,
        limit,
        warn,
        abort,
    })
}

fn example(m: Metric) -> &'static str {
    match m.kind() {
        Kind::Latency => "p99 < 100ms",
        Kind::Fraction => "success_rate > 0.99",
        Kind::Rate => "achieved_rps >= 99%",
        Kind::Count => "errors == 0",
        Kind::Duration => "recovery_time < 30s",
    }
}

fn example_warn(m: Metric) -> &'static str {
    match m.kind() {
        Kind::Latency => "p99 < 100ms warn 50ms",
        Kind::Fraction => "success_rate > 99% warn 99.9%",
        Kind::Rate => "achieved_rps >= 95% warn 99%",
        Kind::Count => "errors < 100 warn 10",
        Kind::Duration => "recovery_time < 2m warn 30s",
    }
}

/// The warn level must sit strictly inside the passing side, so that
/// pass ⊂ not-warn ⊂ not-fail.
fn check_warn(metric: Metric, op: Op, limit: Limit, warn: Limit) -> Result<(), String> {
    let (l, w) = match (limit, warn) {
        (Limit::Value(l), Limit::Value(w)) | (Limit::OfTarget(l), Limit::OfTarget(w)) => (l, w),
        _ => {
            return Err(
                "write the warn level in the same form as the limit (both percent of target, or both req/s)"
                    .into(),
            )
        }
    };
    let stricter = match op {
        Op::Lt | Op::Le => w <= l,
        Op::Gt | Op::Ge => w >= l,
        Op::Eq | Op::Ne => {
            return Err("`warn` needs an ordering operator (<, <=, >, >=), not == or !=".into())
        }
    };
    if stricter {
        Ok(())
    } else {
        let (ops, side) = if matches!(op, Op::Lt | Op::Le) {
            ("`<` or `<=`", "above")
        } else {
            ("`>` or `>=`", "below")
        };
        Err(format!(
            "with {ops} the warn level must not be {side} the limit (it is the stricter, \
             target level), as in `{}`",
            example_warn(metric)
        ))
    }
}

/// Parses a value in the metric's units into its natural unit.
fn value(metric: Metric, text: &str) -> Result<Limit, String> {
    let unit_len: usize = text
        .chars()
        .rev()
        .take_while(|c| c.is_alphabetic() || *c == '%')
        .map(char::len_utf8)
        .sum();
    let (num, unit) = text.split_at(text.len() - unit_len);
    let expected = match metric.kind() {
        Kind::Latency => "a latency such as 100ms, 250us or 0.5s (a bare number is ms)",
        Kind::Fraction => "a fraction between 0 and 1 such as 0.99, or a percentage such as 99%",
        Kind::Rate => "a rate in req/s such as 1000, or a percentage of the target rate such as 99%",
        Kind::Count => "a count such as 0 or 100",
        Kind::Duration => "a duration such as 30s, 500ms or 2m (a bare number is seconds)",
    };
    let bad = || format!("expected {expected}, got `{text}`");
    let n: f64 = num.parse().map_err(|_| bad())?;
    if !n.is_finite() || n < 0.0 {
        return Err(bad());
    }
    let unit = unit.to_lowercase();
    let v = match (metric.kind(), unit.as_str()) {
        (Kind::Latency, "" | "ms") => n,
        (Kind::Latency, "us" | "µs") => n / 1000.0,
        (Kind::Latency, "s") => n * 1000.0,
        (Kind::Fraction, "") if n <= 1.0 => n,
        (Kind::Fraction, "") => return Err(format!("{}; for {n} percent write {n}%", bad())),
        (Kind::Fraction, "%") if n <= 100.0 => n / 100.0,
        (Kind::Rate, "") | (Kind::Count, "") => n,
        (Kind::Rate, "%") => return Ok(Limit::OfTarget(n / 100.0)),
        (Kind::Duration, "" | "s") => n,
        (Kind::Duration, "ms") => n / 1000.0,
        (Kind::Duration, "m") => n * 60.0,
        _ => return Err(bad()),
    };
    Ok(Limit::Value(v))
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
    let mut m = Measured { actual: None, target_rps: 0.0, unrecovered: false };
    for r in recs {
        m.actual = Some(m.actual.map_or(r.recovery_time_s, |a: f64| a.max(r.recovery_time_s)));
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
        _ => latency(m, &r.latency_ms),
    };
    Measured { actual, target_rps: r.target_rps, unrecovered: false }
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
        _ => latency(m, &s.latency_ms),
    };
    Measured { actual, target_rps: s.target_rps, unrecovered: false }
}

/// Judges a threshold on the merged report (or its stage, when scoped).
pub fn evaluate(t: &Threshold, r: &Report) -> ThresholdVerdict {
    let m = match &t.stage {
        None => measure_run(t.metric, r),
        Some(name) => match r.stages.iter().find(|s| s.name == *name) {
            Some(s) => measure_stage(t.metric, s, r),
            None => Measured { actual: None, target_rps: 0.0, unrecovered: false },
        },
    };
    let status = match m.actual {
        Some(a) if !m.unrecovered && t.op.holds(a, t.limit.resolve(m.target_rps)) => {
            match t.warn {
                Some(w) if !t.op.holds(a, w.resolve(m.target_rps)) => "warn",
                _ => "pass",
            }
        }
        _ => "fail",
    };
    ThresholdVerdict {
        expr: t.expr.clone(),
        actual: m.actual,
        pass: status != "fail",
        status: status.to_owned(),
    }
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
    if t.stage.as_ref().is_some_and(|s| *s != i.stage) || i.intended == 0 {
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
            (if t.metric == Dropped { i.dropped } else { i.errors }) as f64
        }
        P90 | P95 | P999 | Mean | RecoveryTime => return None,
    };
    Some(t.op.holds(actual, limit))
}

#[cfg(test)]
mod tests;
