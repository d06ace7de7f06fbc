//! What valid scenarios turn into: every default and every accepted spelling.

use std::time::Duration;

use volley_plan::{Arrival, Body, Load, Protocol, Request, Tls};

use super::super::{load, BuiltinTarget, RecoveryOptions, ScenarioTarget, BUILTIN_PLACEHOLDER_URL};
use super::{ok, with_stage, with_target, EXAMPLES_DIR, MIN};

#[test]
fn minimal_scenario_gets_every_default() {
    let s = ok(MIN);
    assert_eq!(s.name, "t");
    assert!(s.thresholds.is_empty());
    assert_eq!(s.recovery, RecoveryOptions::default());
    assert_eq!(s.recovery.window, Duration::from_secs(5));
    assert_eq!(s.recovery.tolerance, 0.10);
    assert_eq!(s.target, ScenarioTarget::Builtin(BuiltinTarget::default()));
    let t = &s.plan.target;
    assert_eq!(t.url, BUILTIN_PLACEHOLDER_URL);
    assert_eq!(t.protocol, Protocol::Http1);
    assert_eq!(t.timeout, Duration::from_secs(5));
    assert_eq!(t.tls, Tls::default());
    assert_eq!(t.requests, [Request::get("/")]);
    let r = &t.requests[0];
    assert_eq!((r.name.as_str(), r.weight), ("GET /", 1));
    assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/"));
    assert_eq!(r.body, Body::Generated(0));
    assert!(r.headers.is_empty());
    assert_eq!(s.plan.load, Load::default());
    assert_eq!(s.plan.load.per_connection, 1);
    assert_eq!(s.plan.load.connections, 256);
    assert_eq!(s.plan.load.max_in_flight, 10_000);
    assert_eq!(s.plan.load.arrival, Arrival::Uniform);
    assert_eq!(s.plan.load.seed, 0);
    let st = &s.plan.stages[0];
    assert_eq!(st.name, "stage-1");
    assert_eq!(st.duration, Duration::from_secs(10));
    assert_eq!((st.from_rps, st.to_rps), (100.0, 100.0));
    assert!(!st.burst);
}

#[test]
fn builtin_defaults() {
    let b = BuiltinTarget::default();
    assert_eq!(b.delay, Duration::ZERO);
    assert_eq!(b.error_rate, 0.0);
    assert_eq!(b.body_size, 64);
    assert_eq!(b.capacity, None);
}

#[test]
fn name_defaults_to_the_file_stem() {
    let parse = |file| super::parse(MIN, file).unwrap().name;
    assert_eq!(parse("dir/soak-24h.toml"), "soak-24h");
    assert_eq!(parse("plain"), "plain");
    assert_eq!(parse(""), "scenario");
    assert_eq!(
        ok(&format!("name = \"Peak test\"\n{MIN}")).name,
        "Peak test"
    );
}

#[test]
fn the_design_example_parses() {
    let s = ok(r#"
name = "burst"
thresholds = ["p99 < 100ms", "success_rate > 0.99", "recovery_time < 30s"]

[target]
url = "http://127.0.0.1:8080/"      # or: builtin = true
protocol = "http1"
method = "POST"
body_size = 512
timeout = "5s"

[[stages]]
name = "baseline"
rate = 1000
duration = "60s"

[[stages]]
name = "burst"
rate = 50000
duration = "10s"
burst = true

[[stages]]
name = "after"
rate = 1000
duration = "60s"
"#);
    assert_eq!(s.name, "burst");
    assert_eq!(
        s.thresholds,
        ["p99 < 100ms", "success_rate > 0.99", "recovery_time < 30s"]
    );
    assert_eq!(s.target, ScenarioTarget::Url);
    assert_eq!(s.plan.target.url, "http://127.0.0.1:8080/");
    let r = &s.plan.target.requests[0];
    assert_eq!((r.name.as_str(), r.method.as_str()), ("POST /", "POST"));
    assert_eq!(r.body, Body::Generated(512));
    let names: Vec<_> = s.plan.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["baseline", "burst", "after"]);
    assert!(s.plan.stages[1].burst);
    assert_eq!(s.plan.stages[1].from_rps, 50_000.0);
    assert_eq!(s.plan.duration(), Duration::from_secs(130));
}

