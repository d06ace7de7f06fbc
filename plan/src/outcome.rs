//! How a request ended, and how endings are counted. Every intended request
//! ends as exactly one of ok, one error kind, or dropped.
//!
//! This is the one outcome vocabulary of workers and coordinator: the error
//! kinds ([`ErrorKind`], whose names are the report's `errors_by_kind` keys),
//! counters indexed by them ([`KindCounts`]), why a request was dropped
//! ([`DropCause`], counted in [`DropCounts`]: the report's `drop_reasons`),
//! and the counters of a span of the run ([`Counts`]) and of one request
//! definition ([`RequestCounts`]).

use std::ops::{Index, IndexMut};

/// Why a request failed. The set is closed so counters are a fixed array on
/// the hot path; the names are the report's `errors_by_kind` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No connection could be established (refused, unreachable, DNS, or the
    /// connect did not finish within the timeout).
    Connect,
    /// No complete response within the timeout, counted from the send.
    Timeout,
    /// A complete response with a failing status (HTTP >= 400).
    Status,
    /// The peer broke the protocol: a malformed or oversized reply (bad
    /// HTTP, a bad frame, a gRPC reply without grpc-status).
    Protocol,
    /// The peer reset or closed the connection while the request was
    /// outstanding (for HTTP/2 also RST_STREAM and GOAWAY).
    Reset,
    /// A complete reply that failed a response check (`[expect]`); counted
    /// per check in `errors_by_check`.
    Check,
}

impl ErrorKind {
    pub const COUNT: usize = 6;
    pub const ALL: [ErrorKind; ErrorKind::COUNT] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Status,
        ErrorKind::Protocol,
        ErrorKind::Reset,
        ErrorKind::Check,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Status => "status",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Reset => "reset",
            ErrorKind::Check => "check",
        }
    }

    /// The kind named `s` in a report.
    pub fn parse(s: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The report's `errors_by_kind` key of the coordinator's own kind: requests
/// in flight on a worker that was lost, so their outcome is unknown. It is
/// not an [`ErrorKind`]: no worker ever reports it.
pub const LOST_KIND: &str = "lost";

/// The report's `drop_reasons` key of the coordinator's own cause: requests
/// a lost worker owned and never reported as sent (`Counts::unsent`). It is
/// not a [`DropCause`]: no worker ever reports it.
pub const WORKER_LOST_CAUSE: &str = "worker_lost";

/// Error counters by kind, indexed by [`ErrorKind`] (never by a bare number,
/// so reordering the kinds cannot mislabel a count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCounts([u64; ErrorKind::COUNT]);

impl KindCounts {
    /// Counts with `f(kind)` for each kind.
    pub fn from_fn(f: impl FnMut(ErrorKind) -> u64) -> KindCounts {
        KindCounts(ErrorKind::ALL.map(f))
    }

    /// Every kind with its count, in the order of [`ErrorKind::ALL`].
    pub fn iter(&self) -> impl Iterator<Item = (ErrorKind, u64)> + '_ {
        ErrorKind::ALL.into_iter().zip(self.0)
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn add(&mut self, o: &KindCounts) {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a += b;
        }
    }
}

impl Index<ErrorKind> for KindCounts {
    type Output = u64;

    fn index(&self, k: ErrorKind) -> &u64 {
        &self.0[k.index()]
    }
}

impl IndexMut<ErrorKind> for KindCounts {
    fn index_mut(&mut self, k: ErrorKind) -> &mut u64 {
        &mut self.0[k.index()]
    }
}

/// Why a worker dropped a request (did not send it) instead of sending it
/// late. Decided where the drop happens, in the worker's scheduler; the
/// names are the report's `drop_reasons` keys. Every drop a worker reports
/// has exactly one cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropCause {
    /// The worker already had `load.max_in_flight` requests outstanding and
    /// requests were waiting for a connection: every one of the
    /// `load.connections` was busy (at its `per_connection` requests), so
    /// the connections were the limit. Requests still waiting for a
    /// connection when a run is interrupted are dropped with this cause too.
    ConnectionsBusy,
    /// The worker already had `load.max_in_flight` requests outstanding and
    /// none was waiting for a connection: the in-flight cap itself was the
    /// limit.
    MaxInFlight,
    /// The generator reached the arrival too late: more than
    /// [`BEHIND_SCHEDULE_LIMIT`] (or the request timeout, when shorter)
    /// after it was due, because its thread did not get the CPU in time.
    /// Sent, its latency would be the generator's lateness, not the
    /// target's (and past the timeout it could only have timed out).
    BehindSchedule,
}

