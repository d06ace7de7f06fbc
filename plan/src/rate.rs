//! The whole-cluster rate curve and its integral.
//!
//! The run has one arrival schedule, as if one perfect generator sent it:
//! request *k* is due at the time *t_k* where the integral of the rate curve,
//! Λ(t), reaches *k* (uniform arrivals) or reaches the *k*-th point of a
//! unit-rate Poisson process (Poisson arrivals). Stages are constant or linear
//! ramps, so Λ is piecewise quadratic and its inverse is closed-form.

use crate::model::Stage;

#[derive(Debug, Clone, PartialEq)]
struct Segment {
    /// Start time, seconds since t = 0.
    t0: f64,
    dur: f64,
    r0: f64,
    r1: f64,
    /// Λ(t0).
    c0: f64,
    /// Λ(t0 + dur) - Λ(t0).
    area: f64,
}

impl Segment {
    fn count_at(&self, tau: f64) -> f64 {
        let tau = tau.clamp(0.0, self.dur);
        self.c0 + self.r0 * tau + (self.r1 - self.r0) / (2.0 * self.dur) * tau * tau
    }

    /// The τ in this segment where Λ reaches `x` (c0 <= x <= c0 + area).
    fn time_of(&self, x: f64) -> f64 {
        let d = (x - self.c0).max(0.0);
        if d == 0.0 {
            return self.t0;
        }
        let a = (self.r1 - self.r0) / (2.0 * self.dur);
        // Solve a τ² + r0 τ - d = 0 in the cancellation-free form.
        let disc = (self.r0 * self.r0 + 4.0 * a * d).max(0.0);
        let denom = self.r0 + disc.sqrt();
        let tau = if denom > 0.0 { 2.0 * d / denom } else { 0.0 };
        self.t0 + tau.min(self.dur)
    }
}

/// Piecewise-linear rate over time, built from the stages.
#[derive(Debug, Clone, PartialEq)]
pub struct RateCurve {
    segs: Vec<Segment>,
    end: f64,
    total: f64,
}

impl RateCurve {
    pub fn new(stages: &[Stage]) -> RateCurve {
        let mut segs = Vec::with_capacity(stages.len());
        let (mut t, mut c) = (0.0_f64, 0.0_f64);
        for s in stages {
            let dur = s.duration.as_secs_f64();
            let area = (s.from_rps + s.to_rps) / 2.0 * dur;
            segs.push(Segment {
                t0: t,
                dur,
                r0: s.from_rps,
                r1: s.to_rps,
                c0: c,
                area,
            });
            t += dur;
            c += area;
        }
        RateCurve {
            segs,
            end: t,
            total: c,
        }
    }

    /// Length of the run in seconds.
    pub fn end(&self) -> f64 {
        self.end
    }

    /// Λ(end): the expected number of requests of the whole run.
    pub fn total(&self) -> f64 {
        self.total
    }

    /// Start time of every stage, seconds.
    pub fn stage_starts(&self) -> impl Iterator<Item = f64> + '_ {
        self.segs.iter().map(|s| s.t0)
    }

    /// Index of the stage that contains time `t` (the last one for t >= end).
    pub fn stage_at(&self, t: f64) -> usize {
        let i = self.segs.partition_point(|s| s.t0 <= t);
        i.saturating_sub(1).min(self.segs.len().saturating_sub(1))
    }

    /// The instantaneous whole-cluster rate at time `t`.
    pub fn rate_at(&self, t: f64) -> f64 {
        if t < 0.0 || t >= self.end || self.segs.is_empty() {
            return 0.0;
        }
        let s = &self.segs[self.stage_at(t)];
        s.r0 + (s.r1 - s.r0) * ((t - s.t0) / s.dur)
    }

    /// Λ(t): the integral of the rate from 0 to `t`.
    pub fn count_at(&self, t: f64) -> f64 {
        if t <= 0.0 || self.segs.is_empty() {
            return 0.0;
        }
        if t >= self.end {
            return self.total;
        }
        let s = &self.segs[self.stage_at(t)];
        s.count_at(t - s.t0)
    }

    /// Number of uniform arrivals (k = 0, 1, …) due strictly before `t`.
    pub fn uniform_due_before(&self, t: f64) -> u64 {
        ceil_snapped(self.count_at(t))
    }

    /// Number of requests of the whole run with uniform arrivals.
    pub fn uniform_total(&self) -> u64 {
        ceil_snapped(self.total)
    }

    /// The time at which Λ reaches `x`, or `None` when the run ends first.
    /// `hint` is a segment cursor for monotone callers (start it at 0).
    pub fn time_of(&self, x: f64, hint: &mut usize) -> Option<f64> {
        if x.is_nan() || x >= self.total || x < 0.0 {
            return None;
        }
        let mut i = (*hint).min(self.segs.len() - 1);
        if self.segs[i].c0 > x {
            i = self.segs.partition_point(|s| s.c0 <= x).saturating_sub(1);
        }
        // Skip segments that end at or before x (zero-rate ones included).
        while i + 1 < self.segs.len() && self.segs[i].c0 + self.segs[i].area <= x {
            i += 1;
        }
        *hint = i;
        Some(self.segs[i].time_of(x))
    }
}

