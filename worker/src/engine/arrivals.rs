//! The engine's part of the schedule, handed to the pool as it falls due.
//!
//! Two things dispatch due arrivals, both on the engine's thread:
//! - the scheduler's own wake-ups (a timerfd, at most one per `MIN_GAP`, so
//!   a high rate is sent in batches rather than one wake-up each);
//! - the reply path: a connection that has just recorded a reply sends
//!   whatever has fallen due since (`Pool::complete`). It is awake anyway, so
//!   this costs one comparison per reply, and a system call only for a
//!   request that is due, which is sent either way.
//!
//! At high rates replies come far more often than the scheduler may wake,
//! so an arrival leaves within about one reply's gap of its due time rather
//! than up to `MIN_GAP` late; that lateness was the generator's, yet counted
//! in the target's latency (measured from the schedule). At low rates the
//! scheduler wakes at each due time and the reply path has nothing to add.
//!
//! Control messages (a reshare, the worker leaving) are applied before any
//! arrival is dispatched, wherever the dispatch comes from, so an arrival
//! past a reshare's start always goes by the new share.

use super::conn::{Job, Pool};
use super::recorder::Tag;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use volley_plan::{DropCause, RequestMix, ShareSchedule};

/// A change to the engine's part of the schedule while it runs.
#[derive(Debug)]
pub enum Control {
    /// A new share for requests due from this many seconds on.
    Reshare(f64, volley_plan::Share),
    /// Nothing is due from this many seconds on: the worker is leaving.
    EndAt(f64),
}

/// What decides each arrival's fate once it is due.
pub struct Limits {
    /// `load.max_in_flight`: past it an arrival is dropped.
    pub max_in_flight: u64,
    /// An arrival reached later than this is dropped as `behind_schedule`.
    pub behind_limit: Duration,
    /// Arrivals from this index on do not exist (a data set that stops
    /// after its last row).
    pub limit: u64,
}

/// This engine's arrivals: the schedule, where it stands, and how it may
/// change.
pub struct Arrivals {
    start: Instant,
    schedule: ShareSchedule,
    /// The next arrival (global index, seconds after t = 0), not yet sent.
    next: Option<(u64, f64)>,
    mix: RequestMix,
    limits: Limits,
    /// Arrivals due from here on are not this worker's: it is leaving.
    end_at: f64,
    /// When this engine's part of the run ends.
    end: Instant,
    /// Whether requests render `{{stage}}` (else the stage is not looked
    /// up).
    uses_stage: bool,
    controls: Receiver<Control>,
    stop: Arc<AtomicBool>,
}

impl Arrivals {
    /// `start` is t = 0 of `schedule`.
    pub fn new(
        start: Instant,
        schedule: ShareSchedule,
        mix: RequestMix,
        limits: Limits,
        uses_stage: bool,
        controls: Receiver<Control>,
        stop: Arc<AtomicBool>,
    ) -> Arrivals {
        let end = start + Duration::from_secs_f64(schedule.curve().end());
        let mut a = Arrivals {
            start,
            schedule,
            next: None,
            mix,
            limits,
            end_at: f64::INFINITY,
            end,
            uses_stage,
            controls,
            stop,
        };
        a.next = a.advance();
        a
    }

    /// The schedule's next arrival, if it is still this engine's.
    fn advance(&mut self) -> Option<(u64, f64)> {
        let next = self.schedule.next();
        self.within(next)
    }

    fn within(&self, next: Option<(u64, f64)>) -> Option<(u64, f64)> {
        next.filter(|&(k, t)| k < self.limits.limit && t < self.end_at)
    }

    /// When the next arrival is due; `None` when none is left (a reshare
    /// may still bring more until [`Arrivals::end`]).
    #[inline]
    pub fn next_due(&self) -> Option<Instant> {
        self.next
            .map(|(_, t)| self.start + Duration::from_secs_f64(t))
    }

    /// When this engine's part of the run ends.
    pub fn end(&self) -> Instant {
        self.end
    }

    /// Applies every waiting control message, then sends (or counts as
    /// dropped, with its cause) every arrival due at `now`. Sends nothing
    /// once the engine was asked to stop.
    pub fn dispatch(&mut self, pool: &Pool, now: Instant) {
        if self.stop.load(Ordering::Acquire) {
            return;
        }
        while let Ok(control) = self.controls.try_recv() {
            match control {
                Control::Reshare(from, share) => {
                    // Take back the arrival not yet sent: from `from` on it
                    // may be another worker's.
                    self.schedule.reshare(from, share);
                    self.next = self.advance();
                }
                Control::EndAt(at) => {
                    self.end_at = self.end_at.min(at.max(0.0));
                    self.end = self
                        .end
                        .min(self.start + Duration::from_secs_f64(self.end_at));
                    self.next = self.within(self.next);
                }
            }
        }
        while let Some((k, t)) = self.next {
            let due = self.start + Duration::from_secs_f64(t);
            if due > now {
                break;
            }
            let tag = Tag::new(t as u32, self.mix.pick(k) as u16);
            let mut rec = pool.rec.borrow_mut();
            rec.intended(tag);
            let at_cap = rec.totals.outstanding() > self.limits.max_in_flight;
            let late = now.saturating_duration_since(due);
            // The queue is looked at only when the cap is reached.
            let queued = at_cap && pool.waiting_for_connection();
            if let Some(cause) = DropCause::classify(late, self.limits.behind_limit, at_cap, queued)
            {
                rec.dropped(tag, cause);
            } else {
                drop(rec);
                let stage = if self.uses_stage {
                    self.schedule.curve().stage_at(t) as u16
                } else {
                    0
                };
                pool.submit(Job {
                    sched: due,
                    tag,
                    seq: k,
                    stage,
                });
            }
            self.next = self.advance();
        }
    }
}
