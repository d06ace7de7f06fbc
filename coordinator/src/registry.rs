//! The workers connected to this coordinator, and where their run traffic
//! goes.
//!
//! A worker is registered when its session says hello and removed when the
//! stream ends or it is silent for the heartbeat timeout. While a worker
//! takes part in a run, its run messages (pongs, ready, intervals, done) are
//! routed to that run's task, tagged with the worker's slot in the run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::Status;
use uuid::Uuid;
use volley_proto::pb;

pub type Outbound = mpsc::Sender<Result<pb::CoordinatorMessage, Status>>;

/// Run traffic from one worker, tagged with its slot.
#[derive(Debug)]
pub enum RunInput {
    Pong {
        slot: usize,
        pong: pb::Pong,
        recv_nanos: u64,
    },
    Ready {
        slot: usize,
        ready: pb::Ready,
    },
    Interval {
        slot: usize,
        report: pb::IntervalReport,
    },
    Done {
        slot: usize,
        done: pb::Done,
    },
    Lost {
        slot: usize,
        reason: String,
    },
    /// The worker is shutting down and asks to leave the run gracefully.
    Leaving {
        slot: usize,
        reason: String,
    },
    /// A worker a resumed run waited for is back, with a new session.
    Rejoined {
        slot: usize,
        entry: WorkerEntry,
    },
}

#[derive(Debug, Clone)]
pub struct Route {
    pub run_id: String,
    pub slot: usize,
    pub tx: mpsc::UnboundedSender<RunInput>,
    /// The run's `Assignment.report_every_s` (1: a report each second).
    pub report_every: u32,
}

#[derive(Debug, Clone)]
pub struct WorkerEntry {
    pub id: Uuid,
    pub weight: u32,
    /// Engine threads it runs (`--threads`); 0 from an older worker.
    pub threads: u32,
    pub hostname: String,
    pub version: String,
    pub conn: u64,
    pub tx: Outbound,
    pub last_seen: Instant,
    pub route: Option<Route>,
    /// From its `Ready` for its run (or its rejoining a resumed run) until
    /// its `Done`: when it beats at the run's pace (it switched on receiving
    /// the assignment) and is judged by the run timeout. Its silence counts
    /// from then at the latest, since it beat at the idle pace before.
    /// Before (pings, data files, the assignment in flight) it is judged by
    /// the idle timeout, as it still beats at the idle pace.
    pub run_pace_since: Option<Instant>,
    /// The clock offset (worker minus coordinator, nanoseconds) and round
    /// trip of the pong with the lowest round trip so far.
    pub clock: Option<(i64, u64)>,
}

#[derive(Debug, Default)]
pub struct Registry {
    workers: BTreeMap<Uuid, WorkerEntry>,
    next_conn: u64,
}

impl Registry {
    /// Adds a worker; refuses an id that is already connected and alive.
    pub fn register(&mut self, hello: &pb::Hello, id: Uuid, tx: Outbound) -> Result<u64, Status> {
        if self.workers.contains_key(&id) {
            return Err(Status::already_exists(format!(
                "a worker with id {id} is already connected"
            )));
        }
        self.next_conn += 1;
        let conn = self.next_conn;
        self.workers.insert(
            id,
            WorkerEntry {
                id,
                weight: hello.weight,
                threads: hello.threads,
                hostname: hello.hostname.chars().take(253).collect(),
                version: hello.version.chars().take(64).collect(),
                conn,
                tx,
                last_seen: Instant::now(),
                route: None,
                run_pace_since: None,
                clock: None,
            },
        );
        Ok(conn)
    }

    pub fn touch(&mut self, id: &Uuid, conn: u64) {
        if let Some(w) = self.workers.get_mut(id).filter(|w| w.conn == conn) {
            w.last_seen = Instant::now();
        }
    }

    pub fn route(&self, id: &Uuid, conn: u64) -> Option<Route> {
        self.workers
            .get(id)
            .filter(|w| w.conn == conn)
            .and_then(|w| w.route.clone())
    }

    /// Where the messages to the worker go, if `conn` is still its current
    /// connection.
    pub fn outbound(&self, id: &Uuid, conn: u64) -> Option<Outbound> {
        self.workers
            .get(id)
            .filter(|w| w.conn == conn)
            .map(|w| w.tx.clone())
    }

    /// Where the messages to every connected worker go.
    pub fn outbounds(&self) -> Vec<Outbound> {
        self.workers.values().map(|w| w.tx.clone()).collect()
    }

