//! Where a run's events go: to the client following it, if any, and into a
//! bounded history so a client that lost its stream (or a coordinator that
//! restarted) can attach again and pick up where it left off.

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
    subscriber: Option<Tx>,
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
                subscriber,
                detached_since,
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the event and delivers it to the client, if one follows.
    pub async fn send(&self, e: Ev) {
        let ev = pb::RunEvent { event: Some(e) };
        let tx = {
            let mut i = self.lock();
            match &ev.event {
                Some(Ev::Accepted(_)) => i.accepted = Some(ev.clone()),
                Some(Ev::Started(_)) => i.started = Some(ev.clone()),
                Some(Ev::Interval(sec)) => {
                    if i.recent.len() >= HISTORY {
                        i.recent.pop_front();
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
            i.subscriber.clone()
        };
        if let Some(tx) = tx {
            if tx.send(Ok(ev)).await.is_err() {
                let mut i = self.lock();
                i.subscriber = None;
                i.detached_since.get_or_insert_with(Instant::now);
            }
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
        i.subscriber = Some(tx);
        i.detached_since = None;
        rx
    }

    /// How long no client has followed the run.
    pub fn detached_for(&self) -> Option<Duration> {
        let mut i = self.lock();
        if i.subscriber.as_ref().is_some_and(|t| t.is_closed()) {
            i.subscriber = None;
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
}