/// `ceil`, except that values within 1e-9 (relative) of an integer count as
/// that integer, so that 1000 rps × 60 s computed as 59999.999999 or
/// 60000.0000001 means 60,000 requests either way.
pub fn ceil_snapped(x: f64) -> u64 {
    if x <= 0.0 {
        return 0;
    }
    let r = x.round();
    if (x - r).abs() <= 1e-9 * x.max(1.0) {
        r as u64
    } else {
        x.ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stage(secs: f64, from: f64, to: f64) -> Stage {
        Stage {
            name: "s".into(),
            duration: Duration::from_secs_f64(secs),
            from_rps: from,
            to_rps: to,
            burst: false,
        }
    }

    #[test]
    fn constant_stage() {
        let c = RateCurve::new(&[stage(10.0, 1000.0, 1000.0)]);
        assert_eq!(c.uniform_total(), 10_000);
        assert_eq!(c.uniform_due_before(1.0), 1000);
        assert_eq!(c.uniform_due_before(0.0005), 1); // k = 0 is due at t = 0
        let mut h = 0;
        assert_eq!(c.time_of(0.0, &mut h), Some(0.0));
        assert!((c.time_of(1500.0, &mut h).unwrap() - 1.5).abs() < 1e-12);
        assert_eq!(c.time_of(10_000.0, &mut h), None);
        assert_eq!(c.rate_at(3.0), 1000.0);
        assert_eq!(c.rate_at(10.0), 0.0);
    }

    #[test]
    fn ramp_integral_and_inverse_agree() {
        let c = RateCurve::new(&[stage(10.0, 0.0, 1000.0), stage(5.0, 1000.0, 200.0)]);
        assert!((c.total() - (5000.0 + 3000.0)).abs() < 1e-9);
        assert_eq!(c.uniform_total(), 8000);
        let mut h = 0;
        for k in (0..8000).step_by(7) {
            let t = c.time_of(k as f64, &mut h).unwrap();
            assert!((c.count_at(t) - k as f64).abs() < 1e-6, "k={k} t={t}");
        }
        // Ramp from 0: Λ(t) = 50 t², so request 50 is due at t = 1.
        let mut h = 0;
        assert!((c.time_of(50.0, &mut h).unwrap() - 1.0).abs() < 1e-12);
        assert!((c.rate_at(2.5) - 250.0).abs() < 1e-9);
        assert!((c.rate_at(12.5) - 600.0).abs() < 1e-9);
    }

    #[test]
    fn the_rate_is_defined_from_zero_to_the_end_only() {
        let c = RateCurve::new(&[stage(4.0, 100.0, 200.0), stage(1.0, 50.0, 50.0)]);
        // t = 0 is the first stage's start rate; before it nothing is sent.
        assert_eq!(c.rate_at(0.0), 100.0);
        assert_eq!(c.rate_at(-0.5), 0.0);
        assert_eq!(c.rate_at(-4.0), 0.0);
        assert_eq!(c.rate_at(4.0), 50.0);
        assert_eq!(c.rate_at(5.0), 0.0);
    }

    #[test]
    fn stages_start_where_the_previous_ends() {
        let c = RateCurve::new(&[
            stage(2.0, 10.0, 10.0),
            stage(3.0, 0.0, 0.0),
            stage(1.5, 10.0, 20.0),
        ]);
        assert_eq!(c.stage_starts().collect::<Vec<_>>(), [0.0, 2.0, 5.0]);
        assert_eq!(c.end(), 6.5);
    }

    #[test]
    fn zero_rate_stages_are_skipped() {
        let c = RateCurve::new(&[
            stage(2.0, 10.0, 10.0),
            stage(3.0, 0.0, 0.0),
            stage(1.0, 10.0, 10.0),
        ]);
        assert_eq!(c.uniform_total(), 30);
        let mut h = 0;
        assert!((c.time_of(19.0, &mut h).unwrap() - 1.9).abs() < 1e-12);
        assert!((c.time_of(20.0, &mut h).unwrap() - 5.0).abs() < 1e-12);
        assert_eq!(c.stage_at(2.5), 1);
        assert_eq!(c.stage_at(99.0), 2);
    }

    #[test]
    fn hint_survives_backwards_queries() {
        let c = RateCurve::new(&[stage(1.0, 10.0, 10.0), stage(1.0, 20.0, 20.0)]);
        let mut h = 0;
        assert!((c.time_of(25.0, &mut h).unwrap() - 1.75).abs() < 1e-12);
        assert_eq!(h, 1);
        assert!((c.time_of(5.0, &mut h).unwrap() - 0.5).abs() < 1e-12);
        // A stale hint past the last stage (one from a longer curve) is
        // clamped, not an index out of bounds.
        for stale in [2, 3, 99] {
            let mut h = stale;
            assert!((c.time_of(25.0, &mut h).unwrap() - 1.75).abs() < 1e-12);
            assert_eq!(h, 1);
        }
    }

    #[test]
    fn snapping() {
        assert_eq!(ceil_snapped(59_999.999_999_999), 60_000);
        assert_eq!(ceil_snapped(60_000.000_000_01), 60_000);
        assert_eq!(ceil_snapped(0.2), 1);
        assert_eq!(ceil_snapped(0.0), 0);
        assert_eq!(ceil_snapped(2.5), 3);
    }
}
