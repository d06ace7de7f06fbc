//! Judging a run: the figures the report adds on top of the raw merge.
//!
//! Pure functions of the report model (no tokio, no tonic, no I/O), so every
//! rule is unit-tested exhaustively beside its code:
//! - [`thresholds`]: k6-style expressions (`p99 < 100ms warn 50ms`,
//!   `burst.success_rate > 99%`, `error_rate < 0.05 abort`), parsed up front
//!   and judged on the merged report into pass / warn / fail verdicts; abort
//!   thresholds are also judged second by second during the run.
//! - [`regression`]: the reference guide's RegressionDetector, comparing a run
//!   with a saved baseline report within a percentage.
//! - [`recovery`](mod@recovery): how long after each burst latency and
//!   errors were back to the level of the stage before it (DESIGN.md,
//!   "Recovery, defined").

#![warn(missing_docs)]

pub mod recovery;
pub mod regression;
pub mod thresholds;

pub use recovery::recovery;
pub use regression::{compare, parse_threshold_pct};
pub use thresholds::{check_interval, evaluate_all, Threshold, ThresholdError};

/// Small report builders shared by the unit tests of this module.
#[cfg(test)]
pub(crate) mod fixture {
    use crate::report::*;
    use std::collections::BTreeMap;

    pub fn latency(p50: f64, p99: f64) -> Latency {
        Latency {
            p50: Some(p50),
            p90: Some(p50 + (p99 - p50) * 0.5),
            p95: Some(p50 + (p99 - p50) * 0.75),
            p99: Some(p99),
            p999: Some(p99 * 1.5),
            max: Some(p99 * 2.0),
            mean: Some(p50 * 1.1),
        }
    }

    pub fn requests(intended: u64, ok: u64, errors: u64) -> Requests {
        Requests {
            intended,
            sent: intended,
            ok,
            errors,
            dropped: intended - ok - errors,
            unsent: 0,
        }
    }

    pub fn stage(name: &str, burst: bool, start_s: f64, duration_s: f64, p99: f64) -> StageReport {
        StageReport {
            name: name.to_owned(),
            burst,
            start_s,
            duration_s,
            target_rps: 1000.0,
            achieved_rps: 1000.0,
            throughput_rps: 990.0,
            requests: requests(1000 * duration_s as u64, 990 * duration_s as u64, 0),
            success_rate: 0.99,
            latency_ms: latency(p99 / 4.0, p99),
            soak: None,
        }
    }

    /// A 60 s run at 1000 req/s: 59,940 ok, 30 errors, 30 dropped; p99 80 ms;
    /// stages `steady` then `burst`.
    pub fn report() -> Report {
        let requests = Requests {
            intended: 60_000,
            sent: 59_970,
            ok: 59_940,
            errors: 30,
            dropped: 30,
            unsent: 0,
        };
        Report {
            schema: SCHEMA.to_owned(),
            run_id: "r".to_owned(),
            scenario: "s".to_owned(),
            target: None,
            started_at: "2024-01-01T00:00:00Z".to_owned(),
            complete: true,
            incomplete_reason: None,
            duration_s: 60.0,
            target_rps: 1000.0,
            achieved_rps: 999.5,
            throughput_rps: 999.0,
            requests,
            errors_by_kind: BTreeMap::new(),
            errors_by_status: BTreeMap::new(),
            errors_by_grpc_status: BTreeMap::new(),
            errors_by_check: BTreeMap::new(),
            drop_reasons: [
                ("behind_schedule", 0),
                ("connections_busy", 0),
                ("max_in_flight", 30),
                ("worker_lost", 0),
            ]
            .into_iter()
            .map(|(k, n)| (k.to_owned(), n))
            .collect(),
            load: None,
            success_rate: 0.999,
            error_rate: 0.0005,
            latency_ms: latency(20.0, 80.0),
            service_time_ms: latency(19.0, 79.0),
            send_lag_ms: Default::default(),
            percentiles: Vec::new(),
            per_request: Vec::new(),
            stages: vec![
                stage("steady", false, 0.0, 50.0, 40.0),
                stage("burst", true, 50.0, 10.0, 300.0),
            ],
            workers: Vec::new(),
            intervals: Vec::new(),
            recovery: Vec::new(),
            thresholds: Vec::new(),
            regressions: Vec::new(),
            events: Vec::new(),
        }
    }
}
