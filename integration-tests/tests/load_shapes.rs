//! Ramps and arrival processes across real processes.

mod common;

use common::*;
use serde_json::Value;

fn run_scenario(coord_url: &str, toml: &str, tag: &str) -> Value {
    run_to_report(coord_url, tag, toml, &[]).0
}

fn run_on_workers(coord_url: &str, toml: &str, tag: &str, workers: &str) -> Value {
    run_to_report(coord_url, tag, toml, &["--min-workers", workers]).0
}

#[test]
fn the_achieved_rate_follows_a_ramp_second_by_second() {
    let _serial = serial();
    let (_target, url) = start_target(&[]);
    let (_coord, coord_url) = start_coordinator(&[]);
    let _w1 = start_worker(&coord_url, &[]);
    let _w2 = start_worker(&coord_url, &[]);
    // Two workers: the run waits for both (--min-workers), not a moment.
    let r = run_on_workers(
        &coord_url,
        &format!(
            "[target]\nurl = \"{url}\"\n[[stages]]\nname = \"up\"\nfrom = 200\nto = 2000\nduration = \"6s\"\n[[stages]]\nname = \"down\"\nfrom = 2000\nto = 500\nduration = \"3s\"\n"
        ),
        "ramp",
        "2",
    );
    assert_accounted(&r["requests"], "run");
    // Λ = (200 + 2000)/2 × 6 + (2000 + 500)/2 × 3 = 6600 + 3750.
    assert_eq!(u(&r, "requests.intended"), 10_350);
    let intervals = r["intervals"].as_array().unwrap();
    for i in intervals
        .iter()
        .filter(|i| u(i, "t_s") >= 1 && f(i, "target_rps") > 0.0)
    {
        let (target, achieved) = (f(i, "target_rps"), f(i, "achieved_rps"));
        assert!(
            (achieved - target).abs() / target <= 0.02,
            "second {}: achieved {achieved} vs target {target}",
            u(i, "t_s")
        );
        // The schedule itself is exact: each second intends its integral.
        assert!((u(i, "intended") as f64 - target).abs() <= 1.0, "{i}");
    }
}

#[test]
fn a_poisson_run_with_the_same_seed_sends_the_same_schedule_twice() {
    let _serial = serial();
    let (_target, url) = start_target(&[]);
    let (_coord, coord_url) = start_coordinator(&[]);
    let _w = start_worker(&coord_url, &[]);
    let toml = format!(
        "[target]\nurl = \"{url}\"\n[load]\narrival = \"poisson\"\nseed = 42\n[[stages]]\nrate = 500\nduration = \"3s\"\n"
    );
    let per_second = |r: &Value| -> Vec<u64> {
        r["intervals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| u(i, "intended"))
            .collect()
    };
    let a = run_scenario(&coord_url, &toml, "poisson-a");
    let b = run_scenario(&coord_url, &toml, "poisson-b");
    assert_eq!(per_second(&a), per_second(&b), "same seed, same arrivals");
    assert_eq!(u(&a, "requests.intended"), u(&b, "requests.intended"));
    // Poisson, not uniform: the count is random around 1500 (sd ≈ 39).
    let n = u(&a, "requests.intended");
    assert!((1300..=1700).contains(&n), "{n}");
    let c = run_scenario(
        &coord_url,
        &toml.replace("seed = 42", "seed = 43"),
        "poisson-c",
    );
    assert_ne!(
        per_second(&a),
        per_second(&c),
        "another seed, other arrivals"
    );
}
