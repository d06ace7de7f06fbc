//! Who takes part in a run and which share each owns when.
//!
//! Pure bookkeeping (no tokio): the partition epochs of every member, so that
//! when a worker is lost its share can be re-split over the survivors, a
//! joiner can be given a share, and at the end the requests a lost worker
//! owned but never sent can be counted exactly instead of vanishing.

use crate::registry::WorkerEntry;
use volley_plan::{Arrival, Partition, PartitionError, RateCurve, Share};

/// A share owned from global request `from_k` on, until the next epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Epoch {
    pub from_s: f64,
    pub from_k: Option<u64>,
    pub share: Share,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub entry: WorkerEntry,
    pub offset_nanos: i64,
    pub best_rtt: u64,
    pub lost_at_s: Option<f64>,
    /// It shut down and left gracefully: its share ended at this second
    /// boundary and went to the others; it still reports until `Done`.
    pub left_at_s: Option<f64>,
    pub joined_at_s: Option<f64>,
    /// Reported `Done`: nothing more will come from it.
    pub done: bool,
    /// Started (a joiner is not until it confirmed its assignment).
    pub started: bool,
    pub epochs: Vec<Epoch>,
    /// Global index from which it owns nothing any more (its share went to
    /// others), when it was lost or left and the load was re-split.
    pub owned_until_k: Option<u64>,
}

impl Member {
    pub fn new(entry: WorkerEntry) -> Member {
        Member {
            entry,
            offset_nanos: 0,
            best_rtt: u64::MAX,
            lost_at_s: None,
            left_at_s: None,
            joined_at_s: None,
            done: false,
            started: false,
            epochs: Vec::new(),
            owned_until_k: None,
        }
    }

    /// Still sending its share: started, not lost, not leaving, not done.
    pub fn alive(&self) -> bool {
        self.started && self.lost_at_s.is_none() && self.left_at_s.is_none() && !self.done
    }

    /// The fraction of the schedule it owned in its first epoch.
    pub fn share_fraction(&self) -> f64 {
        self.epochs.first().map_or(0.0, |e| e.share.fraction())
    }

    /// How many global requests `< end_k` it owned over all its epochs
    /// (uniform arrivals, where an epoch's first index is known).
    pub fn owned_below(&self, end_k: u64) -> Option<u64> {
        let end_k = self.owned_until_k.map_or(end_k, |u| u.min(end_k));
        let mut total = 0;
        for (i, e) in self.epochs.iter().enumerate() {
            let lo = e.from_k?;
            let hi = match self.epochs.get(i + 1) {
                Some(next) => next.from_k?,
                None => end_k,
            }
            .min(end_k);
            if hi > lo {
                total += e.share.count_below(hi) - e.share.count_below(lo);
            }
        }
        Some(total)
    }
}

/// A new partition over `slots` (members' indices) with `weights`, applying
/// from `from_s`: records the epoch on each and returns the shares to send.
pub fn repartition(
    members: &mut [Member],
    slots: &[usize],
    curve: &RateCurve,
    arrival: Arrival,
    from_s: f64,
) -> Result<Vec<(usize, Share)>, PartitionError> {
    let weights: Vec<u32> = slots.iter().map(|&s| members[s].entry.weight).collect();
    let shares = Partition::new(&weights)?.shares();
    let from_k = (arrival == Arrival::Uniform).then(|| curve.uniform_due_before(from_s));
    let mut out = Vec::with_capacity(slots.len());
    for (&slot, share) in slots.iter().zip(shares) {
        members[slot].epochs.push(Epoch {
            from_s,
            from_k,
            share: share.clone(),
        });
        out.push((slot, share));
    }
    Ok(out)
}

/// The next whole second at least `lead_s` after `now_s`: the boundary from
/// which a re-split applies, so every worker hears of it in time.
pub fn next_boundary(now_s: f64, lead_s: f64) -> f64 {
    (now_s + lead_s).ceil().max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::WorkerEntry;
    use std::time::{Duration, Instant};
    use volley_plan::Stage;

    fn member(weight: u32) -> Member {
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let mut m = Member::new(WorkerEntry {
            id: uuid::Uuid::new_v4(),
            weight,
            threads: 1,
            hostname: String::new(),
            version: String::new(),
            conn: 0,
            tx,
            last_seen: Instant::now(),
            route: None,
            run_pace_since: None,
            clock: None,
        });
        m.started = true;
        m
    }

    fn curve() -> RateCurve {
        RateCurve::new(&[Stage {
            name: "s".into(),
            duration: Duration::from_secs(10),
            from_rps: 300.0,
            to_rps: 300.0,
            burst: false,
        }])
    }

    #[test]
    fn a_lost_workers_share_goes_to_the_survivors_and_nothing_is_unaccounted() {
        let c = curve();
        let mut ms = vec![member(1), member(1), member(1)];
        repartition(&mut ms, &[0, 1, 2], &c, Arrival::Uniform, 0.0).unwrap();
        // Worker 1 is lost at 3.2 s; its share moves from 5 s.
        ms[1].lost_at_s = Some(3.2);
        let from = next_boundary(3.2, 1.0);
        assert_eq!(from, 5.0);
        let k_from = c.uniform_due_before(from);
        ms[1].owned_until_k = Some(k_from);
        repartition(&mut ms, &[0, 2], &c, Arrival::Uniform, from).unwrap();
        let total = c.uniform_total();
        let owned: Vec<u64> = ms.iter().map(|m| m.owned_below(total).unwrap()).collect();
        assert_eq!(
            owned.iter().sum::<u64>(),
            total,
            "every request has exactly one owner"
        );
        assert_eq!(owned[1], 500, "a third of the first 5 s (1500 requests)");
        assert_eq!(owned[0] + owned[2], 3000 - 500);
        assert_eq!(owned[0], owned[2]);
    }

    #[test]
    fn a_joiner_owns_from_its_epoch_on() {
        let c = curve();
        let mut ms = vec![member(1), member(3)];
        repartition(&mut ms, &[0], &c, Arrival::Uniform, 0.0).unwrap();
        repartition(&mut ms, &[0, 1], &c, Arrival::Uniform, 4.0).unwrap();
        let total = c.uniform_total();
        assert_eq!(ms[0].owned_below(total), Some(1200 + 450));
        assert_eq!(ms[1].owned_below(total), Some(1350));
    }

    #[test]
    fn poisson_epochs_have_no_index_to_count_from() {
        let mut ms = vec![member(1)];
        repartition(&mut ms, &[0], &curve(), Arrival::Poisson, 0.0).unwrap();
        assert_eq!(ms[0].owned_below(100), None);
    }
}
