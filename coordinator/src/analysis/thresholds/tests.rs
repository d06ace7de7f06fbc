//! Threshold parsing, judging on a report, and per-second abort checks.

use super::*;
use crate::analysis::fixture;
use ThresholdStatus::{Fail, Pass, Warn};

const STAGES: &[&str] = &["steady", "burst"];

fn p(expr: &str) -> Threshold {
    parse(expr, STAGES).unwrap_or_else(|e| panic!("{e}"))
}

fn err(expr: &str) -> String {
    parse(expr, STAGES).unwrap_err().to_string()
}

fn limit(expr: &str) -> f64 {
    match p(expr).limit {
        Limit::Value(v) => v,
        other => panic!("{other:?}"),
    }
}

fn status(expr: &str, r: &Report) -> (ThresholdStatus, Option<f64>) {
    let v = evaluate(&p(expr), r);
    assert_eq!(v.expr, expr);
    assert_eq!(v.pass, v.status != Fail);
    (v.status, v.actual)
}

fn st(expr: &str, r: &Report) -> ThresholdStatus {
    status(expr, r).0
}

#[test]
fn parses_the_parts() {
    let t = p("burst.p99 <= 200ms warn 150ms abort");
    assert_eq!(t.stage.as_deref(), Some("burst"));
    assert_eq!((t.metric, t.op), (P99, Op::Le));
    assert_eq!(t.limit, Limit::Value(200.0));
    assert_eq!(t.warn, Some(Limit::Value(150.0)));
    assert!(t.abort);
    let t = p("success_rate > 0.99");
    assert_eq!((t.stage, t.warn, t.abort), (None, None, false));
    for (op, want) in [
        ("<", Op::Lt),
        ("<=", Op::Le),
        (">", Op::Gt),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
    ] {
        assert_eq!(p(&format!("errors {op} 5")).op, want);
    }
    for (name, m) in METRICS {
        assert_eq!(m.name(), name);
        assert_eq!(p(&format!("{} >= 0", name.to_uppercase())).metric, m);
    }
}

#[test]
fn whitespace_and_case_are_tolerated() {
    for e in [
        "p99<100ms",
        "  p99   <   100ms  ",
        "P99 < 100MS",
        "\tp99 <100 ms",
    ] {
        assert_eq!(p(e).limit, Limit::Value(100.0), "{e}");
    }
    assert_eq!(p("success_rate > 99 %").limit, Limit::Value(0.99));
    assert_eq!(p("p99 < 1 s warn 500 ms").warn, Some(Limit::Value(500.0)));
    assert!(p("p99 < 100ms WARN 50ms Abort").abort);
    assert_eq!(p("burst.P99 < 1s").stage.as_deref(), Some("burst"));
}

#[test]
fn units_convert_to_the_natural_unit() {
    assert_eq!(limit("p99 < 100"), 100.0);
    assert_eq!(limit("p99 < 100ms"), 100.0);
    assert_eq!(limit("p99 < 0.1s"), 100.0);
    assert_eq!(limit("p99 < 250us"), 0.25);
    assert_eq!(limit("p99 < 250µs"), 0.25);
    assert_eq!(limit("mean < 1e3us"), 1.0);
    assert_eq!(limit("success_rate > 0.99"), 0.99);
    assert_eq!(limit("success_rate > 99%"), 0.99);
    assert_eq!(limit("error_rate < 0.5%"), 0.005);
    assert_eq!(limit("achieved_rps > 950"), 950.0);
    assert_eq!(p("achieved_rps >= 99%").limit, Limit::OfTarget(0.99));
    assert_eq!(p("throughput_rps >= 110%").limit, Limit::OfTarget(1.1));
    assert_eq!(limit("dropped == 0"), 0.0);
    assert_eq!(limit("recovery_time < 30"), 30.0);
    assert_eq!(limit("recovery_time < 30s"), 30.0);
    assert_eq!(limit("recovery_time < 500ms"), 0.5);
    assert_eq!(limit("recovery_time < 2m"), 120.0);
}

