//! A worker's own latency books in the coordinator: 2 significant digits,
//! added to by bucket index.
//!
//! The coordinator keeps one per worker for the whole run (the report's
//! workers table; within 1 % at 2 digits, at a seventh of the memory of the
//! standard shape). Recording each decoded bucket with
//! [`Histogram::record_n`](hdrhistogram::Histogram::record_n) computes its
//! index again and updates the total, min and max every time: a sixth of the
//! coordinator's CPU at 1,000 workers of 20,000 values a second. A
//! [`Coarse`] maps each standard bucket index to its 2-digit one through a
//! table and adds the count there; it becomes a histogram once, for the
//! report ([`Coarse::to_hist`]).
//!
//! The 2-digit buckets nest: each standard (3-digit) bucket lies in exactly
//! one of them, so adding by index gives the histogram that recording every
//! value would, bucket for bucket, count, min and max (up to the equivalence
//! the 2-digit buckets keep anyway).

use super::decode::{index_in_shape, standard_bucket_count, value_at_index, value_in_shape};
use super::{Decoded, Hist, HistError, Sparse, HIGHEST_US, LOWEST_US};
use std::sync::OnceLock;

/// Significant digits of a worker's books.
pub const COARSE_SIGFIG: u8 = 2;

/// Sub-bucket half count of the 2-digit shape (256 sub-buckets).
const HALF_MAGNITUDE: u32 = 7;

/// The 2-digit bucket index of `value` (lowest 1 µs).
#[inline]
fn index_of(value: u64) -> u64 {
    index_in_shape(value, HALF_MAGNITUDE)
}

/// The lowest value of 2-digit bucket `index`.
#[inline]
fn value_at(index: u64) -> u64 {
    value_in_shape(index, HALF_MAGNITUDE)
}

/// An empty histogram of the books' shape.
pub fn new_coarse_hist() -> Hist {
    Hist::new_with_bounds(LOWEST_US, HIGHEST_US, COARSE_SIGFIG).expect("constant bounds are valid")
}

/// Each standard bucket index's 2-digit index (23,552 entries, 46 KB, once
/// per process).
fn coarse_index() -> &'static [u16] {
    static MAP: OnceLock<Vec<u16>> = OnceLock::new();
    MAP.get_or_init(|| {
        (0..standard_bucket_count())
            .map(|i| {
                let j = index_of(value_at_index(i));
                u16::try_from(j).expect("the 2-digit shape has fewer than 65,536 buckets")
            })
            .collect()
    })
}

/// Counts by 2-digit bucket index (lowest 1 µs, highest
/// [`super::HIGHEST_US`]).
#[derive(Debug, Clone)]
pub struct Coarse {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Coarse {
    fn default() -> Self {
        static LEN: OnceLock<usize> = OnceLock::new();
        let len = *LEN.get_or_init(|| new_coarse_hist().distinct_values());
        Coarse {
            counts: vec![0; len],
            total: 0,
        }
    }
}

impl Coarse {
    /// Total count.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Adds a decoded second exactly.
    pub fn add(&mut self, d: &Decoded) -> Result<(), HistError> {
        match d {
            Decoded::Sparse(s) => self.add_sparse(s),
            Decoded::Full(h) => self.add_sparse(&Sparse::of_hist(h)?),
        }
        Ok(())
    }

    fn add_sparse(&mut self, s: &Sparse) {
        let map = coarse_index();
        for &(index, count) in &s.buckets {
            // Every index of a Sparse is below the standard bucket count.
            let c = &mut self.counts[usize::from(map[index as usize])];
            *c = c.saturating_add(count);
            self.total = self.total.saturating_add(count);
        }
    }

    /// The books as a histogram of the 2-digit shape.
    pub fn to_hist(&self) -> Hist {
        let mut h = new_coarse_hist();
        if self.total == 0 {
            return h;
        }
        for (index, &count) in self.counts.iter().enumerate() {
            if count != 0 {
                h.record_n(value_at(index as u64), count)
                    .expect("every 2-digit bucket's lowest value is in range");
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::super::{buckets, decode_for_merge, encode, new_hist, synthetic_second};
    use super::*;

    /// Deterministic values over the whole range, bucket edges included.
    fn spread(seed: &mut u64, n: usize) -> Vec<u64> {
        (0..n)
            .map(|k| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                let bits = 1 + *seed % 32;
                let v = match k % 4 {
                    0 => (*seed >> 20) % (1 << bits),
                    1 => 1 << (*seed % 31),
                    2 => (1 << (*seed % 31)) - 1,
                    _ => (*seed >> 11) % 5_000,
                };
                v.clamp(LOWEST_US, HIGHEST_US)
            })
            .collect()
    }

    #[test]
    fn the_index_is_hdrhistograms_own() {
        let h = new_coarse_hist();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for v in spread(&mut seed, 20_000)
            .into_iter()
            .chain([1, 255, 256, HIGHEST_US])
        {
            let i = index_of(v);
            assert!(i < h.distinct_values() as u64, "{v}");
            assert_eq!(value_at(i), h.lowest_equivalent(v), "{v}");
            assert!(h.equivalent(v, value_at(i)), "{v}");
        }
        // Consecutive indexes are consecutive buckets.
        for i in 1..h.distinct_values() as u64 {
            assert_eq!(value_at(i - 1), h.lowest_equivalent(value_at(i) - 1), "{i}");
        }
    }

    #[test]
    fn books_hold_what_recording_every_value_at_2_digits_would() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        for round in 0..40 {
            let mut books = Coarse::default();
            let mut want = new_coarse_hist();
            for _second in 0..3 {
                let mut second = new_hist();
                for v in spread(&mut seed, 1 + round * 50) {
                    second.record(v).unwrap();
                    want.record(v).unwrap();
                }
                books
                    .add(&decode_for_merge(&encode(&second)).unwrap())
                    .unwrap();
            }
            let got = books.to_hist();
            assert_eq!(buckets(&got), buckets(&want), "round {round}");
            assert_eq!(got.len(), want.len());
            assert_eq!(books.len(), want.len());
            assert_eq!(got.min(), want.min(), "round {round}");
            assert_eq!(got.max(), want.max(), "round {round}");
        }
    }

    #[test]
    fn a_full_histogram_adds_as_its_buckets_do() {
        let (latency, _) = synthetic_second(9, 5_000);
        let mut by_sparse = Coarse::default();
        by_sparse
            .add(&decode_for_merge(&encode(&latency)).unwrap())
            .unwrap();
        let mut by_full = Coarse::default();
        by_full.add(&Decoded::Full(latency.clone())).unwrap();
        assert_eq!(buckets(&by_full.to_hist()), buckets(&by_sparse.to_hist()));
        assert_eq!(by_full.len(), 5_000);
        // And an empty one is an empty histogram of the 2-digit shape.
        let empty = Coarse::default().to_hist();
        assert!(empty.is_empty());
        assert_eq!(empty.sigfig(), COARSE_SIGFIG);
    }
}
