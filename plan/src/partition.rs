//! Splitting the global arrival sequence into interleaved worker shares.
//!
//! Worker *i* with integer weight *wᵢ* owns *wᵢ* of every *W = Σw* consecutive
//! global requests. Within one cycle of *W* positions the owners are laid out
//! by smooth weighted round robin, which keeps every worker within one request
//! of its exact share in every prefix (the Sainte-Laguë order was tried and
//! strays by up to 1.35). So each worker's requests are spread evenly and the
//! merged arrivals are as even as a single generator's, never N simultaneous
//! bursts.
//!
//! The cycle is computed once per assignment; a worker then maps its *m*-th
//! request to the global index in O(1) (see [`Share::nth`]).

/// Largest weight a worker may declare.
pub const MAX_WEIGHT: u32 = 1000;
/// Most workers in one partition.
pub const MAX_WORKERS: usize = 100_000;
/// Longest cycle (after dividing the weights by their gcd).
pub const MAX_CYCLE: u64 = 1 << 24;
/// Most work (cycle × workers) spent laying out one cycle.
const MAX_WORK: u64 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error("no workers to partition over")]
    Empty,
    #[error("worker {index} has weight {weight}; expected 1..={MAX_WEIGHT}")]
    BadWeight { index: usize, weight: u32 },
    #[error("{0} workers; at most {MAX_WORKERS} are supported")]
    TooManyWorkers(usize),
    #[error("weights give a cycle of {0} positions, too long for this many workers; use fewer distinct weights")]
    CycleTooLong(u64),
    #[error("share: {0}")]
    BadShare(String),
}

/// The owner of every position of one cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    owners: Vec<u32>,
    workers: usize,
}

impl Partition {
    pub fn new(weights: &[u32]) -> Result<Partition, PartitionError> {
        if weights.is_empty() {
            return Err(PartitionError::Empty);
        }
        if weights.len() > MAX_WORKERS {
            return Err(PartitionError::TooManyWorkers(weights.len()));
        }
        for (index, &weight) in weights.iter().enumerate() {
            if weight == 0 || weight > MAX_WEIGHT {
                return Err(PartitionError::BadWeight { index, weight });
            }
        }
        let g = weights.iter().copied().fold(0, gcd);
        let reduced: Vec<u64> = weights.iter().map(|&w| u64::from(w / g)).collect();
        let cycle: u64 = reduced.iter().sum();
        if cycle > MAX_CYCLE {
            return Err(PartitionError::CycleTooLong(cycle));
        }
        if cycle.saturating_mul(reduced.len() as u64) > MAX_WORK {
            return Err(PartitionError::CycleTooLong(cycle));
        }
        // Smooth weighted round robin: every position, each worker's credit
        // grows by its weight and the one with the most credit (lowest index
        // on ties) takes the position and pays the whole cycle back. This
        // keeps every worker within one request of its exact proportional
        // count in every prefix.
        let weights_i: Vec<i64> = reduced.iter().map(|&w| w as i64).collect();
        let total = cycle as i64;
        let mut credit = vec![0i64; reduced.len()];
        let mut owners = Vec::with_capacity(cycle as usize);
        for _ in 0..cycle {
            let mut best = 0;
            for i in 0..credit.len() {
                credit[i] += weights_i[i];
                if credit[i] > credit[best] {
                    best = i;
                }
            }
            credit[best] -= total;
            owners.push(best as u32);
        }
        Ok(Partition {
            owners,
            workers: weights.len(),
        })
    }

