//! The report: its model (the JSON contract of DESIGN.md), how it is built
//! from merged data, and its renderings.
//!
//! - [`build`]: the report from the merger's books.
//! - [`drops`]: why requests were dropped, in one sentence with the
//!   setting to change (report.md, report.html and the live notice).
//! - [`table`]: its tables as headers plus rows of cells, built once;
//!   [`format`]: how figures are written. Both renderings draw from them.
//! - [`markdown`]: `report.md`; [`html`]: the self-contained `report.html`.
//! - [`schema`]: the JSON Schema of `report.json` (`volley schema report`,
//!   checked in as `docs/report.schema.json`).
//! - [`junit`]: the verdicts as JUnit XML for CI (`--junit FILE`).
//!
//! Field names are the contract users, the chart and CI scripts build on:
//! add fields, never rename them.

pub mod build;
pub mod drops;
pub mod format;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod schema;
pub mod second_drops;
pub mod send_lag;
pub mod table;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use second_drops::SecondDrops;

pub const SCHEMA: &str = "volley.report.v1";

/// A Volley run report (`report.json`), version `volley.report.v1`.
///
/// Within v1 fields are only ever added, never renamed or removed, and a
/// field's meaning never changes; a change that breaks any of that is a new
/// `schema` string (v2). This schema describes the reports of the Volley
/// that printed it (`volley schema report`) and rejects any field it does
/// not know, so a report with a newer field needs the newer schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// The report format and its version: always `volley.report.v1` here.
    #[schemars(extend("const" = SCHEMA))]
    pub schema: String,
    pub run_id: String,
    pub scenario: String,
    /// What was tested: absent from reports written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetInfo>,
    /// RFC 3339 time of t = 0.
    pub started_at: String,
    /// False when the run was stopped early or lost data: the figures cover
    /// only what was measured.
    pub complete: bool,
    /// Why the run is incomplete, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete_reason: Option<String>,
    pub duration_s: f64,
    /// Whole-cluster rate asked for, averaged over the run.
    pub target_rps: f64,
    /// Requests actually put on the wire per second (offered load delivered).
    pub achieved_rps: f64,
    /// Successful responses per second.
    pub throughput_rps: f64,
    pub requests: Requests,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Failing HTTP statuses by code.
    pub errors_by_status: BTreeMap<String, u64>,
    /// Failed gRPC calls by `grpc-status`, under the canonical code name
    /// ("UNAVAILABLE"; a code beyond the canonical ones is "code N"). Part
    /// of `errors_by_kind.status`; omitted when there are none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_grpc_status: BTreeMap<String, u64>,
    /// Replies that failed a response check, under the check's name
    /// (`"status"`, `"json $.status"`, or the name the scenario gave it);
    /// only the first failing check of a reply counts, so these add up to
    /// `errors_by_kind.check`. Every check of the plan is listed, failed or
    /// not; empty without checks.
    #[serde(default)]
    pub errors_by_check: BTreeMap<String, u64>,
    /// Why requests were dropped, by cause (`connections_busy`,
    /// `max_in_flight`, `behind_schedule`, and `worker_lost`: what a lost
    /// worker never sent, `requests.unsent`); they add up to
    /// `requests.dropped`. Empty in reports written before it existed.
    #[serde(default)]
    pub drop_reasons: BTreeMap<String, u64>,
    /// The per-worker limits drops are judged against; absent from reports
    /// written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadInfo>,
    /// ok / intended.
    pub success_rate: f64,
    /// errors / intended.
    pub error_rate: f64,
    /// Latency from the scheduled send time (coordinated-omission correct).
    pub latency_ms: Latency,
    /// Time from the actual send to the response.
    pub service_time_ms: Latency,
    /// Volley's own lateness: actual send − scheduled send of every sent
    /// request. It is part of `latency_ms` (which runs from the scheduled
    /// time), so it must stay small next to it. Empty in reports written
    /// before it existed.
    #[serde(default)]
    pub send_lag_ms: SendLag,
    /// The whole run's latency spectrum, as HdrHistogram plots it: latency at
    /// 0, 10 … 90, 91 … 99, 99.1 … 99.9 … up to 99.999 and 100 (the max).
    #[serde(default)]
    pub percentiles: Vec<PercentilePoint>,
    /// Per request definition, in plan order; present only when the plan
    /// has more than one. Each field adds up over the definitions to the
    /// run's `requests`. All of it is exact except for a worker lost
    /// mid-run: what it had in flight is attributed exactly (`errors`, of
    /// kind `lost`), but what it owned and never sent (`requests.unsent`)
    /// is split over the definitions in proportion to their weights, the
    /// mix it would have sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_request: Vec<RequestReport>,
    pub stages: Vec<StageReport>,
    pub workers: Vec<WorkerReport>,
    pub intervals: Vec<IntervalReport>,
    pub recovery: Vec<Recovery>,
    pub thresholds: Vec<ThresholdVerdict>,
    pub regressions: Vec<Regression>,
    /// Notable things that happened (a worker lost, late data, an abort).
    #[serde(default)]
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Requests {
    pub intended: u64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub dropped: u64,
    /// Part of `dropped`: requests a lost worker owned and never reported
    /// as sent, before its share was re-split over the survivors. Mostly
    /// never sent; those it sent in the second it died, before reporting
    /// that second, are counted here too (the target may have answered
    /// them): nothing unconfirmed is counted as ok.
    #[serde(default)]
    pub unsent: u64,
}

