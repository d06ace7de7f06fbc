//! How a request ended, and how endings are counted. Every intended request
//! ends as exactly one of ok, one error kind, or dropped.
//!
//! This is the one outcome vocabulary of workers and coordinator: the error
//! kinds ([`ErrorKind`], whose names are the report's `errors_by_kind` keys),
//! counters indexed by them ([`KindCounts`]), and the counters of a span of
//! the run ([`Counts`]) and of one request definition ([`RequestCounts`]).

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

/// Request counters. Errors are split by kind in `by_kind` plus the
/// coordinator's own kind, `lost` ([`LOST_KIND`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub intended: u64,
    pub sent: u64,
    pub ok: u64,
    pub dropped: u64,
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
