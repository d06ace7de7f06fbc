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
use crate::template::splitmix64;

/// Iterator over `(global index k, due time in seconds since t = 0)` of one
/// share, in time order. Allocation-free after construction.
///
/// A share can change mid-run ([`ShareSchedule::reshare`]): when a worker is
/// lost or joins, every worker switches to a new partition at the same
/// instant `from`, so requests due before it follow the old shares and those
/// due from it on follow the new ones; the union stays the single-generator
/// schedule.
#[derive(Debug, Clone)]
pub struct ShareSchedule {
    curve: RateCurve,
    share: Share,
    arrival: Arrival,
    seed: u64,
    hint: usize,
    cursor: Cursor,
    /// The cursor before the last item returned, so a reshare can take that
    /// item back when it falls in the new epoch.
    before_last: Cursor,
    /// Shares to switch to at a time (seconds), with Λ of that time, in time
    /// order.
    pending: std::collections::VecDeque<(f64, f64, Share)>,
    /// Set when the last `next` switched shares: the share it left and the
    /// switch it consumed, so a reshare can take the whole step back.
    undo: Vec<(Share, (f64, f64, Share))>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
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
            cursor: Cursor::default(),
            before_last: Cursor::default(),
            pending: std::collections::VecDeque::new(),
            undo: Vec::new(),
        }
    }

    /// A schedule that owns nothing before `from` seconds and `share` from
    /// then on; with `from` at or past the end, nothing at all until a
    /// [`reshare`](Self::reshare) (a worker joining a run under way).
    pub fn starting_at(
        curve: RateCurve,
        share: Share,
        arrival: Arrival,
        seed: u64,
        from: f64,
    ) -> ShareSchedule {
        let mut s = ShareSchedule::new(curve, share.clone(), arrival, seed);
        if from > 0.0 {
            s.share = Share {
                cycle: 1,
                slots: Vec::new(),
            };
            if from < s.curve.end() {
                let lambda = s.curve.count_at(from);
                s.pending.push_back((from, lambda, share));
            }
        }
        s
    }

    pub fn curve(&self) -> &RateCurve {
        &self.curve
    }

    /// Switches to `share` for every request due at or after `from` seconds.
    /// The item last returned by `next` is taken back (the caller must not
    /// send it and must call `next` again): it may belong to someone else in
    /// the new epoch. `from` must be later than every request already sent.
    pub fn reshare(&mut self, from: f64, share: Share) {
        self.cursor = self.before_last;
        while let Some((old, consumed)) = self.undo.pop() {
            self.share = old;
            self.pending.push_front(consumed);
        }
        // A later decision supersedes earlier ones dated at or after it.
        self.pending.retain(|(f, _, _)| *f < from);
        let lambda = self.curve.count_at(from);
        self.pending.push_back((from, lambda, share));
    }

    fn switch(&mut self, k: u64) {
        if let Some((from, lambda, share)) = self.pending.pop_front() {
            let old = std::mem::replace(&mut self.share, share.clone());
            self.undo.push((old, (from, lambda, share)));
            match self.arrival {
                Arrival::Uniform => {
                    let k_from = self.curve.uniform_due_before(from);
                    self.cursor.m = self.share.count_below(k_from);
                }
                Arrival::Poisson => {
                    self.cursor.pos = k % self.share.cycle;
                    let pos = self.cursor.pos;
                    self.cursor.slot = self.share.slots.partition_point(|&s| s < pos);
                }
            }
        }
    }

    fn next_uniform(&mut self) -> Option<(u64, f64)> {
        loop {
            let t = if self.share.slots.is_empty() {
                None
            } else {
                let k = self.share.nth(self.cursor.m);
                self.curve.time_of(k as f64, &mut self.hint).map(|t| (k, t))
            };
            match (t, self.pending.front()) {
                (Some((_, t)), Some((from, _, _))) if t >= *from => self.switch(0),
                (None, Some(_)) => self.switch(0),
                (Some((k, t)), _) => {
                    self.cursor.m += 1;
                    return Some((k, t));
                }
                (None, None) => return None,
            }
        }
    }

    fn next_poisson(&mut self) -> Option<(u64, f64)> {
        loop {
            let c = &mut self.cursor;
            let k = c.k;
            c.u += exp1(self.seed, k);
            if c.u >= self.curve.total() {
                return None;
            }
            while self
                .pending
                .front()
                .is_some_and(|(_, lambda, _)| self.cursor.u >= *lambda)
            {
                self.switch(k);
            }
            let c = &mut self.cursor;
            let owned = self.share.slots.get(c.slot) == Some(&c.pos);
            c.k += 1;
            if owned {
                c.slot += 1;
            }
            c.pos += 1;
            if c.pos == self.share.cycle {
                c.pos = 0;
                c.slot = 0;
            }
            if owned {
                let t = self.curve.time_of(c.u, &mut self.hint)?;
                return Some((k, t));
            }
        }
    }
}

