//! A precise wake-up for the scheduler, and the reply path's kick.
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
//!
//! A timer wake-up is the expensive part of sending at high rates (a
//! context switch, and on a VM an exit), so the scheduler takes at most one
//! per `load.wake_gap` and sends what fell due in between as a batch. But
//! while traffic flows the engine's thread is woken anyway, by replies: a
//! [`Kick`] lets a reply (or a failure) that lands after the next arrival's
//! due time run the scheduler at once, on a wake-up already paid for. The
//! timer is then only the fallback for when no reply comes, and it stays
//! armed: a kick never re-arms it (a syscall per reply), and a timer that
//! fires with nothing due costs at most one wake-up per gap.

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::Instant;

pub struct Wake {
    #[cfg(target_os = "linux")]
    fd: Option<tokio::io::unix::AsyncFd<timerfd::TimerFd>>,
    /// The tokio timer: the fallback where there is no timerfd.
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// When the armed timer fires; `None` once it has.
    armed: Option<Instant>,
}

/// Why [`Wake::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// The timer armed for this instant fired.
    Timer(Instant),
    /// A reply landed after the next arrival's due time ([`Kick`]).
    Kick,
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
            Wake {
                fd,
                sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
                armed: None,
            }
        }
        #[cfg(not(target_os = "linux"))]
        Wake {
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: None,
        }
    }

    /// Sleeps until `deadline` (returns at once if it has passed).
    pub async fn until(&mut self, deadline: Instant) {
        let idle = Kick::default();
        while self.arm(deadline) {
            self.wait(&idle).await;
        }
    }

    /// Makes the timer fire at `deadline` at the latest. A timer already
    /// armed for no later than that is left as it is: it fires early, which
    /// costs a wake-up, where re-arming it would cost a syscall on every
    /// call. Returns false when `deadline` has passed (nothing to wait for).
    pub fn arm(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if deadline <= now {
            return false;
        }
        if self.armed.is_some_and(|a| a <= deadline && a > now) {
            return true;
        }
        self.armed = Some(deadline);
        #[cfg(target_os = "linux")]
        if let Some(fd) = self.fd.as_mut() {
            // A zero duration would disarm the timer: at least 1 µs.
            let d = (deadline - now).max(Duration::from_micros(1));
            fd.get_mut().set_state(
                timerfd::TimerState::Oneshot(d),
                timerfd::SetTimeFlags::Default,
            );
            return true;
        }
        self.sleep.as_mut().reset(deadline);
        true
    }

    /// Waits for the armed timer, or for `kick`, whichever comes first.
    pub async fn wait(&mut self, kick: &Kick) -> Woken {
        poll_fn(|cx| {
            if kick.poll(cx).is_ready() {
                return Poll::Ready(Woken::Kick);
            }
            if self.armed.is_none() {
                // Nothing armed: only a kick ends the wait.
                return Poll::Pending;
            }
            if self.poll_timer(cx).is_ready() {
                if let Some(at) = self.armed.take() {
                    return Poll::Ready(Woken::Timer(at));
                }
            }
            Poll::Pending
        })
        .await
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        #[cfg(target_os = "linux")]
        if let Some(fd) = self.fd.as_mut() {
            loop {
                let mut guard = match fd.poll_read_ready(cx) {
                    Poll::Ready(Ok(guard)) => guard,
                    // The reactor is gone (the runtime is shutting down):
                    // the tokio timer decides.
                    Poll::Ready(Err(_)) => break,
                    Poll::Pending => return Poll::Pending,
                };
                let fired = guard.get_inner().read() > 0;
                guard.clear_ready();
                if fired {
                    return Poll::Ready(());
                }
            }
            let deadline = self.armed.unwrap_or_else(Instant::now);
            if self.sleep.deadline() != deadline {
                self.sleep.as_mut().reset(deadline);
            }
        }
        self.sleep.as_mut().poll(cx)
    }
}

impl Default for Wake {
    fn default() -> Self {
        Wake::new()
    }
}

