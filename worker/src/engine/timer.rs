//! A precise wake-up for the scheduler.
//!
//! tokio's timer has millisecond granularity and rounds deadlines up, so a
//! scheduler sleeping on it sends each request 0–2 ms after its scheduled
//! time: that lateness is real (latency is measured from the schedule) but
//! it is the generator's, and it showed as a ~0.9 ms floor under every
//! percentile. On Linux a timerfd registered with the runtime's reactor
//! wakes with sub-millisecond resolution for one syscall per sleep;
//! elsewhere the tokio timer is the fallback. How close each timer wakes
//! is measured, not asserted: `cargo bench -p volley-worker --bench wake`
//! prints both timers' lateness.

use std::time::Duration;
use tokio::time::Instant;

pub struct Wake {
    #[cfg(target_os = "linux")]
    fd: Option<tokio::io::unix::AsyncFd<timerfd::TimerFd>>,
}

impl Wake {
    /// Must be called inside a runtime with I/O enabled.
    pub fn new() -> Wake {
        #[cfg(target_os = "linux")]
        {
            // `AsyncFd::new` is deprecated because it cannot check that the
            // fd stays the same for the AsyncFd's life; a `TimerFd` owns its
            // `OwnedFd` and always returns it, which is exactly the
            // condition (and `register`, its replacement, needs `unsafe`,
            // which this workspace forbids).
            #[allow(deprecated)]
            let fd = timerfd::TimerFd::new_custom(timerfd::ClockId::Monotonic, true, true)
                .and_then(tokio::io::unix::AsyncFd::new)
                .ok();
            Wake { fd }
        }
        #[cfg(not(target_os = "linux"))]
        Wake {}
    }

    /// Sleeps until `deadline` (returns at once if it has passed).
    pub async fn until(&mut self, deadline: Instant) {
        let now = Instant::now();
        if deadline <= now {
            return;
        }
        #[cfg(target_os = "linux")]
        if let Some(fd) = self.fd.as_mut() {
            // A zero duration would disarm the timer: at least 1 µs.
            let d = (deadline - now).max(Duration::from_micros(1));
            fd.get_mut().set_state(
                timerfd::TimerState::Oneshot(d),
                timerfd::SetTimeFlags::Default,
            );
            loop {
                let Ok(mut guard) = fd.readable().await else {
                    break;
                };
                let fired = guard.get_inner().read() > 0;
                guard.clear_ready();
                if fired {
                    return;
                }
            }
        }
        tokio::time::sleep_until(deadline).await;
    }
}

impl Default for Wake {
    fn default() -> Self {
        Wake::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How close to the deadline it wakes is a speed claim, printed by
    /// `cargo bench -p volley-worker --bench wake`; here only that it never
    /// wakes before its deadline, and that a past deadline returns at once.
    #[tokio::test]
    async fn never_wakes_before_the_deadline() {
        let mut w = Wake::new();
        for micros in [1, 50, 700, 3_000] {
            let deadline = Instant::now() + Duration::from_micros(micros);
            w.until(deadline).await;
            let now = Instant::now();
            assert!(now >= deadline, "woke {:?} early", deadline - now);
        }
        let past = Instant::now() - Duration::from_millis(1);
        let before = Instant::now();
        w.until(past).await;
        assert!(
            Instant::now() - before < Duration::from_secs(1),
            "a past deadline returns without arming a timer"
        );
    }
}
