//! The engine's per-second data as the wire's `IntervalReport`: histograms
//! in HdrHistogram's V2 format (deflated when large and possibly logged),
//! error counts named by kind, and the worker's own memory and CPU.

use crate::engine::recorder::IntervalData;
use volley_plan::ErrorKind;
use volley_proto::{histogram, pb};

/// One second of run `run_id`, ready to send. `enc` is reused from one
/// report to the next.
///
/// The service and send-lag histograms are only merged, so they travel
/// plain up to [`histogram::PLAIN_MAX`]; so does the latency one when the
/// assignment said `plain_histograms` (the coordinator keeps no per-worker
/// log lines, which carry it deflated). The per-request ones stay deflated
/// above [`histogram::RAW_MAX`]: a plan may have many, and the report must
/// stay well inside the message limit.
pub fn interval_report(
    run_id: &str,
    d: &IntervalData,
    plain_latency: bool,
    enc: &mut histogram::Encoder,
) -> pb::IntervalReport {
    let mut latency = Vec::new();
    let mut service = Vec::new();
    let mut send_lag = Vec::new();
    if plain_latency {
        enc.encode_plain_into(&d.latency, &mut latency);
    } else {
        enc.encode_into(&d.latency, &mut latency);
    }
    enc.encode_plain_into(&d.service, &mut service);
    enc.encode_plain_into(&d.send_lag, &mut send_lag);
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
    use volley_proto::histogram::{decode, synthetic_second};

    /// V2's cookie, uncompressed; deflated ones end in 4.
    fn plain(bytes: &[u8]) -> bool {
        bytes[..4] == 0x1c84_9313u32.to_be_bytes()
    }

    #[test]
    fn the_latency_travels_deflated_unless_the_assignment_asked_for_plain() {
        let (latency, service) = synthetic_second(3, 20_000);
        let second = |h: &histogram::Hist| {
            let mut s = histogram::new_second_hist();
            for v in h.iter_recorded() {
                s.record_n(v.value_iterated_to(), v.count_at_value() as u32)
                    .unwrap();
            }
            s
        };
        let d = IntervalData {
            index: 4,
            intended: 20_000,
            sent: 20_000,
            ok: 20_000,
            dropped: 0,
            drops: Default::default(),
            errors: [0; ErrorKind::COUNT],
            status_codes: Vec::new(),
            grpc_codes: Vec::new(),
            check_failures: Vec::new(),
            requests: Vec::new(),
            latency: second(&latency),
            service: second(&service),
            send_lag: second(&service),
            in_flight: 0,
        };
        let mut enc = histogram::Encoder::new();
        for plain_latency in [false, true] {
            let r = interval_report("run", &d, plain_latency, &mut enc);
            assert_eq!(plain(&r.latency_hist), plain_latency);
            assert!(plain(&r.service_hist) && plain(&r.send_lag_hist));
            // Whatever the form, the coordinator reads the same second.
            assert_eq!(decode(&r.latency_hist).unwrap(), latency);
            assert_eq!(decode(&r.service_hist).unwrap(), service);
            assert_eq!(decode(&r.send_lag_hist).unwrap(), service);
        }
    }

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
