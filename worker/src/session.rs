//! The worker's side of `WorkerSession.Session`: dial out, say hello, keep a
//! heartbeat, answer clock pings, take an assignment, start on the agreed
//! instant, and stream one report per second until done.
//!
//! The worker dials the coordinator (never the other way round), so it works
//! from pods and behind NAT. It reconnects by itself with backoff; a refusal
//! (wrong token, protocol mismatch) or a coordinator certificate it does not
//! trust is final and ends the process with an error, since retrying cannot
//! fix it.
//!
//! This module is the connection loop and the dispatch of the coordinator's
//! messages; what it delegates: accepting an assignment and probing the
//! target ([`crate::assignment`]), the data files of a run
//! ([`crate::inbox`]), keeping and resending reports across outages
//! ([`crate::outbox`]), and their wire encoding ([`crate::encode`]).

use crate::config::WorkerConfig;
use crate::engine::{self, EngineEvent, EngineHandle, EngineSetup};
use crate::heartbeat::Heartbeat;
use crate::inbox::Inbox;
use crate::outbox::{Batch, Outbox};
use crate::{assignment, encode};
use std::future::Future;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;
use tonic::Code;
use tracing::{debug, info, warn};
use volley_plan::Share;
use volley_proto::pb::worker_message::Msg as Out;
use volley_proto::pb::{
    self, coordinator_message::Msg as In, worker_session_client::WorkerSessionClient,
};
use volley_proto::{auth, clock, histogram, MAX_MESSAGE_BYTES, PROTOCOL_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("the coordinator refused this worker: {0}")]
    Refused(String),
    #[error("coordinator {0:?}: {1}")]
    BadAddress(String, String),
    #[error(
        "the coordinator's TLS certificate is not trusted: {0} (pass --tls-ca with the CA that signed it)"
    )]
    Untrusted(String),
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
    /// The assignment's `plain_histograms`: the latency histogram is not
    /// deflated either (see [`encode::interval_report`]).
    plain_histograms: bool,
    /// The reports held until their batch is due (the assignment's
    /// `report_every_s`; 1: none held).
    batch: Batch<pb::WorkerMessage>,
}

impl Run {
    /// From the assignment until its `Done` is sent: the coordinator judges
    /// the worker by the run's heartbeat timeout meanwhile.
    fn is_on(&self) -> bool {
        self.setup.is_some()
            || self.events.is_some()
            || self.engine.as_ref().is_some_and(|e| !e.is_finished())
    }
}

/// Runs the worker until `shutdown` completes or the coordinator refuses it.
///
/// A shutdown while the worker takes part in a run is a graceful leave:
/// the worker tells the coordinator ([`pb::Leaving`]), which re-splits its
/// share over the others from the next second and answers with the instant
/// its share ends; the worker sends what is due until then, reports every
/// second and `Done`, and only then returns. Without an answer within
/// [`LEAVE_ANSWER`] (a gone coordinator) it stops its load at once and
/// still reports what it measured. Outside a run it returns at once.
pub async fn run(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let endpoint = volley_proto::channel::endpoint(&config.coordinator, config.tls_ca.as_deref())
        .map_err(|e| WorkerError::BadAddress(config.coordinator.clone(), e))?;
    // The signal, as a flag every part of the session can wait on.
    let (asked_tx, asked) = watch::channel(false);
    let signal = async {
        shutdown.await;
        info!("asked to shut down");
        let _ = asked_tx.send(true);
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = signal => unreachable!("pending never completes"),
        r = serve(&endpoint, &config, asked) => r,
    }
}

