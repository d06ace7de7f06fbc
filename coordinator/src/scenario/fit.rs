//! Whether a plan fits its per-worker limits, said before any traffic.
//!
//! A worker drops an arrival when it already has `load.max_in_flight`
//! requests outstanding; when those wait for a connection because every
//! one of `load.connections` (× `per_connection`) is busy, the connections
//! are the limit. Both depend on how long the target takes to answer, which
//! is not known before the run, so the rules are checked on the busiest
//! worker's peak rate `R` (the plan's highest rate × its largest share,
//! known once the workers are: at the start of the run, in local and in
//! cluster mode alike) with the latencies the scenario does state:
//!
//! - **in flight**: a request stays outstanding until the timeout `T` at
//!   most, so a target that slows to the timeout has up to `R × T` in flight
//!   on a worker (Little's law). Above `max_in_flight` the worker drops.
//! - **connections**: with `load.expected_latency` `L`, the connections
//!   carry at most `connections × per_connection / L` requests a second;
//!   below `R` requests queue for a connection until they are dropped or
//!   time out. Without `L` nothing is assumed: at the timeout instead, 256
//!   HTTP/1.1 connections with a 5 s timeout carry 51 req/s, and every run
//!   above that would be warned about, which would teach users to ignore
//!   the warning.

use super::units::show;
use crate::report::format::group;
use std::time::Duration;
use volley_plan::Plan;

/// The warnings for `plan` when its busiest worker owns `largest_share` of
/// the schedule (1.0 for a single worker), one sentence each, each naming
/// the setting to change.
pub fn warnings(
    plan: &Plan,
    expected_latency: Option<Duration>,
    largest_share: f64,
) -> Vec<String> {
    let peak = plan
        .stages
        .iter()
        .map(|s| s.from_rps.max(s.to_rps))
        .fold(0.0, f64::max);
    let rate = peak * largest_share.clamp(0.0, 1.0);
    if rate <= 0.0 {
        return Vec::new();
    }
    let load = &plan.load;
    let on_connections = u64::from(load.connections) * u64::from(load.per_connection);
    let timeout = plan.target.timeout;
    let mut out = Vec::new();
    let in_flight = (rate * timeout.as_secs_f64()).ceil() as u64;
    if in_flight > u64::from(load.max_in_flight) {
        let mut w = format!(
            "may drop requests: at the peak of {} req/s per worker and a {} timeout, up to {} \
             requests can be in flight on a worker, above load.max_in_flight = {}; if the \
             target slows down, requests will be dropped (raise load.max_in_flight to {}, or \
             add workers)",
            group(rate.ceil() as u64),
            show(timeout),
            group(in_flight),
            group(u64::from(load.max_in_flight)),
            group(in_flight),
        );
        if on_connections < in_flight.min(u64::from(load.max_in_flight)) {
            w.push_str(&format!(
                "; only {} of them can be on its connections at once (load.connections = {}), \
                 so raise load.connections too",
                group(on_connections),
                group(u64::from(load.connections)),
            ));
        }
        out.push(w);
    }
    if let Some(latency) = expected_latency {
        let carried = on_connections as f64 / latency.as_secs_f64();
        if carried < rate {
            let needed = (rate * latency.as_secs_f64() / f64::from(load.per_connection)).ceil();
            let each = if load.per_connection > 1 {
                format!(" ({} requests each)", group(u64::from(load.per_connection)))
            } else {
                String::new()
            };
            out.push(format!(
                "will drop requests: at load.expected_latency = {}, {} connections{each} carry \
                 {} req/s per worker, below the peak of {} req/s per worker (raise \
                 load.connections to {}, or add workers)",
                show(latency),
                group(u64::from(load.connections)),
                group(carried.floor() as u64),
                group(rate.ceil() as u64),
                group(needed as u64),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<crate::scenario::Scenario, crate::scenario::ScenarioError> {
        crate::scenario::parse(text, "fit.toml", &|_: &str| Err("no files here".to_owned()))
    }

    fn plan(rps: f64, timeout_ms: u64, max_in_flight: u32, connections: u32) -> Plan {
        let text = format!(
            "[target]\nurl = \"http://127.0.0.1:9/\"\ntimeout = \"{timeout_ms}ms\"\n\
             [load]\nmax_in_flight = {max_in_flight}\nconnections = {connections}\n\
             [[stages]]\nrate = 10\nduration = \"5s\"\n[[stages]]\nrate = {rps}\nduration = \"5s\"\n"
        );
        parse(&text).unwrap().plan
    }

    #[test]
    fn rate_times_timeout_above_max_in_flight_warns_with_the_setting() {
        // 50,000 req/s against a 2 s timeout on one worker: 100,000 in flight.
        let w = warnings(&plan(50_000.0, 2000, 10_000, 20_000), None, 1.0);
        assert_eq!(
            w,
            vec![
                "may drop requests: at the peak of 50,000 req/s per worker and a 2s timeout, up \
                 to 100,000 requests can be in flight on a worker, above load.max_in_flight = \
                 10,000; if the target slows down, requests will be dropped (raise \
                 load.max_in_flight to 100,000, or add workers)"
            ]
        );
        // Four equal workers: 12,500 each, 25,000 in flight, still too many;
        // with fewer connections than the cap they are named too.
        let w = warnings(&plan(50_000.0, 2000, 10_000, 256), None, 0.25);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("12,500 req/s per worker"), "{w:?}");
        assert!(
            w[0].ends_with(
                "only 256 of them can be on its connections at once (load.connections = 256), \
                 so raise load.connections too"
            ),
            "{w:?}"
        );
        // Ten workers: 5,000 each × 2 s = 10,000, exactly the cap: it fits.
        assert!(warnings(&plan(50_000.0, 2000, 10_000, 256), None, 0.1).is_empty());
    }

    #[test]
    fn connections_below_the_rate_at_the_expected_latency_warn_with_the_setting() {
        let p = plan(1_000.0, 5000, 10_000, 64);
        // 64 connections at 100 ms carry 640 req/s: below 1,000.
        let w = warnings(&p, Some(Duration::from_millis(100)), 1.0);
        assert_eq!(
            w,
            vec![
                "will drop requests: at load.expected_latency = 100ms, 64 connections carry 640 \
                 req/s per worker, below the peak of 1,000 req/s per worker (raise \
                 load.connections to 100, or add workers)"
            ]
        );
        // At 50 ms they carry 1,280: enough. Without an expected latency
        // nothing is assumed.
        assert!(warnings(&p, Some(Duration::from_millis(50)), 1.0).is_empty());
        assert!(warnings(&p, None, 1.0).is_empty());
        // Two workers halve the rate each must carry.
        assert!(warnings(&p, Some(Duration::from_millis(100)), 0.5).is_empty());
    }

    #[test]
    fn expected_latency_is_read_from_load_and_checked() {
        let ok = "[target]\nurl = \"http://127.0.0.1:9/\"\n[load]\nexpected_latency = \"20ms\"\n\
                  [[stages]]\nrate = 10\nduration = \"5s\"\n";
        let s = parse(ok).unwrap();
        assert_eq!(s.expected_latency, Some(Duration::from_millis(20)));
        let bad = ok.replace("\"20ms\"", "\"0s\"");
        let e = parse(&bad).unwrap_err().to_string();
        assert!(e.contains("load.expected_latency"), "{e}");
        assert!(e.contains("between 1µs and 1h"), "{e}");
    }
}
