//! Property tests: nothing panics, and generated scenarios round-trip.

use std::collections::HashSet;
use std::time::Duration;

use proptest::prelude::*;

use volley_plan::Protocol;

use super::super::{builtin_placeholder_url, builtin_url, ScenarioTarget};
use super::parse;

type Keys = &'static [(&'static str, &'static [&'static str])];

/// Documents shaped like a scenario (top-level keys, `[target]`, `[load]`,
/// `[[stages]]`), mostly with plausible values for each key and sometimes an
/// absurd one or a misplaced key, to reach the semantic checks that random
/// text never gets past the TOML parser to.
fn scenario_ish() -> impl Strategy<Value = String> {
    const BAD: &[&str] = &[
        "-1",
        "0",
        "nan",
        "-inf",
        "99999999999999999999",
        "\"0s\"",
        "\"9999999h\"",
        "\"\"",
        "[]",
        "{}",
        "[1]",
        "\"https://x\"",
        "\"grpc\"",
        "1979-05-27",
        "\"a\\nb\"",
        "10",
        "1.5",
    ];
    const DUR: &[&str] = &["\"10s\"", "\"500ms\"", "\"1h30m\""];
    const RATE: &[&str] = &["100", "2.5", "\"10k\"", "\"1.5M\"", "0"];
    const ROOT: Keys = &[
        ("name", &["\"x\"", "\"peak test\""]),
        ("thresholds", &["[\"p99 < 1s\"]", "[]"]),
        ("recovery_window", &["\"5s\"", "\"30s\""]),
        ("recovery_tolerance", &["0.1", "\"10%\""]),
    ];
    const TARGET: Keys = &[
        (
            "protocol",
            &["\"http1\"", "\"http2\"", "\"grpc\"", "\"tcp\""],
        ),
        ("method", &["\"get\"", "\"POST\"", "\"/a.B/C\""]),
        ("body_size", &["512", "\"1KiB\"", "\"1k\""]),
        ("body_file", &["\"body.bin\"", "\"nope.bin\"", "\"ca.pem\""]),
        ("timeout", &["\"5s\"", "\"250ms\""]),
        (
            "headers",
            &["{ X-Id = \"1\" }", "{}", "{ te = \"trailers\" }"],
        ),
        ("tls_ca", &["\"ca.pem\"", "\"body.bin\""]),
        ("insecure_skip_verify", &["true", "false"]),
    ];
    const REQUEST: Keys = &[
        ("name", &["\"a\"", "\"b\""]),
        ("weight", &["1", "80", "1000"]),
        ("method", &["\"GET\"", "\"/a.B/C\""]),
        ("path", &["\"/x\"", "\"/y?z=1\""]),
        ("headers", &["{ Accept = \"*/*\" }"]),
        ("body_size", &["16"]),
        ("body_file", &["\"order.json\""]),
    ];
    const LOAD: Keys = &[
        ("connections", &["8", "256"]),
        ("streams_per_connection", &["1", "100"]),
        ("pipeline", &["16"]),
        ("max_in_flight", &["100"]),
        ("arrival", &["\"poisson\"", "\"uniform\""]),
        ("seed", &["7"]),
    ];
    const STAGE: Keys = &[
        ("name", &["\"a\"", "\"b-2\"", "\"stage-1\""]),
        ("name", &["\"c\"", "\"d_4\""]),
        ("burst", &["true", "false"]),
        ("burst", &["true", "false"]),
        ("from", RATE),
        ("to", RATE),
    ];
    fn table(keys: Keys, max: usize) -> impl Strategy<Value = String> {
        let line = proptest::sample::select(keys).prop_flat_map(|(k, good)| {
            let v = prop_oneof![
                9 => proptest::sample::select(good),
                1 => proptest::sample::select(BAD),
            ];
            v.prop_map(move |v| (k, v))
        });
        proptest::collection::vec(line, 0..max).prop_map(|lines| {
            let mut seen = HashSet::new();
            lines
                .into_iter()
                .filter(|(k, _)| seen.insert(*k))
                .map(|(k, v)| format!("{k} = {v}\n"))
                .collect()
        })
    }
    let head = prop_oneof![
        4 => Just("url = \"http://127.0.0.1:8080/\"\n"),
        1 => Just("url = \"https://127.0.0.1:8443\"\n"),
        1 => Just("url = \"tcp://127.0.0.1:9000\"\n"),
        4 => Just("builtin = true\n"),
        1 => Just("builtin = { delay = \"1ms\", capacity = \"5k\", error_rate = \"1%\" }\n"),
        1 => Just("url = \"http://h/\"\nbuiltin = true\n"),
        1 => Just("url = \"http://h/\"\nbuiltin = false\n"),
        1 => Just("builtin = false\n"),
        1 => Just(""),
    ];
    let stage_head = prop_oneof![
        8 => Just("duration = \"10s\"\nrate = 100\n".to_owned()),
        2 => proptest::sample::select(DUR).prop_map(|d| format!("duration = {d}\n")),
        1 => Just("rate = \"2k\"\n".to_owned()),
    ];
    let stage = (stage_head, table(STAGE, 3)).prop_map(|(h, t)| format!("{h}{t}"));
    let stages = proptest::collection::vec(stage, 0..5);
    let requests = proptest::collection::vec(table(REQUEST, 4), 0..3);
    (
        table(ROOT, 3),
        head,
        table(TARGET, 4),
        requests,
        any::<bool>(),
        table(LOAD, 3),
        stages,
    )
        .prop_map(|(root, head, target, requests, with_load, load, stages)| {
            let mut doc = format!("{root}[target]\n{head}{target}");
            for r in requests {
                doc += &format!("[[requests]]\n{r}");
            }
            if with_load {
                doc += &format!("[load]\n{load}");
            }
            for s in stages {
                doc += &format!("[[stages]]\n{s}");
            }
            doc
        })
}