#[test]
fn errors_say_what_was_expected() {
    let cases = [
        ("", "expected `<metric> <op> <value>`"),
        ("< 100ms", "expected `<metric> <op> <value>`"),
        ("p98 < 1ms", "unknown metric `p98`"),
        (
            "p98 < 1ms",
            "p50, p90, p95, p99, p999, max, mean, success_rate",
        ),
        (
            "latency.p99 < 1ms",
            "unknown stage `latency`: expected one of steady, burst",
        ),
        (".p99 < 1ms", "expected a stage name"),
        ("a.b.p99 < 1ms", "expected a stage name"),
        (
            "p99 100ms",
            "expected an operator (<, <=, >, >=, ==, !=) after `p99`, got `100ms`",
        ),
        ("p99", "expected an operator"),
        ("p99 = 100", "expected `==` for equality"),
        ("p99 => 100", "expected an operator"),
        ("p99 <", "expected a value after `<`, as in `p99 < 100ms`"),
        ("p99 < fast", "expected a latency such as 100ms"),
        ("p99 < 100kb", "expected a latency"),
        ("p99 < 10%", "expected a latency"),
        ("p99 < -1ms", "expected a latency"),
        ("p99 < NaN", "got `NaN`"),
        ("p99 < inf", "got `inf`"),
        ("p99 < 1e999", "got `1e999`"),
        ("success_rate > 99", "for 99 percent write 99%"),
        ("success_rate > 101%", "expected a fraction"),
        ("success_rate > 0.9s", "expected a fraction"),
        ("achieved_rps > 10ms", "a percentage of the target rate"),
        ("errors < 5%", "expected a count"),
        ("recovery_time < 30us", "expected a duration such as 30s"),
        ("p99 < 100ms 50ms", "unexpected `50ms` after the value"),
        (
            "p99 < 100ms warn",
            "expected a value after `warn`, as in `p99 < 100ms warn 50ms`",
        ),
        ("p99 < 100ms warn 50ms warn 20ms", "`warn` is given twice"),
        ("p99 < 100ms abort abort", "`abort` is given twice"),
        ("p99 < 100ms warn 150ms", "must not be above the limit"),
        ("success_rate > 99% warn 98%", "must not be below the limit"),
        ("errors == 5 warn 2", "needs an ordering operator"),
        ("achieved_rps >= 95% warn 1000", "same form"),
    ];
    for (expr, want) in cases {
        let e = err(expr);
        assert!(e.contains(want), "{expr:?}: {e}");
        assert!(e.starts_with(&format!("threshold `{expr}`")), "{e}");
    }
}

#[test]
fn stages_are_checked_only_when_known() {
    assert_eq!(
        parse("warmup.p99 < 1s", &[]).unwrap().stage.as_deref(),
        Some("warmup")
    );
    assert!(
        parse("Burst.p99 < 1s", STAGES).is_err(),
        "stage names match exactly"
    );
    assert!(parse("stage-2_b.p99 < 1s", &["stage-2_b"]).is_ok());
}

#[test]
fn tiers_give_pass_warn_and_fail() {
    let r = fixture::report(); // p99 80 ms
    assert_eq!(status("p99 < 100ms warn 50ms", &r), (Warn, Some(80.0)));
    assert_eq!(st("p99 < 100ms warn 90ms", &r), Pass);
    assert_eq!(st("p99 < 100ms warn 80ms", &r), Warn);
    assert_eq!(st("p99 <= 100ms warn 80ms", &r), Pass);
    assert_eq!(st("p99 < 80ms warn 50ms", &r), Fail);
    assert_eq!(st("p99 < 0.08s", &r), Fail);
    assert_eq!(st("p99 <= 0.08s", &r), Pass);
    assert_eq!(st("success_rate > 99% warn 99.95%", &r), Warn);
    assert_eq!(st("success_rate >= 0.999", &r), Pass);
    assert_eq!(st("success_rate != 0.999", &r), Fail);
}

