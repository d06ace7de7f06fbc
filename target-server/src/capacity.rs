//! The capacity model: a single FIFO server with a fixed service time.
//!
//! Burst and overload scenarios need a target whose latency is predictable:
//! with capacity `c` requests/s, a request arriving at `now` departs at
//! `max(now, next_free) + 1/c`, and that becomes the new `next_free`. Under
//! overload latency grows linearly and a backlog drains at `c − arrival rate`,
//! which the recovery tests compute exactly.
//!
//! Adding `1/c` over and over would accumulate rounding error (1/3 s is not a
//! whole number of nanoseconds), so the state is a *busy period*: its start
//! and the number of requests served in it. The k-th departure of the period
//! is `start + round(k / c)`, rounded once, never accumulated.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The shared queue of one target server.
#[derive(Debug)]
pub(crate) struct Fifo {
    /// Times are nanoseconds since this instant, so the state is integers.
    epoch: Instant,
    /// Service time of one request in nanoseconds (not rounded: rounding
    /// happens once per departure in [`Busy::depart`]).
    interval_ns: f64,
    /// A plain mutex: the critical section is a few arithmetic operations
    /// and never awaits.
    busy: Mutex<Busy>,
}

impl Fifo {
    /// Returns `None` when `capacity` is not a positive number, or is
    /// infinite: both mean "unlimited".
    pub(crate) fn new(capacity: f64, epoch: Instant) -> Option<Self> {
        if !(capacity.is_finite() && capacity > 0.0) {
            return None;
        }
        Some(Self {
            epoch,
            interval_ns: 1e9 / capacity,
            busy: Mutex::new(Busy::default()),
        })
    }

    /// Enqueues a request that arrived at `arrival` and returns when it
    /// leaves the server.
    pub(crate) fn depart(&self, arrival: Instant) -> Instant {
        let now_ns = saturating_nanos(arrival.saturating_duration_since(self.epoch));
        let departure_ns = self
            .busy
            .lock()
            // Nothing in the critical section panics, and the state is valid
            // after every statement anyway.
            .unwrap_or_else(PoisonError::into_inner)
            .depart(now_ns, self.interval_ns);
        add_or_far(self.epoch, Duration::from_nanos(departure_ns))
    }
}

/// The current busy period of the server.
#[derive(Debug, Default)]
struct Busy {
    /// When the period began, in nanoseconds since the epoch.
    start_ns: u64,
    /// Requests admitted in this period; 0 before the first request.
    served: u64,
}

impl Busy {
    /// `departure = max(now, next_free) + interval`, where `next_free` is the
    /// departure of the last request admitted.
    fn depart(&mut self, now_ns: u64, interval_ns: f64) -> u64 {
        if self.served == 0 || now_ns >= self.departure(self.served, interval_ns) {
            // The server is idle: a new busy period starts now.
            self.start_ns = now_ns;
            self.served = 0;
        }
        self.served += 1;
        self.departure(self.served, interval_ns)
    }

    /// Departure of the k-th request of the period.
    fn departure(&self, k: u64, interval_ns: f64) -> u64 {
        // `as` saturates; only an absurdly small capacity gets near it.
        let offset = (k as f64 * interval_ns).round() as u64;
        self.start_ns.saturating_add(offset)
    }
}

fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `instant + d`, or about 30 years later when that overflows (a delay or
/// service time that large means "never" for a load test).
pub(crate) fn add_or_far(instant: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
    instant
        .checked_add(d)
        .or_else(|| instant.checked_add(FAR))
        .unwrap_or(instant)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn burst_departs_one_interval_apart() {
        let mut busy = Busy::default();
        let departures: Vec<u64> = (0..20).map(|_| busy.depart(0, 10.0 * MS as f64)).collect();
        let expected: Vec<u64> = (1..=20).map(|k| k * 10 * MS).collect();
        assert_eq!(departures, expected);
    }

    #[test]
    fn idle_server_starts_a_new_period() {
        let mut busy = Busy::default();
        assert_eq!(busy.depart(5 * MS, 10.0 * MS as f64), 15 * MS);
        // Arrives exactly when the server frees up: no queueing.
        assert_eq!(busy.depart(15 * MS, 10.0 * MS as f64), 25 * MS);
        // Arrives while busy: waits for the previous departure.
        assert_eq!(busy.depart(20 * MS, 10.0 * MS as f64), 35 * MS);
        // Long after: starts afresh.
        assert_eq!(busy.depart(1000 * MS, 10.0 * MS as f64), 1010 * MS);
    }

    #[test]
    fn no_accumulated_rounding() {
        // 3 requests/s: 333_333_333.3 ns each. Adding a rounded interval
        // 3 million times would drift by 1 ms; the period formula does not.
        let mut busy = Busy::default();
        let interval = 1e9 / 3.0;
        let mut last = 0;
        for _ in 0..3_000_000 {
            last = busy.depart(0, interval);
        }
        assert_eq!(last, 1_000_000 * 1_000_000_000);
    }

    #[test]
    fn backlog_drains_at_capacity_minus_arrival_rate() {
        // Capacity 100/s. A burst of 200 at t=0, then a steady 50/s: the
        // backlog shrinks by 50/s, so the queue empties after about
        // 200/50 = 4 s (exactly: when arrival i·20 ms meets departure
        // 2000 + (i−1)·10 ms, i = 199).
        let interval = 10.0 * MS as f64;
        let mut busy = Busy::default();
        for _ in 0..200 {
            busy.depart(0, interval);
        }
        let mut waits = Vec::new();
        for i in 1..=400u64 {
            let arrival = i * 20 * MS;
            waits.push((arrival, busy.depart(arrival, interval) - arrival));
        }
        // The queueing delay falls by 10 ms per 20 ms of arrivals...
        assert_eq!(waits[0], (20 * MS, 2000 * MS - 20 * MS + 10 * MS));
        // ...so it is back to the bare service time from t = 3.98 s on.
        let recovered = waits.iter().find(|&&(_, wait)| wait == 10 * MS).unwrap();
        assert_eq!(recovered.0, 3980 * MS);
        assert!(waits
            .iter()
            .filter(|w| w.0 >= 3980 * MS)
            .all(|w| w.1 == 10 * MS));
    }

    #[test]
    fn nonsense_capacity_is_unlimited() {
        let epoch = Instant::now();
        assert!(Fifo::new(0.0, epoch).is_none());
        assert!(Fifo::new(-5.0, epoch).is_none());
        assert!(Fifo::new(f64::NAN, epoch).is_none());
        assert!(Fifo::new(f64::INFINITY, epoch).is_none());
    }

    #[test]
    fn tiny_capacity_does_not_overflow() {
        let epoch = Instant::now();
        let fifo = Fifo::new(1e-300, epoch).unwrap();
        assert!(fifo.depart(epoch) > epoch);
        assert!(fifo.depart(epoch) > epoch);
    }
}
