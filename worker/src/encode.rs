//! The engine's per-second data as the wire's `IntervalReport`: histograms
//! in HdrHistogram's V2 format (deflated unless small), error counts named
//! by kind, and the worker's own memory and CPU.

use crate::engine::recorder::IntervalData;
use volley_plan::ErrorKind;
use volley_proto::{histogram, pb};

/// One second of run `run_id`, ready to send. `enc` is reused from one
/// report to the next.
pub fn interval_report(
    run_id: &str,
    d: &IntervalData,
    enc: &mut histogram::Encoder,
) -> pb::IntervalReport {
    let mut latency = Vec::new();
    let mut service = Vec::new();
    let mut send_lag = Vec::new();
    enc.encode_into(&d.latency, &mut latency);
    enc.encode_into(&d.service, &mut service);
    enc.encode_into(&d.send_lag, &mut send_lag);
    pb::IntervalReport {
        run_id: run_id.to_string(),
        index: d.index,
        intended: d.intended,
        sent: d.sent,
        ok: d.ok,
        dropped: d.dropped,
        errors: Some(error_counts(&d.errors)),
        drops: Some(pb::DropCounts::from(&d.drops)),
        check_failures: d
            .check_failures
            .iter()
            .map(|c| pb::CheckCount {
                request: u32::from(c.req),
                check: u32::from(c.check),
                count: c.count,
            })
            .collect(),
        status_codes: d
            .status_codes
            .iter()
            .map(|&(code, count)| pb::StatusCount { code, count })
            .collect(),
        grpc_status_codes: d
            .grpc_codes
            .iter()
            .map(|&(code, count)| pb::StatusCount { code, count })
            .collect(),
        requests: d
            .requests
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut hist = Vec::new();
                enc.encode_into(&r.latency, &mut hist);
                pb::RequestInterval {
                    index: i as u32,
                    intended: r.intended,
                    sent: r.sent,
                    ok: r.ok,
                    errors: r.errors,
                    dropped: r.dropped,
                    latency_hist: hist,
                }
            })
            .collect(),
        latency_hist: latency,
        service_hist: service,
        send_lag_hist: send_lag,
        in_flight: d.in_flight,
        rss_bytes: crate::resources::rss_bytes(),
        cpu_nanos: crate::resources::cpu_nanos(),
    }
}

/// The error counts by kind, named on the wire.
fn error_counts(by_kind: &[u64; ErrorKind::COUNT]) -> pb::ErrorCounts {
    let mut e = pb::ErrorCounts::default();
    for k in ErrorKind::ALL {
        let n = by_kind[k.index()];
        match k {
            ErrorKind::Connect => e.connect = n,
            ErrorKind::Timeout => e.timeout = n,
            ErrorKind::Status => e.status = n,
            ErrorKind::Protocol => e.protocol = n,
            ErrorKind::Reset => e.reset = n,
            ErrorKind::Check => e.check = n,
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_kind_is_counted_in_its_own_field() {
        let mut by_kind = [0; ErrorKind::COUNT];
        for k in ErrorKind::ALL {
            by_kind[k.index()] = 10 + k.index() as u64;
        }
        let e = error_counts(&by_kind);
        let n = |k: ErrorKind| by_kind[k.index()];
        assert_eq!(e.connect, n(ErrorKind::Connect));
        assert_eq!(e.timeout, n(ErrorKind::Timeout));
        assert_eq!(e.status, n(ErrorKind::Status));
        assert_eq!(e.protocol, n(ErrorKind::Protocol));
        assert_eq!(e.reset, n(ErrorKind::Reset));
        assert_eq!(e.check, n(ErrorKind::Check));
    }
}
