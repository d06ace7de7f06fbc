//! Response checks on the hot path: the judging order every protocol
//! shares, and what is kept of a reply body for them.
//!
//! The checks themselves are compiled once per run ([`Checker`]); this
//! module only decides which facts of a reply they see, in the order
//! status, headers, body length, body (only the first failing check
//! counts). A request definition without checks never gets here beyond
//! the default status rule, so its path is what it was before checks
//! existed.

use super::recorder::Status;
use volley_plan::expect::{CheckFailure, Checker, MAX_CHECKED_BODY};

/// Why a complete reply is not ok.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The default rule failed (HTTP status >= 400, gRPC status not OK).
    Status(Status),
    /// A check of `[expect]` failed: its index in `Expect::checks`.
    Check(CheckFailure),
}

/// Judges an HTTP reply head: the `status` check when there is one (it
/// replaces the default rule), else status < 400; then the header checks.
#[inline]
pub fn http_head<'h>(
    checker: Option<&Checker>,
    status: u16,
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])> + Clone,
) -> Result<(), Failure> {
    match checker.and_then(|c| c.status(status)) {
        Some(Err(i)) => return Err(Failure::Check(i)),
        Some(Ok(())) => {}
        None if status >= 400 => return Err(Failure::Status(Status::Http(status))),
        None => {}
    }
    match checker {
        Some(c) if c.has_headers() => c.headers(headers).map_err(Failure::Check),
        _ => Ok(()),
    }
}

/// Whether a reply body must be looked at (measured, or kept) at all.
#[inline]
pub fn wants_body(checker: Option<&Checker>) -> bool {
    checker.is_some_and(|c| c.needs_body() || c.max_body().is_some())
}

/// A reply body as far as the checks need it: its length always, its
/// bytes (up to [`MAX_CHECKED_BODY`]) only when a check reads them. One per
/// connection, reused, so judging a body allocates nothing once grown.
#[derive(Debug, Default)]
pub struct BodyKeeper {
    kept: Vec<u8>,
    len: u64,
    keep: bool,
}

impl BodyKeeper {
    /// Starts a new body; `keep` when its bytes are checked (else only its
    /// length is counted).
    #[inline]
    pub fn start(&mut self, keep: bool) {
        self.kept.clear();
        self.len = 0;
        self.keep = keep;
    }

    /// The next bytes of the body.
    #[inline]
    pub fn take(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        if self.keep {
            let room = MAX_CHECKED_BODY.saturating_sub(self.kept.len());
            self.kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The body checks, in order: `max_body_bytes`, then the ones that read
    /// the bytes (which all fail on a body longer than they may keep).
    pub fn judge(&self, checker: &Checker) -> Result<(), CheckFailure> {
        checker.body_len(self.len)?;
        if checker.needs_body() {
            checker.body(&self.kept, self.len > MAX_CHECKED_BODY as u64)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use volley_plan::expect::{Expect, Rule, StatusMatch};

    fn checker(rules: Vec<Rule>) -> Checker {
        Checker::new(&Expect::from_rules(rules)).unwrap()
    }

    #[test]
    fn status_then_headers_and_the_default_rule_without_a_status_check() {
        let h: [(&[u8], &[u8]); 1] = [(b"Content-Type", b"application/json")];
        let none = std::iter::empty();
        assert_eq!(http_head(None, 200, none.clone()), Ok(()));
        assert_eq!(
            http_head(None, 503, none.clone()),
            Err(Failure::Status(Status::Http(503)))
        );
        let c = checker(vec![
            Rule::Header {
                name: "content-type".into(),
                value: "application/json".into(),
            },
            Rule::Status(vec![StatusMatch::Code(200), StatusMatch::Code(404)]),
        ]);
        assert_eq!(http_head(Some(&c), 404, h.iter().copied()), Ok(()));
        assert_eq!(
            http_head(Some(&c), 201, h.iter().copied()),
            Err(Failure::Check(1))
        );
        assert_eq!(http_head(Some(&c), 200, none), Err(Failure::Check(0)));
        // Headers only: the default status rule still applies first.
        let c = checker(vec![Rule::Header {
            name: "x".into(),
            value: "1".into(),
        }]);
        assert_eq!(
            http_head(Some(&c), 500, std::iter::empty()),
            Err(Failure::Status(Status::Http(500)))
        );
    }

    #[test]
    fn bodies_are_measured_and_kept_only_when_checked() {
        let c = checker(vec![
            Rule::BodyContains("ok".into()),
            Rule::MaxBodyBytes(10),
        ]);
        assert!(wants_body(Some(&c)));
        assert!(!wants_body(None));
        let mut b = BodyKeeper::default();
        b.start(c.needs_body());
        b.take(b"is o");
        b.take(b"k");
        assert_eq!((b.len(), b.judge(&c)), (5, Ok(())));
        b.start(true);
        b.take(b"nope");
        assert_eq!(b.judge(&c), Err(0));
        b.start(true);
        b.take(b"ok but far too long");
        assert_eq!(b.judge(&c), Err(1), "max_body_bytes is judged first");
        let only_len = checker(vec![Rule::MaxBodyBytes(3)]);
        b.start(only_len.needs_body());
        b.take(b"abcd");
        assert!(b.kept.is_empty());
        assert_eq!(b.judge(&only_len), Err(0));
    }

    #[test]
    fn a_body_past_the_limit_fails_the_checks_that_read_it() {
        let c = checker(vec![Rule::BodyContains("x".into())]);
        let mut b = BodyKeeper::default();
        b.start(true);
        b.take(b"x");
        b.take(&vec![b'a'; MAX_CHECKED_BODY]);
        assert_eq!(b.kept.len(), MAX_CHECKED_BODY);
        assert_eq!(b.judge(&c), Err(0));
    }
}