#[test]
fn run_metrics_come_from_the_report() {
    let r = fixture::report();
    let actual = |e: &str| status(e, &r).1;
    assert_eq!(actual("p50 > 0"), Some(20.0));
    assert_eq!(actual("p90 > 0"), Some(50.0));
    assert_eq!(actual("p95 > 0"), Some(65.0));
    assert_eq!(actual("p99 > 0"), Some(80.0));
    assert_eq!(actual("p999 > 0"), Some(120.0));
    assert_eq!(actual("mean > 0"), r.latency_ms.mean);
    assert_eq!(actual("success_rate > 0"), Some(r.success_rate));
    assert_eq!(actual("achieved_rps > 0"), Some(r.achieved_rps));
    assert_eq!(actual("errors > 0"), Some(30.0));
    assert_eq!(actual("max > 0"), Some(160.0));
    assert_eq!(actual("error_rate > 0"), Some(0.0005));
    assert_eq!(actual("throughput_rps > 0"), Some(999.0));
    assert_eq!(actual("dropped > 0"), Some(30.0));
    assert_eq!(st("errors == 30", &r), Pass);
    assert_eq!(st("errors == 0", &r), Fail);
    assert_eq!(st("error_rate < 0.1%", &r), Pass);
}

#[test]
fn achieved_rps_in_percent_is_relative_to_the_target() {
    let r = fixture::report(); // 999.5 of 1000
    assert_eq!(status("achieved_rps >= 99%", &r), (Pass, Some(999.5)));
    assert_eq!(st("achieved_rps >= 99.96%", &r), Fail);
    assert_eq!(st("achieved_rps >= 99% warn 99.99%", &r), Warn);
    assert_eq!(st("achieved_rps >= 1000", &r), Fail);
    assert_eq!(st("throughput_rps < 100%", &r), Pass);
    // 99.9 % of 3,000 rps is 2,997, which the float product puts at
    // 2,997.0000000000005: a run that achieved exactly 2,997 passes.
    let mut r = fixture::report();
    r.target_rps = 3_000.0;
    r.achieved_rps = 2_997.0;
    assert_eq!(st("achieved_rps >= 99.9%", &r), Pass);
    assert_eq!(st("achieved_rps == 99.9%", &r), Pass);
    assert_eq!(st("achieved_rps > 99.9%", &r), Fail);
}

#[test]
fn no_successful_response_fails_every_latency_threshold() {
    let mut r = fixture::report();
    r.latency_ms = Latency::default();
    for e in ["p99 < 100ms", "p50 > 0", "max != 1", "mean <= 1s"] {
        assert_eq!(status(e, &r), (Fail, None), "{e}");
    }
}

#[test]
fn stage_scope_uses_that_stages_figures() {
    let mut r = fixture::report();
    r.stages[1].requests = fixture::requests(10_000, 9_000, 500);
    r.stages[1].achieved_rps = 900.0;
    assert_eq!(status("burst.p99 < 200ms", &r), (Fail, Some(300.0)));
    assert_eq!(status("steady.p99 < 200ms", &r), (Pass, Some(40.0)));
    assert_eq!(status("burst.error_rate < 1%", &r), (Fail, Some(0.05)));
    assert_eq!(status("burst.dropped == 500", &r).0, Pass);
    assert_eq!(status("burst.errors < 1000", &r).0, Pass);
    assert_eq!(status("steady.success_rate >= 0.99", &r).0, Pass);
    assert_eq!(status("burst.throughput_rps == 990", &r).0, Pass);
    // Percent of the stage's own target (1000), not the run's.
    r.stages[1].target_rps = 900.0;
    assert_eq!(st("burst.achieved_rps >= 100%", &r), Pass);
    // A scope the report does not have fails (parsed without stage names).
    let t = parse("warmup.p99 < 1s", &[]).unwrap();
    assert_eq!(evaluate(&t, &r).status, Fail);
}

fn soak(degradation: f64) -> Option<crate::report::Soak> {
    Some(crate::report::Soak {
        window_s: 5.0,
        first_achieved_rps: 1000.0,
        last_achieved_rps: 1000.0,
        first_p99_ms: Some(40.0),
        last_p99_ms: Some(40.0 * (1.0 + degradation)),
        degradation,
    })
}