    pub fn cycle(&self) -> u64 {
        self.owners.len() as u64
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The worker that sends global request `k`.
    pub fn owner(&self, k: u64) -> usize {
        self.owners[(k % self.cycle()) as usize] as usize
    }

    /// The share of every worker, in worker order, in one pass.
    pub fn shares(&self) -> Vec<Share> {
        let mut slots: Vec<Vec<u64>> = vec![Vec::new(); self.workers];
        for (pos, &w) in self.owners.iter().enumerate() {
            slots[w as usize].push(pos as u64);
        }
        slots
            .into_iter()
            .map(|slots| Share {
                cycle: self.cycle(),
                slots,
            })
            .collect()
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// One worker's share: global request `k` is its own iff `k % cycle` is in
/// `slots`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub cycle: u64,
    /// Sorted, distinct, each `< cycle`, not empty.
    pub slots: Vec<u64>,
}

impl Share {
    /// The whole sequence (a single worker).
    pub fn whole() -> Share {
        Share {
            cycle: 1,
            slots: vec![0],
        }
    }

    /// Checks a share that came from the network.
    pub fn validate(&self) -> Result<(), PartitionError> {
        let bad = |m: &str| Err(PartitionError::BadShare(m.to_string()));
        if self.cycle == 0 || self.cycle > MAX_CYCLE {
            return bad("cycle out of range");
        }
        if self.slots.is_empty() {
            return bad("no slots");
        }
        if self.slots.windows(2).any(|w| w[0] >= w[1]) {
            return bad("slots not sorted and distinct");
        }
        if *self.slots.last().unwrap_or(&0) >= self.cycle {
            return bad("slot beyond cycle");
        }
        Ok(())
    }

    /// Fraction of all requests this share sends.
    pub fn fraction(&self) -> f64 {
        self.slots.len() as f64 / self.cycle as f64
    }

    pub fn owns(&self, k: u64) -> bool {
        self.slots.binary_search(&(k % self.cycle)).is_ok()
    }

    /// Global index of this share's `m`-th request (m = 0, 1, …).
    pub fn nth(&self, m: u64) -> u64 {
        let s = self.slots.len() as u64;
        (m / s) * self.cycle + self.slots[(m % s) as usize]
    }

    /// How many of the global requests `0..n` this share owns.
    pub fn count_below(&self, n: u64) -> u64 {
        let full = n / self.cycle;
        let rem = n % self.cycle;
        full * self.slots.len() as u64 + self.slots.partition_point(|&s| s < rem) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_exact_cover(weights: &[u32], n: u64) {
        let p = Partition::new(weights).unwrap();
        let shares = p.shares();
        assert_eq!(shares.len(), weights.len());
        // Every global request has exactly one owner, and it is `owner(k)`.
        for k in 0..n {
            let owners: Vec<usize> = (0..shares.len()).filter(|&i| shares[i].owns(k)).collect();
            assert_eq!(owners, vec![p.owner(k)], "k={k}");
        }
        // Counts add up to the whole for any prefix.
        for prefix in [0, 1, n / 3, n / 2, n] {
            let sum: u64 = shares.iter().map(|s| s.count_below(prefix)).sum();
            assert_eq!(sum, prefix);
        }
        // nth enumerates exactly the owned indices, in order.
        for (i, s) in shares.iter().enumerate() {
            let owned: Vec<u64> = (0..n).filter(|&k| p.owner(k) == i).collect();
            let listed: Vec<u64> = (0..owned.len() as u64).map(|m| s.nth(m)).collect();
            assert_eq!(owned, listed);
            s.validate().unwrap();
        }
    }

    #[test]
    fn one_worker_owns_everything() {
        let p = Partition::new(&[7]).unwrap();
        assert_eq!(p.cycle(), 1);
        assert_eq!(p.shares(), vec![Share::whole()]);
        check_exact_cover(&[1], 100);
    }

    #[test]
    fn equal_weights_round_robin() {
        let p = Partition::new(&[1, 1, 1]).unwrap();
        assert_eq!(
            (0..6).map(|k| p.owner(k)).collect::<Vec<_>>(),
            vec![0, 1, 2, 0, 1, 2]
        );
        // Weights are reduced by their gcd: 5,5,5 is the same partition.
        assert_eq!(Partition::new(&[5, 5, 5]).unwrap(), p);
    }

    #[test]
    fn uneven_weights_interleave() {
        let p = Partition::new(&[3, 1]).unwrap();
        let seq: Vec<usize> = (0..8).map(|k| p.owner(k)).collect();
        // Worker 1's one request sits in the middle of worker 0's three.
        assert_eq!(seq, vec![0, 0, 1, 0, 0, 0, 1, 0]);
        check_exact_cover(&[3, 1], 1000);
        check_exact_cover(&[2, 3, 5], 1000);
        check_exact_cover(&[1000, 1, 17], 5000);
    }

    #[test]
    fn a_thousand_workers() {
        let weights = vec![1u32; 1000];
        let p = Partition::new(&weights).unwrap();
        assert_eq!(p.cycle(), 1000);
        let shares = p.shares();
        for (i, s) in shares.iter().enumerate() {
            assert_eq!(s.slots, vec![i as u64]);
            assert_eq!(s.count_below(1_000_000), 1000);
        }
        let mixed: Vec<u32> = (0..1000).map(|i| 1 + (i % 4)).collect();
        let p = Partition::new(&mixed).unwrap();
        let total: u64 = p.shares().iter().map(|s| s.count_below(10_000_000)).sum();
        assert_eq!(total, 10_000_000);
    }

    #[test]
    fn bad_weights_are_refused() {
        assert_eq!(Partition::new(&[]), Err(PartitionError::Empty));
        assert_eq!(
            Partition::new(&[1, 0]),
            Err(PartitionError::BadWeight {
                index: 1,
                weight: 0
            })
        );
        assert!(matches!(
            Partition::new(&[1001]),
            Err(PartitionError::BadWeight { .. })
        ));
    }

    #[test]
    fn shares_from_the_network_are_validated() {
        let ok = Share {
            cycle: 3,
            slots: vec![0, 2],
        };
        ok.validate().unwrap();
        for bad in [
            Share {
                cycle: 0,
                slots: vec![0],
            },
            Share {
                cycle: 3,
                slots: vec![],
            },
            Share {
                cycle: 3,
                slots: vec![2, 1],
            },
            Share {
                cycle: 3,
                slots: vec![1, 1],
            },
            Share {
                cycle: 3,
                slots: vec![3],
            },
            Share {
                cycle: MAX_CYCLE + 1,
                slots: vec![0],
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Shares are proportional to weights and evenly spread: in every
        /// prefix of the sequence each worker is within one request of its
        /// exact proportional count.
        #[test]
        fn shares_are_proportional_in_every_prefix(weights in prop::collection::vec(1u32..=20, 1..12)) {
            let p = Partition::new(&weights).unwrap();
            let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
            let shares = p.shares();
            let n = p.cycle() * 3;
            let mut counts = vec![0u64; weights.len()];
            for k in 0..n {
                counts[p.owner(k)] += 1;
                for (i, &w) in weights.iter().enumerate() {
                    let ideal = (k + 1) as f64 * f64::from(w) / total as f64;
                    prop_assert!((counts[i] as f64 - ideal).abs() <= 1.0 + 1e-9,
                        "worker {} after {} requests: {} vs ideal {}", i, k + 1, counts[i], ideal);
                }
            }
            for (i, s) in shares.iter().enumerate() {
                prop_assert_eq!(s.count_below(n), counts[i]);
            }
        }

        #[test]
        fn union_of_shares_is_the_whole_sequence(weights in prop::collection::vec(1u32..=50, 1..30), n in 0u64..5000) {
            let p = Partition::new(&weights).unwrap();
            let shares = p.shares();
            let mut all: Vec<u64> = Vec::new();
            for s in &shares {
                let c = s.count_below(n);
                all.extend((0..c).map(|m| s.nth(m)));
            }
            all.sort_unstable();
            prop_assert_eq!(all, (0..n).collect::<Vec<_>>());
        }
    }
}
