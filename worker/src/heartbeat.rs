//! How often the worker tells the coordinator it is alive.
//!
//! Two paces, both from the coordinator's `Welcome`: the run's (a third of
//! its `--heartbeat-timeout`, 1 s by default) from an assignment until the
//! run's `Done` is sent, and the idle one (a third of its
//! `--idle-heartbeat-timeout`, 5 s by default) otherwise. Thousands of idle
//! workers then cost the coordinator a fifth of what they would at the
//! run's pace, while a worker in a run is still missed within seconds. Any
//! message counts as a heartbeat: a report resets the pace (see
//! [`Heartbeat::reset`]), so a worker in a run sends none at all. A run
//! whose reports go several seconds at a time (`Assignment.report_every_s`)
//! beats that many run paces apart (see [`Heartbeat::batch`]).

use std::time::Duration;
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};
use volley_proto::pb;

/// The pace before the coordinator's `Welcome` says otherwise.
const BEFORE_WELCOME: Duration = Duration::from_secs(1);

/// The run's and the idle pace a `Welcome` asks for, bounded to 0.1–10 s and
/// 0.1–60 s; an older coordinator (no idle pace) gets the run's for both.
pub fn paces(w: &pb::Welcome) -> (Duration, Duration) {
    let ms = |v: u32, max: u64| Duration::from_millis(u64::from(v).clamp(100, max));
    let run = ms(w.heartbeat_interval_ms, 10_000);
    let idle = match w.idle_heartbeat_interval_ms {
        0 => run,
        v => ms(v, 60_000).max(run),
    };
    (run, idle)
}

/// The heartbeat timer of one session.
pub struct Heartbeat {
    run: Duration,
    idle: Duration,
    in_run: bool,
    /// The run's reports go this many seconds at a time: its pace is this
    /// many run paces (the coordinator's timeout allows for it).
    batch: u32,
    tick: Interval,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat::new(BEFORE_WELCOME, BEFORE_WELCOME)
    }
}

impl Heartbeat {
    fn new(run: Duration, idle: Duration) -> Self {
        Heartbeat {
            run,
            idle,
            in_run: false,
            batch: 1,
            tick: timer(idle),
        }
    }

    /// Takes the paces of the coordinator's `Welcome`.
    pub fn welcome(&mut self, w: &pb::Welcome) {
        (self.run, self.idle) = paces(w);
        self.tick = timer(self.pace());
    }

    /// Whether the worker takes part in a run now; a change of pace starts
    /// the new one from now.
    pub fn in_run(&mut self, in_run: bool) {
        if in_run != self.in_run {
            self.in_run = in_run;
            self.tick = timer(self.pace());
        }
    }

    /// The run's reports go `every` seconds at a time
    /// (`Assignment.report_every_s`, 0 or 1: each second): the run's pace
    /// is that many times slower, or a heartbeat would go between every two
    /// batches and undo them.
    pub fn batch(&mut self, every: u32) {
        let every = every.max(1);
        if every != self.batch {
            self.batch = every;
            if self.in_run {
                self.tick = timer(self.pace());
            }
        }
    }

    /// The pace now.
    pub fn pace(&self) -> Duration {
        if self.in_run {
            self.run * self.batch
        } else {
            self.idle
        }
    }

    /// Another message just went out: the next heartbeat is due a pace
    /// from now.
    pub fn reset(&mut self) {
        self.tick.reset();
    }

    /// Completes when a heartbeat is due.
    pub async fn due(&mut self) {
        self.tick.tick().await;
    }
}

/// Ticks every `every`, the first a whole `every` from now.
fn timer(every: Duration) -> Interval {
    let mut t = interval_at(Instant::now() + every, every);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn welcome(run_ms: u32, idle_ms: u32) -> pb::Welcome {
        pb::Welcome {
            heartbeat_interval_ms: run_ms,
            coordinator_version: "x".into(),
            idle_heartbeat_interval_ms: idle_ms,
        }
    }

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn paces_come_from_the_welcome() {
        assert_eq!(paces(&welcome(1_000, 4_000)), (secs(1), secs(4)));
    }

    #[test]
    fn an_older_coordinator_gets_the_run_pace_when_idle_too() {
        assert_eq!(paces(&welcome(1_000, 0)), (secs(1), secs(1)));
    }

    #[test]
    fn paces_are_bounded() {
        assert_eq!(
            paces(&welcome(0, 10)),
            (Duration::from_millis(100), Duration::from_millis(100))
        );
        assert_eq!(paces(&welcome(60_000, 600_000)), (secs(10), secs(60)));
        // Never slower in a run than idle.
        assert_eq!(paces(&welcome(5_000, 2_000)), (secs(5), secs(5)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_pace_follows_the_run() {
        let mut h = Heartbeat::default();
        h.welcome(&welcome(1_000, 4_000));
        assert_eq!(h.pace(), secs(4));
        h.in_run(true);
        assert_eq!(h.pace(), secs(1));
        h.in_run(false);
        assert_eq!(h.pace(), secs(4));
        // A Welcome after a reconnect keeps the mode.
        h.in_run(true);
        h.welcome(&welcome(2_000, 8_000));
        assert_eq!(h.pace(), secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_that_batches_its_reports_beats_as_many_paces_apart() {
        let t0 = Instant::now();
        let mut h = Heartbeat::default();
        h.welcome(&welcome(1_000, 4_000));
        h.batch(3);
        assert_eq!(h.pace(), secs(4), "idle: unchanged");
        h.in_run(true);
        assert_eq!(h.pace(), secs(3));
        h.due().await;
        assert_eq!(t0.elapsed(), secs(3));
        // The run over: a report each second again, for the next one.
        h.batch(0);
        assert_eq!(h.pace(), secs(1));
        h.due().await;
        assert_eq!(t0.elapsed(), secs(4));
    }

    /// When heartbeats are due, in paused tokio time: a whole pace after
    /// each change, never at once.
    #[tokio::test(start_paused = true)]
    async fn heartbeats_are_due_a_pace_after_each_change() {
        let t0 = Instant::now();
        let mut h = Heartbeat::default();
        h.welcome(&welcome(1_000, 4_000));
        h.due().await;
        assert_eq!(t0.elapsed(), secs(4));
        h.due().await;
        assert_eq!(t0.elapsed(), secs(8));
        h.in_run(true);
        h.due().await;
        assert_eq!(t0.elapsed(), secs(9));
        h.due().await;
        assert_eq!(t0.elapsed(), secs(10));
        tokio::time::sleep(Duration::from_millis(500)).await;
        h.reset();
        h.due().await;
        assert_eq!(t0.elapsed(), Duration::from_millis(11_500));
        h.in_run(false);
        h.due().await;
        assert_eq!(t0.elapsed(), Duration::from_millis(15_500));
    }
}
