//! The send times of one worker's share of the global schedule.
//!
//! Uniform: global request *k* is due when Λ(t) = k. Poisson: when Λ(t)
//! reaches uₖ = E₀ + … + Eₖ, the points of a unit-rate Poisson process whose
//! exponential gaps Eᵢ come from a counter-based generator keyed by
//! `(seed, i)`. Every worker walks the same uₖ in the same order, so the union
//! of all shares is exactly the single-generator schedule, and the same seed
//! gives the same schedule on every run.

use crate::model::Arrival;
use crate::partition::Share;
use crate::rate::RateCurve;

/// Iterator over `(global index k, due time in seconds since t = 0)` of one
/// share, in time order. Allocation-free after construction.
#[derive(Debug, Clone)]
pub struct ShareSchedule {
    curve: RateCurve,
    share: Share,
    arrival: Arrival,
    seed: u64,
    hint: usize,
    /// Uniform: this share's next request number m.
    m: u64,
    /// Poisson: next global index to draw and the running sum u.
    k: u64,
    u: f64,
    /// Poisson: position of k in the cycle and the next owned slot index.
    pos: u64,
    slot: usize,
}

impl ShareSchedule {
    pub fn new(curve: RateCurve, share: Share, arrival: Arrival, seed: u64) -> ShareSchedule {
        ShareSchedule {
            curve,
            share,
            arrival,
            seed,
            hint: 0,
            m: 0,
            k: 0,
            u: 0.0,
            pos: 0,
            slot: 0,
        }
    }

    pub fn curve(&self) -> &RateCurve {
        &self.curve
    }

    fn next_poisson(&mut self) -> Option<(u64, f64)> {
        loop {
            let k = self.k;
            self.u += exp1(self.seed, k);
            if self.u >= self.curve.total() {
                return None;
            }
            let owned = self.share.slots.get(self.slot) == Some(&self.pos);
            self.k += 1;
            if owned {
                self.slot += 1;
            }
            self.pos += 1;
            if self.pos == self.share.cycle {
                self.pos = 0;
                self.slot = 0;
            }
            if owned {
                let t = self.curve.time_of(self.u, &mut self.hint)?;
                return Some((k, t));
            }
        }
    }
}

impl Iterator for ShareSchedule {
    type Item = (u64, f64);

    #[inline]
    fn next(&mut self) -> Option<(u64, f64)> {
        match self.arrival {
            Arrival::Uniform => {
                let k = self.share.nth(self.m);
                let t = self.curve.time_of(k as f64, &mut self.hint)?;
                self.m += 1;
                Some((k, t))
            }
            Arrival::Poisson => self.next_poisson(),
        }
    }
}

