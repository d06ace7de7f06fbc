//! The worker's side of `WorkerSession.Session`: dial out, say hello, keep a
//! heartbeat, answer clock pings, take an assignment, start on the agreed
//! instant, and stream one report per second until done.
//!
//! The worker dials the coordinator (never the other way round), so it works
//! from pods and behind NAT. It reconnects by itself with backoff; a refusal
//! (wrong token, protocol mismatch) is final and ends the process with an
//! error, since retrying cannot fix it.
//!
//! This module is the connection loop and the dispatch of the coordinator's
//! messages; what it delegates: accepting an assignment and probing the
//! target ([`crate::assignment`]), the data files of a run
//! ([`crate::inbox`]), keeping and resending reports across outages
//! ([`crate::outbox`]), and their wire encoding ([`crate::encode`]).

use crate::config::WorkerConfig;
use crate::engine::{self, EngineEvent, EngineHandle, EngineSetup};
use crate::inbox::Inbox;
use crate::outbox::Outbox;
use crate::{assignment, encode};
use hdrhistogram::serialization::V2DeflateSerializer;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{interval, Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;
use tonic::Code;
use tracing::{debug, info, warn};
use volley_plan::Share;
use volley_proto::pb::worker_message::Msg as Out;
use volley_proto::pb::{
    self, coordinator_message::Msg as In, worker_session_client::WorkerSessionClient,
};
use volley_proto::{auth, clock, MAX_MESSAGE_BYTES, PROTOCOL_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("the coordinator refused this worker: {0}")]
    Refused(String),
    #[error("coordinator {0:?}: {1}")]
    BadAddress(String, String),
}

/// The run this worker is part of, if any.
struct Run {
    id: String,
    setup: Option<EngineSetup>,
    engine: Option<EngineHandle>,
    events: Option<mpsc::UnboundedReceiver<EngineEvent>>,
    intervals_sent: u32,
    /// The run's reports not yet delivered, and the last ones sent.
    outbox: Outbox<pb::WorkerMessage>,
}