/// The reply path's hold on the scheduler: the scheduler says when its next
/// arrival is due ([`Kick::due_at`]); the first reply to land at or after
/// that instant ([`Kick::landed`]) wakes it, at the cost of a task poll on
/// a thread that is awake anyway. One engine thread only (`Cell`s).
#[derive(Default)]
pub struct Kick {
    due: Cell<Option<Instant>>,
    when_idle: Cell<bool>,
    kicked: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Kick {
    /// The next arrival is due at `due` (`None`: none is, until the
    /// scheduler says otherwise); with `when_idle`, the last reply out
    /// kicks too, even before `due`. Clears a kick not yet taken.
    #[inline]
    pub fn due_at(&self, due: Option<Instant>, when_idle: bool) {
        self.due.set(due);
        self.when_idle.set(when_idle);
        self.kicked.set(false);
    }

    /// A reply landed at `now`: wakes the scheduler if an arrival is due,
    /// or (when asked) if it was the last one out (`idle`: no later reply
    /// will come, so the scheduler sets its timer for the due time).
    #[inline]
    pub fn landed(&self, now: Instant, idle: bool) {
        let idle = idle && self.when_idle.get();
        if self.due.get().is_some_and(|due| idle || now >= due) {
            self.due.set(None);
            self.kicked.set(true);
            if let Some(w) = self.waker.take() {
                w.wake();
            }
        }
    }

    /// Ready once (and clears it) if kicked since the last `due_at`.
    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.kicked.replace(false) {
            return Poll::Ready(());
        }
        let w = match self.waker.take() {
            Some(w) if w.will_wake(cx.waker()) => w,
            _ => cx.waker().clone(),
        };
        self.waker.set(Some(w));
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

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

    /// A timer armed for an earlier instant is kept (it fires early, and
    /// the caller sleeps again); one armed for later is brought forward.
    #[tokio::test]
    async fn an_armed_timer_is_only_ever_brought_forward() {
        let mut w = Wake::new();
        let now = Instant::now();
        let (soon, later) = (
            now + Duration::from_millis(2),
            now + Duration::from_secs(60),
        );
        assert!(w.arm(soon));
        assert!(w.arm(later), "a later deadline keeps the earlier timer");
        assert_eq!(w.armed, Some(soon));
        assert_eq!(w.wait(&Kick::default()).await, Woken::Timer(soon));
        assert!(Instant::now() >= soon);
        assert_eq!(w.armed, None, "fired");
        assert!(w.arm(later));
        let soon = Instant::now() + Duration::from_millis(2);
        assert!(w.arm(soon), "an earlier deadline re-arms");
        assert_eq!(w.armed, Some(soon));
        assert_eq!(w.wait(&Kick::default()).await, Woken::Timer(soon));
        assert!(!w.arm(now), "a past deadline is nothing to wait for");
    }

    /// A reply before the due time does not wake the scheduler (unless it
    /// is the last one out and that was asked for); the first one at or
    /// after it does, once; and a kick ends the wait long before the timer
    /// would.
    #[tokio::test]
    async fn a_reply_after_the_due_time_kicks_the_scheduler_once() {
        let kick = Rc::new(Kick::default());
        let now = Instant::now();
        kick.due_at(Some(now + Duration::from_secs(1)), true);
        kick.landed(now, false);
        assert!(!kick.kicked.get(), "nothing is due yet");
        kick.landed(now + Duration::from_secs(1), false);
        assert!(kick.kicked.get(), "due at the reply");
        kick.due_at(None, true);
        kick.landed(now + Duration::from_secs(5), false);
        assert!(!kick.kicked.get(), "nothing due: no kick");
        // The last reply out kicks before the due time only when asked
        // ("auto" sets its timer then; an explicit gap batches).
        kick.due_at(Some(now + Duration::from_secs(1)), false);
        kick.landed(now, true);
        assert!(!kick.kicked.get(), "an explicit gap waits for the due time");
        kick.due_at(Some(now + Duration::from_secs(1)), true);
        kick.landed(now, true);
        assert!(kick.kicked.get(), "auto: the last reply out kicks");
        kick.due_at(None, true);

        let mut w = Wake::new();
        w.arm(Instant::now() + Duration::from_secs(60));
        kick.due_at(Some(Instant::now()), true);
        let local = tokio::task::LocalSet::new();
        let woken = local
            .run_until(async {
                let k = kick.clone();
                tokio::task::spawn_local(async move {
                    tokio::task::yield_now().await;
                    k.landed(Instant::now(), false);
                    // A second reply finds the kick taken: no second wake.
                    k.landed(Instant::now(), false);
                });
                let started = Instant::now();
                let woken = w.wait(&kick).await;
                assert!(started.elapsed() < Duration::from_secs(30));
                woken
            })
            .await;
        assert_eq!(woken, Woken::Kick);
        assert!(!kick.kicked.get(), "taken by the wait");
        assert!(w.armed.is_some(), "a kick leaves the timer armed");
    }
}