    /// Removes the worker if `conn` is still its current connection, and
    /// returns its run route (the run must hear it is lost).
    pub fn remove(&mut self, id: &Uuid, conn: u64) -> Option<Option<Route>> {
        if self.workers.get(id).is_some_and(|w| w.conn == conn) {
            self.workers.remove(id).map(|w| w.route)
        } else {
            None
        }
    }

    /// Folds a pong into the worker's clock offset: the lowest round trip
    /// wins, as in a run's setup.
    pub fn clock_sample(&mut self, id: &Uuid, conn: u64, offset_nanos: i64, rtt_nanos: u64) {
        if let Some(w) = self.workers.get_mut(id).filter(|w| w.conn == conn) {
            if w.clock.is_none_or(|(_, best)| rtt_nanos < best) {
                w.clock = Some((offset_nanos, rtt_nanos));
            }
        }
    }

    /// Every connected worker, as `volley workers` shows it.
    pub fn statuses(&self) -> Vec<crate::runs::WorkerStatus> {
        let now = Instant::now();
        self.workers
            .values()
            .map(|w| crate::runs::WorkerStatus {
                id: w.id.to_string(),
                host: w.hostname.clone(),
                version: w.version.clone(),
                weight: w.weight,
                threads: (w.threads > 0).then_some(w.threads),
                clock_offset_ms: w.clock.map(|(off, _)| off as f64 / 1e6),
                last_heartbeat_ago_ms: now.duration_since(w.last_seen).as_millis() as u64,
                run: w.route.as_ref().map(|r| r.run_id.clone()),
            })
            .collect()
    }

    /// The entry of a worker, whatever it is doing.
    pub fn idle_or_assigned(&self, id: &Uuid) -> Option<WorkerEntry> {
        self.workers.get(id).cloned()
    }

