//! Per-second accounting of one worker's traffic.
//!
//! Pure bookkeeping (no I/O, no clocks of its own). Every request is
//! attributed to the second it was *scheduled* in: intended, sent, dropped,
//! ok, errors and its latency all count there, whenever the outcome arrives.
//! So every second adds up on its own (`intended = ok + errors + dropped`),
//! a stage's success rate is that of the requests it scheduled, and a
//! second's p99 is the p99 of the requests due in it, which is what burst
//! recovery asks about. The price: a second is reported only once all its
//! requests have ended (they all do within about twice the timeout).

use super::outcome::ErrorKind;
use std::collections::VecDeque;
use std::time::Duration;
use volley_plan::{DropCause, DropCounts};
use volley_proto::histogram::{self, SecondHist};

/// Counters and histograms of one second.
#[derive(Debug, Clone)]
pub struct IntervalData {
    pub index: u32,
    pub intended: u64,
    pub sent: u64,
    pub ok: u64,
    pub dropped: u64,
    /// `dropped` by cause: they add up to it exactly.
    pub drops: DropCounts,
    pub errors: [u64; ErrorKind::COUNT],
    /// (HTTP status, count) for failing statuses.
    pub status_codes: Vec<(u32, u64)>,
    /// (grpc-status, count) for failed gRPC calls.
    pub grpc_codes: Vec<(u32, u64)>,
    /// Failed response checks, one entry per (request, check) that failed
    /// in this second; the counts add up to `errors[Check]`.
    pub check_failures: Vec<CheckCount>,
    /// Per request definition, when the plan has more than one (else empty).
    pub requests: Vec<RequestData>,
    /// Latency from the scheduled send time of ok requests.
    pub latency: SecondHist,
    /// Service time from the actual send of ok requests.
    pub service: SecondHist,
    /// Volley's own lateness: actual send − scheduled send, of every sent
    /// request (ok or not). Its count is `sent`.
    pub send_lag: SecondHist,
    /// Requests of later seconds still outstanding when this one closed.
    pub in_flight: u64,
}

/// One request definition's share of a second.
#[derive(Debug, Clone)]
pub struct RequestData {
    pub intended: u64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub dropped: u64,
    pub latency: SecondHist,
}

impl RequestData {
    fn new() -> RequestData {
        RequestData {
            intended: 0,
            sent: 0,
            ok: 0,
            errors: 0,
            dropped: 0,
            latency: histogram::new_second_hist(),
        }
    }

    fn outstanding(&self) -> u64 {
        self.intended - self.ok - self.errors - self.dropped
    }
}

impl IntervalData {
    pub fn new(index: u32) -> IntervalData {
        IntervalData::with_requests(index, 1)
    }

    /// An empty second of a plan with `requests` request definitions.
    pub fn with_requests(index: u32, requests: usize) -> IntervalData {
        IntervalData {
            index,
            intended: 0,
            sent: 0,
            ok: 0,
            dropped: 0,
            drops: DropCounts::default(),
            errors: [0; ErrorKind::COUNT],
            status_codes: Vec::new(),
            grpc_codes: Vec::new(),
            check_failures: Vec::new(),
            requests: if requests > 1 {
                (0..requests).map(|_| RequestData::new()).collect()
            } else {
                Vec::new()
            },
            latency: histogram::new_second_hist(),
            service: histogram::new_second_hist(),
            send_lag: histogram::new_second_hist(),
            in_flight: 0,
        }
    }

    pub fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Requests of this second that have not ended yet.
    pub fn outstanding(&self) -> u64 {
        self.intended - self.ok - self.error_total() - self.dropped
    }