/// The plan's per-worker limits (`[load]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoadInfo {
    pub connections: u32,
    /// Requests in flight on one connection (1 for HTTP/1.1; HTTP/2
    /// streams, TCP pipeline depth).
    pub per_connection: u32,
    pub max_in_flight: u32,
    /// `load.wake_gap` in microseconds: the shortest time between two
    /// wake-ups of a worker's scheduler, so up to how late a request
    /// leaves by design. 0: "auto" (the default since December 2026: each
    /// request leaves within a tenth of the target's median service time
    /// when the CPU allows), and in reports written before the field
    /// existed.
    #[serde(default)]
    pub wake_gap_us: u64,
}

/// What the run was aimed at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TargetInfo {
    /// The target URL, without any user:password part.
    pub url: String,
    /// "http1" | "http2" | "grpc" | "tcp".
    pub protocol: String,
    /// The request definitions' names, in plan order.
    pub requests: Vec<String>,
}

/// One request definition's share of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RequestReport {
    pub name: String,
    /// Its weight in the mix (its share of the arrivals is weight / Σ weight).
    pub weight: u32,
    pub intended: u64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub dropped: u64,
    /// ok / intended.
    pub success_rate: f64,
    /// Its successful responses per second.
    pub throughput_rps: f64,
    /// From the scheduled send time, as the run's `latency_ms`.
    pub latency_ms: Latency,
    /// Its replies that failed a response check, by check name (part of
    /// `errors`); omitted when it has no checks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_check: BTreeMap<String, u64>,
}

/// Percentiles in milliseconds; `null` when nothing succeeded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
}

/// One point of the latency spectrum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PercentilePoint {
    /// 0 to 100.
    pub percentile: f64,
    pub latency_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StageReport {
    pub name: String,
    pub burst: bool,
    pub start_s: f64,
    pub duration_s: f64,
    pub target_rps: f64,
    pub achieved_rps: f64,
    pub throughput_rps: f64,
    pub requests: Requests,
    pub success_rate: f64,
    pub latency_ms: Latency,
    /// First versus last tenth of the stage, for stages of 10 s or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<Soak>,
}

/// Degradation over a long stage: the first tenth of it against the last.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Soak {
    /// Length of each compared window, seconds.
    pub window_s: f64,
    pub first_achieved_rps: f64,
    pub last_achieved_rps: f64,
    pub first_p99_ms: Option<f64>,
    pub last_p99_ms: Option<f64>,
    /// The worse of the relative drop in achieved rate and the relative rise
    /// in p99, as a fraction (0.05 is 5 %); 0 when nothing got worse.
    pub degradation: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkerReport {
    pub id: String,
    pub hostname: String,
    pub weight: u32,
    /// Engine threads the worker ran (`volley-worker --threads`), its
    /// figures being their sum; null when unknown (a worker older than this
    /// field, or a run resumed after a coordinator restart).
    #[serde(default)]
    pub threads: Option<u32>,
    /// Fraction of the global schedule this worker owned.
    pub share: f64,
    pub assigned_rps: f64,
    pub requests: Requests,
    /// This worker's `requests.dropped` by cause (see the run's
    /// `drop_reasons`); omitted when it dropped nothing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub drop_reasons: BTreeMap<String, u64>,
    pub latency_ms: Latency,
    /// Seconds after t = 0 at which the worker was declared lost.
    pub lost_at_s: Option<f64>,
    /// Seconds after t = 0 from which a worker that shut down gracefully
    /// (SIGTERM) had handed its share to the others: it sent and reported
    /// everything due before then, so nothing of it is lost.
    #[serde(default)]
    pub left_at_s: Option<f64>,
    /// Seconds after t = 0 from which a worker that joined mid-run took a
    /// share.
    #[serde(default)]
    pub joined_at_s: Option<f64>,
    /// The worker process's own resident memory at its first and last
    /// report and at its peak, and its mean CPU use (percent of one core):
    /// a leak in the generator shows as a growing RSS.
    #[serde(default)]
    pub rss_mb_first: Option<f64>,
    #[serde(default)]
    pub rss_mb_last: Option<f64>,
    #[serde(default)]
    pub rss_mb_peak: Option<f64>,
    #[serde(default)]
    pub cpu_pct_mean: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IntervalReport {
    pub t_s: u32,
    // Shared with every other second of the stage: a day-long run keeps
    // 86,400 of these, with no string of their own.
    pub stage: std::sync::Arc<str>,
    pub target_rps: f64,
    pub achieved_rps: f64,
    pub intended: u64,
    pub ok: u64,
    pub errors: u64,
    pub dropped: u64,
    /// This second's `dropped` by cause; omitted when nothing was dropped.
    #[serde(default, skip_serializing_if = "SecondDrops::is_empty")]
    pub drop_reasons: SecondDrops,
    pub p50_ms: Option<f64>,
    #[serde(default)]
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub workers: u32,
    /// Largest worker RSS (MB) and CPU use (percent of a core) this second.
    #[serde(default)]
    pub worker_rss_mb_max: Option<f64>,
    #[serde(default)]
    pub worker_cpu_pct_max: Option<f64>,
    /// This second's send lag (of the requests scheduled in it).
    #[serde(default)]
    pub send_lag_ms: SendLag,
}

/// Percentiles of the send lag, in milliseconds; null without sent
/// requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SendLag {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Recovery {
    pub stage: String,
    pub baseline_p99_ms: Option<f64>,
    /// The p99 a second may have and still count as calm: the baseline p99
    /// plus the largest of the tolerance, the baseline's own noise and a
    /// 0.5 ms floor (docs/recovery.md). None without a baseline p99.
    #[serde(default)]
    pub calm_p99_ms: Option<f64>,
    pub peak_p99_ms: Option<f64>,
    pub recovered: bool,
    /// From the end of the burst to the start of the first stable window; when
    /// not recovered, the time observed after the burst.
    pub recovery_time_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(from = "ThresholdVerdictJson")]
