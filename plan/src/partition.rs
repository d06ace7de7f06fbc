//! Splitting the global arrival sequence into interleaved worker shares.
//!
//! Worker *i* with integer weight *wᵢ* owns *wᵢ* of every *W = Σw* consecutive
//! global requests. Within one cycle of *W* positions the owners are laid out
//! by Tijdeman's solution of the chairman assignment problem: every worker
//! stays within *1 − 1/(2(n−1))* requests — strictly less than one — of its
//! exact proportional count in every prefix, for *n* workers. (Smooth
//! weighted round robin, used before, strays beyond one request for some
//! weights, e.g. 1.02 for [20, 20, 1, 2, 2, 2]; the Sainte-Laguë order by up
//! to 1.35.) So each worker's requests are spread evenly and the merged
//! arrivals are as even as a single generator's, never N simultaneous
//! bursts.
//!
//! The construction is earliest-deadline-first over unit jobs: the *k*-th
//! position of worker *i* may not come before *((k−1) + δ)/λᵢ* nor after
//! *(k − δ)/λᵢ* (λᵢ = wᵢ/W, δ = 1/(2(n−1))), and EDF meets every such
//! window whenever any order does, which Tijdeman proved for this δ.
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
        let g = weights.iter().map(|&w| u64::from(w)).fold(0, gcd);
        let reduced: Vec<u64> = weights.iter().map(|&w| u64::from(w) / g).collect();
        let cycle: u64 = reduced.iter().sum();
        if cycle > MAX_CYCLE {
            return Err(PartitionError::CycleTooLong(cycle));
        }
        if cycle.saturating_mul(reduced.len() as u64) > MAX_WORK {
            return Err(PartitionError::CycleTooLong(cycle));
        }
        let owners = tijdeman(&reduced, cycle);
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

/// A pending position of one worker: its `k`-th (1-based) of the cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Job {
    worker: u32,
    weight: u64,
    k: u64,
}

impl Job {
    /// `k·D − 1`: the deadline is `(k·D − 1)·W / (w·D)`; `W/D` is common to
    /// every job, so deadlines compare as `(k·D − 1) / w`.
    fn deadline_num(&self, d: u64) -> u128 {
        u128::from(self.k) * u128::from(d) - 1
    }
}

/// Earliest deadline first, ties to the lower worker index. (The heap is a
/// max-heap, hence the reversed comparisons.)
struct ByDeadline {
    job: Job,
    d: u64,
}

impl PartialEq for ByDeadline {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for ByDeadline {}
impl PartialOrd for ByDeadline {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByDeadline {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let mine = self.job.deadline_num(self.d) * u128::from(other.job.weight);
        let theirs = other.job.deadline_num(other.d) * u128::from(self.job.weight);
        theirs
            .cmp(&mine)
            .then_with(|| other.job.worker.cmp(&self.job.worker))
    }
}

/// The owner of each position of one cycle of `total` positions (see the
/// module docs).
fn tijdeman(weights: &[u64], total: u64) -> Vec<u32> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let n = weights.len() as u64;
    if n == 1 {
        return vec![0; total as usize];
    }
    let d = 2 * (n - 1);
    // Earliest time (1-based position) the k-th job of a worker may take:
    // the smallest t with t·w·D ≥ ((k−1)·D + 1)·W.
    let release = |job: &Job| -> u64 {
        let num = (u128::from(job.k - 1) * u128::from(d) + 1) * u128::from(total);
        let den = u128::from(job.weight) * u128::from(d);
        num.div_ceil(den) as u64
    };
    let mut waiting: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::with_capacity(weights.len());
    let mut next: Vec<Job> = Vec::with_capacity(weights.len());
    for (i, &w) in weights.iter().enumerate() {
        let job = Job {
            worker: i as u32,
            weight: w,
            k: 1,
        };
        waiting.push(Reverse((release(&job), i as u32)));
        next.push(job);
    }
    let mut ready: BinaryHeap<ByDeadline> = BinaryHeap::with_capacity(weights.len());
    let mut owners = Vec::with_capacity(total as usize);
    for t in 1..=total {
        while let Some(&Reverse((r, i))) = waiting.peek() {
            if r > t {
                break;
            }
            waiting.pop();
            ready.push(ByDeadline {
                job: next[i as usize],
                d,
            });
        }
        // Tijdeman's theorem says a released job always exists; should it
        // not, the earliest to be released goes (a bound test would show it).
        let job = match ready.pop() {
            Some(j) => j.job,
            None => {
                let Reverse((_, i)) = waiting.pop().expect("every worker has a next job");
                next[i as usize]
            }
        };
        owners.push(job.worker);
        let following = Job {
            k: job.k + 1,
            ..job
        };
        next[job.worker as usize] = following;
        if following.k <= job.weight {
            waiting.push(Reverse((release(&following), job.worker)));
        }
    }
    owners
}

