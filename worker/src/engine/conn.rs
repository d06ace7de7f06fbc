//! Connection tasks and the job queue they share with the scheduler.
//!
//! Everything runs on one current-thread runtime, so the shared state is
//! `Rc` + `Cell`/`RefCell`: no locks, no atomics, no cross-thread wakeups on
//! the per-request path. The pool grows on demand: a job that finds no idle
//! connection opens a new one, up to the plan's `connections`.

use super::http1::{ReadError, Reader, RequestTemplate};
use super::outcome::ErrorKind;
use super::recorder::Recorder;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{timeout_at, Instant};

/// A request due at `sched` (in second `second` of the run), waiting for a
/// connection.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    pub sched: Instant,
    pub second: u32,
}

pub struct Shared {
    pub queue: RefCell<VecDeque<Job>>,
    pub rec: RefCell<Recorder>,
    notify: Notify,
    idle: Cell<usize>,
    open: Cell<usize>,
    max_conns: usize,
    stopping: Cell<bool>,
    addr: SocketAddr,
    template: RequestTemplate,
    timeout: Duration,
}

impl Shared {
    pub fn new(
        addr: SocketAddr,
        template: RequestTemplate,
        timeout: Duration,
        max_conns: usize,
    ) -> Rc<Shared> {
        Rc::new(Shared {
            queue: RefCell::new(VecDeque::with_capacity(1024)),
            rec: RefCell::new(Recorder::default()),
            notify: Notify::new(),
            idle: Cell::new(0),
            open: Cell::new(0),
            max_conns,
            stopping: Cell::new(false),
            addr,
            template,
            timeout,
        })
    }

    /// Queues a job and makes sure a connection will pick it up.
    #[inline]
    pub fn submit(self: &Rc<Self>, job: Job) {
        self.queue.borrow_mut().push_back(job);
        let idle = self.idle.get();
        if idle > 0 {
            self.idle.set(idle - 1);
            self.notify.notify_one();
        } else if self.open.get() < self.max_conns {
            self.open.set(self.open.get() + 1);
            tokio::task::spawn_local(connection(self.clone()));
        }
        // Otherwise every connection is busy; the first to finish takes it.
    }

    /// Connections currently open (or opening).
    pub fn open_connections(&self) -> usize {
        self.open.get()
    }

    /// Lets idle connections exit once the queue is empty.
    pub fn stop(&self) {
        self.stopping.set(true);
        self.idle.set(0);
        self.notify.notify_waiters();
    }

    /// Takes every queued job out (they will not be sent).
    pub fn clear_queue(&self) -> Vec<Job> {
        self.queue.borrow_mut().drain(..).collect()
    }
}

/// One keep-alive connection: takes jobs from the queue until stopped.
async fn connection(sh: Rc<Shared>) {
    let mut stream: Option<TcpStream> = None;
    let mut reader = Reader::default();
    loop {
        let job = loop {
            let next = sh.queue.borrow_mut().pop_front();
            if let Some(job) = next {
                break job;
            }
            if sh.stopping.get() {
                sh.open.set(sh.open.get() - 1);
                return;
            }
            sh.idle.set(sh.idle.get() + 1);
            sh.notify.notified().await;
        };
        serve(&sh, job, &mut stream, &mut reader).await;
    }
}

/// Sends one request and records how it ended, exactly once.
async fn serve(sh: &Shared, job: Job, stream: &mut Option<TcpStream>, reader: &mut Reader) {
    let start = Instant::now();
    // A request that waited for a connection longer than the timeout is not
    // sent at all: it has already failed from the caller's point of view.
    if start.saturating_duration_since(job.sched) > sh.timeout {
        sh.rec
            .borrow_mut()
            .error(job.second, ErrorKind::Timeout, None);
        return;
    }
    let deadline = start + sh.timeout;
    let mut retried = false;
    let mut counted_sent = false;
    loop {
        let reused = stream.is_some();
        if stream.is_none() {
            match timeout_at(deadline, TcpStream::connect(sh.addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    *stream = Some(s);
                    *reader = Reader::default();
                }
                Ok(Err(_)) | Err(_) => {
                    sh.rec
                        .borrow_mut()
                        .error(job.second, ErrorKind::Connect, None);
                    return;
                }
            }
        }
        let Some(s) = stream.as_mut() else { return };
        if !counted_sent {
            sh.rec.borrow_mut().sent(job.second);
            counted_sent = true;
        }
        let send = Instant::now();
        let result = timeout_at(
            deadline,
            reader.exchange(s, &sh.template.bytes, sh.template.is_head),
        )
        .await;
        let now = Instant::now();
        match result {
            Ok(Ok(info)) => {
                if info.status < 400 {
                    sh.rec
                        .borrow_mut()
                        .ok(job.second, now - job.sched, now - send);
                } else {
                    sh.rec
                        .borrow_mut()
                        .error(job.second, ErrorKind::Status, Some(info.status));
                }
                if info.close {
                    *stream = None;
                }
                return;
            }
            // A keep-alive connection the server had already closed: retry
            // once on a fresh one, as browsers and HTTP libraries do.
            Ok(Err(ReadError::Closed { clean: true })) if reused && !retried => {
                retried = true;
                *stream = None;
            }
            Ok(Err(_)) => {
                *stream = None;
                sh.rec
                    .borrow_mut()
                    .error(job.second, ErrorKind::Protocol, None);
                return;
            }
            Err(_elapsed) => {
                *stream = None;
                sh.rec
                    .borrow_mut()
                    .error(job.second, ErrorKind::Timeout, None);
                return;
            }
        }
    }
}
