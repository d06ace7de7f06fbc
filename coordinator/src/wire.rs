//! Wire messages from workers to the coordinator's domain types, validated in
//! this one place. A report that fails here is rejected with a status and
//! never reaches the merge.

use crate::merge::{Counts, WorkerInterval};
use volley_proto::{histogram, pb};

/// Largest count any interval may claim (10⁹ requests in one second from one
/// worker is already impossible).
const MAX_COUNT: u64 = 1_000_000_000;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WireError {
    #[error("interval {index} is beyond the run (last possible is {max})")]
    IndexOutOfRange { index: u32, max: u32 },
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

pub fn worker_interval(r: pb::IntervalReport, max_index: u32) -> Result<WorkerInterval, WireError> {
    if r.index > max_index {
        return Err(WireError::IndexOutOfRange {
            index: r.index,
            max: max_index,
        });
    }
    let e = r.errors.unwrap_or_default();
    let counts = Counts {
        intended: r.intended,
        sent: r.sent,
        ok: r.ok,
        dropped: r.dropped,
        by_kind: [e.connect, e.timeout, e.status, e.protocol],
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
    if r.status_codes.len() > 64 {
        return Err(WireError::ImpossibleCount(
            "more than 64 distinct status codes".into(),
        ));
    }
    let mut status_sum = 0u64;
    for s in &r.status_codes {
        if !(100..=999).contains(&s.code) {
            return Err(WireError::ImpossibleCount(format!(
                "HTTP status {}",
                s.code
            )));
        }
        status_sum = status_sum.saturating_add(s.count);
    }
    if status_sum > counts.by_kind[2] {
        return Err(WireError::ImpossibleCount(format!(
            "status codes count {status_sum} but status errors are {}",
            counts.by_kind[2]
        )));
    }
    let latency = histogram::decode(&r.latency_hist)
        .map_err(|e| WireError::Histogram(format!("latency: {e}")))?;
    let service = histogram::decode(&r.service_hist)
        .map_err(|e| WireError::Histogram(format!("service: {e}")))?;
    if latency.len() != counts.ok || service.len() != counts.ok {
        return Err(WireError::ImpossibleCount(format!(
            "{} ok requests but {} latencies and {} service times",
            counts.ok,
            latency.len(),
            service.len()
        )));
    }
    Ok(WorkerInterval {
        index: r.index,
        counts,
        status_codes: r.status_codes.iter().map(|s| (s.code, s.count)).collect(),
        latency,
        service,
        in_flight: r.in_flight,
        rss_bytes: r.rss_bytes,
        cpu_nanos: r.cpu_nanos,
        latency_encoded: r.latency_hist,
    })
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
            }),
            status_codes: vec![pb::StatusCount {
                code: 503,
                count: 1,
            }],
            latency_hist: bytes.clone(),
            service_hist: bytes,
            in_flight: 0,
            rss_bytes: 0,
            cpu_nanos: 0,
        }
    }

    #[test]
    fn a_good_report_converts() {
        let w = worker_interval(report(10), 100).unwrap();
        assert_eq!(w.counts.ok, 10);
        assert_eq!(w.counts.errors(), 1);
        assert_eq!(w.latency.len(), 10);
    }

    #[test]
    fn hostile_reports_are_rejected() {
        assert!(matches!(
            worker_interval(report(1), 2),
            Err(WireError::IndexOutOfRange { .. })
        ));
        let mut r = report(5);
        r.ok = 6;
        assert!(matches!(
            worker_interval(r, 100),
            Err(WireError::ImpossibleCount(_))
        ));
        let mut r = report(5);
        r.latency_hist = b"\x1c\x84\x93\x14garbage".to_vec();
        assert!(matches!(
            worker_interval(r, 100),
            Err(WireError::Histogram(_))
        ));
        let mut r = report(5);
        r.intended = u64::MAX;
        assert!(matches!(
            worker_interval(r, 100),
            Err(WireError::ImpossibleCount(_))
        ));
        let mut r = report(5);
        r.status_codes[0].code = 42;
        assert!(matches!(
            worker_interval(r, 100),
            Err(WireError::ImpossibleCount(_))
        ));
        let mut r = report(5);
        r.status_codes[0].count = 2;
        assert!(matches!(
            worker_interval(r, 100),
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
            counts in proptest::collection::vec(0u64..2_000_000_000, 9),
            codes in proptest::collection::vec((0u32..1200, 0u64..10), 0..5),
            hist in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            use_valid in proptest::prelude::any::<bool>(),
        ) {
            let mut r = report(counts[2] % 50);
            r.index = index;
            r.intended = counts[0];
            r.sent = counts[1];
            r.dropped = counts[3];
            r.errors = Some(pb::ErrorCounts { connect: counts[4], timeout: counts[5], status: counts[6], protocol: counts[7] });
            r.in_flight = counts[8];
            r.status_codes = codes.into_iter().map(|(code, count)| pb::StatusCount { code, count }).collect();
            if !use_valid {
                r.latency_hist = hist;
            }
            if let Ok(w) = worker_interval(r, 100) {
                proptest::prop_assert!(w.index <= 100);
                proptest::prop_assert_eq!(w.latency.len(), w.counts.ok);
                proptest::prop_assert!(w.counts.dropped <= w.counts.intended);
            }
        }
    }
}