#[derive(Debug, Clone)]
struct GenStage {
    name: Option<String>,
    duration_ms: u64,
    /// `(from, to)`; equal for a constant stage.
    rates: (f64, f64),
    ramp: bool,
    encoding: u8,
    burst: bool,
}

fn rate() -> impl Strategy<Value = f64> {
    prop_oneof![
        (0u32..=10_000).prop_map(f64::from),
        (0u32..=9_999_999).prop_map(f64::from),
        (0u32..=9_999, any::<bool>())
            .prop_map(|(r, half)| f64::from(r) + if half { 0.5 } else { 0.0 }),
    ]
}

fn gen_stage() -> impl Strategy<Value = GenStage> {
    (
        proptest::option::of("[A-Za-z0-9_-]{1,20}"),
        1u64..=100_000_000,
        rate(),
        rate(),
        any::<bool>(),
        0u8..4,
        any::<bool>(),
    )
        .prop_map(
            |(name, duration_ms, a, b, ramp, encoding, burst)| GenStage {
                name,
                duration_ms,
                rates: if ramp { (a, b) } else { (a, a) },
                ramp,
                encoding,
                burst,
            },
        )
}

/// Makes the generated list valid: unique names, a busy non-burst stage
/// before every burst, and some traffic somewhere.
fn fix_up(mut stages: Vec<GenStage>) -> Vec<GenStage> {
    let mut seen = HashSet::new();
    for (i, s) in stages.iter_mut().enumerate() {
        if let Some(n) = &s.name {
            if n.starts_with("stage-") || !seen.insert(n.clone()) {
                s.name = Some(format!("s{i}"));
            }
        }
    }
    for i in 0..stages.len() {
        let ok = i > 0 && !stages[i - 1].burst && stages[i - 1].rates != (0.0, 0.0);
        stages[i].burst &= ok;
    }
    if stages.iter().all(|s| s.rates == (0.0, 0.0)) {
        stages[0].rates = (1.0, 1.0);
        stages[0].ramp = false;
    }
    stages
}

/// Writes a rate in one of the accepted spellings.
fn spell(r: f64, encoding: u8) -> String {
    match encoding {
        0 => format!("{r}"),
        1 => format!("{r:?}"),
        2 => format!("\"{r}\""),
        _ if r >= 1000.0 && r % 1000.0 == 0.0 => format!("\"{}k\"", r / 1000.0),
        _ => format!("{r:.1}"),
    }
}

fn render(stages: &[GenStage]) -> String {
    let mut out = String::from("[target]\nurl = \"http://127.0.0.1:9/\"\n");
    for s in stages {
        out += "\n[[stages]]\n";
        if let Some(n) = &s.name {
            out += &format!("name = \"{n}\"\n");
        }
        out += &format!("duration = \"{}ms\"\n", s.duration_ms);
        if s.ramp {
            out += &format!(
                "from = {}\nto = {}\n",
                spell(s.rates.0, s.encoding),
                spell(s.rates.1, s.encoding)
            );
        } else {
            out += &format!("rate = {}\n", spell(s.rates.0, s.encoding));
        }
        if s.burst {
            out += "burst = true\n";
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(s in any::<String>()) {
        let _ = parse(&s, "fuzz.toml");
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = parse(&String::from_utf8_lossy(&b), "fuzz.toml");
    }

    #[test]
    fn scenario_like_text_never_panics_and_what_passes_is_sane(s in scenario_ish()) {
        if let Ok(sc) = parse(&s, "fuzz.toml") {
            let mut plan = sc.plan.clone();
            let protocol = plan.target.protocol;
            if sc.target != ScenarioTarget::Url {
                prop_assert_eq!(plan.target.url.as_str(), builtin_placeholder_url(protocol));
                plan.target.url = builtin_url(protocol, "127.0.0.1:1".parse().unwrap());
            }
            prop_assert!(plan.validate().is_ok());
            let requests = &plan.target.requests;
            let names: HashSet<_> = requests.iter().map(|r| &r.name).collect();
            prop_assert_eq!(names.len(), requests.len());
            if protocol == Protocol::Http1 {
                prop_assert_eq!(plan.load.per_connection, 1);
            }
            let names: HashSet<_> = plan.stages.iter().map(|s| &s.name).collect();
            prop_assert_eq!(names.len(), plan.stages.len());
            for (i, st) in plan.stages.iter().enumerate() {
                if st.burst {
                    let before = &plan.stages[i - 1];
                    prop_assert!(!before.burst && before.to_rps.max(before.from_rps) > 0.0);
                }
            }
        }
    }

    #[test]
    fn generated_scenarios_round_trip(stages in proptest::collection::vec(gen_stage(), 1..20)) {
        let stages = fix_up(stages);
        let src = render(&stages);
        let sc = parse(&src, "gen.toml").map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
        prop_assert_eq!(sc.plan.stages.len(), stages.len());
        let total: u64 = stages.iter().map(|s| s.duration_ms).sum();
        prop_assert_eq!(sc.plan.duration(), Duration::from_millis(total));
        for (i, (got, want)) in sc.plan.stages.iter().zip(&stages).enumerate() {
            let name = want.name.clone().unwrap_or(format!("stage-{}", i + 1));
            prop_assert_eq!(&got.name, &name);
            prop_assert_eq!((got.from_rps, got.to_rps), want.rates);
            prop_assert_eq!(got.burst, want.burst);
        }
    }
}
