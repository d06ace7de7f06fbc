//! Connection tasks and the job queue they share with the scheduler.
//!
//! Everything runs on one current-thread runtime, so the shared state is
//! `Rc` + `Cell`/`RefCell`: no locks, no atomics, no cross-thread wakeups on
//! the per-request path. The pool grows on demand: a job that finds no idle
//! connection opens a new one, up to the plan's `connections`. A connection
//! is *idle* when it has room for another request (HTTP/1.1: none in
//! flight; HTTP/2: a free stream; framed TCP: room in the pipeline) and is
//! waiting for a job.
//!
//! The pool knows no protocol: what a connection does with its jobs is the
//! [`Client`] of the run's protocol, chosen once when the plan is prepared
//! (`engine::prepare`) and called only to open a connection, never per
//! request.

use super::check::Failure;
use super::deadline::Deadlines;
use super::dial::Dialer;
use super::outcome::ErrorKind;
use super::recorder::{Recorder, Tag};
use super::render::Renderer;
use super::timer::Kick;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use volley_plan::Checker;

/// A request due at `sched`, waiting for a connection.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    pub sched: Instant,
    pub tag: Tag,
    /// The global arrival index (`{{seq}}`, and what every other drawn
    /// value of a template is a function of).
    pub seq: u64,
    /// The stage the arrival was scheduled in (`{{stage}}`); only looked up
    /// when a template uses it, else 0.
    pub stage: u16,
}

/// A protocol's client: its requests, prepared once per run, and what one
/// of its connections does with the pool's jobs (HTTP/1.1, HTTP/2 and gRPC,
/// framed TCP).
pub trait Client: 'static {
    /// One connection: takes jobs from `pool` (`next_job`, `try_job`) and
    /// records how each ended, until the pool stops.
    fn connection(&self, pool: &Rc<Pool>) -> impl Future<Output = ()>;
}

/// Opens one connection task of the run's client.
type Open = Box<dyn Fn(&Rc<Pool>)>;

/// The job queue, the connections serving it and what they share: one per
/// run, on the engine's thread.
pub struct Pool {
    pub queue: RefCell<VecDeque<Job>>,
    pub rec: RefCell<Recorder>,
    notify: Notify,
    idle: Cell<usize>,
    /// Idle connections woken for a queued job that have not taken it yet
    /// (the scheduler runs on their thread, so they take it only once it
    /// yields): those queued jobs have a connection.
    promised: Cell<usize>,
    open: Cell<usize>,
    max_conns: usize,
    /// Requests in flight on one connection (HTTP/2 streams, pipelined
    /// frames).
    pub per_conn: usize,
    stopping: Cell<bool>,
    /// Spawns a connection of the run's client; called only when the pool
    /// grows (at most `max_conns` times while connections stay up).
    open_one: Open,
    /// Opens connections, each to the least used of the target's addresses.
    pub dialer: Dialer,
    pub timeout: Duration,
    /// Every connection's request deadline, swept by the scheduler.
    pub deadlines: Deadlines,
    /// Seed, data and names templated requests render with.
    pub renderer: Renderer,
    /// Each request definition's response checks (empty: default rules).
    checkers: Vec<Checker>,
    /// Wakes the scheduler when a reply lands after the next arrival's due
    /// time (see [`Kick`]).
    pub kick: Kick,
}

impl Pool {
    /// A pool whose connections are `client`'s.
    pub fn new<C: Client>(
        client: C,
        dialer: Dialer,
        timeout: Duration,
        max_conns: usize,
        per_conn: usize,
        renderer: Renderer,
        checkers: Vec<Checker>,
    ) -> Rc<Pool> {
        let client = Rc::new(client);
        let open_one: Open = Box::new(move |pool: &Rc<Pool>| {
            let (client, pool) = (client.clone(), pool.clone());
            tokio::task::spawn_local(async move {
                client.connection(&pool).await;
                pool.open.set(pool.open.get() - 1);
            });
        });
        Rc::new(Pool {
            queue: RefCell::new(VecDeque::with_capacity(1024)),
            rec: RefCell::new(Recorder::new(checkers.len())),
            notify: Notify::new(),
            idle: Cell::new(0),
            promised: Cell::new(0),
            open: Cell::new(0),
            max_conns,
            per_conn: per_conn.max(1),
            stopping: Cell::new(false),
            open_one,
            dialer,
            timeout,
            deadlines: Deadlines::default(),
            renderer,
            checkers,
            kick: Kick::default(),
        })
    }