/// How late past its due time the generator may reach an arrival and still
/// send it. Past this (or past the request timeout, when shorter) the
/// arrival is dropped as [`DropCause::BehindSchedule`]. Normal scheduling
/// is at most a few milliseconds late (the scheduler sends in batches a
/// millisecond apart); a second late means the engine's thread was starved
/// of CPU.
pub const BEHIND_SCHEDULE_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

impl DropCause {
    pub const COUNT: usize = 3;
    pub const ALL: [DropCause; DropCause::COUNT] = [
        DropCause::ConnectionsBusy,
        DropCause::MaxInFlight,
        DropCause::BehindSchedule,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            DropCause::ConnectionsBusy => "connections_busy",
            DropCause::MaxInFlight => "max_in_flight",
            DropCause::BehindSchedule => "behind_schedule",
        }
    }

    /// The cause named `s` in a report.
    pub fn parse(s: &str) -> Option<DropCause> {
        DropCause::ALL.into_iter().find(|c| c.as_str() == s)
    }

    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }

    /// Which of the three a drop is, from the scheduler's state when the
    /// arrival came due: `late` is how far past due it was reached, `limit`
    /// how late it may be ([`BEHIND_SCHEDULE_LIMIT`] or the timeout),
    /// `at_cap` whether `max_in_flight` requests were already outstanding,
    /// `waiting_for_connection` whether requests were queued with every
    /// connection open. `None`: not dropped, send it.
    #[inline]
    pub fn classify(
        late: std::time::Duration,
        limit: std::time::Duration,
        at_cap: bool,
        waiting_for_connection: bool,
    ) -> Option<DropCause> {
        if late > limit {
            Some(DropCause::BehindSchedule)
        } else if !at_cap {
            None
        } else if waiting_for_connection {
            Some(DropCause::ConnectionsBusy)
        } else {
            Some(DropCause::MaxInFlight)
        }
    }
}

/// Drop counters by cause, indexed by [`DropCause`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts([u64; DropCause::COUNT]);

impl DropCounts {
    /// Counts with `f(cause)` for each cause.
    pub fn from_fn(f: impl FnMut(DropCause) -> u64) -> DropCounts {
        DropCounts(DropCause::ALL.map(f))
    }

    /// Every cause with its count, in the order of [`DropCause::ALL`].
    pub fn iter(&self) -> impl Iterator<Item = (DropCause, u64)> + '_ {
        DropCause::ALL.into_iter().zip(self.0)
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn add(&mut self, o: &DropCounts) {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a += b;
        }
    }
}

impl Index<DropCause> for DropCounts {
    type Output = u64;

    fn index(&self, c: DropCause) -> &u64 {
        &self.0[c.index()]
    }
}

impl IndexMut<DropCause> for DropCounts {
    fn index_mut(&mut self, c: DropCause) -> &mut u64 {
        &mut self.0[c.index()]
    }
}

/// Request counters. Errors are split by kind in `by_kind` plus the
/// coordinator's own kind, `lost` ([`LOST_KIND`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub intended: u64,
    pub sent: u64,
    pub ok: u64,
    pub dropped: u64,
    /// `dropped` by the cause the workers reported; what a lost worker
    /// never sent (`unsent`) is the rest: `drops.total() + unsent ==
    /// dropped`.
    pub drops: DropCounts,
    pub by_kind: KindCounts,
    /// Errors of kind "lost": in flight on a worker that was lost, so their
    /// outcome is unknown.
    pub lost: u64,
    /// Part of `dropped`: requests a lost worker owned but never reported
    /// as sent (unsent, or sent in the second it died before reporting it).
    pub unsent: u64,
}