#[test]
fn method_defaults_to_post_with_a_body_and_is_uppercased() {
    let method = |lines: &str| {
        ok(&with_target(&format!("builtin = true\n{lines}")))
            .plan
            .target
            .requests[0]
            .method
            .clone()
    };
    assert_eq!(method("body_size = 1"), "POST");
    assert_eq!(method("body_size = 0"), "GET");
    assert_eq!(method("body_file = \"body.bin\""), "POST");
    // An empty file is no body.
    assert_eq!(method("body_file = \"empty.bin\""), "GET");
    assert_eq!(method("method = \"put\"\nbody_size = 10"), "PUT");
}

#[test]
fn sizes_take_units() {
    let size = |v: &str| {
        ok(&with_target(&format!("builtin = true\nbody_size = {v}")))
            .plan
            .target
            .requests[0]
            .body
            .len()
    };
    assert_eq!(size("512"), 512);
    assert_eq!(size("\"512B\""), 512);
    assert_eq!(size("\"1k\""), 1000);
    assert_eq!(size("\"1KiB\""), 1024);
    assert_eq!(size("\"1MiB\""), 1 << 20);
}

#[test]
fn builtin_settings_inline_and_as_sub_table() {
    let want = BuiltinTarget {
        delay: Duration::from_millis(2),
        error_rate: 0.01,
        body_size: 1024,
        capacity: Some(5000.0),
    };
    let inline = ok(&with_target(
        "builtin = { delay = \"2ms\", error_rate = 0.01, body_size = \"1KiB\", capacity = \"5k\" }",
    ));
    assert_eq!(inline.target, ScenarioTarget::Builtin(want.clone()));
    let sub = ok("[target.builtin]\ndelay = \"2ms\"\nerror_rate = \"1%\"\nbody_size = 1024\ncapacity = 5000\n\
                  [[stages]]\nrate = 1\nduration = \"1s\"\n");
    assert_eq!(sub.target, ScenarioTarget::Builtin(want));
    // An empty table is the built-in target with its defaults.
    let empty = ok(&with_target("builtin = {}"));
    assert_eq!(
        empty.target,
        ScenarioTarget::Builtin(BuiltinTarget::default())
    );
    assert_eq!(empty.plan.target.url, BUILTIN_PLACEHOLDER_URL);
}

#[test]
fn url_targets_keep_url_and_headers() {
    let s = ok(&with_target(
        "url = \"http://example.test:8080/api?x=1\"\nbuiltin = false\ntimeout = \"750ms\"\n\
         headers = { \"X-Id\" = \"7\", Authorization = \"Bearer t\" }",
    ));
    assert_eq!(s.target, ScenarioTarget::Url);
    assert_eq!(s.plan.target.url, "http://example.test:8080/api?x=1");
    assert_eq!(s.plan.target.timeout, Duration::from_millis(750));
    let r = &s.plan.target.requests[0];
    assert_eq!(r.path, "/api?x=1");
    assert_eq!(r.name, "GET /api?x=1");
    let mut h = r.headers.clone();
    h.sort();
    assert_eq!(
        h,
        [
            ("Authorization".into(), "Bearer t".into()),
            ("X-Id".into(), "7".into())
        ]
    );
}

#[test]
fn load_table() {
    let s = ok(&format!(
        "{MIN}\n[load]\nconnections = 8\nmax_in_flight = 100\narrival = \"poisson\"\nseed = 42\n"
    ));
    let l = &s.plan.load;
    assert_eq!(
        (l.connections, l.max_in_flight, l.arrival, l.seed),
        (8, 100, Arrival::Poisson, 42)
    );
    assert_eq!(
        (
            l.resolve_every,
            l.connection_lifetime,
            l.max_requests_per_connection
        ),
        (Some(Duration::from_secs(30)), None, None),
        "defaults: resolved every 30 s, connections kept"
    );
    let s = ok(&format!(
        "{MIN}\n[load]\nresolve_every = \"2s\"\nconnection_lifetime = \"1m\"\n\
         max_requests_per_connection = 1000\n"
    ));
    let l = &s.plan.load;
    assert_eq!(
        (
            l.resolve_every,
            l.connection_lifetime,
            l.max_requests_per_connection
        ),
        (
            Some(Duration::from_secs(2)),
            Some(Duration::from_secs(60)),
            Some(1000)
        )
    );
    let s = ok(&format!("{MIN}\n[load]\nresolve_every = \"never\"\n"));
    assert_eq!(s.plan.load.resolve_every, None);
}