#[test]
fn degradation_is_the_worst_soaked_stages_or_that_stages() {
    let mut r = fixture::report();
    // No stage long enough to soak: nothing to judge, so it fails.
    assert_eq!(status("degradation < 10%", &r), (Fail, None));
    assert_eq!(status("steady.degradation < 10%", &r), (Fail, None));
    r.stages[0].soak = soak(0.02);
    r.stages[1].soak = soak(0.25);
    // Unscoped: the worst stage's.
    assert_eq!(status("degradation < 10%", &r), (Fail, Some(0.25)));
    assert_eq!(st("degradation < 30% warn 20%", &r), Warn);
    // Scoped: that stage's own.
    assert_eq!(status("steady.degradation < 5%", &r), (Pass, Some(0.02)));
    assert_eq!(status("burst.degradation < 5%", &r), (Fail, Some(0.25)));
    // A stage without soak figures among soaked ones does not count.
    r.stages[1].soak = None;
    assert_eq!(status("degradation < 5%", &r), (Pass, Some(0.02)));
    assert_eq!(status("burst.degradation < 5%", &r), (Fail, None));
}

fn rec(stage: &str, recovered: bool, t: f64) -> Recovery {
    Recovery {
        stage: stage.into(),
        baseline_p99_ms: Some(10.0),
        calm_p99_ms: Some(11.0),
        peak_p99_ms: Some(100.0),
        recovered,
        recovery_time_s: t,
    }
}

#[test]
fn recovery_time_takes_the_worst_burst_and_fails_an_unrecovered_one() {
    let mut r = fixture::report();
    assert_eq!(
        status("recovery_time < 30s", &r),
        (Fail, None),
        "no bursts measured"
    );
    r.recovery = vec![rec("burst", true, 12.0), rec("b2", true, 3.0)];
    assert_eq!(status("recovery_time < 30s", &r), (Pass, Some(12.0)));
    assert_eq!(st("recovery_time < 2m warn 10s", &r), Warn);
    assert_eq!(st("recovery_time < 10000ms", &r), Fail);
    assert_eq!(status("burst.recovery_time < 10s", &r), (Fail, Some(12.0)));
    assert_eq!(st("steady.recovery_time < 1m", &r), Fail, "not a burst");
    r.recovery[1] = rec("b2", false, 5.0);
    // Not recovered within the 5 s observed: fails whatever the bound.
    assert_eq!(status("recovery_time < 30s", &r), (Fail, Some(12.0)));
    assert_eq!(st("recovery_time > 0", &r), Fail);
    assert_eq!(st("burst.recovery_time < 30s", &r), Pass);
}

#[test]
fn evaluate_all_parses_against_the_reports_stages() {
    let r = fixture::report();
    let exprs: Vec<String> = ["p99 < 100ms", "burst.p99 < 200ms"]
        .map(String::from)
        .into();
    let v = evaluate_all(&exprs, &r).unwrap();
    assert_eq!(v.iter().map(|v| v.pass).collect::<Vec<_>>(), [true, false]);
    let bad: Vec<String> = ["p99 < 100ms", "nope.p99 < 1s"].map(String::from).into();
    let e = evaluate_all(&bad, &r).unwrap_err();
    assert_eq!(e.expr, "nope.p99 < 1s");
    assert!(e.message.contains("unknown stage `nope`"), "{e}");
    assert!(evaluate_all(&[], &r).unwrap().is_empty());
}

fn second(stage: &str, intended: u64, ok: u64, errors: u64, p99: Option<f64>) -> IntervalReport {
    IntervalReport {
        t_s: 3,
        stage: stage.into(),
        target_rps: intended as f64,
        achieved_rps: (ok + errors) as f64,
        intended,
        ok,
        errors,
        dropped: intended - ok - errors,
        drop_reasons: Default::default(),
        p50_ms: p99.map(|v| v / 4.0),
        p90_ms: None,
        p99_ms: p99,
        max_ms: p99.map(|v| v * 2.0),
        workers: 2,
        worker_rss_mb_max: None,
        worker_cpu_pct_max: None,
        send_lag_ms: Default::default(),
    }
}