impl Iterator for ShareSchedule {
    type Item = (u64, f64);

    #[inline]
    fn next(&mut self) -> Option<(u64, f64)> {
        self.before_last = self.cursor;
        self.undo.clear();
        match self.arrival {
            Arrival::Uniform => self.next_uniform(),
            Arrival::Poisson => self.next_poisson(),
        }
    }
}

/// When global arrival `k` is due (seconds since t = 0), as the single
/// generator would send it; `None` when the run ends first. Poisson walks
/// the k + 1 gaps before it (about 10 ns each).
pub fn due_time(curve: &RateCurve, arrival: Arrival, seed: u64, k: u64) -> Option<f64> {
    let x = match arrival {
        Arrival::Uniform => k as f64,
        Arrival::Poisson => {
            let mut u = 0.0;
            for i in 0..=k {
                u += exp1(seed, i);
                if u >= curve.total() {
                    return None;
                }
            }
            u
        }
    };
    curve.time_of(x, &mut 0)
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

    /// Workers of 1, 2 and 3 engine threads (`volley-worker --threads`),
    /// each thread with its part of its worker's share: the union is still
    /// the single generator's schedule, bit for bit, and every thread's
    /// part is in time order.
    #[test]
    fn threads_of_workers_union_to_the_single_generator() {
        let c = curve(&[(2.0, 300.0, 300.0), (1.0, 300.0, 1500.0), (1.0, 50.0, 50.0)]);
        for arrival in [Arrival::Uniform, Arrival::Poisson] {
            let single = merged(&c, &[1], arrival, 9);
            for (weights, threads) in [
                (vec![1], vec![2]),
                (vec![2, 1], vec![2, 1]),
                (vec![3, 3, 1], vec![3, 2, 1]),
                (vec![1, 1], vec![7, 16]),
            ] {
                let mut union: Vec<(u64, f64)> = Vec::new();
                let shares = Partition::new(&weights).unwrap().shares();
                for (share, n) in shares.into_iter().zip(threads) {
                    for part in share.split(n) {
                        let one: Vec<_> = ShareSchedule::new(c.clone(), part, arrival, 9).collect();
                        assert!(one.windows(2).all(|w| w[0].1 <= w[1].1));
                        union.extend(one);
                    }
                }
                union.sort_by_key(|&(k, _)| k);
                assert_eq!(union.len(), single.len(), "{arrival:?} {weights:?}");
                for (a, b) in union.iter().zip(&single) {
                    assert_eq!((a.0, a.1.to_bits()), (b.0, b.1.to_bits()));
                }
            }
        }
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

    /// Workers [0, 1, 2] run; worker 1 is lost and from t = 2 s the two
    /// survivors share everything. Requests before 2 s follow the old shares,
    /// from 2 s on the new ones, and survivors plus the lost worker's part
    /// before 2 s make up the single-generator schedule exactly.
    #[test]
    fn a_reshare_switches_every_worker_at_the_same_instant() {
        let c = curve(&[(5.0, 1000.0, 1000.0), (2.0, 300.0, 3000.0)]);
        for arrival in [Arrival::Uniform, Arrival::Poisson] {
            let single = merged(&c, &[1], arrival, 5);
            let old = Partition::new(&[1, 1, 1]).unwrap().shares();
            let new = Partition::new(&[1, 2]).unwrap().shares();
            let mut union: Vec<(u64, f64)> = Vec::new();
            // The lost worker: its requests before the switch only.
            union.extend(
                ShareSchedule::new(c.clone(), old[1].clone(), arrival, 5)
                    .take_while(|&(_, t)| t < 2.0),
            );
            for (survivor, share) in [(0, &new[0]), (2, &new[1])] {
                let mut s = ShareSchedule::new(c.clone(), old[survivor].clone(), arrival, 5);
                // Send until 1.3 s, then the reshare arrives.
                let mut next = s.next();
                while let Some((k, t)) = next {
                    if t >= 1.3 {
                        break;
                    }
                    union.push((k, t));
                    next = s.next();
                }
                s.reshare(2.0, share.clone());
                union.extend(s);
            }
            union.sort_by_key(|&(k, _)| k);
            assert_eq!(union.len(), single.len(), "{arrival:?}");
            for (a, b) in union.iter().zip(&single) {
                assert_eq!(a.0, b.0, "{arrival:?}");
                assert_eq!(a.1.to_bits(), b.1.to_bits());
            }
        }
    }

    /// Two decisions in quick succession (a loss, then a join) and a joiner
    /// that owns nothing until told: the union is still exactly the single
    /// generator's schedule.
    #[test]
    fn successive_reshares_and_an_idle_joiner_keep_the_union_exact() {
        let c = curve(&[(6.0, 600.0, 600.0)]);
        for arrival in [Arrival::Uniform, Arrival::Poisson] {
            let single = merged(&c, &[1], arrival, 9);
            let p3 = Partition::new(&[1, 1, 1]).unwrap().shares();
            let p2 = Partition::new(&[1, 1]).unwrap().shares();
            let p3b = Partition::new(&[1, 1, 2]).unwrap().shares();
            let mut union: Vec<(u64, f64)> = Vec::new();
            // Worker 1 is lost: owns p3[1] until 2 s.
            union.extend(
                ShareSchedule::new(c.clone(), p3[1].clone(), arrival, 9)
                    .take_while(|&(_, t)| t < 2.0),
            );
            // Survivors 0 and 2: p3 until 2 s, p2 from 2 s, p3b from 3 s (the
            // reshares arrive at 1.4 s and 1.5 s, before either applies).
            for (i, (a, b)) in [(0usize, (0usize, 0usize)), (2, (1, 1))] {
                let mut s = ShareSchedule::new(c.clone(), p3[i].clone(), arrival, 9);
                let mut next = s.next();
                while let Some((k, t)) = next {
                    if t >= 1.4 {
                        break;
                    }
                    union.push((k, t));
                    next = s.next();
                }
                s.reshare(2.0, p2[a].clone());
                let mut next = s.next();
                while let Some((k, t)) = next {
                    if t >= 1.5 {
                        break;
                    }
                    union.push((k, t));
                    next = s.next();
                }
                s.reshare(3.0, p3b[b].clone());
                union.extend(s);
            }
            // The joiner: idle until told at 1.5 s to take p3b[2] from 3 s.
            let mut j = ShareSchedule::starting_at(c.clone(), p3b[2].clone(), arrival, 9, c.end());
            assert_eq!(j.next(), None);
            j.reshare(3.0, p3b[2].clone());
            union.extend(j);
            union.sort_by_key(|&(k, _)| k);
            let ks: Vec<u64> = union.iter().map(|x| x.0).collect();
            let want: Vec<u64> = single.iter().map(|x| x.0).collect();
            assert_eq!(ks, want, "{arrival:?}");
        }
    }

    #[test]
    fn due_time_is_the_single_generators_time_of_arrival_k() {
        let c = curve(&[(2.0, 100.0, 300.0), (1.0, 50.0, 50.0)]);
        for arrival in [Arrival::Uniform, Arrival::Poisson] {
            let all = merged(&c, &[1], arrival, 5);
            assert!(all.len() > 300, "{arrival:?}: {}", all.len());
            for &(k, t) in all.iter().step_by(37).chain(all.last()) {
                let due = due_time(&c, arrival, 5, k).unwrap();
                assert_eq!(due.to_bits(), t.to_bits(), "{arrival:?} k {k}");
            }
            // The first arrival past the end of the run is never due.
            let past = all.last().unwrap().0 + 1;
            assert_eq!(due_time(&c, arrival, 5, past), None, "{arrival:?}");
        }
        // Uniform arrival 0 is due at t = 0; arrival 150 when Λ(t) = 100 t +
        // 50 t² reaches 150, at t = 1.
        assert_eq!(due_time(&c, Arrival::Uniform, 0, 0), Some(0.0));
        let t150 = due_time(&c, Arrival::Uniform, 0, 150).unwrap();
        assert!((t150 - 1.0).abs() < 1e-9, "{t150}");
    }

    #[test]
    fn the_poisson_gaps_of_a_seed_are_pinned() {
        // The same seed gives the same schedule in every run and in every
        // Volley version: a rerun compared with a saved baseline replays the
        // same arrivals. The first gaps of seed 7, bit for bit.
        let want: [f64; 6] = [
            0.326_411_562_502_662_6,
            1.430_102_171_850_891_5,
            1.287_418_062_655_901_5,
            0.866_144_532_924_710_3,
            0.586_430_277_100_959_3,
            0.627_041_681_785_722_4,
        ];
        for (i, w) in want.iter().enumerate() {
            let got = exp1(7, i as u64);
            assert_eq!(got.to_bits(), w.to_bits(), "gap {i}: {got} vs {w}");
        }
    }

    #[test]
    fn a_joiner_owns_nothing_before_its_start() {
        let c = curve(&[(4.0, 100.0, 100.0)]);
        for arrival in [Arrival::Uniform, Arrival::Poisson] {
            let shares = Partition::new(&[1, 1]).unwrap().shares();
            let joined: Vec<_> =
                ShareSchedule::starting_at(c.clone(), shares[1].clone(), arrival, 3, 2.5).collect();
            assert!(joined.iter().all(|&(_, t)| t >= 2.5));
            let whole: Vec<_> = ShareSchedule::new(c.clone(), shares[1].clone(), arrival, 3)
                .filter(|&(_, t)| t >= 2.5)
                .collect();
            assert_eq!(joined, whole, "{arrival:?}");
        }
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
