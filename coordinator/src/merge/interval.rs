//! One worker's second as the merge takes it: decoded and validated by
//! `wire`, the only way in.

use volley_plan::{Counts, RequestCounts};
use volley_proto::histogram::Decoded;

/// How often one check of one request definition failed:
/// ((request, check), count).
pub type CheckFailures = ((u32, u32), u64);

/// One request definition's share of a worker's second, decoded and
/// validated (see `wire`).
#[derive(Debug, Clone)]
pub struct RequestInterval {
    /// Into `plan.target.requests`.
    pub index: u32,
    pub counts: RequestCounts,
    /// Latency from the scheduled send time of its ok requests.
    pub latency: Decoded,
}

/// One worker's second, decoded and validated (see `wire`).
#[derive(Debug, Clone)]
pub struct WorkerInterval {
    pub index: u32,
    pub counts: Counts,
    /// Failing HTTP statuses, (code, count).
    pub status_codes: Vec<(u32, u64)>,
    /// Non-zero `grpc-status` values of failed gRPC calls, (code, count).
    pub grpc_status_codes: Vec<(u32, u64)>,
    /// Per request definition, when the plan has more than one (else empty);
    /// they add up to `counts`.
    pub requests: Vec<RequestInterval>,
    /// Failed response checks: ((request, check), count), adding up to the
    /// `check` errors.
    pub checks: Vec<CheckFailures>,
    pub latency: Decoded,
    pub service: Decoded,
    /// Actual send − scheduled send of every sent request.
    pub send_lag: Decoded,
    pub in_flight: u64,
    /// The worker process's resident memory and cumulative CPU time.
    pub rss_bytes: u64,
    pub cpu_nanos: u64,
    /// The latency histogram as the worker encoded it, for the per-worker log.
    pub latency_encoded: Vec<u8>,
}
