//! The open-model traffic engine.
//!
//! One OS thread per engine runs a current-thread tokio runtime with a
//! scheduler task and a pool of connection tasks. The scheduler wakes when
//! the next request is due, give or take the lag it may trade for fewer
//! wake-ups ([`pace`], `load.wake_gap`), or sooner when a reply lands after
//! that ([`timer::Kick`]); it hands every request that is due to the pool
//! with its *scheduled* time, and never waits for replies (open model).
//! Latency is
//! measured from that scheduled time, so a stalled target shows in the
//! latency of every request that was due during the stall (coordinated
//! omission corrected, as wrk2 and Hyperfoil do). A request is counted as
//! dropped, never silently skipped, with its cause ([`DropCause`]): due
//! while the worker already has `max_in_flight` outstanding (the cause is
//! `connections_busy` when requests are queued for a connection with every
//! connection busy, else `max_in_flight`), or reached by the scheduler more
//! than a second (or the timeout, when shorter) past due: `behind_schedule`,
//! the generator did not get the CPU in time.
//!
//! - [`conn`]: the job queue and the connection pool. The pool knows no
//!   protocol: it opens connections of a [`conn::Client`], chosen once per
//!   run in [`prepare`], the only place the engine looks at the protocol.
//! - [`http1`], [`http2`] (HTTP/2 and gRPC), [`tcp`] (framed messages): one
//!   `Client` per protocol (its prepared requests, connection loop and
//!   codec); they depend on `conn`, never on each other.
//! - [`net`]: connecting, TLS.
//! - [`dial`]: which of the target's addresses a new connection goes to
//!   (the name resolved again every `load.resolve_every`), and when a
//!   connection is replaced (`connection_lifetime`,
//!   `max_requests_per_connection`).
//! - [`render`]: the per-arrival context of templated requests.
//! - [`check`]: the order response checks are judged in, and what is kept
//!   of a reply body for them.
//! - [`recorder`]: per-second counters and histograms.
//! - [`outcome`]: the error kinds, and which one an I/O failure is.
//! - [`pace`]: when the scheduler wakes (`load.wake_gap`): the lag a
//!   request may take to share a wake-up.
//! - [`timer`]: a sub-millisecond wake-up for the scheduler, and the kick
//!   a reply gives it.
//! - [`deadline`]: request timeouts, swept by the scheduler.
//! - [`threads`]: several engines in one worker (`--threads`), their seconds
//!   added into one report.

pub mod check;
pub mod conn;
pub mod deadline;
pub mod dial;
pub mod flight;
pub mod http1;
pub mod http2;
pub mod net;
pub mod outcome;
pub mod pace;
pub mod recorder;
pub mod render;
pub mod tcp;
pub mod threads;
pub mod timer;

use conn::{Client, Job, Pool};
use recorder::{IntervalData, Tag, Totals};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::{sleep_until, Instant};
use volley_plan::model::{CompiledRequest, DEFAULT_WAKE_GAP};
use volley_plan::outcome::BEHIND_SCHEDULE_LIMIT;
use volley_plan::{DropCause, Plan, Protocol, RateCurve, RequestMix, Share, ShareSchedule};

/// Longest the scheduler sleeps, so a stop request is seen quickly even in a
/// stage with no traffic.
const MAX_NAP: Duration = Duration::from_millis(20);
/// How long an aborted run waits for requests already on the wire.
const ABORT_GRACE: Duration = Duration::from_secs(2);

/// What the engine reports to its session.
#[derive(Debug)]
pub enum EngineEvent {
    Interval(Box<IntervalData>),
    Finished(Totals),
}

/// Everything an engine needs, resolved and validated beforehand.
#[derive(Debug, Clone)]
pub struct EngineSetup {
    pub plan: Plan,
    pub share: Share,
    /// Seconds after t = 0 from which the share applies (0: from the start;
    /// later for a worker joining a run under way).
    pub share_from: f64,
    /// What the target's host name resolved to (at least one address);
    /// resolved again during the run every `load.resolve_every`.
    pub addrs: Vec<SocketAddr>,
    /// This worker's id, what `{{worker}}` writes.
    pub worker_id: String,
}

/// A change to the engine's part of the schedule while it runs.
#[derive(Debug)]
enum Control {
    /// A new share for requests due from this many seconds on.
    Reshare(f64, Share),
    /// Nothing is due from this many seconds on: the worker is leaving.
    EndAt(f64),
}

/// Where an engine's events go: straight to the session, or, for one of
/// several threads, to the thread that adds them up ([`threads::Merge`]).
enum Sink {
    Direct(UnboundedSender<EngineEvent>),
    Thread(usize, std::sync::mpsc::Sender<(usize, EngineEvent)>),
}