/// SplitMix64: a fast, well-mixed hash of a counter.
#[inline]
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The i-th Exp(1) gap for `seed`.
#[inline]
fn exp1(seed: u64, i: u64) -> f64 {
    let x = splitmix64(splitmix64(seed) ^ i);
    // Uniform in (0, 1]: never ln(0).
    let u = ((x >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
    -u.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Stage;
    use crate::partition::Partition;
    use std::time::Duration;

    fn curve(stages: &[(f64, f64, f64)]) -> RateCurve {
        let stages: Vec<Stage> = stages
            .iter()
            .map(|&(secs, from, to)| Stage {
                name: "s".into(),
                duration: Duration::from_secs_f64(secs),
                from_rps: from,
                to_rps: to,
                burst: false,
            })
            .collect();
        RateCurve::new(&stages)
    }

    fn merged(c: &RateCurve, weights: &[u32], arrival: Arrival, seed: u64) -> Vec<(u64, f64)> {
        let p = Partition::new(weights).unwrap();
        let mut all: Vec<(u64, f64)> = p
            .shares()
            .into_iter()
            .flat_map(|s| ShareSchedule::new(c.clone(), s, arrival, seed))
            .collect();
        all.sort_by_key(|&(k, _)| k);
        all
    }

    #[test]
    fn uniform_single_worker_is_evenly_spaced() {
        let c = curve(&[(2.0, 100.0, 100.0)]);
        let all: Vec<_> = ShareSchedule::new(c, Share::whole(), Arrival::Uniform, 0).collect();
        assert_eq!(all.len(), 200);
        for (i, &(k, t)) in all.iter().enumerate() {
            assert_eq!(k, i as u64);
            assert!((t - i as f64 / 100.0).abs() < 1e-12);
        }
    }

    #[test]
    fn union_of_workers_equals_single_generator() {
        let c = curve(&[
            (3.0, 500.0, 500.0),
            (2.0, 500.0, 2000.0),
            (1.0, 0.0, 0.0),
            (1.0, 300.0, 300.0),
        ]);
        for arrival in [Arrival::Uniform, Arrival::Poisson] {
            let single = merged(&c, &[1], arrival, 42);
            for weights in [vec![1, 1, 1], vec![3, 1, 2, 7], vec![1; 64]] {
                let union = merged(&c, &weights, arrival, 42);
                assert_eq!(union.len(), single.len(), "{arrival:?} {weights:?}");
                for (a, b) in union.iter().zip(&single) {
                    assert_eq!(a.0, b.0);
                    assert_eq!(a.1.to_bits(), b.1.to_bits(), "times are bit-identical");
                }
            }
        }
        assert_eq!(
            merged(&c, &[1], Arrival::Uniform, 0).len() as u64,
            c.uniform_total()
        );
    }

    #[test]
    fn each_worker_is_in_time_order_and_within_the_run() {
        let c = curve(&[(2.0, 1000.0, 10.0)]);
        for s in Partition::new(&[2, 5]).unwrap().shares() {
            let times: Vec<f64> = ShareSchedule::new(c.clone(), s, Arrival::Poisson, 7)
                .map(|(_, t)| t)
                .collect();
            assert!(times.windows(2).all(|w| w[0] <= w[1]));
            assert!(times.iter().all(|&t| (0.0..2.0).contains(&t)));
        }
    }

    #[test]
    fn poisson_is_reproducible_and_seed_dependent() {
        let c = curve(&[(5.0, 1000.0, 1000.0)]);
        let a: Vec<_> =
            ShareSchedule::new(c.clone(), Share::whole(), Arrival::Poisson, 1).collect();
        let b: Vec<_> =
            ShareSchedule::new(c.clone(), Share::whole(), Arrival::Poisson, 1).collect();
        let other: Vec<_> = ShareSchedule::new(c, Share::whole(), Arrival::Poisson, 2).collect();
        assert_eq!(a, b);
        assert_ne!(a, other);
        // 5,000 expected; a Poisson count has sd ≈ 71, so 6 sd either side.
        assert!((4570..=5430).contains(&a.len()), "{}", a.len());
        // Gaps are exponential: mean 1 ms, and about e^-1 of them exceed 1 ms.
        let gaps: Vec<f64> = a.windows(2).map(|w| w[1].1 - w[0].1).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 0.001).abs() < 0.0001, "mean gap {mean}");
        let over = gaps.iter().filter(|&&g| g > 0.001).count() as f64 / gaps.len() as f64;
        assert!((over - (-1.0f64).exp()).abs() < 0.03, "{over}");
    }

    #[test]
    fn ramp_follows_the_rate_each_second() {
        // 0 → 1000 rps over 10 s: second s should hold ≈ 100 s + 50 requests.
        let c = curve(&[(10.0, 0.0, 1000.0)]);
        let times: Vec<f64> = ShareSchedule::new(c, Share::whole(), Arrival::Uniform, 0)
            .map(|(_, t)| t)
            .collect();
        for s in 0..10 {
            let n = times
                .iter()
                .filter(|&&t| t >= s as f64 && t < (s + 1) as f64)
                .count();
            let expect = 100 * s + 50;
            assert!(
                (n as i64 - expect as i64).abs() <= 1,
                "second {s}: {n} vs {expect}"
            );
        }
    }
}
