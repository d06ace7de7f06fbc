//! When the scheduler wakes: the trade between sending on time and the
//! CPU a wake-up costs (`load.wake_gap`). Pure: no clock, no runtime.
//!
//! A request sent late is measured late (latency counts from the schedule),
//! so every microsecond the scheduler adds is reported as the target's. A
//! wake-up is what costs CPU (a context switch, on a VM an exit, and on
//! loopback the target's own wake-up, which the sender's system call pays
//! for). So a worker lets a request leave a little late when that lets it
//! share a wake-up with others, by at most its *lag budget*:
//!
//! - `wake_gap = "auto"` (the default): a tenth of the target's median
//!   service time in the last second, at most 1 ms. A reply landing after
//!   the next request's due time plus the budget sends it at once (on a
//!   wake-up already paid for); the timer is the fallback, at most once per
//!   four median service times (at most 1 ms) while requests are in flight
//!   (a reply is coming), and set for the due time plus the budget when
//!   none is.
//! - `wake_gap = D`: the budget is `D`, and the timer wakes at most once per
//!   `D` whatever is in flight: requests leave in batches, each up to `D`
//!   late, for fewer wake-ups.

use std::ops::Add;
use std::time::Duration;

/// The automatic budget is the service time's median over this.
const SERVICE_FRACTION: u32 = 10;
/// Under "auto", while requests are in flight, the timer's fallback comes
/// this many median service times after the last wake-up (at most the
/// longest gap): a reply is likely by then, and if none came the request
/// is sent anyway.
const FALLBACK_MEDIANS: u32 = 4;

/// How the scheduler paces its wake-ups; see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// `Some`: an explicit `load.wake_gap`; `None`: "auto".
    gap: Option<Duration>,
    /// The automatic budget, from the last second's service times.
    auto: Duration,
    /// The timer's gap while requests are in flight, under "auto".
    fallback: Duration,
    /// Longest automatic budget, and the timer's gap while requests are in
    /// flight in "auto".
    max: Duration,
}

impl Pace {
    /// `gap`: the plan's `load.wake_gap` (`None`: "auto"); `max`: the
    /// timer's gap under "auto" and the most the budget grows to.
    pub fn new(gap: Option<Duration>, max: Duration) -> Pace {
        Pace {
            gap,
            auto: Duration::ZERO,
            fallback: max,
            max,
        }
    }

    /// The median service time of the second just closed (none before the
    /// first second with a reply: the budget starts at zero, precise).
    pub fn service_median(&mut self, median: Duration) {
        self.auto = (median / SERVICE_FRACTION).min(self.max);
        self.fallback = (median * FALLBACK_MEDIANS).clamp(self.auto, self.max);
    }

    /// "auto": the last reply out kicks the scheduler, so that it sets its
    /// timer for the next request's due time (an explicit gap batches
    /// instead).
    pub fn is_auto(&self) -> bool {
        self.gap.is_none()
    }

    /// How late a request may leave to share a wake-up.
    pub fn budget(&self) -> Duration {
        self.gap.unwrap_or(self.auto)
    }

    /// When the timer must wake the scheduler for a request due at `due`,
    /// the last timer wake-up having been planned for `last`, with
    /// `in_flight` requests that will land (and can send it sooner).
    pub fn timer<T>(&self, due: T, last: T, in_flight: bool) -> T
    where
        T: Copy + Ord + Add<Duration, Output = T>,
    {
        match self.gap {
            // Counted from the last planned wake-up (not from now) so that
            // a rate of one request per gap is still precise.
            Some(gap) => due.max(last + gap),
            None if in_flight => (due + self.auto).max(last + self.fallback),
            None => due + self.auto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn auto_budget_is_a_tenth_of_the_median_service_time_at_most_the_max() {
        let mut p = Pace::new(None, MS);
        assert_eq!(p.budget(), Duration::ZERO, "precise until a reply is seen");
        p.service_median(us(150));
        assert_eq!(p.budget(), us(15));
        p.service_median(us(3_000));
        assert_eq!(p.budget(), us(300));
        p.service_median(Duration::from_secs(2));
        assert_eq!(p.budget(), MS, "capped");
        p.service_median(us(5));
        assert_eq!(p.budget(), Duration::from_nanos(500));
    }

    #[test]
    fn an_explicit_gap_is_the_budget_whatever_the_service_time() {
        let mut p = Pace::new(Some(us(200)), MS);
        p.service_median(us(50));
        assert_eq!(p.budget(), us(200));
        p.service_median(Duration::from_secs(1));
        assert_eq!(p.budget(), us(200));
    }

    #[test]
    fn an_explicit_gap_wakes_at_most_once_per_gap_in_flight_or_not() {
        let p = Pace::new(Some(us(200)), MS);
        let last = us(1_000);
        for in_flight in [false, true] {
            // Due before the gap is over: at the gap.
            assert_eq!(p.timer(us(1_050), last, in_flight), us(1_200));
            // Due after: on time.
            assert_eq!(p.timer(us(1_500), last, in_flight), us(1_500));
        }
    }

    #[test]
    fn auto_waits_for_a_reply_while_one_is_coming_and_not_otherwise() {
        let mut p = Pace::new(None, MS);
        p.service_median(us(150));
        let last = us(10_000);
        // Nothing in flight: no reply will send it, the timer does, within
        // the budget, however recent the last wake-up.
        assert_eq!(p.timer(us(10_050), last, false), us(10_065));
        // In flight: the timer is only the fallback, four medians after the
        // last wake-up.
        assert_eq!(p.timer(us(10_050), last, true), us(10_600));
        // Due past the fallback: due plus the budget.
        assert_eq!(p.timer(us(12_000), last, true), us(12_015));
        // A slow target: the fallback is at most the longest gap.
        p.service_median(us(3_000));
        assert_eq!(p.timer(us(10_050), last, true), us(11_000));
    }
}