    /// Adds another engine's same second (a worker's threads report as one
    /// worker): every count summed and every histogram merged exactly.
    pub fn absorb(&mut self, o: &IntervalData) -> Result<(), histogram::HistError> {
        self.intended += o.intended;
        self.sent += o.sent;
        self.ok += o.ok;
        self.dropped += o.dropped;
        self.drops.add(&o.drops);
        for (a, b) in self.errors.iter_mut().zip(o.errors) {
            *a += b;
        }
        for &(code, n) in &o.status_codes {
            add_code(&mut self.status_codes, code, n);
        }
        for &(code, n) in &o.grpc_codes {
            add_code(&mut self.grpc_codes, code, n);
        }
        for c in &o.check_failures {
            add_check(&mut self.check_failures, c.req, c.check, c.count);
        }
        if self.requests.is_empty() {
            self.requests.clone_from(&o.requests);
        } else {
            for (a, b) in self.requests.iter_mut().zip(&o.requests) {
                a.intended += b.intended;
                a.sent += b.sent;
                a.ok += b.ok;
                a.errors += b.errors;
                a.dropped += b.dropped;
                histogram::merge(&mut a.latency, &b.latency)?;
            }
        }
        histogram::merge(&mut self.latency, &o.latency)?;
        histogram::merge(&mut self.service, &o.service)?;
        histogram::merge(&mut self.send_lag, &o.send_lag)?;
        self.in_flight += o.in_flight;
        Ok(())
    }
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
    pub fn add(&mut self, o: &Totals) {
        self.intended += o.intended;
        self.sent += o.sent;
        self.ok += o.ok;
        self.errors += o.errors;
        self.dropped += o.dropped;
    }

    /// Requests that have not ended yet.
    pub fn outstanding(&self) -> u64 {
        self.intended - self.ok - self.errors - self.dropped
    }
}

/// How often one check of one request definition failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckCount {
    /// The request definition (index into the plan's requests).
    pub req: u16,
    /// The check (index into that request's `Expect::checks`).
    pub check: u16,
    pub count: u64,
}

/// A failing status a reply carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Http(u16),
    Grpc(u32),
}

/// Which request an outcome belongs to: the second it was scheduled in and
/// its request definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub second: u32,
    pub req: u16,
}

impl Tag {
    pub fn new(second: u32, req: u16) -> Tag {
        Tag { second, req }
    }
}

/// The seconds not yet reported, oldest first, and the run's totals.
#[derive(Debug)]
pub struct Recorder {
    /// `open[0]` is second `base`; seconds are contiguous.
    open: VecDeque<IntervalData>,
    base: u32,
    /// Request definitions of the plan (per-request data only when > 1).
    requests: usize,
    pub totals: Totals,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new(1)
    }
}

/// Adds `n` failures of `check` of request `req` (a handful of entries at
/// most: a linear scan, and no allocation once the entry exists).
fn add_check(checks: &mut Vec<CheckCount>, req: u16, check: u16, n: u64) {
    match checks.iter_mut().find(|c| c.req == req && c.check == check) {
        Some(c) => c.count += n,
        None => checks.push(CheckCount {
            req,
            check,
            count: n,
        }),
    }
}

/// Adds `n` to `code`'s count (a handful of codes at most: a linear scan,
/// and no allocation once the entry exists).
fn add_code(codes: &mut Vec<(u32, u64)>, code: u32, n: u64) {
    match codes.iter_mut().find(|(c, _)| *c == code) {
        Some((_, m)) => *m += n,
        None => codes.push((code, n)),
    }
}

impl Recorder {
    pub fn new(requests: usize) -> Recorder {
        Recorder {
            open: VecDeque::new(),
            base: 0,
            requests,
            totals: Totals::default(),
        }
    }

    #[inline]
    fn at(&mut self, second: u32) -> &mut IntervalData {
        // Seconds before `base` were closed only once nothing of theirs was
        // outstanding, so an outcome can never belong to one.
        let i = second.saturating_sub(self.base) as usize;
        while self.open.len() <= i {
            let next = self.base + self.open.len() as u32;
            self.open
                .push_back(IntervalData::with_requests(next, self.requests));
        }
        &mut self.open[i]
    }

    #[inline]
    pub fn intended(&mut self, tag: Tag) {
        let d = self.at(tag.second);
        d.intended += 1;
        if let Some(r) = d.requests.get_mut(usize::from(tag.req)) {
            r.intended += 1;
        }
        self.totals.intended += 1;
    }