/// Runs the worker until `shutdown` completes or the coordinator refuses it.
pub async fn run(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let endpoint = volley_proto::channel::endpoint(&config.coordinator, config.tls_ca.as_deref())
        .map_err(|e| WorkerError::BadAddress(config.coordinator.clone(), e))?;
    tokio::pin!(shutdown);
    let mut run: Option<Run> = None;
    let mut inbox = Inbox::default();
    let mut backoff = Duration::from_millis(100);
    let mut lost_since: Option<Instant> = None;
    let mut ser = V2DeflateSerializer::new();
    loop {
        let session = tokio::select! {
            _ = &mut shutdown => break,
            s = session(&endpoint, &config, &mut run, &mut inbox, &mut ser) => s,
        };
        match session {
            Err(SessionEnd::Refused(msg)) => {
                if let Some(r) = run.as_ref().and_then(|r| r.engine.as_ref()) {
                    r.stop();
                }
                return Err(WorkerError::Refused(msg));
            }
            Err(SessionEnd::Shutdown) => break,
            Err(SessionEnd::Lost(why)) => {
                let since = *lost_since.get_or_insert_with(Instant::now);
                debug!(cause = %why, "coordinator unreachable; retrying");
                if since.elapsed() > config.max_outage {
                    if let Some(e) = run.as_ref().and_then(|r| r.engine.as_ref()) {
                        warn!(
                            outage_s = since.elapsed().as_secs(),
                            "coordinator gone too long; stopping load"
                        );
                        e.stop();
                    }
                }
                // Keep collecting the engine's reports while away.
                if let Some(r) = run.as_mut() {
                    drain_events(r, &mut ser);
                }
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Ok(()) => {
                lost_since = None;
                backoff = Duration::from_millis(100);
            }
        }
    }
    if let Some(e) = run.as_ref().and_then(|r| r.engine.as_ref()) {
        e.stop();
    }
    Ok(())
}

enum SessionEnd {
    Refused(String),
    Lost(String),
    Shutdown,
}

/// One connected session; returns when the stream ends.
async fn session(
    endpoint: &Endpoint,
    config: &WorkerConfig,
    run: &mut Option<Run>,
    inbox: &mut Inbox,
    ser: &mut V2DeflateSerializer,
) -> Result<(), SessionEnd> {
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| SessionEnd::Lost(e.to_string()))?;
    let mut client = WorkerSessionClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let (tx, rx) = mpsc::channel::<pb::WorkerMessage>(1024);
    let hello = pb::Hello {
        worker_id: config.id.to_string(),
        protocol_version: PROTOCOL_VERSION,
        weight: config.weight,
        version: env!("CARGO_PKG_VERSION").to_string(),
        hostname: config.hostname.clone(),
    };
    let _ = tx.send(msg(Out::Hello(hello))).await;
    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    auth::attach(&mut req, config.token.as_deref())
        .map_err(|s| SessionEnd::Refused(s.message().to_string()))?;
    let mut inbound = match client.session(req).await {
        Ok(r) => r.into_inner(),
        Err(s) => return Err(classify(s)),
    };
    // Deliver what the coordinator may have missed, then what piled up
    // while it was away.
    if let Some(r) = run.as_mut() {
        for m in r.outbox.replay() {
            if tx.send(m).await.is_err() {
                return Err(SessionEnd::Lost("stream closed".into()));
            }
        }
    }
    let mut heartbeat = interval(Duration::from_secs(1));
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let engine_events = run.as_mut().and_then(|r| r.events.as_mut());
        tokio::select! {
            m = inbound.message() => match m {
                Ok(Some(m)) => {
                    if let Some(m) = m.msg {
                        handle(m, &tx, run, inbox, &config.id.to_string(), &mut heartbeat).await?;
                    }
                }
                Ok(None) => return Err(SessionEnd::Lost("coordinator closed the stream".into())),
                Err(s) => return Err(classify(s)),
            },
            ev = recv_opt(engine_events) => {
                let r = run.as_mut().expect("events imply a run");
                match ev {
                    Some(ev) => {
                        let m = event_message(r, ev, ser);
                        let m = r.outbox.sending(m);
                        if tx.send(m).await.is_err() {
                            return Err(SessionEnd::Lost("stream closed".into()));
                        }
                    }
                    None => r.events = None,
                }
            },
            _ = heartbeat.tick() => {
                let hb = pb::Heartbeat { unix_nanos: clock::unix_nanos() };
                if tx.send(msg(Out::Heartbeat(hb))).await.is_err() {
                    return Err(SessionEnd::Lost("stream closed".into()));
                }
            }
        }
    }
}

async fn recv_opt(rx: Option<&mut mpsc::UnboundedReceiver<EngineEvent>>) -> Option<EngineEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn classify(s: tonic::Status) -> SessionEnd {
    match s.code() {
        Code::Unauthenticated | Code::PermissionDenied | Code::FailedPrecondition => {
            SessionEnd::Refused(format!("{}: {}", code_name(s.code()), s.message()))
        }
        Code::Cancelled if s.message().contains("shutdown") => SessionEnd::Shutdown,
        _ => SessionEnd::Lost(format!("{:?}: {}", s.code(), s.message())),
    }
}

fn code_name(c: Code) -> &'static str {
    match c {
        Code::Unauthenticated => "unauthenticated",
        Code::PermissionDenied => "permission denied",
        Code::FailedPrecondition => "failed precondition",
        _ => "error",
    }
}

fn msg(m: Out) -> pb::WorkerMessage {
    pb::WorkerMessage { msg: Some(m) }
}

