//! Volley's own lateness in words. Latency runs from the *scheduled* send
//! time, so any delay in sending (a generator short of CPU, a coarse wake-up,
//! a request queued for a free connection) is counted as the target's
//! latency. The send lag (actual send − scheduled send) measures that part;
//! [`warning`] says when it is large enough to matter, in `report.md` and
//! `report.html` alike.

use super::format::ms;
use super::Report;

/// Send lag p99 above this is always worth a warning (milliseconds).
pub const ABSOLUTE_MS: f64 = 1.0;

/// Send lag p99 above this fraction of the latency p50 distorts the
/// headline figures.
pub const FRACTION_OF_P50: f64 = 0.10;

/// One sentence when the run's send-lag p99 exceeds 1 ms or 10 % of its
/// latency p50; `None` when it does not, or when nothing was sent.
pub fn warning(r: &Report) -> Option<String> {
    let p99 = r.send_lag_ms.p99?;
    let p50 = r.latency_ms.p50;
    let over_abs = p99 > ABSOLUTE_MS;
    let over_rel = p50.is_some_and(|p50| p99 > FRACTION_OF_P50 * p50);
    if !over_abs && !over_rel {
        return None;
    }
    let against = match (over_abs, p50) {
        (false, Some(p50)) => format!(", more than 10 % of the latency p50 ({})", ms(Some(p50))),
        _ => String::new(),
    };
    // Within the wake gap, the lag is the scheduler's batching by design;
    // beyond it, the generator is short of something.
    let gap_ms = r
        .load
        .map(|l| l.wake_gap_us as f64 / 1000.0)
        .filter(|&g| g > 0.0);
    let advice = match gap_ms {
        Some(gap) if p99 <= gap * WITHIN_GAP => format!(
            "Most of it is the scheduler's batching: a worker wakes at most once per \
             `load.wake_gap` ({}) and sends what is due, so a request leaves up to that late. \
             For a target this fast, set `load.wake_gap = \"auto\"` (the default: each \
             request leaves within a tenth of the service time), at more CPU per request.",
            ms(Some(gap))
        ),
        _ => "Give the workers more CPU, add workers, or lower the rate per worker.".to_string(),
    };
    Some(format!(
        "Volley sent late: send lag p99 {} (max {}){against}. The lag is counted in every \
         latency figure above, so part of it is the generator's, not the target's. {advice}",
        ms(Some(p99)),
        ms(r.send_lag_ms.max)
    ))
}

/// A send-lag p99 up to this multiple of the wake gap is the batching
/// itself (a wake-up comes a little after its deadline).
const WITHIN_GAP: f64 = 1.5;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixture;
    use crate::report::SendLag;

    fn with(p50: f64, lag_p99: Option<f64>) -> Report {
        let mut r = fixture::report();
        r.latency_ms.p50 = Some(p50);
        r.send_lag_ms = SendLag {
            p50: lag_p99.map(|v| v / 4.0),
            p99: lag_p99,
            max: lag_p99.map(|v| v * 3.0),
        };
        r
    }

    #[test]
    fn a_small_lag_says_nothing() {
        assert_eq!(warning(&with(20.0, Some(0.3))), None);
        assert_eq!(warning(&with(20.0, None)), None, "nothing sent");
    }

    #[test]
    fn over_one_millisecond_warns() {
        let w = warning(&with(200.0, Some(1.5))).unwrap();
        assert!(w.contains("send lag p99 1.50 ms"), "{w}");
        assert!(w.contains("max 4.50 ms"), "{w}");
        assert!(!w.contains("10 %"), "{w}");
        // On the line is not over it.
        assert_eq!(warning(&with(200.0, Some(1.0))), None);
    }

    #[test]
    fn a_lag_within_the_wake_gap_points_at_the_gap_and_a_larger_one_at_cpu() {
        // A 0.3 ms target and the default 1 ms gap: the batching explains it.
        let gap = |us| {
            Some(crate::report::LoadInfo {
                connections: 8,
                per_connection: 1,
                max_in_flight: 100,
                wake_gap_us: us,
            })
        };
        let mut r = with(0.4, Some(0.9));
        r.load = gap(1000);
        let w = warning(&r).unwrap();
        assert!(w.contains("`load.wake_gap` (1.00 ms)"), "{w}");
        assert!(w.contains("`load.wake_gap = \"auto\"`"), "{w}");
        assert!(!w.contains("more CPU, add workers"), "{w}");
        // 5 ms late is not the gap's doing.
        let mut r = with(20.0, Some(5.0));
        r.load = gap(1000);
        let w = warning(&r).unwrap();
        assert!(w.contains("Give the workers more CPU"), "{w}");
        assert!(!w.contains("wake_gap"), "{w}");
        // "auto", or a report from before the gap was recorded: the
        // general advice.
        r.load = gap(0);
        r.send_lag_ms.p99 = Some(1.2);
        assert!(warning(&r).unwrap().contains("Give the workers more CPU"));
    }

    #[test]
    fn over_a_tenth_of_the_p50_warns_below_one_millisecond() {
        // A 0.3 ms service: a 0.05 ms lag is fine, 0.06 ms is over 10 %.
        assert_eq!(warning(&with(0.5, Some(0.05))), None);
        let w = warning(&with(0.5, Some(0.06))).unwrap();
        assert!(w.contains("more than 10 % of the latency p50"), "{w}");
    }
}