    #[inline]
    pub fn dropped(&mut self, tag: Tag, cause: DropCause) {
        let d = self.at(tag.second);
        d.dropped += 1;
        d.drops[cause] += 1;
        if let Some(r) = d.requests.get_mut(usize::from(tag.req)) {
            r.dropped += 1;
        }
        self.totals.dropped += 1;
    }

    /// A request went on the wire `lag` after its scheduled time.
    #[inline]
    pub fn sent(&mut self, tag: Tag, lag: Duration) {
        let d = self.at(tag.second);
        d.sent += 1;
        histogram::record(&mut d.send_lag, lag);
        if let Some(r) = d.requests.get_mut(usize::from(tag.req)) {
            r.sent += 1;
        }
        self.totals.sent += 1;
    }

    #[inline]
    pub fn ok(&mut self, tag: Tag, latency: Duration, service: Duration) {
        let d = self.at(tag.second);
        d.ok += 1;
        histogram::record(&mut d.latency, latency);
        histogram::record(&mut d.service, service);
        if let Some(r) = d.requests.get_mut(usize::from(tag.req)) {
            r.ok += 1;
            histogram::record(&mut r.latency, latency);
        }
        self.totals.ok += 1;
    }

    #[inline]
    pub fn error(&mut self, tag: Tag, kind: ErrorKind, status: Option<Status>) {
        let d = self.at(tag.second);
        d.errors[kind.index()] += 1;
        match status {
            Some(Status::Http(code)) => add_code(&mut d.status_codes, u32::from(code), 1),
            Some(Status::Grpc(code)) => add_code(&mut d.grpc_codes, code, 1),
            None => {}
        }
        if let Some(r) = d.requests.get_mut(usize::from(tag.req)) {
            r.errors += 1;
        }
        self.totals.errors += 1;
    }

    /// A complete reply that failed `check` of its request definition
    /// (only the first failing check of a reply is counted).
    #[inline]
    pub fn check_failed(&mut self, tag: Tag, check: u16) {
        let d = self.at(tag.second);
        d.errors[ErrorKind::Check.index()] += 1;
        add_check(&mut d.check_failures, tag.req, check, 1);
        if let Some(r) = d.requests.get_mut(usize::from(tag.req)) {
            r.errors += 1;
        }
        self.totals.errors += 1;
    }

    /// Closes, in order, every second before `now_second` whose requests
    /// have all ended. With `force`, closes everything (the end of the run).
    pub fn close(&mut self, now_second: u32, force: bool) -> Vec<IntervalData> {
        let mut out = Vec::new();
        // Closed in order: seconds past the clock (empty ones included, so
        // the series has no holes) and, when forced, whatever is still open.
        while (self.base < now_second && !force) || (force && !self.open.is_empty()) {
            let ready = self.open.front().is_none_or(|d| d.outstanding() == 0);
            if !ready && !force {
                break;
            }
            let mut d = self
                .open
                .pop_front()
                .unwrap_or_else(|| IntervalData::new(self.base));
            self.base += 1;
            d.in_flight = self.totals.outstanding();
            out.push(d);
        }
        out
    }

