//! Parsing threshold expressions; the grammar is in the parent module's
//! documentation. Every error says what was expected.

use super::{Kind, Limit, Metric, Op, Threshold, ThresholdError, METRICS};
use std::iter::Peekable;

const SYNTAX: &str = "expected `<metric> <op> <value>` (optionally `<stage>.<metric>`, then \
     `warn <value>` and/or `abort`), metric one of p50, p90, p95, p99, p999, max, mean, \
     success_rate, error_rate, achieved_rps, throughput_rps, dropped, errors, recovery_time";

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
    if name.to_ascii_lowercase().ends_with("p99.9") {
        return Err(format!("write p99.9 as `p999`: {SYNTAX}"));
    }
    let (stage, metric_name) = match name.rsplit_once('.') {
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
            let got = if op_text.is_empty() {
                rest.split_whitespace().next().unwrap_or("nothing")
            } else {
                op_text
            };
            return Err(format!(
                "expected an operator (<, <=, >, >=, ==, !=) after `{name}`, got `{got}`"
            ));
        }
    };

    let mut words = rest.split_whitespace().peekable();
    let Some(number) = words.next() else {
        return Err(format!(
            "expected a value after `{op_text}`, as in `{}`",
            example(metric)
        ));
    };
    let limit = value(metric, &with_unit(number, &mut words))?;
    let (mut warn, mut abort) = (None, false);
    while let Some(w) = words.next() {
        match w.to_ascii_lowercase().as_str() {
            "warn" if warn.is_none() => {
                let v = words.next().ok_or_else(|| {
                    format!(
                        "expected a value after `warn`, as in `{}`",
                        example_warn(metric)
                    )
                })?;
                warn = Some(value(metric, &with_unit(v, &mut words))?);
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

/// A value, joined with its unit when the two are written apart (`100 ms`).
fn with_unit<'a>(number: &str, words: &mut Peekable<impl Iterator<Item = &'a str>>) -> String {
    let is_unit = |w: &str| {
        w.chars().all(|c| c.is_alphabetic() || c == '%')
            && !w.eq_ignore_ascii_case("warn")
            && !w.eq_ignore_ascii_case("abort")
    };
    match words.peek() {
        Some(u) if number.ends_with(|c: char| c.is_ascii_digit()) && is_unit(u) => {
            format!("{number}{}", words.next().unwrap_or_default())
        }
        _ => number.to_owned(),
    }
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

/// The warn level must lie on the passing side of the limit (or on it), so
/// that every value that passes the warn level also passes the limit.
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
        Kind::Rate => {
            "a rate in req/s such as 1000, or a percentage of the target rate such as 99%"
        }
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
