//! Burst recovery, exactly as DESIGN.md ("Recovery, defined") puts it: how
//! long after a burst latency and errors are back to the level of the stage
//! before it.
//!
//! For each burst stage, with the stage before it as the baseline:
//! - the baseline p99 is that stage's p99, its error rate errors / intended;
//! - a second (interval `t_s = k` covers [k, k + 1)) is *calm* when the
//!   schedule intended requests in it (draining seconds after the run and
//!   zero-rate seconds never count), it has a p99 (some request succeeded),
//!   its p99 is at most the *calm bound* (below), and its error rate is at most
//!   0.1 percentage points above the baseline's. Being better than the
//!   baseline is fine, hence "at most";
//! - the calm bound is the baseline p99 plus the largest of three margins:
//!   `tolerance` × baseline p99; the baseline's own second-to-second noise,
//!   [`NOISE_SIGMAS`] × 1.4826 × the median absolute deviation of its seconds'
//!   p99 (a robust standard deviation: one slow second in the baseline, such
//!   as the tail of an earlier burst, does not widen it); and
//!   [`NOISE_FLOOR_MS`]. A sub-millisecond p99 moves by more than 10 % from
//!   second to second with no change in load, and a bound tighter than that
//!   noise reports a recovery time for a target that never queued;
//! - a second's error rate is errors / (ok + errors + dropped) of that second:
//!   outcomes land in the second they are measured in, which during a backlog
//!   need not be the second they were scheduled in, and this ratio stays a
//!   fraction of what that second actually saw;
//! - recovery time is from the burst end (its start + duration) to the start
//!   of the first run of `window_s` consecutive calm seconds at or after it;
//!   a missing second breaks the run;
//! - the peak p99 is the worst second from the burst's first second until
//!   that window (or the last interval);
//! - with no such window, or no baseline p99 to compare with, the burst is not
//!   recovered and the time is what was observed after it: the end of the last
//!   interval minus the burst end.
//!
//! The search runs to the end of the run, past later stages and bursts, as the
//! definition says.

use crate::report::{IntervalReport, Recovery, StageReport};
use std::collections::BTreeMap;

/// How far above the baseline's error rate a calm second may be: 0.1
/// percentage points.
pub const ERROR_RATE_MARGIN: f64 = 0.001;

/// The smallest margin over the baseline p99 that a calm second may use, in
/// milliseconds: below it, differences are scheduling and timer noise (of the
/// machine and of the generator), not a target draining a queue.
pub const NOISE_FLOOR_MS: f64 = 0.5;

/// How many robust standard deviations of the baseline's per-second p99 a
/// calm second may lie above the baseline p99.
pub const NOISE_SIGMAS: f64 = 3.0;

/// Scales a median absolute deviation to a standard deviation (normal data).
const MAD_TO_SIGMA: f64 = 1.4826;

/// Slack for float rounding in the "≤" comparisons.
const EPS: f64 = 1e-9;

/// The recovery report for every burst stage, in stage order. `window_s` of 0
/// is taken as 1; `tolerance` is a fraction (0.1 = 10 %).
pub fn recovery(
    report_intervals: &[IntervalReport],
    stages: &[StageReport],
    window_s: u32,
    tolerance: f64,
) -> Vec<Recovery> {
    let mut by_t = BTreeMap::new();
    for i in report_intervals {
        by_t.entry(i.t_s).or_insert(i);
    }
    stages
        .iter()
        .enumerate()
        .filter(|(_, s)| s.burst)
        .map(|(n, s)| {
            let base = n.checked_sub(1).map(|b| &stages[b]);
            one(&by_t, base, s, window_s.max(1), tolerance)
        })
        .collect()
}

/// What a calm second may not exceed.
struct Bounds {
    p99_ms: f64,
    error_rate: f64,
}

