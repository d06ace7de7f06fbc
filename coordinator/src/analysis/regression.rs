//! Comparing a run with a saved baseline: the reference guide's
//! RegressionDetector, extended to the figures a load test reports.
//!
//! With a threshold of *t* percent, a row regresses when:
//! - `throughput_rps`, `achieved_rps` (higher is better): current <
//!   baseline × (1 − t);
//! - `p50_ms`, `p99_ms`, `p999_ms` (lower is better): current >
//!   baseline × (1 + t);
//! - `success_rate`: judged on its complement, the failure fraction, because a
//!   relative drop of the success rate hides what users feel: 99.9 % → 95 %
//!   is only −4.9 %, yet fifty times as many requests fail. It regresses when
//!   the failure fraction grows by more than t of the baseline's *and* by more
//!   than 0.1 percentage points, so that 100 % → 99.999 % (noise) passes while
//!   99.9 % → 99.5 % fails;
//! - `error_rate`: the same rule, on errors / intended.
//!
//! Every row is reported, `pass` false only on the regressed ones. A latency
//! row is left out when either run has no latency (nothing succeeded): there
//! is no number to compare, and the throughput and success rows already flag
//! such a run.
//!
//! A tail percentile is judged only when both runs have at least
//! [`MIN_TAIL_SAMPLES`] requests beyond it: p99 from 1,000 ok requests, p99.9
//! from 10,000. Below that it is a handful of the slowest requests (the
//! p99.9 of 400 is the slowest one), which differs by 50–100 % between two
//! runs of the same system; judging it would fail CI on noise. Such a row is
//! shown with a `note` and passes.
//!
//! `change_pct` is (current − baseline) / baseline × 100. JSON has no
//! infinity, so growth from a baseline of 0 is reported as +100 % (the whole
//! current value is new), and 0 → 0 as 0 %.

use crate::report::{Regression, Report};

/// The smallest change of a failure fraction that counts as a regression:
/// 0.1 percentage points, the same margin DESIGN.md allows the error rate
/// when judging recovery.
pub const MIN_RATE_CHANGE: f64 = 0.001;

/// Requests a percentile needs beyond it, in both runs, to be judged.
pub const MIN_TAIL_SAMPLES: f64 = 10.0;

/// Which way a metric gets worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    HigherIsBetter,
    LowerIsBetter,
    /// A fraction that should stay near 1 (judged on 1 − value).
    Success,
    /// A fraction that should stay near 0.
    Failure,
}

fn regressed(rule: Rule, baseline: f64, current: f64, t: f64) -> bool {
    match rule {
        Rule::HigherIsBetter => current < baseline * (1.0 - t),
        Rule::LowerIsBetter => current > baseline * (1.0 + t),
        Rule::Success => regressed(Rule::Failure, 1.0 - baseline, 1.0 - current, t),
        Rule::Failure => current - baseline > (baseline * t).max(MIN_RATE_CHANGE),
    }
}

/// (current − baseline) / baseline × 100, finite by the module's conventions.
pub fn change_pct(baseline: f64, current: f64) -> f64 {
    if baseline == 0.0 {
        if current == 0.0 {
            0.0
        } else {
            100.0_f64.copysign(current)
        }
    } else {
        (current - baseline) / baseline * 100.0
    }
}

fn row(metric: &str, rule: Rule, baseline: f64, current: f64, t: f64) -> Regression {
    Regression {
        metric: metric.to_owned(),
        baseline,
        current,
        change_pct: change_pct(baseline, current),
        pass: !regressed(rule, baseline, current, t),
        note: None,
    }
}

