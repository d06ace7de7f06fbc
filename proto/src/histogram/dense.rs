//! A merge accumulator of the standard shape, added to by bucket index.
//!
//! The coordinator adds every worker's second into the cluster's second.
//! Adding a decoded [`Histogram`](hdrhistogram::Histogram) walks its whole
//! counts array (~24k buckets, whatever was recorded), and building one per
//! report costs a zeroed array and a value-to-index computation per bucket.
//! A [`Dense`] takes the non-zero buckets of a [`Sparse`](super::Sparse) by
//! index: one addition per recorded bucket, nothing else. It becomes a
//! histogram once, when the second is published ([`Dense::add_into`]).

use super::decode::{standard_bucket_count, value_at_index};
use super::{Hist, HistError, Sparse};

/// Counts by bucket index of the standard shape (lowest 1 µs, highest
/// [`super::HIGHEST_US`], 3 significant digits).
#[derive(Debug, Clone)]
pub struct Dense {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Dense {
    fn default() -> Self {
        // Zeroed pages the OS hands out as they are written.
        Dense {
            counts: vec![0; standard_bucket_count() as usize],
            total: 0,
        }
    }
}

impl Dense {
    /// Total count.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Adds (bucket index, count) pairs whose indexes are below
    /// [`standard_bucket_count`], as [`super::Sparse`] holds them.
    pub(super) fn add_indexed(&mut self, buckets: &[(u32, u64)]) {
        for &(index, count) in buckets {
            let c = &mut self.counts[index as usize];
            *c = c.saturating_add(count);
            self.total = self.total.saturating_add(count);
        }
    }

    /// Adds a histogram of any shape within the standard range, each of its
    /// buckets at the standard bucket of its lowest value (as recording that
    /// value would).
    pub fn add_hist(&mut self, h: &Hist) -> Result<(), HistError> {
        self.add_indexed(&Sparse::of_hist(h)?.buckets);
        Ok(())
    }

    /// Adds every bucket into `into` (a histogram of the standard shape, or
    /// a coarser one), exactly as merging the histogram of the same counts
    /// would.
    pub fn add_into(&self, into: &mut Hist) -> Result<(), HistError> {
        if self.total == 0 {
            return Ok(());
        }
        for (index, &count) in self.counts.iter().enumerate() {
            if count != 0 {
                into.record_n(value_at_index(index as u64), count)
                    .map_err(|e| HistError::Merge(format!("{e:?}")))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode::index_of;
    use super::super::{buckets, decode_for_merge, encode, merge, new_hist, Decoded, HIGHEST_US};
    use super::*;
    use hdrhistogram::Histogram;
    use proptest::prelude::*;

    /// Every bucket's index and lowest value agree with HdrHistogram's own
    /// layout of the standard shape.
    #[test]
    fn index_and_value_are_hdrhistograms_layout() {
        let h = new_hist();
        for index in 0..standard_bucket_count() {
            let v = value_at_index(index);
            assert_eq!(index_of(v), index, "value {v}");
            assert_eq!(h.lowest_equivalent(v), v, "index {index}");
            if index + 1 < standard_bucket_count() {
                let top = h.highest_equivalent(v);
                assert_eq!(index_of(top), index, "top {top} of index {index}");
                assert_eq!(index_of(top + 1), index + 1, "above {top}");
            }
        }
    }

    fn histogram(values: &[(u64, u64)]) -> Hist {
        let mut h = new_hist();
        for &(v, n) in values {
            h.record_n(v, n).unwrap();
        }
        h
    }

    fn value() -> impl Strategy<Value = u64> {
        prop_oneof![1u64..4096, 1u64..2_000_000, 1u64..=HIGHEST_US]
    }

    proptest! {
        /// Seconds added into a `Dense` from their wire bytes, then into a
        /// histogram, give exactly the buckets, count, min and max of the
        /// seconds merged as histograms.
        #[test]
        fn dense_adds_exactly_what_histograms_merge(
            seconds in prop::collection::vec(
                prop::collection::vec((value(), 1u64..1000), 0..300), 1..8),
        ) {
            let mut dense = Dense::default();
            let mut merged = new_hist();
            for s in &seconds {
                let h = histogram(s);
                let decoded = decode_for_merge(&encode(&h)).unwrap();
                prop_assert!(matches!(decoded, Decoded::Sparse(_)));
                decoded.add_to_dense(&mut dense).unwrap();
                merge(&mut merged, &h).unwrap();
            }
            let mut out = new_hist();
            dense.add_into(&mut out).unwrap();
            prop_assert_eq!(dense.len(), merged.len());
            prop_assert_eq!(buckets(&out), buckets(&merged));
            prop_assert_eq!((out.len(), out.min(), out.max()), (merged.len(), merged.min(), merged.max()));
        }
    }

    #[test]
    fn accumulators_add_and_full_histograms_add_as_recorded() {
        let a = histogram(&[(1, 2), (1500, 3), (HIGHEST_US, 1)]);
        let b = histogram(&[(1500, 4), (77_777, 5)]);
        let mut x = Dense::default();
        Decoded::Full(a.clone()).add_to_dense(&mut x).unwrap();
        x.add_hist(&b).unwrap();
        let mut out = new_hist();
        x.add_into(&mut out).unwrap();
        let mut merged = a.clone();
        merge(&mut merged, &b).unwrap();
        assert_eq!(buckets(&out), buckets(&merged));
        assert_eq!(x.len(), 15);
        // Into a coarser histogram (a worker's 2-digit books), as recording
        // each bucket's lowest value there would.
        let mut coarse = Histogram::<u64>::new_with_bounds(1, HIGHEST_US, 2).unwrap();
        x.add_into(&mut coarse).unwrap();
        assert_eq!(coarse.len(), 15);
        assert_eq!(coarse.count_at(1500), 7);
        // Another tool's coarser shape lands where recording its values would.
        let mut narrow = Histogram::<u64>::new_with_bounds(1, 60_000_000, 2).unwrap();
        narrow.record_n(1500, 3).unwrap();
        let mut d = Dense::default();
        d.add_hist(&narrow).unwrap();
        let mut out = new_hist();
        d.add_into(&mut out).unwrap();
        assert_eq!(out.count_at(narrow.lowest_equivalent(1500)), 3);
        assert!(Dense::default().is_empty());
    }
}