    /// The response checks of request definition `req`; `None` when it has
    /// none (the default rules apply, and nothing else is looked at).
    #[inline]
    pub fn checker(&self, req: u16) -> Option<&Checker> {
        self.checkers
            .get(usize::from(req))
            .filter(|c| !c.is_empty())
    }

    /// Queues a job and makes sure a connection will pick it up.
    #[inline]
    pub fn submit(self: &Rc<Self>, job: Job) {
        self.queue.borrow_mut().push_back(job);
        let idle = self.idle.get();
        if idle > 0 {
            self.idle.set(idle - 1);
            self.promised.set(self.promised.get() + 1);
            self.notify.notify_one();
        } else if self.open.get() < self.max_conns {
            self.open.set(self.open.get() + 1);
            (self.open_one)(self);
        }
        // Otherwise every connection is busy; the first to finish takes it.
    }

    /// Whether requests are waiting for a connection with every connection
    /// open and busy: the pool, not the in-flight cap, holds them back
    /// (see `DropCause::ConnectionsBusy`). While the pool is still growing,
    /// each queued job has a connection opening for it.
    #[inline]
    pub fn waiting_for_connection(&self) -> bool {
        self.open.get() >= self.max_conns && self.queue.borrow().len() > self.promised.get()
    }

    /// Connections currently open (or opening).
    pub fn open_connections(&self) -> usize {
        self.open.get()
    }

    /// Lets idle connections exit once the queue is empty.
    pub fn stop(&self) {
        self.stopping.set(true);
        self.idle.set(0);
        self.promised.set(0);
        self.notify.notify_waiters();
    }

    /// Takes every queued job out (they will not be sent).
    pub fn clear_queue(&self) -> Vec<Job> {
        self.queue.borrow_mut().drain(..).collect()
    }

    /// The next job, waiting as an idle connection while there is none;
    /// `None` once the pool is stopping and the queue is empty.
    pub async fn next_job(&self) -> Option<Job> {
        loop {
            if let Some(job) = self.try_job() {
                return Some(job);
            }
            if self.stopping.get() {
                return None;
            }
            self.idle.set(self.idle.get() + 1);
            self.notify.notified().await;
            self.promised.set(self.promised.get().saturating_sub(1));
        }
    }

    /// The next job if one is queued.
    #[inline]
    pub fn try_job(&self) -> Option<Job> {
        self.queue.borrow_mut().pop_front()
    }

    /// A job that waited for a connection longer than the timeout is not
    /// sent at all: it has already failed from the caller's point of view.
    /// Records it and returns true in that case.
    #[inline]
    pub fn expired(&self, job: &Job, now: Instant) -> bool {
        if now.saturating_duration_since(job.sched) > self.timeout {
            self.fail(job, ErrorKind::Timeout);
            true
        } else {
            false
        }
    }

    /// Records a request that ended without a reply (or was never sent).
    /// It kicks the scheduler as a reply does ([`Kick::landed`]): in an
    /// error storm it would otherwise fall back to its timer. A clock read
    /// (vDSO, no syscall) on a path that only failures take.
    #[inline]
    pub fn fail(&self, job: &Job, kind: ErrorKind) {
        let mut rec = self.rec.borrow_mut();
        rec.error(job.tag, kind, None);
        let idle = rec.totals.outstanding() == 0;
        drop(rec);
        self.kick.landed(Instant::now(), idle);
    }

    /// Records a complete reply: ok, or not by the default rules or a
    /// check.
    #[inline]
    pub fn complete(&self, job: &Job, verdict: Result<(), Failure>, now: Instant, sent: Instant) {
        let mut rec = self.rec.borrow_mut();
        match verdict {
            Ok(()) => rec.ok(job.tag, now - job.sched, now - sent),
            Err(Failure::Status(s)) => rec.error(job.tag, ErrorKind::Status, Some(s)),
            Err(Failure::Check(i)) => rec.check_failed(job.tag, i),
        }
        let idle = rec.totals.outstanding() == 0;
        drop(rec);
        self.kick.landed(now, idle);
    }
}