/// Compares `current` with `baseline`. `threshold_pct` is in percent
/// (10.0 = 10 %), as [`parse_threshold_pct`] returns it; it is meant to lie
/// strictly between 0 and 100.
pub fn compare(current: &Report, baseline: &Report, threshold_pct: f64) -> Vec<Regression> {
    let t = threshold_pct / 100.0;
    let (c, b) = (current, baseline);
    let mut rows = vec![
        row(
            "throughput_rps",
            Rule::HigherIsBetter,
            b.throughput_rps,
            c.throughput_rps,
            t,
        ),
        row(
            "achieved_rps",
            Rule::HigherIsBetter,
            b.achieved_rps,
            c.achieved_rps,
            t,
        ),
        row(
            "success_rate",
            Rule::Success,
            b.success_rate,
            c.success_rate,
            t,
        ),
        row("error_rate", Rule::Failure, b.error_rate, c.error_rate, t),
    ];
    let latencies = [
        ("p50_ms", 0.50, b.latency_ms.p50, c.latency_ms.p50),
        ("p99_ms", 0.99, b.latency_ms.p99, c.latency_ms.p99),
        ("p999_ms", 0.999, b.latency_ms.p999, c.latency_ms.p999),
    ];
    let fewest_ok = b.requests.ok.min(c.requests.ok) as f64;
    for (name, q, bv, cv) in latencies {
        if let (Some(bv), Some(cv)) = (bv, cv) {
            let mut r = row(name, Rule::LowerIsBetter, bv, cv, t);
            let needed = (MIN_TAIL_SAMPLES / (1.0 - q)).round();
            if fewest_ok < needed {
                r.pass = true;
                r.note = Some(format!(
                    "not judged: {} ok requests, {needed} needed for a stable {}",
                    fewest_ok,
                    name.trim_end_matches("_ms")
                ));
            }
            rows.push(r);
        }
    }
    rows
}

