//! Where a run's events go: to the clients following it (the one that
//! submitted it, and any that attached: `volley attach`, `volley stop`
//! waiting for the end), and into a bounded history so a client that lost
//! its stream (or a coordinator that restarted) can attach again and pick
//! up where it left off. A finished run's sink is kept a while, so that a
//! client can still fetch its seconds and report.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::Status;
use volley_proto::pb;
use volley_proto::pb::run_event::Event as Ev;

type Tx = mpsc::Sender<Result<pb::RunEvent, Status>>;

/// Seconds of per-second events kept for clients that attach again.
const HISTORY: usize = 3600;

#[derive(Default)]
struct Inner {
    subscribers: Vec<Tx>,
    detached_since: Option<Instant>,
    accepted: Option<pb::RunEvent>,
    started: Option<pb::RunEvent>,
    recent: VecDeque<pb::RunEvent>,
    finished: Option<pb::RunEvent>,
}

#[derive(Default)]
pub struct Sink {
    inner: Mutex<Inner>,
}

impl Sink {
    pub fn new(subscriber: Option<Tx>) -> Sink {
        let detached_since = subscriber.is_none().then(Instant::now);
        Sink {
            inner: Mutex::new(Inner {
                subscribers: subscriber.into_iter().collect(),
                detached_since,
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the event and delivers it to every client that follows.
    pub async fn send(&self, e: Ev) {
        let ev = pb::RunEvent { event: Some(e) };
        let last = matches!(ev.event, Some(Ev::Finished(_)));
        let txs = {
            let mut i = self.lock();
            match &ev.event {
                Some(Ev::Accepted(_)) => i.accepted = Some(ev.clone()),
                Some(Ev::Started(_)) => i.started = Some(ev.clone()),
                Some(Ev::Interval(sec)) => {
                    if i.recent.len() >= HISTORY {
                        i.recent.pop_front();
                    }
                    // The whole hour's room at the first second: grown by
                    // doubling, it copied itself at 1,024 and 2,048 seconds,
                    // a step in RSS each time (bench/soak.sh --samples).
                    if i.recent.capacity() == 0 {
                        i.recent.reserve_exact(HISTORY);
                    }
                    // The per-worker log lines (a KiB per worker) are only
                    // delivered live; an hour of them would cost hundreds of
                    // MiB with many workers.
                    let slim = pb::IntervalSummary {
                        worker_hlog_lines: Vec::new(),
                        ..sec.clone()
                    };
                    i.recent.push_back(pb::RunEvent {
                        event: Some(Ev::Interval(slim)),
                    });
                }
                Some(Ev::Finished(_)) => i.finished = Some(ev.clone()),
                _ => {}
            }
            if last {
                // Nothing follows `finished`: the streams end after it.
                std::mem::take(&mut i.subscribers)
            } else {
                i.subscribers.clone()
            }
        };
        let mut gone = false;
        for tx in &txs {
            gone |= tx.send(Ok(ev.clone())).await.is_err();
        }
        if gone {
            self.forget_closed();
        }
    }

    /// Drops the followers whose stream was closed; notes when none is left.
    fn forget_closed(&self) {
        let mut i = self.lock();
        i.subscribers.retain(|t| !t.is_closed());
        if i.subscribers.is_empty() {
            i.detached_since.get_or_insert_with(Instant::now);
        }
    }

    /// A new follower: replays `accepted`, `started`, the seconds from
    /// `from_t_s` on (and `finished` if the run is over), then goes live.
    pub fn attach(&self, from_t_s: u32) -> mpsc::Receiver<Result<pb::RunEvent, Status>> {
        let (tx, rx) = mpsc::channel(HISTORY + 16);
        let mut i = self.lock();
        let replay = i.accepted.iter().chain(i.started.iter()).chain(
            i.recent
                .iter()
                .filter(|e| matches!(&e.event, Some(Ev::Interval(s)) if s.t_s >= from_t_s)),
        );
        for e in replay.chain(i.finished.iter()) {
            let _ = tx.try_send(Ok(e.clone()));
        }
        // A run that is over sends nothing more: the stream ends after the
        // replay.
        if i.finished.is_none() {
            i.subscribers.push(tx);
            i.detached_since = None;
        }
        rx
    }

    /// How long no client has followed the run.
    pub fn detached_for(&self) -> Option<Duration> {
        let mut i = self.lock();
        if !i.subscribers.is_empty() && i.subscribers.iter().all(|t| t.is_closed()) {
            i.subscribers.clear();
            i.detached_since = Some(Instant::now());
        }
        i.detached_since.map(|t| t.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(t: u32) -> Ev {
        Ev::Interval(pb::IntervalSummary {
            t_s: t,
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn a_client_attaching_again_gets_what_it_missed() {
        let (tx, mut rx) = mpsc::channel(16);
        let sink = Sink::new(Some(tx));
        sink.send(Ev::Accepted(pb::RunAccepted { run_id: "r".into() }))
            .await;
        sink.send(second(0)).await;
        assert!(rx.recv().await.is_some() && rx.recv().await.is_some());
        drop(rx);
        sink.send(second(1)).await;
        sink.send(second(2)).await;
        assert!(sink.detached_for().is_some());
        let mut again = sink.attach(1);
        let mut seen = Vec::new();
        while let Ok(Ok(e)) = again.try_recv() {
            seen.push(e.event.unwrap());
        }
        assert!(matches!(seen[0], Ev::Accepted(_)));
        let ts: Vec<u32> = seen
            .iter()
            .filter_map(|e| match e {
                Ev::Interval(s) => Some(s.t_s),
                _ => None,
            })
            .collect();
        assert_eq!(ts, vec![1, 2]);
        assert_eq!(sink.detached_for(), None);
        sink.send(second(3)).await;
        assert!(matches!(
            again.recv().await.unwrap().unwrap().event,
            Some(Ev::Interval(_))
        ));
    }

    #[tokio::test]
    async fn a_second_follower_does_not_take_the_stream_from_the_first() {
        let (tx, mut first) = mpsc::channel(16);
        let sink = Sink::new(Some(tx));
        sink.send(Ev::Accepted(pb::RunAccepted { run_id: "r".into() }))
            .await;
        let mut second_one = sink.attach(0);
        sink.send(second(0)).await;
        let finished = pb::RunFinished {
            run_id: "r".into(),
            ..Default::default()
        };
        sink.send(Ev::Finished(finished)).await;
        for rx in [&mut first, &mut second_one] {
            let mut kinds = Vec::new();
            while let Some(Ok(e)) = rx.recv().await {
                kinds.push(match e.event.unwrap() {
                    Ev::Accepted(_) => "accepted",
                    Ev::Interval(_) => "interval",
                    Ev::Finished(_) => "finished",
                    _ => "other",
                });
            }
            // Both got every event, and the stream ended after `finished`.
            assert_eq!(kinds, ["accepted", "interval", "finished"]);
        }
        assert_eq!(sink.detached_for(), None);
        // A client attaching after the end gets the replay, then the end.
        let mut late = sink.attach(0);
        let mut n = 0;
        while let Some(Ok(_)) = late.recv().await {
            n += 1;
        }
        assert_eq!(n, 3);
    }
}