impl Counts {
    pub fn errors(&self) -> u64 {
        self.by_kind.total() + self.lost
    }

    /// The worker-reported error kinds with their counts (`lost` apart).
    pub fn kinds(&self) -> impl Iterator<Item = (ErrorKind, u64)> + '_ {
        self.by_kind.iter()
    }

    /// Requests not yet ended (in flight).
    pub fn outstanding(&self) -> u64 {
        self.intended
            .saturating_sub(self.ok + self.errors() + self.dropped)
    }

    pub fn add(&mut self, o: &Counts) {
        self.intended += o.intended;
        self.sent += o.sent;
        self.ok += o.ok;
        self.dropped += o.dropped;
        self.drops.add(&o.drops);
        self.by_kind.add(&o.by_kind);
        self.lost += o.lost;
        self.unsent += o.unsent;
    }

    /// Closes the books of a lost worker: what it had in flight ends as a
    /// "lost" error, what it owned and never sent as dropped. Returns what
    /// was added.
    pub fn settle_lost(&mut self, unsent: u64) -> Counts {
        let delta = Counts {
            intended: unsent,
            dropped: unsent,
            unsent,
            lost: self.outstanding(),
            ..Counts::default()
        };
        self.add(&delta);
        delta
    }
}

/// Counters of one request definition. Errors are not split by kind: a
/// worker reports only their total per request definition (the kinds are in
/// the interval's [`Counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub intended: u64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub dropped: u64,
}

impl RequestCounts {
    pub fn add(&mut self, o: &RequestCounts) {
        self.intended += o.intended;
        self.sent += o.sent;
        self.ok += o.ok;
        self.errors += o.errors;
        self.dropped += o.dropped;
    }

    /// Requests not yet ended (in flight).
    pub fn outstanding(&self) -> u64 {
        self.intended
            .saturating_sub(self.ok + self.errors + self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_indexes_follow_all() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
            assert_eq!(ErrorKind::parse(k.as_str()), Some(*k));
        }
        assert_eq!(ErrorKind::parse("lost"), None);
    }

    #[test]
    fn kind_counts_are_indexed_by_kind() {
        let mut c = KindCounts::default();
        c[ErrorKind::Reset] = 2;
        c[ErrorKind::Status] += 3;
        let mut d = KindCounts::from_fn(|k| u64::from(k == ErrorKind::Reset));
        d.add(&c);
        assert_eq!((d[ErrorKind::Reset], d[ErrorKind::Status]), (3, 3));
        assert_eq!(d.total(), 6);
        let named: Vec<(&str, u64)> = d.iter().map(|(k, n)| (k.as_str(), n)).collect();
        assert_eq!(named[ErrorKind::Reset.index()], ("reset", 3));
        assert!(
            ErrorKind::parse(LOST_KIND).is_none(),
            "lost is no worker kind"
        );
    }