async fn handle(
    m: In,
    tx: &mpsc::Sender<pb::WorkerMessage>,
    run: &mut Option<Run>,
    inbox: &mut Inbox,
    worker_id: &str,
    heartbeat: &mut tokio::time::Interval,
) -> Result<(), SessionEnd> {
    let send = |m: Out| async {
        tx.send(msg(m))
            .await
            .map_err(|_| SessionEnd::Lost("stream closed".into()))
    };
    match m {
        In::Welcome(w) => {
            let every =
                Duration::from_millis(u64::from(w.heartbeat_interval_ms).clamp(100, 10_000));
            *heartbeat = interval(every);
            heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
            info!(coordinator = %w.coordinator_version, "connected to coordinator");
        }
        In::Ping(p) => {
            let recv = clock::unix_nanos();
            send(Out::Pong(pb::Pong {
                coordinator_send_nanos: p.coordinator_send_nanos,
                worker_recv_nanos: recv,
                worker_send_nanos: clock::unix_nanos(),
            }))
            .await?;
        }
        In::Assignment(a) => {
            if let Some(r) = run.as_ref() {
                if r.engine.as_ref().is_some_and(|e| !e.is_finished()) && r.id != a.run_id {
                    let error = format!("busy with run {}", r.id);
                    return send(Out::Ready(pb::Ready {
                        run_id: a.run_id,
                        ok: false,
                        error,
                    }))
                    .await;
                }
            }
            let prepared = match inbox.take(&a.run_id) {
                Ok(files) => {
                    assignment::prepare(a.plan, &files, a.share, a.share_from_s, worker_id).await
                }
                Err(e) => Err(e),
            };
            let (ok, error, setup) = match prepared {
                Ok(setup) => (true, String::new(), Some(setup)),
                Err(e) => (false, e, None),
            };
            info!(run = %a.run_id, ok, "assignment");
            *run = Some(Run {
                id: a.run_id.clone(),
                setup,
                engine: None,
                events: None,
                intervals_sent: 0,
                outbox: Outbox::default(),
            });
            send(Out::Ready(pb::Ready {
                run_id: a.run_id,
                ok,
                error,
            }))
            .await?;
        }
        In::Start(s) => {
            let Some(r) = run.as_mut().filter(|r| r.id == s.run_id) else {
                return Ok(());
            };
            let Some(setup) = r.setup.take() else {
                return Ok(());
            };
            let start = std::time::Instant::now()
                + Duration::from_nanos(s.start_at_unix_nanos.saturating_sub(clock::unix_nanos()));
            let (etx, erx) = mpsc::unbounded_channel();
            match engine::start(setup, start, etx) {
                Ok(h) => {
                    r.engine = Some(h);
                    r.events = Some(erx);
                }
                Err(e) => {
                    let done = pb::Done {
                        run_id: r.id.clone(),
                        intervals: 0,
                        error: format!("could not start the engine: {e}"),
                    };
                    send(Out::Done(done)).await?;
                }
            }
        }
        In::Reshare(r) => {
            let share = r.share.map(Share::try_from);
            match (run.as_ref().filter(|x| x.id == r.run_id), share) {
                (Some(x), Some(Ok(share))) if r.from_s.is_finite() && r.from_s >= 0.0 => {
                    info!(run = %r.run_id, from_s = r.from_s, "reshare");
                    if let Some(e) = x.engine.as_ref() {
                        e.reshare(r.from_s, share);
                    }
                }
                _ => warn!(run = %r.run_id, "ignored an invalid reshare"),
            }
        }
        In::DataChunk(c) => inbox.add(c),
        In::Stop(s) => {
            if let Some(r) = run.as_ref().filter(|r| r.id == s.run_id) {
                info!(run = %s.run_id, reason = %s.reason, "stop");
                if let Some(e) = r.engine.as_ref() {
                    e.stop();
                }
            }
        }
    }
    Ok(())
}

/// Moves the engine's reports into the outbox while disconnected.
fn drain_events(r: &mut Run, ser: &mut V2DeflateSerializer) {
    loop {
        let ev = match r.events.as_mut().map(|rx| rx.try_recv()) {
            Some(Ok(ev)) => ev,
            _ => return,
        };
        let m = event_message(r, ev, ser);
        r.outbox.hold(m);
    }
}

/// The message an engine event becomes.
fn event_message(r: &mut Run, ev: EngineEvent, ser: &mut V2DeflateSerializer) -> pb::WorkerMessage {
    match ev {
        EngineEvent::Interval(d) => {
            r.intervals_sent += 1;
            msg(Out::Interval(encode::interval_report(&r.id, &d, ser)))
        }
        EngineEvent::Finished(t) => {
            debug!(
                intended = t.intended,
                ok = t.ok,
                errors = t.errors,
                dropped = t.dropped,
                "run finished"
            );
            msg(Out::Done(pb::Done {
                run_id: r.id.clone(),
                intervals: r.intervals_sent,
                error: String::new(),
            }))
        }
    }
}