impl Sink {
    fn send(&self, ev: EngineEvent) {
        match self {
            Sink::Direct(tx) => {
                let _ = tx.send(ev);
            }
            Sink::Thread(t, tx) => {
                let _ = tx.send((*t, ev));
            }
        }
    }
}

/// A running engine (one thread or several): stop it, or wait for it.
pub struct EngineHandle {
    stop: Arc<AtomicBool>,
    controls: Vec<std::sync::mpsc::Sender<Control>>,
    /// The engine threads, then the one that merges their events.
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl EngineHandle {
    /// Switches to a new share for requests due from `from` seconds on (a
    /// worker was lost or joined). Must arrive before `from`.
    pub fn reshare(&self, from: f64, share: Share) {
        for (control, part) in self.controls.iter().zip(share.split(self.controls.len())) {
            let _ = control.send(Control::Reshare(from, part));
        }
    }

    /// Ends this engine's share at `at` seconds after t = 0 (the worker is
    /// leaving and its share goes to the others from then): everything due
    /// before it is sent and answered as in a normal run, then the engine
    /// drains and reports `Finished`. Must arrive before `at`.
    pub fn end_at(&self, at: f64) {
        for control in &self.controls {
            let _ = control.send(Control::EndAt(at));
        }
    }

    /// Asks the engine to stop sending; it drains and reports `Finished`.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// How many engine threads run this worker's share.
    pub fn engines(&self) -> usize {
        self.controls.len()
    }

    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the engine whose t = 0 is `start` (a std `Instant` on this
/// machine's monotonic clock): up to `threads` engine threads, as many as
/// [`threads::engines_for`] allows, each with its part of the share, whose
/// seconds reach `events` added up as one worker's.
pub fn start(
    setup: EngineSetup,
    start: std::time::Instant,
    threads: usize,
    events: UnboundedSender<EngineEvent>,
) -> std::io::Result<EngineHandle> {
    let stop = Arc::new(AtomicBool::new(false));
    let n = threads::engines_for(&setup, threads);
    let mut handle = EngineHandle {
        stop: stop.clone(),
        controls: Vec::with_capacity(n),
        threads: Vec::with_capacity(n + 1),
    };
    if n == 1 {
        spawn_engine(setup, start, &mut handle, Sink::Direct(events))?;
        return Ok(handle);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    for (t, part) in threads::split(&setup, n).into_iter().enumerate() {
        spawn_engine(part, start, &mut handle, Sink::Thread(t, tx.clone()))?;
    }
    drop(tx);
    let merge = std::thread::Builder::new()
        .name("volley-merge".into())
        .spawn(move || merge_threads(n, rx, events))?;
    handle.threads.push(merge);
    Ok(handle)
}

fn spawn_engine(
    setup: EngineSetup,
    start: std::time::Instant,
    handle: &mut EngineHandle,
    events: Sink,
) -> std::io::Result<()> {
    let stop = handle.stop.clone();
    let (control, controls) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("volley-engine".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime builds");
            let local = tokio::task::LocalSet::new();
            local.block_on(
                &rt,
                run(setup, Instant::from_std(start), stop, controls, events),
            );
            // A resolution still running (a slow DNS server) does not hold
            // the thread.
            drop(local);
            rt.shutdown_timeout(Duration::from_millis(100));
        })?;
    handle.controls.push(control);
    handle.threads.push(thread);
    Ok(())
}

/// Adds the events of `n` engine threads into one worker's, until every
/// thread has finished (or is gone: a thread that died is not waited for).
fn merge_threads(
    n: usize,
    rx: std::sync::mpsc::Receiver<(usize, EngineEvent)>,
    events: UnboundedSender<EngineEvent>,
) {
    let mut merge = threads::Merge::new(n);
    while let Ok((t, ev)) = rx.recv() {
        for ev in merge.take(t, ev) {
            let _ = events.send(ev);
        }
        if merge.all_finished() {
            return;
        }
    }
    // Every sender is gone without all `Finished`: report what came.
    for t in 0..n {
        for ev in merge.lost(t) {
            let _ = events.send(ev);
        }
    }
}

async fn run(
    setup: EngineSetup,
    start: Instant,
    stop: Arc<AtomicBool>,
    controls: std::sync::mpsc::Receiver<Control>,
    events: Sink,
) {
    let plan = &setup.plan;
    let sh = match prepare(&setup) {
        Ok(sh) => sh,
        Err(_) => {
            // Validated before the engine starts (assignment::prepare); there
            // is nothing to send.
            events.send(EngineEvent::Finished(Totals::default()));
            return;
        }
    };
    if let Some(every) = plan.load.resolve_every {
        if let Some(parts) = volley_plan::model::url_parts(&plan.target.url) {
            if dial::is_name(&parts.host) {
                let authority = format!("{}:{}", parts.host, parts.port);
                tokio::task::spawn_local(dial::refresh(sh.dialer.addrs.clone(), authority, every));
            }
        }
    }
    let max_in_flight = u64::from(plan.load.max_in_flight);
    let timeout = plan.target.timeout;
    // Past this, an arrival the scheduler only now reaches is dropped: the
    // generator, not the target, made it late (and past the timeout it
    // could only have timed out).
    let behind_limit = BEHIND_SCHEDULE_LIMIT.min(timeout);
    let weights: Vec<u32> = plan.target.requests.iter().map(|r| r.weight).collect();
    let mix = RequestMix::new(&weights);
    let curve = RateCurve::new(&plan.stages);
    let mut schedule = ShareSchedule::starting_at(
        curve,
        setup.share.clone(),
        plan.load.arrival,
        plan.load.seed,
        setup.share_from,
    );
    // Arrivals from `limit` on do not exist (a data set that stops after
    // its last row): the schedule ends there, for this worker as for all.
    // Arrivals due from `end_at` on are not this worker's: it is leaving.
    let limit = plan.arrival_limit().unwrap_or(u64::MAX);
    let mut end_at = f64::INFINITY;
    let within =
        |next: Option<(u64, f64)>, end_at: f64| next.filter(|&(k, t)| k < limit && t < end_at);
    let uses_stage = sh.renderer.uses_stage();
    let mut next = within(schedule.next(), end_at);
    let mut end = start + Duration::from_secs_f64(schedule.curve().end());
    // The second of the run an instant falls in (no further than the run's
    // last: seconds after it only ever hold nothing).
    let end_second = schedule.curve().end().ceil() as u32;
    let second_at =
        |at: Instant| (at.saturating_duration_since(start).as_secs() as u32).min(end_second);
    // Reports every second whose requests have all ended.
    let pace = std::cell::Cell::new(pace::Pace::new(plan.load.wake_gap, DEFAULT_WAKE_GAP));
    let flush = |sh: &Pool, now_second: u32, force: bool| {
        for data in sh.rec.borrow_mut().close(now_second, force) {
            if !data.service.is_empty() {
                let mut p = pace.get();
                let median = data.service.value_at_quantile(0.5);
                p.service_median(Duration::from_micros(median));
                pace.set(p);
            }
            events.send(EngineEvent::Interval(Box::new(data)));
        }
    };

    let mut wake_up = timer::Wake::new();
    wake_up.until(start).await;
    // The last timer wake-up planned (see `pace::Pace::timer`).
    let mut last_wake = start;
    let mut aborted = false;
    'schedule: loop {
        if stop.load(Ordering::Acquire) {
            aborted = true;
            break;
        }
        match controls.try_recv() {
            Ok(Control::Reshare(from, share)) => {
                // Take back the request not yet sent: from `from` on it may
                // be another worker's.
                schedule.reshare(from, share);
                next = within(schedule.next(), end_at);
            }
            Ok(Control::EndAt(at)) => {
                end_at = end_at.min(at.max(0.0));
                end = end.min(start + Duration::from_secs_f64(end_at));
                next = within(next, end_at);
            }
            Err(_) => {}
        }
        let now = Instant::now();
        while let Some((k, t)) = next {
            let due = start + Duration::from_secs_f64(t);
            if due > now {
                break;
            }
            let tag = Tag::new(t as u32, mix.pick(k) as u16);
            let mut rec = sh.rec.borrow_mut();
            rec.intended(tag);
            let at_cap = rec.totals.outstanding() > max_in_flight;
            let late = now.saturating_duration_since(due);
            // The queue is looked at only when the cap is reached.
            let queued = at_cap && sh.waiting_for_connection();
            if let Some(cause) = DropCause::classify(late, behind_limit, at_cap, queued) {
                rec.dropped(tag, cause);
            } else {
                drop(rec);
                let stage = if uses_stage {
                    schedule.curve().stage_at(t) as u16
                } else {
                    0
                };
                sh.submit(Job {
                    sched: due,
                    tag,
                    seq: k,
                    stage,
                });
            }
            next = within(schedule.next(), end_at);
        }
        sh.deadlines.sweep(now);
        let now_second = second_at(now);
        flush(&sh, now_second, false);
        // Until the run's end a reshare may still give this worker more to
        // send, so an exhausted schedule waits rather than ends.
        let due = next.map(|(_, t)| start + Duration::from_secs_f64(t));
        let wake = match due {
            Some(due) => due,
            None if now >= end => break 'schedule,
            None => end,
        };
        // A reply landing after `due` plus the budget runs the loop at
        // once, on a wake-up already paid for (`timer::Kick`); the timer is
        // the fallback (`pace`).
        let pace = pace.get();
        sh.kick
            .due_at(due.map(|d| d + pace.budget()), pace.is_auto());
        let boundary = start + Duration::from_secs(u64::from(now_second) + 1);
        let in_flight = sh.rec.borrow().totals.outstanding() > 0;
        let mut wake = pace.timer(wake, last_wake, in_flight);
        if let Some(timeout) = sh.deadlines.earliest() {
            wake = wake.min(timeout);
        }
        let wake = wake.min(boundary).min(now + MAX_NAP);
        if !wake_up.arm(wake) {
            last_wake = wake;
        } else if let timer::Woken::Timer(at) = wake_up.wait(&sh.kick).await {
            last_wake = at;
        }
    }
    sh.kick.due_at(None, false);

    // Drain: let what is queued and on the wire finish, reporting seconds as
    // they complete. Queued jobs time out by themselves (see `conn::serve`),
    // so this is bounded by about twice the timeout.
    if aborted {
        let jobs = sh.clear_queue();
        let mut rec = sh.rec.borrow_mut();
        // They were waiting for a connection.
        for job in jobs {
            rec.dropped(job.tag, DropCause::ConnectionsBusy);
        }
    }
    let grace = if aborted {
        ABORT_GRACE.min(timeout)
    } else {
        timeout * 2 + Duration::from_secs(1)
    };
    let drain_deadline = Instant::now() + grace;
    sh.stop();
    loop {
        let now = Instant::now();
        sh.deadlines.sweep(now);
        flush(&sh, second_at(now), false);
        if sh.rec.borrow().totals.outstanding() == 0 || now >= drain_deadline {
            break;
        }
        sleep_until((now + Duration::from_millis(5)).min(drain_deadline)).await;
    }
    // Whatever is still outstanding never got an answer: it timed out.
    sh.rec.borrow_mut().time_out_the_rest();
    flush(&sh, end_second, true);
    let totals = sh.rec.borrow().totals;
    events.send(EngineEvent::Finished(totals));
}

/// The connection pool and prepared requests of a plan: templates and
/// checks compiled, and every request whose bytes do not depend on the
/// arrival built once. The one place the engine dispatches on the protocol.
pub fn prepare(setup: &EngineSetup) -> Result<Rc<Pool>, String> {
    let target = &setup.plan.target;
    let compiled = setup.plan.compile_requests().map_err(|e| e.to_string())?;
    let per_conn = setup.plan.load.per_connection as usize;
    match target.protocol {
        Protocol::Http1 => {
            let requests = http1::Requests::new(&target.url, &target.requests, &compiled)?;
            pool(requests, 1, setup, compiled)
        }
        Protocol::Http2 => pool(
            http2::Requests::new(target, &compiled, false)?,
            per_conn,
            setup,
            compiled,
        ),
        Protocol::Grpc => pool(
            http2::Requests::new(target, &compiled, true)?,
            per_conn,
            setup,
            compiled,
        ),
        Protocol::Tcp => pool(
            tcp::Frames::new(&target.requests, &compiled)?,
            per_conn,
            setup,
            compiled,
        ),
    }
}

/// A pool of `client`'s connections, each with up to `per_conn` requests in
/// flight.
fn pool<C: Client>(
    client: C,
    per_conn: usize,
    setup: &EngineSetup,
    compiled: Vec<CompiledRequest>,
) -> Result<Rc<Pool>, String> {
    let plan = &setup.plan;
    let renderer = render::Renderer::new(plan, &setup.worker_id, &compiled);
    let checkers = compiled.into_iter().map(|c| c.checker).collect();
    if setup.addrs.is_empty() {
        return Err("the target resolves to no address".into());
    }
    let renewal = dial::Renewal {
        lifetime: plan.load.connection_lifetime,
        max_requests: plan.load.max_requests_per_connection,
    };
    Ok(Pool::new(
        client,
        dial::Dialer::new(
            net::Connector::new(&plan.target)?,
            dial::Addresses::new(&setup.addrs),
            renewal,
        ),
        plan.target.timeout,
        plan.load.connections as usize,
        per_conn,
        renderer,
        checkers,
    ))
}
