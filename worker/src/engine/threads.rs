//! One worker, several engine threads (`volley-worker --threads N`).
//!
//! Each thread is a whole engine (its scheduler, connection pool and
//! recorder) with its part of the worker's share ([`Share::split`]: the
//! worker's requests round robin), its part of the worker's connections and
//! of its `max_in_flight`. The coordinator still sees one worker: [`Merge`]
//! adds the threads' seconds into one report per second, exactly (counts
//! summed, histograms merged bucket by bucket), and one `Finished` with the
//! summed totals once every thread has finished.
//!
//! Pure bookkeeping: the threads and channels are in [`super::start`].

use super::recorder::{IntervalData, Totals};
use super::{EngineEvent, EngineSetup};
use std::collections::BTreeMap;

/// How many engines a worker of `threads` threads runs for `setup`: never
/// more than its connections or its `max_in_flight`, which are split over
/// them (each engine needs at least one of each), and at least one.
pub fn engines_for(setup: &EngineSetup, threads: usize) -> usize {
    let load = &setup.plan.load;
    threads
        .min(load.connections as usize)
        .min(load.max_in_flight as usize)
        .max(1)
}

/// Part `t` of `total` split `n` ways as evenly as integers allow (the
/// parts add up to `total`).
pub fn part(total: u32, n: usize, t: usize) -> u32 {
    let n = n as u32;
    let t = t as u32;
    total / n + u32::from(t < total % n)
}

/// The setups of `n` engines: thread `t` gets part `t` of the share, of the
/// connections and of `max_in_flight`.
pub fn split(setup: &EngineSetup, n: usize) -> Vec<EngineSetup> {
    setup
        .share
        .split(n)
        .into_iter()
        .enumerate()
        .map(|(t, share)| {
            let mut s = setup.clone();
            s.share = share;
            s.plan.load.connections = part(setup.plan.load.connections, n, t);
            s.plan.load.max_in_flight = part(setup.plan.load.max_in_flight, n, t);
            s
        })
        .collect()
}

/// Adds the seconds of `n` engines into one series. Each engine reports its
/// seconds in order; second `i` is complete once every engine has reported
/// it or finished.
#[derive(Debug)]
pub struct Merge {
    /// The next second each engine has not reported yet.
    next: Vec<u32>,
    finished: Vec<bool>,
    pending: BTreeMap<u32, IntervalData>,
    totals: Totals,
}

impl Merge {
    pub fn new(n: usize) -> Merge {
        Merge {
            next: vec![0; n],
            finished: vec![false; n],
            pending: BTreeMap::new(),
            totals: Totals::default(),
        }
    }

    /// Takes engine `t`'s event; returns what the worker reports now, in
    /// order: complete seconds, then `Finished` once all engines are.
    pub fn take(&mut self, t: usize, ev: EngineEvent) -> Vec<EngineEvent> {
        match ev {
            EngineEvent::Interval(d) => {
                self.next[t] = self.next[t].max(d.index + 1);
                match self.pending.get_mut(&d.index) {
                    Some(into) => {
                        if let Err(e) = into.absorb(&d) {
                            // Histograms of one configuration always merge;
                            // the counts are added regardless.
                            tracing::error!(error = %e, second = d.index, "merging a thread's histograms");
                        }
                    }
                    None => {
                        self.pending.insert(d.index, *d);
                    }
                }
            }
            EngineEvent::Finished(totals) => {
                // Each thread's part, for the log: the report has the sum.
                tracing::info!(
                    thread = t,
                    intended = totals.intended,
                    sent = totals.sent,
                    ok = totals.ok,
                    errors = totals.errors,
                    dropped = totals.dropped,
                    "engine thread finished"
                );
                self.finished[t] = true;
                self.totals.add(&totals);
            }
        }
        self.ready()
    }

    /// Every engine has finished (or its channel closed): what is left.
    pub fn all_finished(&self) -> bool {
        self.finished.iter().all(|&f| f)
    }

    /// An engine that ended without `Finished` (its thread died): its
    /// seconds are no longer waited for.
    pub fn lost(&mut self, t: usize) -> Vec<EngineEvent> {
        self.finished[t] = true;
        self.ready()
    }

