//! Per-second accounting of one worker's traffic.
//!
//! Pure bookkeeping (no I/O, no clocks of its own): the engine tells it when
//! requests were scheduled, sent, dropped and completed, and when an interval
//! ends. Intended, sent and dropped are attributed to the interval of the
//! request's scheduled time; ok and errors to the interval in which they
//! completed (the HdrHistogram interval-log convention). At the end of the run
//! `intended == ok + errors + dropped` over all intervals, which the tests
//! check.

use super::outcome::ErrorKind;
use std::time::Duration;
use volley_proto::histogram::{self, Hist};

/// Counters and histograms of one interval.
#[derive(Debug, Clone)]
pub struct IntervalData {
    pub index: u32,
    pub intended: u64,
    pub sent: u64,
    pub ok: u64,
    pub dropped: u64,
    pub errors: [u64; 4],
    /// (HTTP status, count) for failing statuses.
    pub status_codes: Vec<(u32, u64)>,
    /// Latency from the scheduled send time of ok requests.
    pub latency: Hist,
    /// Service time from the actual send of ok requests.
    pub service: Hist,
    /// Requests outstanding when the interval closed.
    pub in_flight: u64,
}

impl IntervalData {
    pub fn new(index: u32) -> IntervalData {
        IntervalData {
            index,
            intended: 0,
            sent: 0,
            ok: 0,
            dropped: 0,
            errors: [0; 4],
            status_codes: Vec::new(),
            latency: histogram::new_hist(),
            service: histogram::new_hist(),
            in_flight: 0,
        }
    }

    pub fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }
}

/// Accumulates the current interval and hands finished ones out.
#[derive(Debug)]
pub struct Recorder {
    current: IntervalData,
    /// Totals over the run, for the worker's own summary and invariants.
    pub totals: Totals,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub intended: u64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub dropped: u64,
}

impl Totals {
    /// Requests that have not ended yet.
    pub fn outstanding(&self) -> u64 {
        self.intended - self.ok - self.errors - self.dropped
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            current: IntervalData::new(0),
            totals: Totals::default(),
        }
    }
}

impl Recorder {
    pub fn index(&self) -> u32 {
        self.current.index
    }

    #[inline]
    pub fn intended(&mut self) {
        self.current.intended += 1;
        self.totals.intended += 1;
    }

    #[inline]
    pub fn dropped(&mut self) {
        self.current.dropped += 1;
        self.totals.dropped += 1;
    }

    #[inline]
    pub fn sent(&mut self) {
        self.current.sent += 1;
        self.totals.sent += 1;
    }

    #[inline]
    pub fn ok(&mut self, latency: Duration, service: Duration) {
        self.current.ok += 1;
        self.totals.ok += 1;
        histogram::record(&mut self.current.latency, latency);
        histogram::record(&mut self.current.service, service);
    }

    #[inline]
    pub fn error(&mut self, kind: ErrorKind, status: Option<u16>) {
        self.current.errors[kind.index()] += 1;
        self.totals.errors += 1;
        if let Some(code) = status {
            let code = u32::from(code);
            match self
                .current
                .status_codes
                .iter_mut()
                .find(|(c, _)| *c == code)
            {
                Some((_, n)) => *n += 1,
                None => self.current.status_codes.push((code, 1)),
            }
        }
    }

    /// Closes the current interval and starts the next one.
    pub fn rotate(&mut self) -> IntervalData {
        let next = IntervalData::new(self.current.index + 1);
        let mut done = std::mem::replace(&mut self.current, next);
        done.in_flight = self.totals.outstanding();
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_intended_request_ends_once() {
        let mut r = Recorder::default();
        for _ in 0..10 {
            r.intended();
        }
        r.dropped();
        for _ in 0..9 {
            r.sent();
        }
        for _ in 0..6 {
            r.ok(Duration::from_millis(20), Duration::from_millis(19));
        }
        let first = r.rotate();
        assert_eq!(
            (first.index, first.intended, first.ok, first.in_flight),
            (0, 10, 6, 3)
        );
        r.error(ErrorKind::Status, Some(503));
        r.error(ErrorKind::Status, Some(503));
        r.error(ErrorKind::Timeout, None);
        let second = r.rotate();
        assert_eq!(second.index, 1);
        assert_eq!(second.errors, [0, 1, 2, 0]);
        assert_eq!(second.status_codes, vec![(503, 2)]);
        assert_eq!(second.in_flight, 0);
        let t = r.totals;
        assert_eq!(t.intended, t.ok + t.errors + t.dropped);
        assert_eq!(first.latency.len(), 6);
        assert!(first
            .latency
            .equivalent(first.latency.value_at_quantile(0.5), 20_000));
    }
}