/// Parses `--threshold`: "10%" and "10" both mean ten percent. Rejects values
/// outside (0, 100), and bare numbers below 1 such as "0.1", which look like a
/// fraction (the reference guide writes 10 % as 0.1) and would silently mean a
/// hundred times stricter; "0.5%" is accepted.
pub fn parse_threshold_pct(s: &str) -> Result<f64, String> {
    const EXPECTED: &str = "expected a percentage between 0 and 100 such as \"10%\" or \"10\"";
    let text = s.trim();
    let (num, percent) = match text.strip_suffix('%') {
        Some(n) => (n.trim_end(), true),
        None => (text, false),
    };
    let v: f64 = num.parse().map_err(|_| format!("{EXPECTED}, got {s:?}"))?;
    if !v.is_finite() || v <= 0.0 || v >= 100.0 {
        return Err(format!("{EXPECTED}, got {s:?}"));
    }
    if !percent && v < 1.0 {
        return Err(format!(
            "{s:?} looks like a fraction: write \"{}%\" for {} percent, or \"{v}%\" if you \
             mean {v} percent",
            v * 100.0,
            v * 100.0
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixture;
    use crate::report::Latency;

    fn find<'a>(rows: &'a [Regression], metric: &str) -> &'a Regression {
        rows.iter().find(|r| r.metric == metric).unwrap()
    }

    fn failing(rows: &[Regression]) -> Vec<&str> {
        rows.iter()
            .filter(|r| !r.pass)
            .map(|r| r.metric.as_str())
            .collect()
    }

    #[test]
    fn identical_runs_report_every_row_and_pass() {
        let r = fixture::report();
        let rows = compare(&r, &r, 10.0);
        let names: Vec<&str> = rows.iter().map(|r| r.metric.as_str()).collect();
        assert_eq!(
            names,
            [
                "throughput_rps",
                "achieved_rps",
                "success_rate",
                "error_rate",
                "p50_ms",
                "p99_ms",
                "p999_ms"
            ]
        );
        assert!(rows.iter().all(|r| r.pass && r.change_pct == 0.0));
    }

    #[test]
    fn tail_percentiles_of_too_few_requests_are_shown_but_not_judged() {
        let mut b = fixture::report();
        let mut c = b.clone();
        c.latency_ms.p50 = b.latency_ms.p50.map(|v| v * 2.0);
        c.latency_ms.p99 = b.latency_ms.p99.map(|v| v * 2.0);
        c.latency_ms.p999 = b.latency_ms.p999.map(|v| v * 2.0);
        // 400 ok requests: the p99 is their 4th slowest, the p99.9 the
        // slowest: doubled, yet not a verdict; the p50 is.
        b.requests.ok = 400;
        c.requests.ok = 20_000;
        let rows = compare(&c, &b, 10.0);
        assert_eq!(failing(&rows), ["p50_ms"]);
        for m in ["p99_ms", "p999_ms"] {
            let r = find(&rows, m);
            assert!(r.pass && (r.change_pct - 100.0).abs() < 1e-9, "{r:?}");
            assert!(
                r.note.as_deref().unwrap().contains("400 ok requests"),
                "{r:?}"
            );
        }
        // Enough in both runs: every doubling is judged.
        b.requests.ok = 10_000;
        let rows = compare(&c, &b, 10.0);
        assert_eq!(failing(&rows), ["p50_ms", "p99_ms", "p999_ms"]);
        assert!(rows.iter().all(|r| r.note.is_none()));
        // p99 needs 1,000.
        b.requests.ok = 1_000;
        assert_eq!(failing(&compare(&c, &b, 10.0)), ["p50_ms", "p99_ms"]);
    }

    #[test]
    fn throughput_regresses_beyond_the_threshold_only() {
        let b = fixture::report();
        let mut c = b.clone();
        c.throughput_rps = b.throughput_rps * 0.91; // −9 %
        c.achieved_rps = b.achieved_rps * 0.85; // −15 %
        let rows = compare(&c, &b, 10.0);
        assert_eq!(failing(&rows), ["achieved_rps"]);
        assert!((find(&rows, "throughput_rps").change_pct + 9.0).abs() < 1e-9);
        assert!((find(&rows, "achieved_rps").change_pct + 15.0).abs() < 1e-9);
        // Exactly at the boundary passes (the rule is strict): 900 of 1,000.
        let mut at = b.clone();
        at.throughput_rps = 1_000.0;
        let mut edge = at.clone();
        edge.throughput_rps = 900.0;
        assert!(find(&compare(&edge, &at, 10.0), "throughput_rps").pass);
        edge.throughput_rps = 899.9;
        assert!(!find(&compare(&edge, &at, 10.0), "throughput_rps").pass);
        // Faster is never a regression.
        c.throughput_rps = b.throughput_rps * 2.0;
        c.achieved_rps = b.achieved_rps;
        assert!(failing(&compare(&c, &b, 10.0)).is_empty());
    }

    #[test]
    fn latency_regresses_when_it_grows_beyond_the_threshold() {
        let b = fixture::report();
        let mut c = b.clone();
        c.latency_ms.p99 = Some(80.0 * 1.25);
        c.latency_ms.p50 = Some(20.0 * 1.05);
        c.latency_ms.p999 = Some(10.0); // much better
        let rows = compare(&c, &b, 10.0);
        assert_eq!(failing(&rows), ["p99_ms"]);
        let p99 = find(&rows, "p99_ms");
        assert_eq!((p99.baseline, p99.current), (80.0, 100.0));
        assert!((p99.change_pct - 25.0).abs() < 1e-9);
        // Exactly at the boundary passes (the rule is strict).
        c.latency_ms.p99 = Some(88.0);
        assert!(find(&compare(&c, &b, 10.0), "p99_ms").pass);
        // A looser threshold lets 25 % through.
        c.latency_ms.p99 = Some(100.0);
        assert!(find(&compare(&c, &b, 30.0), "p99_ms").pass);
    }

    #[test]
    fn success_rate_is_judged_on_the_failures() {
        let b = {
            let mut b = fixture::report();
            b.success_rate = 0.999;
            b
        };
        let with = |s: f64| {
            let mut c = b.clone();
            c.success_rate = s;
            find(&compare(&c, &b, 10.0), "success_rate").clone()
        };
        // −4.9 % relative, but 50 times the failures: a regression.
        let r = with(0.95);
        assert!(!r.pass);
        assert!((r.change_pct - (0.95 - 0.999) / 0.999 * 100.0).abs() < 1e-9);
        assert!(!with(0.995).pass);
        // Within 0.1 percentage points: noise.
        assert!(with(0.9985).pass);
        assert!(with(1.0).pass);
        // From a perfect baseline, a handful of failures is noise too.
        let mut perfect = b.clone();
        perfect.success_rate = 1.0;
        let mut c = perfect.clone();
        c.success_rate = 0.99999;
        assert!(find(&compare(&c, &perfect, 10.0), "success_rate").pass);
        c.success_rate = 0.99;
        assert!(!find(&compare(&c, &perfect, 10.0), "success_rate").pass);
        // At a poor baseline the relative part decides: 50 % → 47 % failures
        // up by 3 points is within 10 % of 50.
        let mut poor = b.clone();
        poor.success_rate = 0.5;
        c = poor.clone();
        c.success_rate = 0.47;
        assert!(find(&compare(&c, &poor, 10.0), "success_rate").pass);
        c.success_rate = 0.44;
        assert!(!find(&compare(&c, &poor, 10.0), "success_rate").pass);
    }

    #[test]
    fn error_rate_grows_into_a_regression() {
        let b = fixture::report(); // error_rate 0.0005
        let mut c = b.clone();
        c.error_rate = 0.0014; // +0.09 points
        assert!(find(&compare(&c, &b, 10.0), "error_rate").pass);
        // Growth of exactly 0.1 points passes (the rule is strict).
        let mut clean = b.clone();
        clean.error_rate = 0.0;
        let mut edge = clean.clone();
        edge.error_rate = MIN_RATE_CHANGE;
        assert!(find(&compare(&edge, &clean, 10.0), "error_rate").pass);
        edge.error_rate = 0.0011;
        assert!(!find(&compare(&edge, &clean, 10.0), "error_rate").pass);
        c.error_rate = 0.01;
        let r = find(&compare(&c, &b, 10.0), "error_rate").clone();
        assert!(!r.pass);
        assert!((r.change_pct - 1900.0).abs() < 1e-6);
    }

    #[test]
    fn change_pct_is_always_finite() {
        assert_eq!(change_pct(0.0, 0.0), 0.0);
        assert_eq!(change_pct(0.0, 0.02), 100.0);
        assert_eq!(change_pct(100.0, 0.0), -100.0);
        assert_eq!(change_pct(200.0, 250.0), 25.0);
        let mut b = fixture::report();
        b.error_rate = 0.0;
        let mut c = b.clone();
        c.error_rate = 0.05;
        let rows = compare(&c, &b, 10.0);
        assert!(rows.iter().all(|r| r.change_pct.is_finite()));
        assert!(!find(&rows, "error_rate").pass);
        assert!(serde_json::to_string(&rows)
            .unwrap()
            .contains("\"change_pct\":100.0"));
    }

    #[test]
    fn a_run_without_latency_drops_the_latency_rows_but_still_fails() {
        let b = fixture::report();
        let mut c = b.clone();
        c.latency_ms = Latency::default();
        c.throughput_rps = 0.0;
        c.success_rate = 0.0;
        let rows = compare(&c, &b, 10.0);
        assert!(rows.iter().all(|r| !r.metric.ends_with("_ms")));
        assert_eq!(failing(&rows), ["throughput_rps", "success_rate"]);
        // And the other way round: no latency in the baseline.
        assert!(compare(&b, &c, 10.0)
            .iter()
            .all(|r| !r.metric.ends_with("_ms")));
    }

    #[test]
    fn threshold_pct_parses_percent_and_rejects_ambiguity() {
        assert_eq!(parse_threshold_pct("10%"), Ok(10.0));
        assert_eq!(parse_threshold_pct(" 10 "), Ok(10.0));
        assert_eq!(parse_threshold_pct("2.5 %"), Ok(2.5));
        assert_eq!(parse_threshold_pct("0.5%"), Ok(0.5));
        assert_eq!(parse_threshold_pct("1"), Ok(1.0));
        let e = parse_threshold_pct("0.1").unwrap_err();
        assert!(
            e.contains("looks like a fraction") && e.contains("\"10%\""),
            "{e}"
        );
        for bad in [
            "0", "0%", "-5", "100", "100%", "250", "NaN", "inf", "", "%", "ten", "10%%",
        ] {
            let e = parse_threshold_pct(bad).unwrap_err();
            assert!(e.contains("between 0 and 100"), "{bad}: {e}");
        }
    }
}
