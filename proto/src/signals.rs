//! SIGINT and SIGTERM, each one counted once, none missed between two waits:
//! how both binaries (`volley`, `volley-worker`) take them.
//!
//! "A second signal quits at once" needs a listener that is always there:
//! a fresh `tokio::signal` listener does not see a signal that arrived
//! before it was made, so a second Ctrl-C pressed while the first was being
//! handled (the stop request on its way to the coordinator) was lost, and
//! `volley run` went on to wait for the partial report (and a worker asked
//! to leave could not be made to quit). Here one task
//! listens for the whole life of the process and counts; [`next`] takes the
//! next signal not yet taken, however long ago it arrived.
//!
//! Signals closer than [`BURST`] to the last one counted are one: `timeout
//! -s TERM` sends its signal to the command and then to its process group,
//! which is the command again, microseconds later. Counted twice, that one
//! `timeout` would quit without the report it is meant to leave.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Once;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;

static RECEIVED: AtomicU64 = AtomicU64::new(0);
static TAKEN: AtomicU64 = AtomicU64::new(0);
static ARRIVED: Notify = Notify::const_new();
static LISTENING: Once = Once::new();

/// Signals this close together are one action (see the module's text); a
/// person who reads "press Ctrl-C again" takes longer.
const BURST: Duration = Duration::from_millis(200);

/// Starts the listening task on first use (inside the runtime): from then
/// on SIGINT and SIGTERM no longer end the process by themselves.
fn start() {
    LISTENING.call_once(|| {
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::spawn(async move {
            let mut last: Option<Instant> = None;
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                let now = Instant::now();
                if last.is_some_and(|l| now.duration_since(l) < BURST) {
                    continue;
                }
                last = Some(now);
                RECEIVED.fetch_add(1, SeqCst);
                ARRIVED.notify_waiters();
            }
        });
    });
}

/// Completes with the next SIGINT or SIGTERM not yet taken by an earlier
/// `next`. Dropped before it completes, it takes nothing.
pub async fn next() {
    start();
    loop {
        let arrived = ARRIVED.notified();
        tokio::pin!(arrived);
        // Registered before the counts are read: a signal counted after the
        // read wakes this wait.
        arrived.as_mut().enable();
        let taken = TAKEN.load(SeqCst);
        if RECEIVED.load(SeqCst) > taken {
            if TAKEN
                .compare_exchange(taken, taken + 1, SeqCst, SeqCst)
                .is_ok()
            {
                return;
            }
            continue;
        }
        arrived.await;
    }
}