#[test]
fn abort_checks_judge_one_second() {
    let s = second("steady", 1000, 940, 50, Some(120.0));
    let check = |e: &str| check_interval(&p(e), &s);
    assert_eq!(check("p99 < 100ms abort"), Some(false));
    assert_eq!(check("p99 < 200ms"), Some(true));
    assert_eq!(check("p50 < 31ms"), Some(true));
    assert_eq!(check("max < 200ms"), Some(false));
    assert_eq!(check("error_rate < 0.05"), Some(false));
    assert_eq!(check("error_rate < 6%"), Some(true));
    assert_eq!(check("success_rate > 0.95"), Some(false));
    assert_eq!(check("achieved_rps >= 99%"), Some(true));
    assert_eq!(check("achieved_rps >= 999.5"), Some(false));
    assert_eq!(check("throughput_rps > 900"), Some(true));
    // Warn levels play no part in aborting.
    assert_eq!(check("p99 < 200ms warn 100ms"), Some(true));
    // Counts: only upper bounds, which one second can already break.
    assert_eq!(check("dropped < 5"), Some(false));
    assert_eq!(check("dropped <= 10"), Some(true));
    assert_eq!(check("errors == 0"), Some(false));
    assert_eq!(check("errors == 50"), None);
    assert_eq!(check("errors > 5"), None);
    // No per-second figure.
    for e in [
        "p90 < 1s",
        "p95 < 1s",
        "p999 < 1s",
        "mean < 1s",
        "recovery_time < 30s",
    ] {
        assert_eq!(check(e), None, "{e}");
    }
}

#[test]
fn abort_checks_skip_seconds_that_cannot_say() {
    let t = p("burst.p99 < 100ms abort");
    assert_eq!(
        check_interval(&t, &second("steady", 100, 100, 0, Some(500.0))),
        None
    );
    assert_eq!(
        check_interval(&t, &second("burst", 100, 100, 0, Some(500.0))),
        Some(false)
    );
    // Draining: nothing was intended.
    let drain = second("burst", 0, 0, 0, Some(500.0));
    assert_eq!(check_interval(&p("p99 < 100ms"), &drain), None);
    assert_eq!(check_interval(&p("error_rate < 1%"), &drain), None);
    // Nothing finished yet: wait. Everything failed: no latency is a fail.
    let pending = IntervalReport {
        dropped: 0,
        drop_reasons: Default::default(),
        ..second("steady", 100, 0, 0, None)
    };
    assert_eq!(check_interval(&p("p99 < 100ms"), &pending), None);
    let failed = second("steady", 100, 0, 100, None);
    assert_eq!(check_interval(&p("p99 < 100ms"), &failed), Some(false));
    assert_eq!(check_interval(&p("error_rate < 1%"), &failed), Some(false));
    // Nothing ok because everything was dropped, or half failed and half was
    // dropped: no latency either, and the second is over, so it fails too.
    let all_dropped = second("steady", 100, 0, 0, None);
    assert_eq!(check_interval(&p("p99 < 100ms"), &all_dropped), Some(false));
    let half_and_half = second("steady", 100, 0, 50, None);
    assert_eq!(half_and_half.dropped, 50);
    assert_eq!(check_interval(&p("max < 1s"), &half_and_half), Some(false));
}

#[test]
fn comparisons_forgive_float_rounding_only() {
    let (a, b) = (0.1 + 0.2, 0.3); // 0.30000000000000004 vs 0.3
    assert!(Op::Le.holds(a, b) && Op::Ge.holds(a, b) && Op::Eq.holds(a, b));
    assert!(!Op::Lt.holds(a, b) && !Op::Gt.holds(a, b) && !Op::Ne.holds(a, b));
    assert!(Op::Lt.holds(0.2999, 0.3) && !Op::Eq.holds(0.2999, 0.3));
    assert!(Op::Gt.holds(100.001, 100.0));
}