async fn serve(
    endpoint: &Endpoint,
    config: &WorkerConfig,
    asked: watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    let mut leave = Leave::Staying;
    let mut run: Option<Run> = None;
    let mut inbox = Inbox::default();
    let mut backoff = Duration::from_millis(100);
    let mut lost_since: Option<Instant> = None;
    let mut enc = histogram::Encoder::new();
    loop {
        let session = Session {
            config,
            run: &mut run,
            inbox: &mut inbox,
            enc: &mut enc,
            leave: &mut leave,
            asked: asked.clone(),
        }
        .connect(endpoint)
        .await;
        match session {
            Err(SessionEnd::Refused(msg)) => {
                if let Some(r) = run.as_ref().and_then(|r| r.engine.as_ref()) {
                    r.stop();
                }
                return Err(WorkerError::Refused(msg));
            }
            Err(SessionEnd::Untrusted(why)) => {
                if let Some(r) = run.as_ref().and_then(|r| r.engine.as_ref()) {
                    r.stop();
                }
                return Err(WorkerError::Untrusted(why));
            }
            Err(SessionEnd::Shutdown) => break,
            Err(SessionEnd::Lost(why)) => {
                if *asked.borrow() {
                    // Shutting down, and the coordinator is gone: nobody is
                    // left to hand the share to or to report to.
                    warn!(cause = %why, "coordinator unreachable while shutting down; stopping");
                    break;
                }
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
                    drain_events(r, &mut enc);
                }
                tokio::select! {
                    _ = wait_asked(asked.clone()) => break,
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

/// Completes once the worker is asked to shut down (at once if it was).
async fn wait_asked(mut asked: watch::Receiver<bool>) {
    let _ = asked.wait_for(|a| *a).await;
}

/// How long a leaving worker waits for the coordinator to say where its
/// share ends before it stops its load on its own.
const LEAVE_ANSWER: Duration = Duration::from_secs(3);

/// How long a worker that is going waits for the coordinator to read its
/// last messages and end the session.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Where a worker asked to shut down stands with its run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Leave {
    /// Not asked, or asked and not yet told the coordinator.
    Staying,
    /// Told the coordinator and waiting for its `Stop` until this instant.
    Announced(Instant),
    /// The engine is winding down; the session ends after `Done`.
    Draining,
}

enum SessionEnd {
    Refused(String),
    /// The coordinator's certificate failed verification: retrying will not
    /// make it trusted (the CLI fails at once for the same reason).
    Untrusted(String),
    Lost(String),
    Shutdown,
}

/// One connected session's state, borrowed from [`run`].
struct Session<'a> {
    config: &'a WorkerConfig,
    run: &'a mut Option<Run>,
    inbox: &'a mut Inbox,
    enc: &'a mut histogram::Encoder,
    leave: &'a mut Leave,
    /// Set when the worker is asked to shut down.
    asked: watch::Receiver<bool>,
}

impl Session<'_> {
    /// Connects and serves one session; returns when the stream ends, or
    /// with [`SessionEnd::Shutdown`] when the worker may exit.
    async fn connect(&mut self, endpoint: &Endpoint) -> Result<(), SessionEnd> {
        let config = self.config;
        // An idle worker asked to shut down while it connects just goes.
        let channel = tokio::select! {
            c = endpoint.connect() => c.map_err(connect_failure)?,
            _ = wait_asked(self.asked.clone()), if self.sending().is_none() => {
                return Err(SessionEnd::Shutdown);
            }
        };
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
            threads: config.threads as u32,
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
        if let Some(r) = self.run.as_mut() {
            for m in r.outbox.replay() {
                if tx.send(m).await.is_err() {
                    return Err(SessionEnd::Lost("stream closed".into()));
                }
            }
        }
        let mut heartbeat = Heartbeat::default();
        loop {
            if let Err(end) = self.leave_step(&tx).await {
                if matches!(end, SessionEnd::Shutdown) {
                    // Half-close and let the coordinator read everything
                    // (the last interval, `Done`) before the connection goes:
                    // it ends its side once it has.
                    drop(tx);
                    let drained = async { while let Ok(Some(_)) = inbound.message().await {} };
                    let _ = tokio::time::timeout(CLOSE_WAIT, drained).await;
                }
                return Err(end);
            }
            let answer_by = match *self.leave {
                Leave::Announced(by) => Some(by),
                _ => None,
            };
            heartbeat.in_run(self.run.as_ref().is_some_and(Run::is_on));
            heartbeat.batch(self.run.as_ref().map_or(1, |r| r.batch.every()));
            let engine_events = self.run.as_mut().and_then(|r| r.events.as_mut());
            let asked = *self.asked.borrow();
            tokio::select! {
                _ = wait_asked(self.asked.clone()), if !asked => {}
                _ = sleep_until_opt(answer_by) => {
                    warn!("the coordinator did not answer the leave; stopping load now");
                    if let Some(e) = self.run.as_ref().and_then(|r| r.engine.as_ref()) {
                        e.stop();
                    }
                    *self.leave = Leave::Draining;
                }
                m = inbound.message() => match m {
                    Ok(Some(m)) => {
                        if let Some(m) = m.msg {
                            self.handle(m, &tx, &mut heartbeat).await?;
                        }
                    }
                    Ok(None) => return Err(SessionEnd::Lost("coordinator closed the stream".into())),
                    Err(s) => return Err(classify(s)),
                },
                ev = recv_opt(engine_events) => {
                    let r = self.run.as_mut().expect("events imply a run");
                    match ev {
                        Some(ev) => {
                            let index = match &ev {
                                EngineEvent::Interval(d) => Some(d.index),
                                EngineEvent::Finished(_) => None,
                            };
                            let m = event_message(r, ev, self.enc);
                            let due = r.batch.push(index, m);
                            // The report says the worker is alive: a
                            // heartbeat is due only after a silent interval.
                            if !due.is_empty() {
                                heartbeat.reset();
                            }
                            send_due(r, &tx, due).await?;
                        }
                        None => {
                            // The engine ended without its `Done` (it
                            // failed): what a batch still holds goes now.
                            r.events = None;
                            let due = r.batch.take();
                            send_due(r, &tx, due).await?;
                        }
                    }
                },
                _ = heartbeat.due() => {
                    let hb = pb::Heartbeat { unix_nanos: clock::unix_nanos() };
                    if tx.send(msg(Out::Heartbeat(hb))).await.is_err() {
                        return Err(SessionEnd::Lost("stream closed".into()));
                    }
                }
            }
        }
    }

    /// Moves a shutdown on: announces the leave when a run is under way,
    /// and ends the session once nothing of the run is left to send.
    /// The run this worker still has something of to send, if any.
    fn sending(&self) -> Option<&Run> {
        self.run
            .as_ref()
            .filter(|r| r.events.is_some() || r.engine.as_ref().is_some_and(|e| !e.is_finished()))
    }

    async fn leave_step(&mut self, tx: &mpsc::Sender<pb::WorkerMessage>) -> Result<(), SessionEnd> {
        if !*self.asked.borrow() {
            return Ok(());
        }
        match (*self.leave, self.sending()) {
            (Leave::Staying, Some(r)) => {
                let leaving = pb::Leaving {
                    run_id: r.id.clone(),
                    reason: "shut down (SIGTERM or SIGINT)".into(),
                };
                info!(run = %r.id, "leaving the run");
                tx.send(msg(Out::Leaving(leaving)))
                    .await
                    .map_err(|_| SessionEnd::Lost("stream closed".into()))?;
                *self.leave = Leave::Announced(Instant::now() + LEAVE_ANSWER);
                Ok(())
            }
            (_, Some(_)) => Ok(()),
            // Idle, or the run's `Done` is sent: give the coordinator the
            // last messages, then go.
            (_, None) => Err(SessionEnd::Shutdown),
        }
    }

    async fn handle(
        &mut self,
        m: In,
        tx: &mpsc::Sender<pb::WorkerMessage>,
        heartbeat: &mut Heartbeat,
    ) -> Result<(), SessionEnd> {
        if let In::Stop(s) = &m {
            if let Some(r) = self.run.as_mut().filter(|r| r.id == s.run_id) {
                // Stopped before the start: the run will not happen here.
                r.setup = None;
                if let Some(e) = r.engine.as_ref() {
                    if s.at_s > 0.0 && s.at_s.is_finite() {
                        info!(run = %s.run_id, at_s = s.at_s, reason = %s.reason, "share ends");
                        e.end_at(s.at_s);
                    } else {
                        info!(run = %s.run_id, reason = %s.reason, "stop");
                        e.stop();
                    }
                }
                if *self.asked.borrow() {
                    *self.leave = Leave::Draining;
                }
            }
            return Ok(());
        }
        handle(m, tx, self.run, self.inbox, self.config, heartbeat).await
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn recv_opt(rx: Option<&mut mpsc::UnboundedReceiver<EngineEvent>>) -> Option<EngineEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// A failed connect: [`SessionEnd::Untrusted`] when a certificate failed
/// verification anywhere in the error's chain, else lost (and retried).
fn connect_failure(e: tonic::transport::Error) -> SessionEnd {
    let mut why = e.to_string();
    let mut untrusted = false;
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        let text = s.to_string();
        untrusted |= text.to_ascii_lowercase().contains("certificate");
        why = format!("{why}: {text}");
        src = s.source();
    }
    if untrusted {
        SessionEnd::Untrusted(why)
    } else {
        SessionEnd::Lost(why)
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
    config: &WorkerConfig,
    heartbeat: &mut Heartbeat,
) -> Result<(), SessionEnd> {
    let send = |m: Out| async {
        tx.send(msg(m))
            .await
            .map_err(|_| SessionEnd::Lost("stream closed".into()))
    };
    match m {
        In::Welcome(w) => {
            heartbeat.welcome(&w);
            info!(
                coordinator = %w.coordinator_version,
                threads = config.threads,
                weight = config.weight,
                "connected to coordinator"
            );
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
                    let id = config.id.to_string();
                    assignment::prepare(a.plan, &files, a.share, a.share_from_s, &id).await
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
                plain_histograms: a.plain_histograms,
                batch: Batch::new(a.report_every_s),
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
            match engine::start(setup, start, config.threads, etx) {
                Ok(h) => {
                    info!(run = %r.id, engines = h.engines(), "started");
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
        // Handled by `Session::handle`, which knows whether it is leaving.
        In::Stop(_) => {}
    }
    Ok(())
}

/// Sends what a batch made due, in order, each noted in the outbox; when
/// the stream breaks, the rest waits in the outbox for the next connection,
/// after the one whose send failed.
async fn send_due(
    r: &mut Run,
    tx: &mpsc::Sender<pb::WorkerMessage>,
    due: Vec<pb::WorkerMessage>,
) -> Result<(), SessionEnd> {
    let mut due = due.into_iter();
    while let Some(m) = due.next() {
        let m = r.outbox.sending(m);
        if tx.send(m).await.is_err() {
            due.for_each(|m| r.outbox.hold(m));
            return Err(SessionEnd::Lost("stream closed".into()));
        }
    }
    Ok(())
}

/// Moves the engine's reports into the outbox while disconnected.
fn drain_events(r: &mut Run, enc: &mut histogram::Encoder) {
    // A batch the connection went before: older than what comes next.
    for m in r.batch.take() {
        r.outbox.hold(m);
    }
    loop {
        let ev = match r.events.as_mut().map(|rx| rx.try_recv()) {
            Some(Ok(ev)) => ev,
            _ => return,
        };
        let m = event_message(r, ev, enc);
        r.outbox.hold(m);
    }
}

/// The message an engine event becomes.
fn event_message(r: &mut Run, ev: EngineEvent, enc: &mut histogram::Encoder) -> pb::WorkerMessage {
    match ev {
        EngineEvent::Interval(d) => {
            r.intervals_sent += 1;
            let report = encode::interval_report(&r.id, &d, r.plain_histograms, enc);
            msg(Out::Interval(report))
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
