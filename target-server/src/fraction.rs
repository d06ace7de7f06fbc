//! Deterministic error injection.
//!
//! Tests and CI thresholds assert exact error counts ("error_rate 0.1 over 100
//! requests gives 10 errors"), so errors are spread evenly by request number
//! instead of drawn at random: request `n` (0-based, counted across all
//! connections) is an error iff `floor((n+1)·rate) > floor(n·rate)`. The first
//! `n` requests then contain exactly `floor(n·rate)` errors.

use std::sync::atomic::{AtomicU64, Ordering};

/// The rate is held in parts per billion so the floors above are computed on
/// integers: `0.29 * 100` is `28.999…` in floating point, which would shift an
/// error by one request.
const SCALE: u128 = 1_000_000_000;

/// Picks which requests are answered with an error.
#[derive(Debug)]
pub(crate) struct ErrorFraction {
    /// The rate in parts per billion, `0..=SCALE`.
    ppb: u128,
    /// Number of the next request.
    next: AtomicU64,
}

impl ErrorFraction {
    /// `rate` is clamped to `0.0..=1.0`; NaN means no errors. The rate is
    /// rounded to the nearest billionth.
    pub(crate) fn new(rate: f64) -> Self {
        let rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        // In range 0..=1e9 after the clamp, so the cast is exact.
        let ppb = (rate * SCALE as f64).round() as u128;
        Self {
            ppb,
            next: AtomicU64::new(0),
        }
    }

    /// Numbers the next request and says whether it must fail.
    pub(crate) fn next_is_error(&self) -> bool {
        match self.ppb {
            // Skip the shared counter when the answer does not depend on it:
            // it is the only cross-core write on the fast path besides stats.
            0 => false,
            SCALE => true,
            ppb => {
                let n = u128::from(self.next.fetch_add(1, Ordering::Relaxed));
                (n + 1) * ppb / SCALE > n * ppb / SCALE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(rate: f64, n: usize) -> Vec<bool> {
        let fraction = ErrorFraction::new(rate);
        (0..n).map(|_| fraction.next_is_error()).collect()
    }

    fn count(rate: f64, n: usize) -> usize {
        pattern(rate, n).into_iter().filter(|&e| e).count()
    }

    #[test]
    fn exact_counts() {
        assert_eq!(count(0.1, 100), 10);
        assert_eq!(count(0.29, 100), 29);
        assert_eq!(count(0.5, 7), 3);
        assert_eq!(count(0.333, 1000), 333);
        // Rounded to a billionth: a third errs slightly low.
        assert_eq!(count(1.0 / 3.0, 300), 99);
        assert_eq!(count(0.001, 10_000), 10);
    }

    #[test]
    fn every_prefix_has_floor_n_rate_errors() {
        let errors = pattern(0.37, 1000);
        let mut seen = 0u64;
        for (i, &e) in errors.iter().enumerate() {
            seen += u64::from(e);
            assert_eq!(seen, (i as u64 + 1) * 37 / 100, "after {} requests", i + 1);
        }
    }

    #[test]
    fn quarter_is_every_fourth() {
        let expected: Vec<bool> = (0..12).map(|n| n % 4 == 3).collect();
        assert_eq!(pattern(0.25, 12), expected);
    }

    #[test]
    fn edges_and_nonsense() {
        assert_eq!(count(0.0, 50), 0);
        assert_eq!(count(1.0, 50), 50);
        assert_eq!(count(-1.0, 50), 0);
        assert_eq!(count(7.0, 50), 50);
        assert_eq!(count(f64::NAN, 50), 0);
    }
}
