//! Which request definition global arrival `k` sends.
//!
//! A scenario may define several weighted requests (80 % `GET /items`, 20 %
//! `POST /orders`). The choice is a pure function of the global arrival
//! index, so it is the same on every worker, after every re-split, and in
//! every run:
//!
//! - the global sequence is cut into blocks of `W = Σ weights` arrivals, and
//!   each block holds every request exactly `weight` times (a smooth
//!   weighted round robin table), so over the whole cluster the mix is exact
//!   to within one block at any point of the run;
//! - each block starts the table at an offset drawn from the block number
//!   (a hash, not a counter), so a worker whose share is every `c`-th
//!   arrival does not keep landing on the same table entry: each worker sees
//!   the whole mix, not one request type.

use crate::template::splitmix64;

/// The request of each arrival, built once from the weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMix {
    /// One block: request indexes, each `weight` times, smoothly spread.
    table: Vec<u16>,
}

impl RequestMix {
    /// `weights` must be non-empty, each 1..=1000, at most 100 of them (as
    /// [`crate::Plan::validate`] ensures).
    pub fn new(weights: &[u32]) -> RequestMix {
        assert!(!weights.is_empty() && weights.len() <= u16::MAX as usize);
        // 80:20 is 4:1: the smallest block keeps the mix exact over the
        // shortest spans, and one request makes a table of one entry, which
        // `pick` answers without hashing.
        let g = weights.iter().fold(0u32, |a, &b| gcd(a, b)).max(1);
        let weights: Vec<u32> = weights.iter().map(|&w| w / g).collect();
        let weights = &weights[..];
        let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
        let mut current = vec![0i64; weights.len()];
        let mut table = Vec::with_capacity(total as usize);
        for _ in 0..total {
            for (c, &w) in current.iter_mut().zip(weights) {
                *c += i64::from(w);
            }
            let (best, _) = current
                .iter()
                .enumerate()
                .max_by_key(|&(i, &c)| (c, std::cmp::Reverse(i)))
                .expect("non-empty");
            current[best] -= total;
            table.push(best as u16);
        }
        RequestMix { table }
    }

    /// Whether there is only one request (then `pick` is always 0).
    pub fn is_single(&self) -> bool {
        self.table.len() == 1
    }

    /// The request definition global arrival `k` sends.
    #[inline]
    pub fn pick(&self, k: u64) -> usize {
        let w = self.table.len() as u64;
        if w == 1 {
            return 0;
        }
        let block = k / w;
        let offset = splitmix64(block) % w;
        self.table[((k % w + offset) % w) as usize] as usize
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Partition;

    fn counts(mix: &RequestMix, ks: impl Iterator<Item = u64>, n: usize) -> Vec<u64> {
        let mut c = vec![0u64; n];
        for k in ks {
            c[mix.pick(k)] += 1;
        }
        c
    }

    #[test]
    fn one_request_is_always_picked() {
        let mix = RequestMix::new(&[7]);
        assert!(mix.is_single());
        assert_eq!(mix.table, vec![0], "a single weight reduces to one entry");
        assert_eq!(RequestMix::new(&[80, 20]).table.len(), 5, "80:20 is 4:1");
        assert!((0..1000).all(|k| mix.pick(k) == 0));
    }

    #[test]
    fn every_block_holds_each_request_exactly_weight_times() {
        for weights in [
            &[80u32, 20][..],
            &[1, 1],
            &[3, 2, 1],
            &[1000, 1],
            &[5, 7, 11, 13],
        ] {
            let mix = RequestMix::new(weights);
            let w: u64 = weights.iter().map(|&x| u64::from(x)).sum();
            for block in [0u64, 1, 2, 17, 1_000_003] {
                let c = counts(&mix, block * w..(block + 1) * w, weights.len());
                let expected: Vec<u64> = weights.iter().map(|&x| u64::from(x)).collect();
                assert_eq!(c, expected, "weights {weights:?} block {block}");
            }
        }
    }

    #[test]
    fn any_prefix_is_within_one_block_of_the_exact_mix() {
        let weights = [80u32, 15, 5];
        let mix = RequestMix::new(&weights);
        let mut c = [0u64; 3];
        for k in 0..100_000u64 {
            c[mix.pick(k)] += 1;
            let n = (k + 1) as f64;
            for (i, &w) in weights.iter().enumerate() {
                let exact = n * f64::from(w) / 100.0;
                assert!((c[i] as f64 - exact).abs() <= f64::from(w), "k {k} {c:?}");
            }
        }
    }

    #[test]
    fn every_worker_of_a_partition_sees_the_whole_mix() {
        // The dangerous case: shares whose period shares factors with the
        // table length (2 workers, weights 1:1 would give each worker one
        // request type with a plain k mod W).
        for weights in [&[1u32, 1][..], &[80, 20], &[1, 2, 1]] {
            let mix = RequestMix::new(weights);
            let total: f64 = weights.iter().map(|&x| f64::from(x)).sum();
            for workers in [2usize, 3, 4, 10] {
                let p = Partition::new(&vec![1; workers]).unwrap();
                for share in p.shares() {
                    let ks = (0..200_000u64).filter(|k| share.owns(*k));
                    let c = counts(&mix, ks, weights.len());
                    let n: u64 = c.iter().sum();
                    for (i, &w) in weights.iter().enumerate() {
                        let got = c[i] as f64 / n as f64;
                        let want = f64::from(w) / total;
                        assert!(
                            (got - want).abs() < 0.02,
                            "weights {weights:?}, {workers} workers: request {i} got {got:.3}, want {want:.3}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn several_requests_are_not_single() {
        assert!(!RequestMix::new(&[80, 20]).is_single());
        assert!(!RequestMix::new(&[1, 1]).is_single());
        // Equal weights reduce, but two requests stay two.
        assert!(!RequestMix::new(&[50, 50]).is_single());
    }

    #[test]
    fn the_choice_of_each_arrival_is_pinned() {
        // The same scenario sends the same request for the same arrival in
        // every run, also across Volley versions: a run compared with a
        // saved baseline must have sent the same requests in the same order.
        let mix = RequestMix::new(&[80, 20]);
        let picks: Vec<usize> = (0..30).map(|k| mix.pick(k)).collect();
        assert_eq!(
            picks,
            [
                0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, //
                0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1,
            ]
        );
    }

    #[test]
    fn every_index_up_to_the_last_has_a_request() {
        // Block 3558559446808474027 hashes to u64::MAX, the largest offset
        // there is; and k = u64::MAX is the last arrival index. Neither may
        // overflow, and the block still holds every request weight times.
        let mix = RequestMix::new(&[4, 1]);
        assert_eq!(splitmix64(3_558_559_446_808_474_027), u64::MAX);
        let first = 3_558_559_446_808_474_027u64 * 5;
        assert_eq!(counts(&mix, first..first + 5, 2), [4, 1]);
        assert_eq!(mix.pick(u64::MAX), 0);
        assert_eq!(mix.pick(u64::MAX - 1), 0);
    }

    #[test]
    fn the_table_is_smooth() {
        // 80:20 alternates four of one with one of the other, not 80 then 20.
        let mix = RequestMix::new(&[4, 1]);
        assert_eq!(mix.table, vec![0, 0, 1, 0, 0]);
    }
}