    #[test]
    fn drop_causes_are_named_once_and_classified_in_order() {
        for (i, c) in DropCause::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(DropCause::parse(c.as_str()), Some(*c));
        }
        let ms = std::time::Duration::from_millis;
        let limit = ms(1000);
        // Lateness wins over any cap: the arrival is already lost.
        for (cap, queued) in [(false, false), (true, true), (true, false)] {
            assert_eq!(
                DropCause::classify(ms(1001), limit, cap, queued),
                Some(DropCause::BehindSchedule)
            );
        }
        assert_eq!(DropCause::classify(ms(1000), limit, false, true), None);
        assert_eq!(
            DropCause::classify(ms(3), limit, true, true),
            Some(DropCause::ConnectionsBusy)
        );
        assert_eq!(
            DropCause::classify(ms(3), limit, true, false),
            Some(DropCause::MaxInFlight)
        );
        let mut d = DropCounts::from_fn(|c| c.index() as u64 + 1);
        d[DropCause::MaxInFlight] += 10;
        let mut e = DropCounts::default();
        e.add(&d);
        assert_eq!((e[DropCause::MaxInFlight], e.total()), (12, 16));
    }

    #[test]
    fn settling_a_lost_worker_accounts_for_everything() {
        let mut c = Counts {
            intended: 100,
            sent: 95,
            ok: 80,
            dropped: 5,
            by_kind: KindCounts::from_fn(|k| if k == ErrorKind::Timeout { 3 } else { 0 }),
            ..Counts::default()
        };
        let d = c.settle_lost(40);
        assert_eq!((d.lost, d.unsent), (12, 40));
        assert_eq!(c.intended, 140);
        assert_eq!(c.intended, c.ok + c.errors() + c.dropped);
        assert_eq!(c.outstanding(), 0);
    }

    #[test]
    fn counts_add_every_field() {
        let a = Counts {
            intended: 100,
            sent: 90,
            ok: 70,
            dropped: 10,
            drops: DropCounts::from_fn(|c| [4, 3, 3][c.index()]),
            by_kind: KindCounts::from_fn(|k| k.index() as u64 + 1),
            lost: 2,
            unsent: 3,
        };
        let b = Counts {
            intended: 1000,
            sent: 900,
            ok: 700,
            dropped: 100,
            drops: DropCounts::from_fn(|c| [40, 30, 30][c.index()]),
            by_kind: KindCounts::from_fn(|k| 10 * (k.index() as u64 + 1)),
            lost: 20,
            unsent: 30,
        };
        let mut sum = a;
        sum.add(&b);
        assert_eq!(
            sum,
            Counts {
                intended: 1100,
                sent: 990,
                ok: 770,
                dropped: 110,
                drops: DropCounts::from_fn(|c| [44, 33, 33][c.index()]),
                by_kind: KindCounts::from_fn(|k| 11 * (k.index() as u64 + 1)),
                lost: 22,
                unsent: 33,
            }
        );
        assert_eq!(sum.errors(), 11 * 21 + 22);
        assert_eq!(
            sum.kinds().collect::<Vec<_>>(),
            ErrorKind::ALL
                .iter()
                .map(|&k| (k, 11 * (k.index() as u64 + 1)))
                .collect::<Vec<_>>(),
            "every worker kind, in order, and not lost"
        );
        let causes: Vec<(&str, u64)> = sum.drops.iter().map(|(c, n)| (c.as_str(), n)).collect();
        assert_eq!(
            causes,
            [
                ("connections_busy", 44),
                ("max_in_flight", 33),
                ("behind_schedule", 33)
            ]
        );
        // Settling keeps what the worker reported and adds only the lost.
        let before = sum;
        let mut settled = sum;
        let delta = settled.settle_lost(5);
        assert_eq!(
            (settled.sent, settled.ok, settled.drops, settled.by_kind),
            (before.sent, before.ok, before.drops, before.by_kind)
        );
        assert_eq!((settled.unsent, settled.dropped), (38, 115));
        assert_eq!(delta.lost, before.outstanding());
    }

    #[test]
    fn request_counts_add_every_field() {
        let mut a = RequestCounts {
            intended: 10,
            sent: 9,
            ok: 6,
            errors: 2,
            dropped: 1,
        };
        a.add(&RequestCounts {
            intended: 100,
            sent: 90,
            ok: 60,
            errors: 20,
            dropped: 10,
        });
        assert_eq!(
            a,
            RequestCounts {
                intended: 110,
                sent: 99,
                ok: 66,
                errors: 22,
                dropped: 11,
            }
        );
        assert_eq!(a.outstanding(), 11);
    }

    #[test]
    fn request_counts_add_and_know_what_is_outstanding() {
        let mut a = RequestCounts {
            intended: 10,
            sent: 9,
            ok: 6,
            errors: 1,
            dropped: 1,
        };
        assert_eq!(a.outstanding(), 2);
        a.add(&RequestCounts {
            intended: 1,
            errors: 1,
            ..RequestCounts::default()
        });
        assert_eq!((a.intended, a.errors, a.outstanding()), (11, 2, 2));
    }
}
