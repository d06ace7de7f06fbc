//! The workers connected to this coordinator, and where their run traffic
//! goes.
//!
//! A worker is registered when its session says hello and removed when the
//! stream ends or it is silent for the heartbeat timeout. While a worker
//! takes part in a run, its run messages (pongs, ready, intervals, done) are
//! routed to that run's task, tagged with the worker's slot in the run.

use std::collections::BTreeMap;
use std::time::Instant;
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

    /// Frees every worker of a finished run.
    pub fn release(&mut self, run_id: &str) {
        for w in self.workers.values_mut() {
            if w.route.as_ref().is_some_and(|r| r.run_id == run_id) {
                w.route = None;
            }
        }
    }

    /// Removes workers silent for longer than `timeout`, returning them.
    pub fn reap(&mut self, timeout: std::time::Duration) -> Vec<WorkerEntry> {
        let now = Instant::now();
        let dead: Vec<Uuid> = self
            .workers
            .values()
            .filter(|w| now.duration_since(w.last_seen) > timeout)
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
                tx: rtx.clone()
            }
        ));
        assert!(!r.assign(
            &id,
            Route {
                run_id: "s".into(),
                slot: 0,
                tx: rtx
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

    #[test]
    fn reaping_silent_workers() {
        let mut r = Registry::default();
        let (tx, _rx) = mpsc::channel(1);
        r.register(&hello(), Uuid::new_v4(), tx).unwrap();
        assert!(r.reap(std::time::Duration::from_secs(60)).is_empty());
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(r.reap(std::time::Duration::from_millis(1)).len(), 1);
        assert_eq!(r.len(), 0);
    }
}