    /// Workers not taking part in a run.
    pub fn idle(&self) -> Vec<WorkerEntry> {
        self.workers
            .values()
            .filter(|w| w.route.is_none())
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    pub fn assign(&mut self, id: &Uuid, route: Route) -> bool {
        match self.workers.get_mut(id) {
            Some(w) if w.route.is_none() => {
                w.route = Some(route);
                true
            }
            _ => false,
        }
    }

    /// The worker confirmed its assignment to `run_id` (or rejoined it):
    /// it beats at the run's pace from now on, and is judged by the run
    /// timeout.
    pub fn run_pace(&mut self, id: &Uuid, conn: u64, run_id: &str) {
        if let Some(w) = self.current(id, conn, run_id) {
            w.run_pace_since = Some(Instant::now());
        }
    }

    /// The worker sent `run_id`'s `Done`: it beats at the idle pace from now
    /// on (the run may last a while longer, for the others).
    pub fn done(&mut self, id: &Uuid, conn: u64, run_id: &str) {
        if let Some(w) = self.current(id, conn, run_id) {
            w.run_pace_since = None;
        }
    }

    /// The worker on connection `conn`, if it is routed to `run_id`.
    fn current(&mut self, id: &Uuid, conn: u64, run_id: &str) -> Option<&mut WorkerEntry> {
        self.workers
            .get_mut(id)
            .filter(|w| w.conn == conn && w.route.as_ref().is_some_and(|r| r.run_id == run_id))
    }

    /// Frees every worker of a finished run.
    pub fn release(&mut self, run_id: &str) {
        for w in self.workers.values_mut() {
            if w.route.as_ref().is_some_and(|r| r.run_id == run_id) {
                w.route = None;
                w.run_pace_since = None;
            }
        }
    }

    /// Removes the workers silent at `now` for longer than their timeout,
    /// returning them: `run(report_every)` of its run for a worker at the
    /// run's pace (see [`WorkerEntry::run_pace_since`]), counted from its
    /// last message or from when it took that pace, whichever is later;
    /// `idle` for the others.
    pub fn reap(
        &mut self,
        now: Instant,
        run: impl Fn(u32) -> Duration,
        idle: Duration,
    ) -> Vec<WorkerEntry> {
        let silent = |w: &WorkerEntry| match w.run_pace_since {
            Some(at) => {
                let every = w.route.as_ref().map_or(1, |r| r.report_every);
                now.saturating_duration_since(w.last_seen.max(at)) > run(every)
            }
            None => now.saturating_duration_since(w.last_seen) > idle,
        };
        let dead: Vec<Uuid> = self
            .workers
            .values()
            .filter(|w| silent(w))
            .map(|w| w.id)
            .collect();
        dead.iter()
            .filter_map(|id| self.workers.remove(id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> pb::Hello {
        pb::Hello {
            worker_id: String::new(),
            protocol_version: 1,
            weight: 2,
            version: "x".into(),
            hostname: "h".into(),
            threads: 2,
        }
    }

    #[test]
    fn register_route_release_remove() {
        let mut r = Registry::default();
        let (tx, _rx) = mpsc::channel(1);
        let id = Uuid::new_v4();
        let conn = r.register(&hello(), id, tx.clone()).unwrap();
        assert_eq!(
            r.register(&hello(), id, tx).unwrap_err().code(),
            tonic::Code::AlreadyExists
        );
        assert_eq!(r.idle().len(), 1);
        let (rtx, _rrx) = mpsc::unbounded_channel();
        assert!(r.assign(
            &id,
            Route {
                run_id: "r".into(),
                slot: 0,
                tx: rtx.clone(),
                report_every: 1,
            }
        ));
        assert!(!r.assign(
            &id,
            Route {
                run_id: "s".into(),
                slot: 0,
                tx: rtx,
                report_every: 1,
            }
        ));
        assert!(r.idle().is_empty());
        assert_eq!(r.route(&id, conn).unwrap().run_id, "r");
        assert!(
            r.route(&id, conn + 1).is_none(),
            "a stale connection gets no route"
        );
        r.release("r");
        assert_eq!(r.idle().len(), 1);
        assert!(r.remove(&id, conn + 1).is_none());
        assert!(r.remove(&id, conn).is_some());
        assert!(r.is_empty());
    }

    const RUN: Duration = Duration::from_secs(3);
    const IDLE: Duration = Duration::from_secs(12);

    fn route(run_id: &str) -> Route {
        Route {
            run_id: run_id.into(),
            slot: 0,
            tx: mpsc::unbounded_channel().0,
            report_every: 1,
        }
    }

    /// A registry with one worker, assigned to `run_id` and ready for it.
    fn one_in_run(run_id: &str) -> (Registry, Uuid, u64) {
        let mut r = Registry::default();
        let id = Uuid::new_v4();
        let conn = r.register(&hello(), id, mpsc::channel(1).0).unwrap();
        assert!(r.assign(&id, route(run_id)));
        r.run_pace(&id, conn, run_id);
        (r, id, conn)
    }

    #[test]
    fn an_idle_worker_is_reaped_after_the_idle_timeout_only() {
        let mut r = Registry::default();
        let (tx, _rx) = mpsc::channel(1);
        let id = Uuid::new_v4();
        r.register(&hello(), id, tx).unwrap();
        let seen = r.idle_or_assigned(&id).unwrap().last_seen;
        assert!(r.reap(seen + RUN * 2, |_| RUN, IDLE).is_empty());
        assert!(r.reap(seen + IDLE, |_| RUN, IDLE).is_empty());
        let dead = r.reap(seen + IDLE + Duration::from_millis(1), |_| RUN, IDLE);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].id, id);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn an_assigned_worker_is_judged_by_the_idle_timeout_until_it_is_ready() {
        let mut r = Registry::default();
        let (tx, _rx) = mpsc::channel(1);
        let id = Uuid::new_v4();
        let conn = r.register(&hello(), id, tx).unwrap();
        // Pings, data files and the assignment itself reach it while it
        // still beats at the idle pace.
        assert!(r.assign(&id, route("r")));
        let seen = r.idle_or_assigned(&id).unwrap().last_seen;
        assert!(r.reap(seen + RUN * 2, |_| RUN, IDLE).is_empty());
        // Its Ready for another run changes nothing.
        r.run_pace(&id, conn, "other");
        assert!(r.idle_or_assigned(&id).unwrap().run_pace_since.is_none());
        assert_eq!(r.reap(seen + IDLE * 2, |_| RUN, IDLE).len(), 1);
    }

    #[test]
    fn a_worker_in_a_run_is_reaped_after_the_run_timeout_from_its_ready() {
        let mut r = Registry::default();
        let (tx, _rx) = mpsc::channel(1);
        let (id, quiet) = (Uuid::new_v4(), Uuid::new_v4());
        let conn = r.register(&hello(), id, tx.clone()).unwrap();
        r.register(&hello(), quiet, tx).unwrap();
        assert!(r.assign(&id, route("r")));
        // Silent for a while at the idle pace, then its Ready arrives: the
        // run timeout counts from then, not from its last beat.
        std::thread::sleep(Duration::from_millis(20));
        r.run_pace(&id, conn + 1, "r");
        assert!(
            r.idle_or_assigned(&id).unwrap().run_pace_since.is_none(),
            "a stale connection's Ready"
        );
        r.run_pace(&id, conn, "r");
        let at = r.idle_or_assigned(&id).unwrap().run_pace_since.unwrap();
        let seen = r.idle_or_assigned(&id).unwrap().last_seen;
        assert!(at >= seen + Duration::from_millis(20));
        assert!(r
            .reap(seen + RUN + Duration::from_millis(1), |_| RUN, IDLE)
            .is_empty());
        assert!(r.reap(at + RUN, |_| RUN, IDLE).is_empty());
        // A message after that moves it on.
        r.touch(&id, conn);
        let seen = r.idle_or_assigned(&id).unwrap().last_seen;
        assert!(r.reap(seen + RUN, |_| RUN, IDLE).is_empty());
        let dead = r.reap(seen + RUN + Duration::from_millis(1), |_| RUN, IDLE);
        assert_eq!(dead.iter().map(|w| w.id).collect::<Vec<_>>(), [id]);
        assert!(dead[0].run_pace_since.is_some());
        assert!(r.idle_or_assigned(&quiet).is_some(), "the idle one stays");
    }

    #[test]
    fn a_worker_done_with_its_run_is_judged_by_the_idle_timeout() {
        let (mut r, id, conn) = one_in_run("r");
        let at = r.idle_or_assigned(&id).unwrap().run_pace_since.unwrap();
        r.done(&id, conn + 1, "r");
        r.done(&id, conn, "an earlier run");
        assert!(
            r.idle_or_assigned(&id).unwrap().run_pace_since.is_some(),
            "a stale connection's Done, or an earlier run's replayed"
        );
        r.done(&id, conn, "r");
        let w = r.idle_or_assigned(&id).unwrap();
        assert_eq!(w.route.unwrap().run_id, "r", "still routed to its run");
        assert!(r.reap(at + RUN * 2, |_| RUN, IDLE).is_empty());
        assert_eq!(r.reap(at + IDLE * 2, |_| RUN, IDLE).len(), 1);
    }

    #[test]
    fn a_released_worker_is_judged_by_the_idle_timeout_again() {
        let (mut r, id, _) = one_in_run("r");
        let at = r.idle_or_assigned(&id).unwrap().run_pace_since.unwrap();
        r.release("r");
        let w = r.idle_or_assigned(&id).unwrap();
        assert!(w.route.is_none() && w.run_pace_since.is_none());
        assert!(r.reap(at + RUN * 2, |_| RUN, IDLE).is_empty());
        assert_eq!(r.reap(w.last_seen + IDLE * 2, |_| RUN, IDLE).len(), 1);
    }

    #[test]
    fn a_worker_that_reports_in_batches_is_allowed_the_paces_it_waits() {
        let config = crate::state::CoordinatorConfig::default();
        assert_eq!(config.run_timeout(1), config.heartbeat_timeout);
        // 3 s, plus 3 more paces of 1 s: batches every 4 s, 2 s to spare
        // as with a report each second.
        assert_eq!(config.run_timeout(4), Duration::from_secs(6));

        let mut r = Registry::default();
        let (tx, _rx) = mpsc::channel(1);
        let (each, batched) = (Uuid::new_v4(), Uuid::new_v4());
        for (id, every) in [(each, 1), (batched, 4)] {
            let conn = r.register(&hello(), id, tx.clone()).unwrap();
            let route = Route {
                report_every: every,
                ..route("r")
            };
            assert!(r.assign(&id, route));
            r.run_pace(&id, conn, "r");
        }
        let at = r
            .idle_or_assigned(&batched)
            .unwrap()
            .run_pace_since
            .unwrap();
        let timeout = |every| config.run_timeout(every);
        let dead = r.reap(at + Duration::from_millis(3_100), timeout, IDLE);
        assert_eq!(dead.iter().map(|w| w.id).collect::<Vec<_>>(), [each]);
        assert!(r
            .reap(at + Duration::from_millis(5_900), timeout, IDLE)
            .is_empty());
        let dead = r.reap(at + Duration::from_millis(6_100), timeout, IDLE);
        assert_eq!(dead.iter().map(|w| w.id).collect::<Vec<_>>(), [batched]);
    }
}