    /// Ends every outstanding request as a timeout (nothing answered before
    /// the engine had to stop waiting).
    pub fn time_out_the_rest(&mut self) {
        for d in self.open.iter_mut() {
            let n = d.outstanding();
            d.errors[ErrorKind::Timeout.index()] += n;
            self.totals.errors += n;
            for r in d.requests.iter_mut() {
                r.errors += r.outstanding();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Tag = Tag { second: 0, req: 0 };
    const T1: Tag = Tag { second: 1, req: 0 };

    #[test]
    fn every_sent_request_has_its_lag_in_its_scheduled_second() {
        let mut r = Recorder::new(1);
        for (tag, lag_us) in [(T0, 5), (T0, 700), (T1, 2_000_000)] {
            r.intended(tag);
            r.sent(tag, Duration::from_micros(lag_us));
        }
        // Failures after the send keep their lag: it is the generator's.
        r.error(T0, ErrorKind::Timeout, None);
        r.ok(T0, Duration::from_millis(3), Duration::from_millis(2));
        r.ok(T1, Duration::from_secs(3), Duration::from_secs(1));
        let out = r.close(2, false);
        assert_eq!(out.len(), 2);
        let (s0, s1) = (&out[0].send_lag, &out[1].send_lag);
        assert_eq!((s0.len(), s1.len()), (2, 1));
        assert_eq!(s0.min(), 5);
        assert!(s0.equivalent(s0.max(), 700), "{}", s0.max());
        assert!(s1.equivalent(s1.max(), 2_000_000), "{}", s1.max());
        // Dropped requests were never sent: no lag.
        r.intended(Tag::new(2, 0));
        r.dropped(Tag::new(2, 0), DropCause::BehindSchedule);
        assert!(r.close(3, false)[0].send_lag.is_empty());
    }

    #[test]
    fn per_request_counts_add_up_to_the_second() {
        let mut r = Recorder::new(2);
        let a = Tag::new(0, 0);
        let b = Tag::new(0, 1);
        for _ in 0..3 {
            r.intended(a);
            r.sent(a, Duration::ZERO);
        }
        r.intended(b);
        r.dropped(b, DropCause::MaxInFlight);
        r.intended(b);
        r.sent(b, Duration::ZERO);
        r.ok(a, Duration::from_millis(1), Duration::from_millis(1));
        r.ok(a, Duration::from_millis(2), Duration::from_millis(1));
        r.error(a, ErrorKind::Status, Some(Status::Grpc(14)));
        r.error(b, ErrorKind::Reset, None);
        let d = &r.close(1, false)[0];
        assert_eq!((d.intended, d.ok, d.dropped, d.error_total()), (5, 2, 1, 2));
        assert_eq!(d.grpc_codes, vec![(14, 1)]);
        assert!(d.status_codes.is_empty());
        let (ra, rb) = (&d.requests[0], &d.requests[1]);
        assert_eq!(
            (ra.intended, ra.sent, ra.ok, ra.errors, ra.dropped),
            (3, 3, 2, 1, 0)
        );
        assert_eq!(
            (rb.intended, rb.sent, rb.ok, rb.errors, rb.dropped),
            (2, 1, 0, 1, 1)
        );
        assert_eq!(ra.latency.len(), 2);
        assert_eq!(ra.intended + rb.intended, d.intended);
        assert_eq!(
            r.totals,
            Totals {
                intended: 5,
                sent: 4,
                ok: 2,
                errors: 2,
                dropped: 1
            }
        );
    }

    #[test]
    fn drops_count_by_cause_in_their_scheduled_second_and_add_up() {
        let mut r = Recorder::new(2);
        let causes = [
            (T0, DropCause::ConnectionsBusy),
            (Tag::new(0, 1), DropCause::ConnectionsBusy),
            (T0, DropCause::MaxInFlight),
            (T1, DropCause::BehindSchedule),
            (T1, DropCause::MaxInFlight),
        ];
        for (tag, cause) in causes {
            r.intended(tag);
            r.dropped(tag, cause);
        }
        let closed = r.close(2, false);
        let (s0, s1) = (&closed[0], &closed[1]);
        assert_eq!(
            (
                s0.drops[DropCause::ConnectionsBusy],
                s0.drops[DropCause::MaxInFlight],
                s0.drops[DropCause::BehindSchedule]
            ),
            (2, 1, 0)
        );
        assert_eq!(
            (
                s1.drops[DropCause::MaxInFlight],
                s1.drops[DropCause::BehindSchedule]
            ),
            (1, 1)
        );
        for s in [s0, s1] {
            assert_eq!(s.drops.total(), s.dropped);
            assert_eq!(s.outstanding(), 0);
        }
        assert_eq!(
            s0.requests.iter().map(|q| q.dropped).sum::<u64>(),
            s0.dropped,
            "per request definition, the same drops"
        );
    }

    /// Whatever order outcomes arrive in, every second's causes add up to
    /// its `dropped`, and so do its request definitions' drops.
    #[test]
    fn drop_causes_add_up_in_every_second_for_any_sequence() {
        for seed in 0..200u64 {
            let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let mut next = |n: u64| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 33) % n
            };
            let mut r = Recorder::new(3);
            let mut dropped = 0;
            for _ in 0..500 {
                let tag = Tag::new(next(6) as u32, next(3) as u16);
                r.intended(tag);
                match next(5) {
                    0..=2 => {
                        r.dropped(tag, DropCause::ALL[next(3) as usize]);
                        dropped += 1;
                    }
                    3 => {
                        r.sent(tag, Duration::ZERO);
                        r.ok(tag, Duration::from_millis(1), Duration::from_millis(1));
                    }
                    _ => {
                        r.sent(tag, Duration::ZERO);
                        r.error(tag, ErrorKind::Timeout, None);
                    }
                }
            }
            let closed = r.close(6, true);
            for d in &closed {
                assert_eq!(d.drops.total(), d.dropped, "seed {seed} second {}", d.index);
                assert_eq!(
                    d.requests.iter().map(|q| q.dropped).sum::<u64>(),
                    d.dropped,
                    "seed {seed}"
                );
            }
            let mut all = DropCounts::default();
            closed.iter().for_each(|d| all.add(&d.drops));
            assert_eq!((all.total(), r.totals.dropped), (dropped, dropped));
        }
    }

    #[test]
    fn check_failures_count_per_request_and_check_and_add_up() {
        let mut r = Recorder::new(2);
        let (a, b) = (Tag::new(0, 0), Tag::new(0, 1));
        for _ in 0..4 {
            r.intended(a);
            r.sent(a, Duration::ZERO);
        }
        r.intended(b);
        r.sent(b, Duration::ZERO);
        r.check_failed(a, 2);
        r.check_failed(a, 2);
        r.check_failed(a, 0);
        r.check_failed(b, 2);
        r.ok(a, Duration::from_millis(1), Duration::from_millis(1));
        let d = &r.close(1, false)[0];
        let c = |req, check, count| CheckCount { req, check, count };
        assert_eq!(d.check_failures, vec![c(0, 2, 2), c(0, 0, 1), c(1, 2, 1)]);
        assert_eq!(d.errors[ErrorKind::Check.index()], 4);
        assert_eq!(
            d.check_failures.iter().map(|c| c.count).sum::<u64>(),
            d.errors[ErrorKind::Check.index()]
        );
        assert_eq!((d.requests[0].errors, d.requests[1].errors), (3, 1));
        assert_eq!(d.outstanding(), 0);
        assert_eq!(r.totals.outstanding(), 0);
    }

    #[test]
    fn one_request_keeps_no_per_request_data() {
        let mut r = Recorder::new(1);
        r.intended(T0);
        r.ok(T0, Duration::from_millis(1), Duration::from_millis(1));
        assert!(r.close(1, false)[0].requests.is_empty());
    }

    #[test]
    fn outcomes_count_in_the_second_they_were_scheduled() {
        let mut r = Recorder::default();
        for _ in 0..4 {
            r.intended(T0);
        }
        r.dropped(T0, DropCause::BehindSchedule);
        for _ in 0..3 {
            r.sent(T0, Duration::ZERO);
        }
        r.intended(T1);
        r.sent(T1, Duration::ZERO);
        r.ok(T0, Duration::from_millis(20), Duration::from_millis(19));
        // Second 0 still has two requests out: nothing closes yet, and second
        // 1 waits behind it even though its own request is done.
        r.ok(T1, Duration::from_millis(5), Duration::from_millis(5));
        assert!(r.close(2, false).is_empty());
        r.error(T0, ErrorKind::Status, Some(Status::Http(503)));
        r.ok(T0, Duration::from_millis(1500), Duration::from_millis(10));
        let closed = r.close(2, false);
        assert_eq!(
            closed.iter().map(|d| d.index).collect::<Vec<_>>(),
            vec![0, 1]
        );
        let s0 = &closed[0];
        assert_eq!(
            (s0.intended, s0.sent, s0.ok, s0.dropped, s0.error_total()),
            (4, 3, 2, 1, 1)
        );
        assert_eq!(s0.status_codes, vec![(503, 1)]);
        assert_eq!(s0.latency.len(), 2);
        assert!(
            s0.latency.max() >= 1_499_000,
            "the late answer counts in its scheduled second"
        );
        assert_eq!(closed[1].ok, 1);
        let t = r.totals;
        assert_eq!(t.intended, t.ok + t.errors + t.dropped);
    }

    #[test]
    fn the_current_second_stays_open_and_gaps_close_empty() {
        let mut r = Recorder::default();
        r.intended(Tag::new(3, 0));
        r.ok(
            Tag::new(3, 0),
            Duration::from_millis(1),
            Duration::from_millis(1),
        );
        let closed = r.close(3, false);
        assert_eq!(
            closed.iter().map(|d| d.index).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert!(closed.iter().all(|d| d.intended == 0));
        assert_eq!(r.close(4, false)[0].ok, 1);
    }

    #[test]
    fn forcing_closes_everything_after_the_rest_timed_out() {
        let mut r = Recorder::default();
        r.intended(T0);
        r.sent(T0, Duration::ZERO);
        r.intended(T1);
        assert!(r.close(5, false).is_empty());
        r.time_out_the_rest();
        let closed = r.close(5, true);
        assert_eq!(
            closed.len(),
            2,
            "forcing closes what is open, not empty seconds past it"
        );
        assert_eq!(closed[0].errors[ErrorKind::Timeout.index()], 1);
        assert_eq!(r.totals.outstanding(), 0);
    }

    #[test]
    fn the_rest_times_out_per_request_definition_too() {
        let mut r = Recorder::new(2);
        let (a, b) = (Tag::new(0, 0), Tag::new(0, 1));
        for _ in 0..4 {
            r.intended(a);
            r.sent(a, Duration::ZERO);
        }
        for _ in 0..3 {
            r.intended(b);
        }
        r.ok(a, Duration::from_millis(1), Duration::from_millis(1));
        r.error(a, ErrorKind::Reset, None);
        r.dropped(b, DropCause::MaxInFlight);
        // Outstanding: 2 of a, 2 of b.
        r.time_out_the_rest();
        let d = &r.close(1, true)[0];
        assert_eq!(d.errors[ErrorKind::Timeout.index()], 4);
        let (ra, rb) = (&d.requests[0], &d.requests[1]);
        assert_eq!((ra.ok, ra.errors, ra.dropped), (1, 3, 0));
        assert_eq!((rb.ok, rb.errors, rb.dropped), (0, 2, 1));
        assert_eq!(ra.outstanding() + rb.outstanding(), 0);
        assert_eq!(d.outstanding(), 0);
    }

    #[test]
    fn failing_statuses_are_counted_per_code() {
        let mut r = Recorder::default();
        let replies = [
            Status::Http(503),
            Status::Http(500),
            Status::Http(503),
            Status::Grpc(14),
            Status::Http(503),
            Status::Grpc(14),
            Status::Grpc(4),
        ];
        for s in replies {
            r.intended(T0);
            r.sent(T0, Duration::ZERO);
            r.error(T0, ErrorKind::Status, Some(s));
        }
        let d = &r.close(1, false)[0];
        assert_eq!(d.status_codes, vec![(503, 3), (500, 1)]);
        assert_eq!(d.grpc_codes, vec![(14, 2), (4, 1)]);
        assert_eq!(d.errors[ErrorKind::Status.index()], 7);
    }

    #[test]
    fn a_closed_second_reports_what_later_seconds_still_await() {
        let mut r = Recorder::default();
        r.intended(T0);
        r.sent(T0, Duration::ZERO);
        r.ok(T0, Duration::from_millis(1), Duration::from_millis(1));
        for _ in 0..3 {
            r.intended(T1);
            r.sent(T1, Duration::ZERO);
        }
        r.error(T1, ErrorKind::Timeout, None);
        r.intended(T1);
        r.dropped(T1, DropCause::MaxInFlight);
        assert_eq!(r.totals.outstanding(), 2);
        let closed = r.close(1, false);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].in_flight, 2, "second 1 still awaits two replies");
    }
}