#[test]
fn the_wake_gap_defaults_to_auto_and_takes_microseconds() {
    assert_eq!(ok(MIN).plan.load.wake_gap, None, "auto");
    let auto = ok(&format!("{MIN}\n[load]\nwake_gap = \"auto\"\n"));
    assert_eq!(auto.plan.load.wake_gap, None);
    for (text, want) in [
        ("\"200us\"", Duration::from_micros(200)),
        ("\"50µs\"", Duration::from_micros(50)),
        ("\"10ms\"", Duration::from_millis(10)),
    ] {
        let s = ok(&format!("{MIN}\n[load]\nwake_gap = {text}\n"));
        assert_eq!(s.plan.load.wake_gap, Some(want), "{text}");
    }
}

#[test]
fn rates_ramps_and_suffixes() {
    let rate = |v: &str| {
        ok(&with_stage(&format!("rate = {v}\nduration = \"1s\"")))
            .plan
            .stages[0]
            .from_rps
    };
    assert_eq!(rate("1000"), 1000.0);
    assert_eq!(rate("2.5"), 2.5);
    assert_eq!(rate("\"50000\""), 50_000.0);
    assert_eq!(rate("\"10k\""), 10_000.0);
    assert_eq!(rate("\"1.5M\""), 1_500_000.0);
    assert_eq!(rate("1_000"), 1000.0);

    let s = ok(&with_stage("from = 0\nto = \"2k\"\nduration = \"30s\""));
    let st = &s.plan.stages[0];
    assert_eq!((st.from_rps, st.to_rps), (0.0, 2000.0));
    let down = ok(&with_stage("from = 500\nto = 100\nduration = \"1s\""));
    assert_eq!(
        (down.plan.stages[0].from_rps, down.plan.stages[0].to_rps),
        (500.0, 100.0)
    );
}

#[test]
fn zero_rate_pauses_are_allowed_between_busy_stages() {
    let s = ok(
        "[target]\nbuiltin = true\n[[stages]]\nrate = 0\nduration = \"1s\"\n\
                [[stages]]\nrate = 10\nduration = \"1s\"\n",
    );
    assert_eq!(s.plan.stages.len(), 2);
}

#[test]
fn durations_take_humantime() {
    let dur = |v: &str| {
        ok(&with_stage(&format!("rate = 1\nduration = \"{v}\"")))
            .plan
            .stages[0]
            .duration
    };
    assert_eq!(dur("500ms"), Duration::from_millis(500));
    assert_eq!(dur("24h"), Duration::from_secs(86_400));
    assert_eq!(dur("1h30m"), Duration::from_secs(5_400));
    assert_eq!(dur("30days"), Duration::from_secs(30 * 86_400));
}

#[test]
fn recovery_options() {
    let r = |lines: &str| ok(&format!("{lines}\n{MIN}")).recovery;
    assert_eq!(
        r("recovery_window = \"10s\"").window,
        Duration::from_secs(10)
    );
    assert_eq!(r("recovery_tolerance = 0.2").tolerance, 0.2);
    assert_eq!(r("recovery_tolerance = \"15%\"").tolerance, 0.15);
}

#[test]
fn bom_and_crlf_are_accepted() {
    let crlf = MIN.replace('\n', "\r\n");
    assert_eq!(ok(&crlf).plan.stages.len(), 1);
    assert_eq!(ok(&format!("\u{feff}{MIN}")).plan.stages.len(), 1);
}

#[test]
fn stage_names_default_per_position_and_mix_with_explicit_ones() {
    let s = ok(
        "[target]\nbuiltin = true\n[[stages]]\nrate = 1\nduration = \"1s\"\n\
                [[stages]]\nname = \"peak_2\"\nrate = 1\nduration = \"1s\"\n\
                [[stages]]\nrate = 1\nduration = \"1s\"\n",
    );
    let names: Vec<_> = s.plan.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["stage-1", "peak_2", "stage-3"]);
}

#[test]
fn every_example_file_parses() {
    let mut seen = 0;
    for entry in std::fs::read_dir(EXAMPLES_DIR).expect("examples directory") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            load(&path).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "expected the example scenarios in {EXAMPLES_DIR}"
    );
}

#[test]
fn the_quickstart_is_what_the_readme_promises() {
    let s = load(std::path::Path::new(&format!(
        "{EXAMPLES_DIR}/quickstart.toml"
    )))
    .unwrap()
    .scenario;
    assert!(matches!(s.target, ScenarioTarget::Builtin(_)));
    let shape: Vec<_> = s
        .plan
        .stages
        .iter()
        .map(|s| (s.from_rps, s.duration.as_secs()))
        .collect();
    assert_eq!(shape, [(200.0, 3), (1000.0, 7)]);
    assert_eq!(s.thresholds, ["p99 < 100ms", "success_rate > 0.99"]);
}