fn one(
    by_t: &BTreeMap<u32, &IntervalReport>,
    base: Option<&StageReport>,
    burst: &StageReport,
    window: u32,
    tolerance: f64,
) -> Recovery {
    let baseline_p99 = base.and_then(|b| b.latency_ms.p99);
    let base_errors = base.map_or(0.0, |b| ratio(b.requests.errors, b.requests.intended));
    let end = burst.start_s + burst.duration_s;
    let first = second_at_or_after(end);
    let calm_p99_ms = baseline_p99.map(|p| {
        let noise = base.map_or(0.0, |b| NOISE_SIGMAS * robust_sigma(by_t, b));
        p + (p * tolerance).max(noise).max(NOISE_FLOOR_MS)
    });
    let found = calm_p99_ms.and_then(|p99_ms| {
        let bounds = Bounds {
            p99_ms,
            error_rate: base_errors + ERROR_RATE_MARGIN,
        };
        find_window(by_t, first, window, &bounds)
    });
    let peak_from = (burst.start_s + EPS).floor().max(0.0) as u32;
    let peak_to = found.unwrap_or(u32::MAX);
    let peak_p99_ms = by_t
        .range(peak_from..peak_to.max(peak_from))
        .filter_map(|(_, i)| i.p99_ms)
        .reduce(f64::max);
    let recovery_time_s = match found {
        Some(start) => f64::from(start) - end,
        None => by_t
            .keys()
            .next_back()
            .map_or(0.0, |&last| f64::from(last) + 1.0 - end),
    };
    Recovery {
        stage: burst.name.clone(),
        baseline_p99_ms: baseline_p99,
        calm_p99_ms,
        peak_p99_ms,
        recovered: found.is_some(),
        recovery_time_s: recovery_time_s.max(0.0),
    }
}

/// The baseline's second-to-second p99 noise: 1.4826 × the median absolute
/// deviation of the p99 of its whole seconds that had load and a p99. Fewer
/// than 3 such seconds carry no measure of noise: 0.
fn robust_sigma(by_t: &BTreeMap<u32, &IntervalReport>, stage: &StageReport) -> f64 {
    let from = second_at_or_after(stage.start_s);
    // Seconds wholly inside the stage: [from, end) with end its last whole
    // second's end.
    let to = (stage.start_s + stage.duration_s + EPS).floor().max(0.0) as u32;
    let mut p99s: Vec<f64> = by_t
        .range(from..to.max(from))
        .filter(|(_, i)| i.intended > 0)
        .filter_map(|(_, i)| i.p99_ms)
        .collect();
    if p99s.len() < 3 {
        return 0.0;
    }
    let median = median_of(&mut p99s);
    let mut deviations: Vec<f64> = p99s.iter().map(|p| (p - median).abs()).collect();
    MAD_TO_SIGMA * median_of(&mut deviations)
}

/// The median of a non-empty slice (the mean of the middle two for an even
/// length); sorts it.
fn median_of(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The first whole second starting at or after `t` (tolerating float noise in
/// summed stage durations).
fn second_at_or_after(t: f64) -> u32 {
    (t - EPS).ceil().max(0.0) as u32
}

/// The start of the first run of `window` consecutive calm seconds from
/// `first` on.
fn find_window(
    by_t: &BTreeMap<u32, &IntervalReport>,
    first: u32,
    window: u32,
    bounds: &Bounds,
) -> Option<u32> {
    let last = *by_t.keys().next_back()?;
    let mut run = 0;
    for t in first..=last {
        if by_t.get(&t).is_some_and(|i| calm(i, bounds)) {
            run += 1;
            if run == window {
                return Some(t + 1 - window);
            }
        } else {
            run = 0;
        }
    }
    None
}

fn calm(i: &IntervalReport, b: &Bounds) -> bool {
    let Some(p99) = i.p99_ms else {
        return false;
    };
    let outcomes = i.ok + i.errors + i.dropped;
    i.intended > 0
        && outcomes > 0
        && p99 <= b.p99_ms + EPS * b.p99_ms.max(1.0)
        && ratio(i.errors, outcomes) <= b.error_rate + EPS
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests;
