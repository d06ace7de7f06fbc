//! Wire messages from workers to the coordinator's domain types, validated in
//! this one place. A report that fails here is rejected with a status and
//! never reaches the merge.

use crate::merge::{CheckFailures, RequestInterval, WorkerInterval};
use volley_plan::{Counts, DropCounts, ErrorKind, KindCounts, RequestCounts};
use volley_proto::{histogram, pb};

/// Largest count any interval may claim (10⁹ requests in one second from one
/// worker is already impossible).
const MAX_COUNT: u64 = 1_000_000_000;

/// Most distinct status codes (HTTP, or gRPC) one interval may carry.
const MAX_CODES: usize = 64;

/// What a report is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The last interval index the run can have.
    pub max_index: u32,
    /// The plan's request definitions (`plan.target.requests.len()`).
    pub requests: usize,
    /// The most response checks any request definition has.
    pub checks: usize,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WireError {
    #[error("interval {index} is beyond the run (last possible is {max})")]
    IndexOutOfRange { index: u32, max: u32 },
    #[error(
        "requests[{entry}].index is {index}, but the plan has {requests} request definition(s)"
    )]
    RequestIndex {
        entry: usize,
        index: u32,
        requests: usize,
    },
    #[error("impossible count: {0}")]
    ImpossibleCount(String),
    #[error("{0}")]
    Histogram(String),
}