pub struct ThresholdVerdict {
    pub expr: String,
    pub actual: Option<f64>,
    /// False only for [`ThresholdStatus::Fail`] (a warning passes); kept
    /// beside `status` because it is the older field of the contract.
    pub pass: bool,
    pub status: ThresholdStatus,
}

impl ThresholdVerdict {
    pub fn new(expr: String, actual: Option<f64>, status: ThresholdStatus) -> ThresholdVerdict {
        ThresholdVerdict {
            expr,
            actual,
            pass: status != ThresholdStatus::Fail,
            status,
        }
    }
}

/// A verdict as saved, before `status` is known for sure: reports written
/// before it existed (or with it empty) get it from `pass`. (Its schema is
/// only the deserializing one; report.json's is [`ThresholdVerdict`]'s.)
#[derive(Deserialize, JsonSchema)]
struct ThresholdVerdictJson {
    expr: String,
    actual: Option<f64>,
    pass: bool,
    #[serde(default)]
    status: String,
}

impl From<ThresholdVerdictJson> for ThresholdVerdict {
    fn from(j: ThresholdVerdictJson) -> ThresholdVerdict {
        ThresholdVerdict {
            status: ThresholdStatus::parse(&j.status)
                .unwrap_or_else(|| ThresholdStatus::from_pass(j.pass)),
            expr: j.expr,
            actual: j.actual,
            pass: j.pass,
        }
    }
}

/// How a threshold was judged: met, met but in the warning band, or not
/// met. The lower-case names are the report's `status` strings. Regressions
/// and recoveries, which have no warning band, are marked with `Pass` or
/// `Fail` alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdStatus {
    Pass,
    Warn,
    Fail,
}

impl ThresholdStatus {
    pub const ALL: [ThresholdStatus; 3] = [
        ThresholdStatus::Pass,
        ThresholdStatus::Warn,
        ThresholdStatus::Fail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ThresholdStatus::Pass => "pass",
            ThresholdStatus::Warn => "warn",
            ThresholdStatus::Fail => "fail",
        }
    }

    /// The status named `s` in a report.
    pub fn parse(s: &str) -> Option<ThresholdStatus> {
        ThresholdStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// `Pass` or `Fail`, for a verdict without a warning band.
    pub fn from_pass(pass: bool) -> ThresholdStatus {
        if pass {
            ThresholdStatus::Pass
        } else {
            ThresholdStatus::Fail
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Regression {
    pub metric: String,
    pub baseline: f64,
    pub current: f64,
    pub change_pct: f64,
    pub pass: bool,
    /// Why the row was not judged (a tail percentile of too few requests
    /// to mean anything); such a row always passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    pub t_s: f64,
    pub level: String,
    pub text: String,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_status_keeps_its_report_strings() {
        for s in ThresholdStatus::ALL {
            let v = ThresholdVerdict::new("p99 < 1s".into(), Some(1.0), s);
            let json = serde_json::to_value(&v).unwrap();
            assert_eq!(json["status"], s.as_str());
            assert_eq!(json["pass"], s != ThresholdStatus::Fail);
            assert_eq!(serde_json::from_value::<ThresholdVerdict>(json).unwrap(), v);
        }
        assert_eq!(
            serde_json::to_string(&ThresholdStatus::ALL).unwrap(),
            r#"["pass","warn","fail"]"#
        );
    }

    #[test]
    fn a_verdict_saved_without_status_gets_it_from_pass() {
        for (json, status) in [
            (
                r#"{"expr":"e","actual":null,"pass":true}"#,
                ThresholdStatus::Pass,
            ),
            (
                r#"{"expr":"e","actual":1.0,"pass":false,"status":""}"#,
                ThresholdStatus::Fail,
            ),
        ] {
            let v: ThresholdVerdict = serde_json::from_str(json).unwrap();
            assert_eq!(v.status, status, "{json}");
        }
    }
}