    fn ready(&mut self) -> Vec<EngineEvent> {
        let mut out = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            let i = *entry.key();
            let complete = self
                .next
                .iter()
                .zip(&self.finished)
                .all(|(&next, &done)| done || next > i);
            if !complete {
                break;
            }
            out.push(EngineEvent::Interval(Box::new(entry.remove())));
        }
        if self.all_finished() && self.pending.is_empty() {
            out.push(EngineEvent::Finished(std::mem::take(&mut self.totals)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::outcome::ErrorKind;
    use std::time::Duration;
    use volley_proto::histogram;

    fn second(i: u32, ok: u64, ms: u64, status: Option<(u32, u64)>) -> EngineEvent {
        let mut d = IntervalData::new(i);
        d.intended = ok + status.map_or(0, |s| s.1);
        d.sent = d.intended;
        d.ok = ok;
        for _ in 0..ok {
            histogram::record(&mut d.latency, Duration::from_millis(ms));
            histogram::record(&mut d.service, Duration::from_millis(ms));
        }
        if let Some((code, n)) = status {
            d.errors[ErrorKind::Status.index()] += n;
            d.status_codes.push((code, n));
        }
        EngineEvent::Interval(Box::new(d))
    }

    fn intervals(evs: &[EngineEvent]) -> Vec<(u32, u64, u64)> {
        evs.iter()
            .filter_map(|e| match e {
                EngineEvent::Interval(d) => Some((d.index, d.ok, d.latency.len())),
                EngineEvent::Finished(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_second_is_reported_once_every_thread_has_it_summed_exactly() {
        let mut m = Merge::new(2);
        assert!(m.take(0, second(0, 3, 1, None)).is_empty());
        assert!(m.take(0, second(1, 2, 1, Some((503, 1)))).is_empty());
        let out = m.take(1, second(0, 4, 9, Some((503, 2))));
        assert_eq!(intervals(&out), vec![(0, 7, 7)]);
        let EngineEvent::Interval(d) = &out[0] else {
            panic!()
        };
        assert_eq!(d.status_codes, vec![(503, 2)]);
        assert_eq!(d.latency.value_at_quantile(1.0) / 1000, 9);
        assert_eq!(d.intended, 9);
        let out = m.take(1, second(1, 5, 2, Some((503, 4))));
        assert_eq!(intervals(&out), vec![(1, 7, 7)]);
        let EngineEvent::Interval(d) = &out[0] else {
            panic!()
        };
        assert_eq!(d.status_codes, vec![(503, 5)]);
        assert_eq!(d.errors[ErrorKind::Status.index()], 5);
    }

    #[test]
    fn finished_comes_last_with_the_summed_totals_after_every_second() {
        let mut m = Merge::new(3);
        let t = |intended, ok| Totals {
            intended,
            sent: intended,
            ok,
            errors: intended - ok,
            dropped: 0,
        };
        m.take(0, second(0, 1, 1, None));
        m.take(1, second(0, 1, 1, None));
        // Thread 1 reports a second the others never reach.
        m.take(1, second(1, 1, 1, None));
        assert!(m.take(0, EngineEvent::Finished(t(1, 1))).is_empty());
        assert!(m.take(1, EngineEvent::Finished(t(2, 2))).is_empty());
        // Second 0 waits for thread 2; then it, second 1 and Finished go.
        let out = m.take(2, EngineEvent::Finished(t(4, 3)));
        assert_eq!(intervals(&out), vec![(0, 2, 2), (1, 1, 1)]);
        match out.last() {
            Some(EngineEvent::Finished(total)) => assert_eq!(*total, t(7, 6)),
            other => panic!("{other:?}"),
        }
        assert!(m.all_finished());
    }

    #[test]
    fn a_lost_thread_is_not_waited_for() {
        let mut m = Merge::new(2);
        assert!(m.take(0, second(0, 1, 1, None)).is_empty());
        assert_eq!(intervals(&m.lost(1)), vec![(0, 1, 1)]);
    }

    #[test]
    fn connections_and_in_flight_split_into_parts_that_add_up() {
        for (total, n) in [(256, 2), (10, 3), (7, 7), (10_000, 16), (5, 1)] {
            let parts: Vec<u32> = (0..n).map(|t| part(total, n, t)).collect();
            assert_eq!(parts.iter().sum::<u32>(), total);
            assert!(parts.iter().max().unwrap() - parts.iter().min().unwrap() <= 1);
            assert!(parts.iter().all(|&p| p >= 1));
        }
    }
}
