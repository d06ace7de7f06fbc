//! The coordinator's side of `WorkerSession.Session`.

use crate::registry::{Route, RunInput};
use crate::state::Coordinator;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, instrument, warn};
use uuid::Uuid;
use volley_proto::pb::worker_message::Msg as In;
use volley_proto::pb::{self, coordinator_message::Msg as Out};
use volley_proto::{auth, clock, PROTOCOL_VERSION};

/// Pings sent to a worker when it says hello (its clock offset for
/// `volley workers`; a run measures again at its start).
const HELLO_PINGS: usize = 3;

pub struct Sessions {
    coord: Arc<Coordinator>,
}

impl Sessions {
    pub fn new(coord: Arc<Coordinator>) -> Self {
        Sessions { coord }
    }
}

type OutStream = Pin<Box<dyn Stream<Item = Result<pb::CoordinatorMessage, Status>> + Send>>;

#[tonic::async_trait]
impl pb::worker_session_server::WorkerSession for Sessions {
    type SessionStream = OutStream;

    async fn session(
        &self,
        req: Request<Streaming<pb::WorkerMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        auth::check(&req, self.coord.config.token.as_deref())?;
        let mut inbound = req.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no hello within 10s"))??;
        let Some(pb::WorkerMessage {
            msg: Some(In::Hello(hello)),
        }) = first
        else {
            return Err(Status::invalid_argument(
                "the first message of a session must be hello",
            ));
        };
        if hello.protocol_version != PROTOCOL_VERSION {
            return Err(Status::failed_precondition(format!(
                "worker speaks protocol version {}, this coordinator speaks {}; run matching Volley versions",
                hello.protocol_version, PROTOCOL_VERSION
            )));
        }
        let id = Uuid::parse_str(&hello.worker_id).map_err(|_| {
            Status::invalid_argument(format!("worker id {:?} is not a uuid", hello.worker_id))
        })?;
        if !(1..=volley_plan::partition::MAX_WEIGHT).contains(&hello.weight) {
            return Err(Status::invalid_argument(format!(
                "weight {} is not in 1..=1000",
                hello.weight
            )));
        }
        let (tx, rx) = mpsc::channel(64);
        let conn = {
            let mut reg = self.coord.registry();
            let conn = reg.register(&hello, id, tx.clone())?;
            // A run resumed after a restart waits for this worker: route its
            // messages (the reports it buffered while we were away) there
            // before the first one arrives.
            if let Some(route) = self.coord.take_expected(&id) {
                reg.assign(&id, route.clone());
                // Still in that run, it beats at the run's pace (a Done it
                // sent while we were away comes again from its outbox).
                reg.run_pace(&id, conn, &route.run_id);
                if let Some(entry) = reg.idle_or_assigned(&id) {
                    let _ = route.tx.send(RunInput::Rejoined {
                        slot: route.slot,
                        entry,
                    });
                }
            }
            conn
        };
        let welcome = pb::Welcome {
            heartbeat_interval_ms: self.coord.config.heartbeat_interval().as_millis() as u32,
            coordinator_version: env!("CARGO_PKG_VERSION").to_string(),
            idle_heartbeat_interval_ms: self.coord.config.idle_heartbeat_interval().as_millis()
                as u32,
        };
        let _ = tx.try_send(Ok(pb::CoordinatorMessage {
            msg: Some(Out::Welcome(welcome)),
        }));
        // A few pings now, so `volley workers` shows every worker's clock
        // offset before it takes part in a run.
        for _ in 0..HELLO_PINGS {
            let ping = pb::Ping {
                coordinator_send_nanos: clock::unix_nanos(),
            };
            let _ = tx.try_send(Ok(pb::CoordinatorMessage {
                msg: Some(Out::Ping(ping)),
            }));
        }
        info!(worker = %id, weight = hello.weight, host = %hello.hostname, "worker joined");
        self.coord.metrics.set_workers(self.coord.registry().len());
        self.coord.changed.notify_waiters();
        tokio::spawn(read_loop(self.coord.clone(), id, conn, inbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[instrument(skip_all, fields(worker = %id))]
async fn read_loop(
    coord: Arc<Coordinator>,
    id: Uuid,
    conn: u64,
    mut inbound: Streaming<pb::WorkerMessage>,
) {
    let reason = loop {
        match inbound.message().await {
            Ok(Some(m)) => {
                // A heartbeat only says the worker is alive: no clock, no
                // route (10,000 idle workers send thousands a second).
                if matches!(m.msg, None | Some(In::Heartbeat(_))) {
                    coord.registry().touch(&id, conn);
                    continue;
                }
                let recv_nanos = clock::unix_nanos();
                let route = {
                    let mut reg = coord.registry();
                    reg.touch(&id, conn);
                    // The worker beats at the run's pace from its Ready
                    // (it switched on the assignment) until its Done.
                    match &m.msg {
                        Some(In::Ready(r)) if r.ok => reg.run_pace(&id, conn, &r.run_id),
                        Some(In::Done(d)) => reg.done(&id, conn, &d.run_id),
                        _ => {}
                    }
                    if let Some(In::Pong(p)) = &m.msg {
                        let (offset, rtt) = clock::offset_and_rtt(
                            p.coordinator_send_nanos,
                            p.worker_recv_nanos,
                            p.worker_send_nanos,
                            recv_nanos,
                        );
                        reg.clock_sample(&id, conn, offset, rtt);
                    }
                    reg.route(&id, conn)
                };
                if let (Some(msg), Some(route)) = (m.msg, route) {
                    forward(&route, msg, recv_nanos);
                }
            }
            Ok(None) => {
                // Everything it sent is read: end our side too, so a worker
                // that is shutting down knows and can go.
                if let Some(tx) = coord.registry().outbound(&id, conn) {
                    let _ = tx.try_send(Err(Status::cancelled("the worker closed its session")));
                }
                break "the worker closed its session".to_string();
            }
            Err(s) => break format!("session broke: {}", s.message()),
        }
    };
    let removed = coord.registry().remove(&id, conn);
    if let Some(route) = removed {
        info!(cause = %reason, "worker left");
        if let Some(route) = route {
            let _ = route.tx.send(RunInput::Lost {
                slot: route.slot,
                reason,
            });
        }
        coord.metrics.set_workers(coord.registry().len());
        coord.changed.notify_waiters();
    }
}

fn forward(route: &Route, msg: In, recv_nanos: u64) {
    let slot = route.slot;
    let input = match msg {
        In::Pong(pong) => RunInput::Pong {
            slot,
            pong,
            recv_nanos,
        },
        In::Ready(ready) if ready.run_id == route.run_id => RunInput::Ready { slot, ready },
        In::Interval(report) if report.run_id == route.run_id => {
            RunInput::Interval { slot, report }
        }
        In::Done(done) if done.run_id == route.run_id => RunInput::Done { slot, done },
        In::Leaving(leaving) if leaving.run_id == route.run_id => {
            let reason = leaving.reason.chars().take(200).collect();
            RunInput::Leaving { slot, reason }
        }
        In::Hello(_) | In::Heartbeat(_) => return,
        other => {
            warn!(message = ?std::mem::discriminant(&other), "message for another run ignored");
            return;
        }
    };
    let _ = route.tx.send(input);
}

/// Declares workers silent for their heartbeat timeout lost: the run one
/// for a worker in a run, the idle one for the others.
pub async fn reaper(coord: Arc<Coordinator>) {
    let config = &coord.config;
    let run = |report_every| config.run_timeout(report_every);
    let idle = config.idle_heartbeat_timeout;
    let every = (config.heartbeat_timeout / 6).max(Duration::from_millis(50));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let dead = coord.registry().reap(Instant::now(), run, idle);
        if dead.is_empty() {
            continue;
        }
        for w in dead {
            let timeout = match (&w.run_pace_since, &w.route) {
                (Some(_), Some(r)) => run(r.report_every),
                (Some(_), None) => run(1),
                (None, _) => idle,
            };
            warn!(worker = %w.id, timeout_ms = timeout.as_millis() as u64, "worker silent; declared lost");
            if let Some(route) = w.route {
                let reason = format!("no heartbeat for {timeout:?}");
                let _ = route.tx.send(RunInput::Lost {
                    slot: route.slot,
                    reason,
                });
            }
            // Dropping the entry drops its sender, which ends its stream.
        }
        coord.metrics.set_workers(coord.registry().len());
        coord.changed.notify_waiters();
    }
}