fn gcd(a: u64, b: u64) -> u64 {
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

    /// This share split over `n` engines (threads of one worker): engine
    /// `t` sends the share's requests `m` with `m % n == t`, round robin,
    /// which is the even layout for equal weights, so each engine's
    /// arrivals are as evenly spread as the share's. The union of the parts
    /// is exactly this share and they are disjoint. Each part repeats the
    /// cycle `n / gcd(slots, n)` times, so it holds `slots / gcd(slots, n)`
    /// positions.
    pub fn split(&self, n: usize) -> Vec<Share> {
        let n = n.max(1) as u64;
        let s = self.slots.len() as u64;
        let reps = n / gcd(s, n);
        let mut parts: Vec<Vec<u64>> = (0..n).map(|_| Vec::new()).collect();
        for m in 0..s * reps {
            parts[(m % n) as usize].push(self.nth(m));
        }
        parts
            .into_iter()
            .map(|slots| Share {
                cycle: self.cycle * reps,
                slots,
            })
            .collect()
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
    fn a_partition_knows_its_workers() {
        assert_eq!(Partition::new(&[3, 1]).unwrap().workers(), 2);
        assert_eq!(Partition::new(&[5, 5, 5]).unwrap().workers(), 3);
        let p = Partition::new(&[7]).unwrap();
        assert_eq!((p.workers(), p.shares().len()), (1, 1));
    }

    #[test]
    fn a_share_sends_its_weight_over_the_total() {
        let fractions: Vec<f64> = Partition::new(&[3, 1])
            .unwrap()
            .shares()
            .iter()
            .map(Share::fraction)
            .collect();
        assert_eq!(fractions, [0.75, 0.25]);
        assert_eq!(Share::whole().fraction(), 1.0);
    }

    #[test]
    fn deadline_equality_agrees_with_the_ordering() {
        // BinaryHeap relies on Ord; Eq must agree with it (the trait
        // contract), ties broken by worker index so two jobs are equal only
        // when they are the same worker's at the same deadline.
        let at = |worker, weight, k| ByDeadline {
            job: Job { worker, weight, k },
            d: 2,
        };
        assert!(at(0, 1, 1) == at(0, 1, 1));
        assert!(at(0, 1, 1) != at(1, 1, 1), "same deadline, other worker");
        assert!(at(0, 1, 1) != at(0, 1, 2), "same worker, later deadline");
        assert!(at(0, 2, 2) != at(0, 1, 2), "same k, other weight");
        for (a, b) in [(at(0, 1, 1), at(1, 1, 1)), (at(2, 3, 4), at(2, 3, 4))] {
            assert_eq!(a == b, a.cmp(&b) == std::cmp::Ordering::Equal);
        }
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
        // The longest cycle a partition can make is still accepted.
        Share {
            cycle: MAX_CYCLE,
            slots: vec![0, MAX_CYCLE - 1],
        }
        .validate()
        .unwrap();
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

    /// The largest deviation from the exact proportional count of any
    /// worker in any prefix of three cycles.
    fn worst_deviation(weights: &[u32]) -> f64 {
        let p = Partition::new(weights).unwrap();
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut counts = vec![0u64; weights.len()];
        let mut worst = 0.0f64;
        for k in 0..p.cycle() * 3 {
            counts[p.owner(k)] += 1;
            for (i, &w) in weights.iter().enumerate() {
                let ideal = (k + 1) as f64 * f64::from(w) / total as f64;
                worst = worst.max((counts[i] as f64 - ideal).abs());
            }
        }
        worst
    }

    #[test]
    fn deviation_stays_under_one_request_where_round_robin_strayed() {
        // Smooth weighted round robin gave 1.02 here.
        let w = [20, 20, 1, 2, 2, 2];
        assert!(worst_deviation(&w) <= 1.0 - 1.0 / 10.0 + 1e-9);
        // Many workers, mixed weights.
        let many: Vec<u32> = (0..100u32).map(|i| 1 + (i * 37) % 50).collect();
        assert!(worst_deviation(&many) <= 1.0 - 1.0 / 198.0 + 1e-9);
        let skewed: Vec<u32> = std::iter::once(1000)
            .chain(std::iter::repeat_n(1, 30))
            .collect();
        assert!(worst_deviation(&skewed) <= 1.0 - 1.0 / 60.0 + 1e-9);
    }

    #[test]
    fn a_split_repeats_the_cycle_only_as_often_as_needed() {
        let whole = Share::whole().split(4);
        assert_eq!(whole.len(), 4);
        for (t, s) in whole.iter().enumerate() {
            assert_eq!((s.cycle, s.slots.clone()), (4, vec![t as u64]));
        }
        // Six slots over three threads: two each, the cycle unchanged.
        let six = Share {
            cycle: 10,
            slots: vec![0, 2, 3, 5, 7, 9],
        };
        let parts = six.split(3);
        assert_eq!(parts[0].slots, vec![0, 5]);
        assert_eq!(parts[1].slots, vec![2, 7]);
        assert_eq!(parts[2].slots, vec![3, 9]);
        assert!(parts.iter().all(|p| p.cycle == 10));
        // Two slots over three threads: the cycle three times over.
        let two = Share {
            cycle: 5,
            slots: vec![1, 3],
        };
        let parts = two.split(3);
        assert_eq!(parts[0].slots, vec![1, 8]);
        assert_eq!(parts[1].slots, vec![3, 11]);
        assert_eq!(parts[2].slots, vec![6, 13]);
        assert!(parts.iter().all(|p| p.cycle == 15 && p.validate().is_ok()));
        assert_eq!(two.split(1), vec![two.clone()]);
        assert_eq!(two.split(0), vec![two]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Shares are proportional to weights and evenly spread: in every
        /// prefix of the sequence each worker is within 1 − 1/(2(n−1))
        /// requests (less than one) of its exact proportional count.
        #[test]
        fn shares_are_proportional_in_every_prefix(weights in prop::collection::vec(1u32..=20, 1..12)) {
            let p = Partition::new(&weights).unwrap();
            let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
            let shares = p.shares();
            let n = p.cycle() * 3;
            let mut counts = vec![0u64; weights.len()];
            let bound = if weights.len() > 1 {
                1.0 - 1.0 / (2.0 * (weights.len() - 1) as f64)
            } else {
                0.0
            };
            for k in 0..n {
                counts[p.owner(k)] += 1;
                for (i, &w) in weights.iter().enumerate() {
                    let ideal = (k + 1) as f64 * f64::from(w) / total as f64;
                    prop_assert!((counts[i] as f64 - ideal).abs() <= bound + 1e-9,
                        "worker {} after {} requests: {} vs ideal {}", i, k + 1, counts[i], ideal);
                }
            }
            for (i, s) in shares.iter().enumerate() {
                prop_assert_eq!(s.count_below(n), counts[i]);
            }
        }

        /// A worker's share split over its engine threads: every global
        /// request has exactly one (worker, thread), the worker that owns it
        /// whole, and each thread's requests are the worker's own taken
        /// round robin, so in every prefix a thread is within one request
        /// of its fair part of the worker's.
        #[test]
        fn threads_split_each_share_exactly_and_evenly(
            weights in prop::collection::vec(1u32..=12, 1..8),
            threads in prop::collection::vec(1usize..=9, 8),
        ) {
            let p = Partition::new(&weights).unwrap();
            let shares = p.shares();
            let parts: Vec<Vec<Share>> = shares
                .iter()
                .zip(&threads)
                .map(|(s, &n)| s.split(n))
                .collect();
            let n = p.cycle() * 2 * 9 + 7;
            let mut per_thread: Vec<Vec<u64>> = parts.iter().map(|p| vec![0; p.len()]).collect();
            let mut per_worker = vec![0u64; shares.len()];
            for k in 0..n {
                let owners: Vec<(usize, usize)> = parts
                    .iter()
                    .enumerate()
                    .flat_map(|(w, ps)| ps.iter().enumerate().filter(|(_, s)| s.owns(k)).map(move |(t, _)| (w, t)))
                    .collect();
                prop_assert_eq!(owners.len(), 1, "k={} owners {:?}", k, owners);
                let (w, t) = owners[0];
                prop_assert_eq!(w, p.owner(k));
                per_worker[w] += 1;
                per_thread[w][t] += 1;
                let m = parts[w].len() as f64;
                for (u, &c) in per_thread[w].iter().enumerate() {
                    let fair = per_worker[w] as f64 / m;
                    prop_assert!((c as f64 - fair).abs() < 1.0,
                        "worker {} thread {} has {} of {}", w, u, c, per_worker[w]);
                }
            }
            for (w, ps) in parts.iter().enumerate() {
                let total: u64 = ps.iter().map(|s| s.count_below(n)).sum();
                prop_assert_eq!(total, shares[w].count_below(n));
                for s in ps {
                    let whole: Vec<u64> = (0..s.count_below(n)).map(|m| s.nth(m)).collect();
                    prop_assert!(whole.windows(2).all(|x| x[0] < x[1]));
                    prop_assert!(whole.iter().all(|&k| shares[w].owns(k)));
                }
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
