//! The OpenTelemetry instruments and what each merged second adds to them:
//! the figures of Prometheus `/metrics`, under OpenTelemetry names.
//!
//! | instrument | kind | attributes |
//! | --- | --- | --- |
//! | `volley.requests` | counter | run, stage, definition, outcome (ok, error, dropped) |
//! | `volley.errors` | counter | run, stage, kind |
//! | `volley.dropped` | counter | run, stage |
//! | `volley.latency` | histogram, seconds, the `/metrics` buckets | run, stage |
//! | `volley.rate.target`, `volley.rate.achieved` | gauge, requests/s | run, stage |
//! | `volley.workers` | gauge | |
//! | `volley.runs` | counter | |

use super::Otlp;
use crate::metrics::{Listener, Second, BUCKETS};
use opentelemetry::metrics::{Counter, Gauge, Histogram};
use opentelemetry::KeyValue;
use volley_plan::ErrorKind;

#[derive(Debug)]
pub struct Recorder {
    otlp: Otlp,
    requests: Counter<u64>,
    errors: Counter<u64>,
    dropped: Counter<u64>,
    latency: Histogram<f64>,
    target_rps: Gauge<f64>,
    achieved_rps: Gauge<f64>,
    workers: Gauge<u64>,
    runs: Counter<u64>,
}

impl Recorder {
    pub fn new(otlp: Otlp) -> Recorder {
        let m = otlp.meter();
        Recorder {
            requests: m
                .u64_counter("volley.requests")
                .with_unit("{request}")
                .with_description("Intended requests by how they ended")
                .build(),
            errors: m
                .u64_counter("volley.errors")
                .with_unit("{request}")
                .with_description("Failed requests by kind")
                .build(),
            dropped: m
                .u64_counter("volley.dropped")
                .with_unit("{request}")
                .with_description("Requests that could not be sent on time")
                .build(),
            latency: m
                .f64_histogram("volley.latency")
                .with_unit("s")
                .with_description("Latency of ok requests from the scheduled send time")
                .with_boundaries(BUCKETS.to_vec())
                .build(),
            target_rps: m
                .f64_gauge("volley.rate.target")
                .with_unit("{request}/s")
                .with_description("Target rate of the last merged second")
                .build(),
            achieved_rps: m
                .f64_gauge("volley.rate.achieved")
                .with_unit("{request}/s")
                .with_description("Requests sent in the last merged second")
                .build(),
            workers: m
                .u64_gauge("volley.workers")
                .with_description("Workers connected to the coordinator")
                .build(),
            runs: m
                .u64_counter("volley.runs")
                .with_description("Runs started by this coordinator")
                .build(),
            otlp,
        }
    }
}

impl Listener for Recorder {
    fn second(&self, s: &Second<'_>) {
        let base = [
            KeyValue::new("run", s.run.to_string()),
            KeyValue::new("stage", s.interval.stage.clone()),
        ];
        let with = |k: &'static str, v: &str| {
            let mut a = base.to_vec();
            a.push(KeyValue::new(k, v.to_string()));
            a
        };
        for (name, c) in s.definitions {
            let mut a = with("definition", name);
            for (outcome, n) in [("ok", c.ok), ("error", c.errors), ("dropped", c.dropped)] {
                a.push(KeyValue::new("outcome", outcome));
                self.requests.add(n, &a);
                a.pop();
            }
        }
        for kind in ErrorKind::ALL {
            let n = s.by_kind[kind];
            if n > 0 {
                self.errors.add(n, &with("kind", kind.as_str()));
            }
        }
        self.dropped.add(s.interval.dropped, &base);
        // The SDK's histogram takes one value at a time: each distinct
        // value of the merged HdrHistogram as often as it was recorded.
        for v in s.latency.iter_recorded() {
            let secs = v.value_iterated_to() as f64 / 1e6;
            for _ in 0..v.count_at_value() {
                self.latency.record(secs, &base);
            }
        }
        self.target_rps.record(s.interval.target_rps, &base);
        self.achieved_rps.record(s.interval.achieved_rps, &base);
    }

    fn workers(&self, n: u64) {
        self.workers.record(n, &[]);
    }

    fn run_started(&self) {
        self.runs.add(1, &[]);
    }

    fn run_ended(&self) {
        self.otlp.flush_in_background();
    }
}