impl From<WireError> for tonic::Status {
    fn from(e: WireError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

pub fn worker_interval(r: pb::IntervalReport, bounds: Bounds) -> Result<WorkerInterval, WireError> {
    if r.index > bounds.max_index {
        return Err(WireError::IndexOutOfRange {
            index: r.index,
            max: bounds.max_index,
        });
    }
    let e = r.errors.unwrap_or_default();
    let counts = Counts {
        intended: r.intended,
        sent: r.sent,
        ok: r.ok,
        dropped: r.dropped,
        drops: drops(r.drops.as_ref(), r.dropped)?,
        by_kind: kinds(&e),
        ..Counts::default()
    };
    for (name, v) in [
        ("intended", counts.intended),
        ("sent", counts.sent),
        ("ok", counts.ok),
        ("dropped", counts.dropped),
        ("errors", counts.errors()),
        ("in_flight", r.in_flight),
    ] {
        if v > MAX_COUNT {
            return Err(WireError::ImpossibleCount(format!("{name} = {v}")));
        }
    }
    if counts.dropped > counts.intended {
        return Err(WireError::ImpossibleCount(format!(
            "dropped {} > intended {}",
            counts.dropped, counts.intended
        )));
    }
    let http_sum = status_codes("status_codes", &r.status_codes, |c| {
        if (100..=999).contains(&c) {
            Ok(())
        } else {
            Err(format!("HTTP status {c}"))
        }
    })?;
    // Any non-zero gRPC code is accepted: servers may send codes beyond the
    // sixteen canonical ones, and the report names those "code N".
    let grpc_sum = status_codes("grpc_status_codes", &r.grpc_status_codes, |c| {
        if c == 0 {
            Err("grpc-status 0 (OK) counted as a failure".to_string())
        } else {
            Ok(())
        }
    })?;
    let status_sum = http_sum.saturating_add(grpc_sum);
    let status_errors = counts.by_kind[ErrorKind::Status];
    if status_sum > status_errors {
        return Err(WireError::ImpossibleCount(format!(
            "status codes count {status_sum} but status errors are {status_errors}"
        )));
    }
    let checks = check_failures(&r.check_failures, bounds, &counts)?;
    let latency = histogram::decode_for_merge(&r.latency_hist)
        .map_err(|e| WireError::Histogram(format!("latency: {e}")))?;
    let service = histogram::decode_for_merge(&r.service_hist)
        .map_err(|e| WireError::Histogram(format!("service: {e}")))?;
    let send_lag = histogram::decode_for_merge(&r.send_lag_hist)
        .map_err(|e| WireError::Histogram(format!("send lag: {e}")))?;
    if send_lag.len() != counts.sent {
        return Err(WireError::ImpossibleCount(format!(
            "{} sent requests but {} send lags",
            counts.sent,
            send_lag.len()
        )));
    }
    if latency.len() != counts.ok || service.len() != counts.ok {
        return Err(WireError::ImpossibleCount(format!(
            "{} ok requests but {} latencies and {} service times",
            counts.ok,
            latency.len(),
            service.len()
        )));
    }
    let requests = requests(&r.requests, bounds.requests, &counts)?;
    Ok(WorkerInterval {
        index: r.index,
        counts,
        status_codes: r.status_codes.iter().map(|s| (s.code, s.count)).collect(),
        grpc_status_codes: r
            .grpc_status_codes
            .iter()
            .map(|s| (s.code, s.count))
            .collect(),
        requests,
        checks,
        latency,
        service,
        send_lag,
        in_flight: r.in_flight,
        rss_bytes: r.rss_bytes,
        cpu_nanos: r.cpu_nanos,
        latency_encoded: r.latency_hist,
    })
}

/// Why the interval's requests were dropped: every drop has exactly one
/// cause, so the causes add up to `dropped` (and the report's
/// `drop_reasons` to `requests.dropped`). A report without them is accepted
/// only when it dropped nothing: the protocol version checked at Hello
/// already keeps out workers that do not send them, and the data dir's
/// stored reports of such workers have nothing to attribute.
fn drops(w: Option<&pb::DropCounts>, dropped: u64) -> Result<DropCounts, WireError> {
    let d = w.map(DropCounts::from).unwrap_or_default();
    let sum = d
        .iter()
        .try_fold(0u64, |a, (_, n)| a.checked_add(n))
        .unwrap_or(u64::MAX);
    if sum != dropped {
        return Err(WireError::ImpossibleCount(match w {
            None => format!("{dropped} dropped requests and no drop causes"),
            Some(_) => format!("drop causes add up to {sum} but dropped is {dropped}"),
        }));
    }
    Ok(d)
}

/// The error counts by kind.
fn kinds(e: &pb::ErrorCounts) -> KindCounts {
    KindCounts::from_fn(|k| match k {
        ErrorKind::Connect => e.connect,
        ErrorKind::Timeout => e.timeout,
        ErrorKind::Status => e.status,
        ErrorKind::Protocol => e.protocol,
        ErrorKind::Reset => e.reset,
        ErrorKind::Check => e.check,
    })
}

/// The per-check failures: each (request, check) within the plan, at most
/// once, adding up exactly to the interval's `check` errors (so the
/// report's `errors_by_check` adds up to `errors_by_kind.check`).
fn check_failures(
    entries: &[pb::CheckCount],
    bounds: Bounds,
    counts: &Counts,
) -> Result<Vec<CheckFailures>, WireError> {
    if entries.len() > MAX_CODES * 4 {
        return Err(WireError::ImpossibleCount(format!(
            "check_failures: more than {} entries",
            MAX_CODES * 4
        )));
    }
    let mut out: Vec<CheckFailures> = Vec::with_capacity(entries.len());
    let mut sum = 0u64;
    for (i, e) in entries.iter().enumerate() {
        if e.request as usize >= bounds.requests || e.check as usize >= bounds.checks {
            return Err(WireError::ImpossibleCount(format!(
                "check_failures[{i}]: request {} check {} is not in the plan",
                e.request, e.check
            )));
        }
        let key = (e.request, e.check);
        if out.iter().any(|(k, _)| *k == key) {
            return Err(WireError::ImpossibleCount(format!(
                "check_failures[{i}]: request {} check {} appears twice",
                e.request, e.check
            )));
        }
        sum = sum.saturating_add(e.count);
        out.push((key, e.count));
    }
    let check_errors = counts.by_kind[ErrorKind::Check];
    if sum != check_errors {
        return Err(WireError::ImpossibleCount(format!(
            "check failures count {sum} but check errors are {check_errors}"
        )));
    }
    Ok(out)
}

/// Checks a list of (code, count) and returns the sum of the counts.
fn status_codes(
    field: &str,
    codes: &[pb::StatusCount],
    valid: impl Fn(u32) -> Result<(), String>,
) -> Result<u64, WireError> {
    if codes.len() > MAX_CODES {
        return Err(WireError::ImpossibleCount(format!(
            "{field}: more than {MAX_CODES} distinct codes"
        )));
    }
    let mut sum = 0u64;
    for s in codes {
        valid(s.code).map_err(|m| WireError::ImpossibleCount(format!("{field}: {m}")))?;
        sum = sum.saturating_add(s.count);
    }
    Ok(sum)
}

/// The per-request entries: each index within the plan, at most once, each
/// entry consistent on its own, and together adding up to the interval's
/// counts, so the report's per-request figures add up to the run's. With a
/// plan of several request definitions they are required (an interval with
/// traffic and no entries does not add up); with one they may be absent.
fn requests(
    entries: &[pb::RequestInterval],
    defined: usize,
    counts: &Counts,
) -> Result<Vec<RequestInterval>, WireError> {
    if defined <= 1 && entries.is_empty() {
        return Ok(Vec::new());
    }
    if entries.len() > defined {
        return Err(WireError::ImpossibleCount(format!(
            "{} per-request entries for a plan of {defined} request definition(s)",
            entries.len()
        )));
    }
    let mut seen = vec![false; defined];
    let mut sum = RequestCounts::default();
    let mut out = Vec::with_capacity(entries.len());
    for (entry, e) in entries.iter().enumerate() {
        let index = e.index;
        let slot = seen
            .get_mut(index as usize)
            .ok_or(WireError::RequestIndex {
                entry,
                index,
                requests: defined,
            })?;
        if std::mem::replace(slot, true) {
            return Err(WireError::ImpossibleCount(format!(
                "requests[{entry}]: request definition {index} appears twice"
            )));
        }
        let c = RequestCounts {
            intended: e.intended,
            sent: e.sent,
            ok: e.ok,
            errors: e.errors,
            dropped: e.dropped,
        };
        for (name, v) in [
            ("intended", c.intended),
            ("sent", c.sent),
            ("ok", c.ok),
            ("errors", c.errors),
            ("dropped", c.dropped),
        ] {
            if v > MAX_COUNT {
                return Err(WireError::ImpossibleCount(format!(
                    "requests[{entry}].{name} = {v}"
                )));
            }
        }
        if c.dropped > c.intended {
            return Err(WireError::ImpossibleCount(format!(
                "requests[{entry}]: dropped {} > intended {}",
                c.dropped, c.intended
            )));
        }
        let latency = histogram::decode_for_merge(&e.latency_hist)
            .map_err(|err| WireError::Histogram(format!("requests[{entry}] latency: {err}")))?;
        if latency.len() != c.ok {
            return Err(WireError::ImpossibleCount(format!(
                "requests[{entry}]: {} ok requests but {} latencies",
                c.ok,
                latency.len()
            )));
        }
        sum.add(&c);
        out.push(RequestInterval {
            index,
            counts: c,
            latency,
        });
    }
    for (name, part, whole) in [
        ("intended", sum.intended, counts.intended),
        ("sent", sum.sent, counts.sent),
        ("ok", sum.ok, counts.ok),
        ("errors", sum.errors, counts.errors()),
        ("dropped", sum.dropped, counts.dropped),
    ] {
        if part != whole {
            return Err(WireError::ImpossibleCount(format!(
                "the requests' {name} add up to {part}, the interval's is {whole}"
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(ok: u64) -> pb::IntervalReport {
        let mut h = histogram::new_hist();
        for _ in 0..ok {
            h.record(1000).unwrap();
        }
        let bytes = histogram::encode(&h);
        let mut lag = histogram::new_hist();
        lag.record_n(20, ok + 1).unwrap();
        pb::IntervalReport {
            run_id: "r".into(),
            index: 3,
            intended: ok + 2,
            sent: ok + 1,
            ok,
            dropped: 1,
            errors: Some(pb::ErrorCounts {
                connect: 0,
                timeout: 0,
                status: 1,
                protocol: 0,
                reset: 0,
                check: 0,
            }),
            status_codes: vec![pb::StatusCount {
                code: 503,
                count: 1,
            }],
            grpc_status_codes: vec![],
            requests: vec![],
            check_failures: vec![],
            drops: Some(pb::DropCounts {
                max_in_flight: 1,
                ..pb::DropCounts::default()
            }),
            latency_hist: bytes.clone(),
            service_hist: bytes,
            send_lag_hist: histogram::encode(&lag),
            in_flight: 0,
            rss_bytes: 0,
            cpu_nanos: 0,
        }
    }

    /// One send lag per sent request, as a worker reports them.
    fn lags_for_sent(r: &mut pb::IntervalReport) {
        let mut lag = histogram::new_hist();
        if r.sent > 0 {
            lag.record_n(20, r.sent).unwrap();
        }
        r.send_lag_hist = histogram::encode(&lag);
    }

    const ONE: Bounds = Bounds {
        max_index: 100,
        requests: 1,
        checks: 0,
    };
    const TWO: Bounds = Bounds {
        max_index: 100,
        requests: 2,
        checks: 0,
    };

    fn hist_of(n: u64) -> Vec<u8> {
        let mut h = histogram::new_hist();
        for _ in 0..n {
            h.record(1000).unwrap();
        }
        histogram::encode(&h)
    }

    /// `report(ok)` split over two request definitions: definition 0 has
    /// `ok0` of the successes, definition 1 the rest, the error and the drop.
    fn report2(ok: u64, ok0: u64) -> pb::IntervalReport {
        let mut r = report(ok);
        r.requests = vec![
            pb::RequestInterval {
                index: 0,
                intended: ok0,
                sent: ok0,
                ok: ok0,
                errors: 0,
                dropped: 0,
                latency_hist: hist_of(ok0),
            },
            pb::RequestInterval {
                index: 1,
                intended: ok - ok0 + 2,
                sent: ok - ok0 + 1,
                ok: ok - ok0,
                errors: 1,
                dropped: 1,
                latency_hist: hist_of(ok - ok0),
            },
        ];
        r
    }

    #[test]
    fn a_good_report_converts() {
        let w = worker_interval(report(10), ONE).unwrap();
        assert_eq!(w.counts.ok, 10);
        assert_eq!(w.counts.errors(), 1);
        assert_eq!(w.latency.len(), 10);
        assert_eq!(w.send_lag.len(), 11, "one lag per sent request");
    }

    #[test]
    fn a_send_lag_per_sent_request_is_required() {
        for lags in [0, 10, 12] {
            let mut r = report(10);
            let mut lag = histogram::new_hist();
            if lags > 0 {
                lag.record_n(20, lags).unwrap();
            }
            r.send_lag_hist = histogram::encode(&lag);
            let err = worker_interval(r, ONE).unwrap_err();
            assert!(
                matches!(&err, WireError::ImpossibleCount(m) if m == &format!("11 sent requests but {lags} send lags")),
                "{err:?}"
            );
        }
    }

    #[test]
    fn drop_causes_must_add_up_to_dropped() {
        let with = |drops: Option<(u64, u64, u64)>, dropped: u64| {
            let mut r = report(5);
            r.intended = 5 + 1 + dropped;
            r.dropped = dropped;
            r.drops = drops.map(|(c, m, b)| pb::DropCounts {
                connections_busy: c,
                max_in_flight: m,
                behind_schedule: b,
            });
            r
        };
        let w = worker_interval(with(Some((3, 2, 1)), 6), ONE).unwrap();
        assert_eq!(
            w.counts.drops.iter().map(|(_, n)| n).collect::<Vec<_>>(),
            vec![3, 2, 1]
        );
        // Nothing dropped: the causes may be left out.
        assert_eq!(
            worker_interval(with(None, 0), ONE).unwrap().counts.drops,
            DropCounts::default()
        );
        for (bad, why) in [
            (
                with(Some((3, 2, 0)), 6),
                "drop causes add up to 5 but dropped is 6",
            ),
            (
                with(Some((3, 2, 2)), 6),
                "drop causes add up to 7 but dropped is 6",
            ),
            (with(None, 2), "2 dropped requests and no drop causes"),
            (
                with(Some((u64::MAX, 2, 0)), 6),
                "drop causes add up to 18446744073709551615",
            ),
        ] {
            let e = worker_interval(bad, ONE).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn check_failures_must_add_up_to_the_check_errors_and_name_real_checks() {
        let with = |check_errors: u64, entries: Vec<(u32, u32, u64)>| {
            let mut r = report(5);
            r.intended += check_errors;
            r.errors.as_mut().unwrap().check = check_errors;
            r.check_failures = entries
                .into_iter()
                .map(|(request, check, count)| pb::CheckCount {
                    request,
                    check,
                    count,
                })
                .collect();
            r
        };
        let bounds = Bounds {
            max_index: 100,
            requests: 1,
            checks: 3,
        };
        let w = worker_interval(with(5, vec![(0, 2, 4), (0, 0, 1)]), bounds).unwrap();
        assert_eq!(w.counts.by_kind[ErrorKind::Check], 5);
        assert_eq!(w.checks, vec![((0, 2), 4), ((0, 0), 1)]);
        for (bad, why) in [
            (with(5, vec![(0, 2, 4)]), "check errors are 5"),
            (with(1, vec![(0, 3, 1)]), "not in the plan"),
            (with(1, vec![(1, 0, 1)]), "not in the plan"),
            (with(2, vec![(0, 0, 1), (0, 0, 1)]), "twice"),
        ] {
            let e = worker_interval(bad, bounds).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn hostile_reports_are_rejected() {
        assert!(matches!(
            worker_interval(
                report(1),
                Bounds {
                    max_index: 2,
                    requests: 1,
                    checks: 0,
                }
            ),
            Err(WireError::IndexOutOfRange { .. })
        ));
        let mut r = report(5);
        r.ok = 6;
        assert!(matches!(
            worker_interval(r, ONE),
            Err(WireError::ImpossibleCount(_))
        ));
        let mut r = report(5);
        r.latency_hist = b"\x1c\x84\x93\x14garbage".to_vec();
        assert!(matches!(
            worker_interval(r, ONE),
            Err(WireError::Histogram(_))
        ));
        let mut r = report(5);
        r.intended = u64::MAX;
        assert!(matches!(
            worker_interval(r, ONE),
            Err(WireError::ImpossibleCount(_))
        ));
        let mut r = report(5);
        r.status_codes[0].code = 42;
        assert!(matches!(
            worker_interval(r, ONE),
            Err(WireError::ImpossibleCount(_))
        ));
        let mut r = report(5);
        r.status_codes[0].count = 2;
        assert!(matches!(
            worker_interval(r, ONE),
            Err(WireError::ImpossibleCount(_))
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// Whatever a hostile worker sends, conversion never panics, and what
        /// it accepts is consistent.
        #[test]
        fn arbitrary_reports_never_panic(
            index in 0u32..200,
            counts in proptest::collection::vec(0u64..2_000_000_000, 10),
            codes in proptest::collection::vec((0u32..1200, 0u64..10), 0..5),
            hist in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            use_valid in proptest::prelude::any::<bool>(),
        ) {
            let mut r = report(counts[2] % 50);
            r.index = index;
            r.intended = counts[0];
            r.sent = counts[1];
            r.dropped = counts[3];
            r.drops = Some(pb::DropCounts { connections_busy: counts[3] / 3, max_in_flight: counts[3] - counts[3] / 3, behind_schedule: 0 });
            r.errors = Some(pb::ErrorCounts { connect: counts[4], timeout: counts[5], status: counts[6], protocol: counts[7], reset: counts[9], check: 0 });
            r.in_flight = counts[8];
            r.status_codes = codes.into_iter().map(|(code, count)| pb::StatusCount { code, count }).collect();
            if !use_valid {
                r.latency_hist = hist;
            }
            if let Ok(w) = worker_interval(r, ONE) {
                proptest::prop_assert!(w.requests.is_empty());
                proptest::prop_assert!(w.index <= 100);
                proptest::prop_assert_eq!(w.latency.len(), w.counts.ok);
                proptest::prop_assert!(w.counts.dropped <= w.counts.intended);
                proptest::prop_assert_eq!(w.counts.drops.total(), w.counts.dropped);
            }
        }
    }

    #[test]
    fn resets_and_grpc_codes_convert() {
        let mut r = report(4);
        r.intended += 2;
        r.sent += 2;
        lags_for_sent(&mut r);
        r.errors = Some(pb::ErrorCounts {
            status: 3,
            reset: 2,
            ..pb::ErrorCounts::default()
        });
        r.grpc_status_codes = vec![
            pb::StatusCount { code: 14, count: 1 },
            pb::StatusCount { code: 99, count: 1 },
        ];
        let w = worker_interval(r.clone(), ONE).unwrap();
        assert_eq!(
            w.counts.by_kind,
            KindCounts::from_fn(|k| match k {
                ErrorKind::Status => 3,
                ErrorKind::Reset => 2,
                _ => 0,
            })
        );
        assert_eq!(w.counts.errors(), 5);
        assert_eq!(w.grpc_status_codes, vec![(14, 1), (99, 1)]);
        // HTTP and gRPC codes together cannot outnumber status errors.
        r.grpc_status_codes[0].count = 2;
        assert!(matches!(
            worker_interval(r.clone(), ONE),
            Err(WireError::ImpossibleCount(_))
        ));
        r.grpc_status_codes = vec![pb::StatusCount { code: 0, count: 1 }];
        assert!(matches!(
            worker_interval(r, ONE),
            Err(WireError::ImpossibleCount(m)) if m.contains("grpc_status_codes")
        ));
    }

    #[test]
    fn per_request_entries_convert_when_they_add_up() {
        let w = worker_interval(report2(10, 7), TWO).unwrap();
        assert_eq!(w.requests.len(), 2);
        assert_eq!(w.requests[0].counts.ok, 7);
        assert_eq!(w.requests[1].latency.len(), 3);
        assert_eq!(w.requests[1].counts.dropped, 1);
        // An idle second may say nothing per request, or give zeros.
        let mut idle = report(0);
        (idle.intended, idle.sent, idle.dropped) = (0, 0, 0);
        idle.errors = None;
        idle.drops = None;
        idle.status_codes.clear();
        idle.send_lag_hist = histogram::encode(&histogram::new_hist());
        assert!(worker_interval(idle.clone(), TWO)
            .unwrap()
            .requests
            .is_empty());
        idle.requests = vec![pb::RequestInterval::default()];
        assert_eq!(worker_interval(idle, TWO).unwrap().requests.len(), 1);
    }

    #[test]
    fn bad_per_request_entries_are_rejected() {
        let mut r = report2(10, 7);
        r.requests[1].index = 2;
        assert_eq!(
            worker_interval(r, TWO).unwrap_err(),
            WireError::RequestIndex {
                entry: 1,
                index: 2,
                requests: 2
            }
        );
        let mut r = report2(10, 7);
        r.requests[1].index = 0;
        assert!(
            matches!(worker_interval(r, TWO), Err(WireError::ImpossibleCount(m)) if m.contains("twice"))
        );
        let mut r = report2(10, 7);
        r.requests[0].ok = 8;
        r.requests[1].ok = 2;
        assert!(
            matches!(worker_interval(r, TWO), Err(WireError::ImpossibleCount(m)) if m.contains("latencies")),
            "an entry's histogram must hold its ok count"
        );
        let mut r = report2(10, 7);
        r.requests[0].intended += 1;
        assert!(
            matches!(worker_interval(r, TWO), Err(WireError::ImpossibleCount(m)) if m.contains("intended add up"))
        );
        let mut r = report2(10, 7);
        r.requests[0].latency_hist = b"\x1c\x84\x93\x14garbage".to_vec();
        assert!(
            matches!(worker_interval(r, TWO), Err(WireError::Histogram(m)) if m.contains("requests[0]"))
        );
        let mut r = report2(10, 7);
        (r.requests[0].intended, r.requests[0].dropped) = (0, 1);
        (r.requests[1].intended, r.requests[1].dropped) = (12, 0);
        assert!(
            matches!(worker_interval(r, TWO), Err(WireError::ImpossibleCount(m)) if m.contains("dropped"))
        );
        let mut r = report2(10, 7);
        r.requests[0].errors = u64::MAX;
        assert!(matches!(
            worker_interval(r, TWO),
            Err(WireError::ImpossibleCount(_))
        ));
        // With several definitions, a second with traffic must be split.
        let mut r = report2(10, 7);
        r.requests.clear();
        assert!(matches!(
            worker_interval(r, TWO),
            Err(WireError::ImpossibleCount(_))
        ));
        // With one, entries are optional but must still be right.
        let mut r = report2(10, 7);
        assert!(matches!(
            worker_interval(r.clone(), ONE),
            Err(WireError::ImpossibleCount(_))
        ));
        r.requests.truncate(1);
        assert!(worker_interval(r, ONE).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// Hostile per-request entries never panic, and what is accepted
        /// adds up to the interval.
        #[test]
        fn arbitrary_request_entries_never_panic(
            entries in proptest::collection::vec(
                (0u32..4, proptest::collection::vec(0u64..20, 5), proptest::prelude::any::<bool>()),
                0..4,
            ),
        ) {
            let mut r = report2(10, 7);
            r.requests = entries
                .into_iter()
                .map(|(index, c, good_hist)| pb::RequestInterval {
                    index,
                    intended: c[0],
                    sent: c[1],
                    ok: c[2],
                    errors: c[3],
                    dropped: c[4],
                    latency_hist: if good_hist { hist_of(c[2]) } else { vec![0x1c, 0x84, 0x93, 0x14, 1, 2] },
                })
                .collect();
            if let Ok(w) = worker_interval(r, TWO) {
                let ok: u64 = w.requests.iter().map(|e| e.counts.ok).sum();
                let intended: u64 = w.requests.iter().map(|e| e.counts.intended).sum();
                proptest::prop_assert_eq!(ok, w.counts.ok);
                proptest::prop_assert_eq!(intended, w.counts.intended);
                proptest::prop_assert!(w.requests.iter().all(|e| e.index < 2));
            }
        }
    }
}
