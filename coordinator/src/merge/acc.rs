//! Counters and histograms accumulated over a span of the run, for the
//! whole cluster and per request definition.

use super::WorkerInterval;
use std::collections::BTreeMap;
use volley_plan::{Counts, RequestCounts};
use volley_proto::histogram::{self, Hist, HistError};

/// Counters and histograms accumulated over some span (a second, a stage, a
/// worker, the run).
#[derive(Debug, Clone)]
pub struct Acc {
    pub counts: Counts,
    pub status_codes: BTreeMap<u32, u64>,
    pub grpc_status_codes: BTreeMap<u32, u64>,
    /// Failed response checks by (request definition, check).
    pub checks: BTreeMap<(u32, u32), u64>,
    pub latency: Hist,
    pub service: Hist,
    /// Actual send − scheduled send of every sent request.
    pub send_lag: Hist,
}

impl Default for Acc {
    fn default() -> Self {
        Acc {
            counts: Counts::default(),
            status_codes: BTreeMap::new(),
            grpc_status_codes: BTreeMap::new(),
            checks: BTreeMap::new(),
            latency: histogram::new_hist(),
            service: histogram::new_hist(),
            send_lag: histogram::new_hist(),
        }
    }
}

impl Acc {
    /// A worker's counters for the whole run. Its latency is kept beside it
    /// at 2 digits ([`histogram::Coarse`], see `Merger::worker`): at the
    /// standard 3 digits it would be 188 KB of counts per worker (1.9 GB at
    /// 10,000 workers). The report has no service-time or send-lag
    /// histogram per worker. All three stay empty, at the smallest size a
    /// histogram can have.
    pub fn per_worker() -> Acc {
        let tiny = || Hist::new_with_bounds(1, 2, 0).expect("constant bounds are valid");
        Acc {
            latency: tiny(),
            service: tiny(),
            send_lag: tiny(),
            ..Acc::default()
        }
    }

    pub fn add_interval(&mut self, w: &WorkerInterval) -> Result<(), HistError> {
        w.latency.add_to(&mut self.latency)?;
        w.service.add_to(&mut self.service)?;
        w.send_lag.add_to(&mut self.send_lag)?;
        self.add_counts(w);
        Ok(())
    }

    /// The counters of a worker's second, without its histograms.
    pub fn add_counts(&mut self, w: &WorkerInterval) {
        self.counts.add(&w.counts);
        for &(code, n) in &w.status_codes {
            *self.status_codes.entry(code).or_default() += n;
        }
        for &(code, n) in &w.grpc_status_codes {
            *self.grpc_status_codes.entry(code).or_default() += n;
        }
        for &(key, n) in &w.checks {
            *self.checks.entry(key).or_default() += n;
        }
    }

    pub fn add(&mut self, o: &Acc) -> Result<(), HistError> {
        histogram::merge(&mut self.latency, &o.latency)?;
        histogram::merge(&mut self.service, &o.service)?;
        histogram::merge(&mut self.send_lag, &o.send_lag)?;
        self.counts.add(&o.counts);
        for (&code, &n) in &o.status_codes {
            *self.status_codes.entry(code).or_default() += n;
        }
        for (&code, &n) in &o.grpc_status_codes {
            *self.grpc_status_codes.entry(code).or_default() += n;
        }
        for (&key, &n) in &o.checks {
            *self.checks.entry(key).or_default() += n;
        }
        Ok(())
    }
}

/// One request definition over the whole run.
#[derive(Debug, Clone)]
pub struct RequestAcc {
    pub counts: RequestCounts,
    pub latency: Hist,
}

impl Default for RequestAcc {
    fn default() -> Self {
        RequestAcc {
            counts: RequestCounts::default(),
            latency: histogram::new_hist(),
        }
    }
}
