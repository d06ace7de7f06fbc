//! `volley-target`: the built-in target server, the endpoint used by the
//! quickstart, the tests, the benchmarks and `helm test`, for every protocol
//! Volley speaks. `volley target` and local mode both start it through
//! [`run`]; it shares nothing with the worker, so neither carries the other.
//!
//! One listener ([`serve`]) answers HTTP/1.1 and HTTP/2 with prior knowledge
//! (h2c): the first bytes of a connection tell them apart (`preface.rs`), at
//! no cost to HTTP/1.1, whose first read is simply handed on. Over HTTP/2 a
//! request whose `content-type` starts with `application/grpc` is a unary
//! call to a generic echo service: any method path, the reply message is the
//! request message (`http2.rs`, `grpc.rs`). A second listener ([`serve_tcp`])
//! echoes length-prefixed frames (`tcp.rs`).
//!
//! A load tester needs something to point at whose behaviour is known
//! exactly, so every knob here is deterministic, and shared by all protocols
//! of one [`Target`] (one error counter, one queue):
//!
//! - `error_rate` fails an exact, evenly spread fraction of requests
//!   (`fraction.rs`), so tests can assert error counts to the request. An
//!   injected error is HTTP `500`, `grpc-status` 14 (`UNAVAILABLE`), or, for
//!   framed TCP, which has no status, the connection closed instead of the
//!   reply;
//! - `delay` adds fixed latency, with timers rather than busy waiting;
//! - `capacity` serves requests through one FIFO queue at a fixed rate
//!   (`capacity.rs`), so overload shows as latency growing linearly and a
//!   burst leaves a backlog that drains at a computable rate;
//! - `GET /__volley/stats` (HTTP/1.1 or HTTP/2) reports what the server
//!   answered, so a test can check that counts add up on both sides.
//!
//! It is also the baseline for throughput benchmarks, so the HTTP/1.1 fast
//! path (no delay, no capacity) reuses per-connection buffers, answers
//! pipelined requests with one write and does not allocate per request
//! (`http1.rs`); the TCP echo writes pipelined replies straight from its read
//! buffer, one write per batch.

mod capacity;
mod chunked;
mod error;
mod fraction;
mod grpc;
mod http1;
mod http2;
mod linger;
mod preface;
mod request;
mod response;
mod tcp;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use capacity::Fifo;
use fraction::ErrorFraction;
use response::Responses;

/// How the target behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    /// Fixed extra latency per request, counted from its arrival (or, with a
    /// capacity, from when it leaves the queue).
    pub delay: Duration,
    /// Fraction of requests failed, clamped to `0.0..=1.0`. Exact and
    /// deterministic: the first `n` requests contain `floor(n · rate)` errors.
    pub error_rate: f64,
    /// Body bytes of each HTTP `200` response.
    pub body_size: usize,
    /// Maximum requests per second, served through one FIFO queue; `None`
    /// (or a value that is not a positive finite number) means unlimited.
    pub capacity: Option<f64>,
}

impl Default for TargetConfig {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            error_rate: 0.0,
            body_size: 64,
            capacity: None,
        }
    }
}

/// What the target has answered, over all its protocols; shared with the
/// caller of [`serve`] and reported by `GET /__volley/stats`.
#[derive(Debug, Default)]
pub struct TargetStats {
    ok: AtomicU64,
    errors: AtomicU64,
    connections: AtomicU64,
}

impl TargetStats {
    /// Requests answered, `ok() + errors()`; refused requests (HTTP 4xx, a
    /// malformed gRPC message, an oversized frame), requests left unanswered
    /// behind an injected TCP error, and the stats endpoint itself are not
    /// counted.
    pub fn requests(&self) -> u64 {
        self.ok() + self.errors()
    }

    /// Requests answered successfully: HTTP `200`, `grpc-status` 0, or an
    /// echoed frame.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Requests failed by injection: HTTP `500`, `grpc-status` 14, or a TCP
    /// connection closed instead of replying.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Connections accepted so far, on every listener.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Adds a batch of answers; one atomic add per batch keeps the counters
    /// off the per-request path.
    fn record(&self, ok: u64, errors: u64) {
        if ok > 0 {
            self.ok.fetch_add(ok, Ordering::Relaxed);
        }
        if errors > 0 {
            self.errors.fetch_add(errors, Ordering::Relaxed);
        }
    }
}

/// One target server: its configuration, error counter, capacity queue and
/// statistics, shared by every listener it serves, so that an HTTP listener
/// and a TCP listener of one `volley target` fail an exact fraction and
/// queue in one FIFO together. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Target {
    shared: Arc<Shared>,
}

impl Target {
    pub fn new(config: &TargetConfig, stats: Arc<TargetStats>) -> Self {
        Self {
            shared: Arc::new(Shared::new(config, stats)),
        }
    }

    /// Serves HTTP/1.1, HTTP/2 with prior knowledge and gRPC on `listener`
    /// until `shutdown` completes; returns after closing the listener and
    /// the open connections.
    ///
    /// Errors on single connections are logged at debug level and never end
    /// the server; nor do failed accepts (running out of file descriptors
    /// under load is a condition to wait out, not a reason to stop).
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        accept_loop(listener, &self.shared, shutdown, preface::serve_connection).await
    }

    /// Serves the framed-TCP echo on `listener` until `shutdown` completes,
    /// like [`Target::serve`].
    pub async fn serve_tcp(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        accept_loop(listener, &self.shared, shutdown, tcp::serve_connection).await
    }

    /// Serves every listener in `listeners` until `shutdown` completes, like
    /// [`run`], counting into this target's statistics.
    pub async fn run(
        &self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        // One shutdown for both accept loops.
        let (stop, stopped) = watch::channel(false);
        let wait = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let signal = async {
            shutdown.await;
            let _ = stop.send(true);
        };
        let http = async {
            match listeners.http {
                Some(l) => self.serve(l, wait(stopped.clone())).await,
                None => Ok(()),
            }
        };
        let tcp = async {
            match listeners.tcp {
                Some(l) => self.serve_tcp(l, wait(stopped.clone())).await,
                None => Ok(()),
            }
        };
        let ((), http, tcp) = tokio::join!(signal, http, tcp);
        http.and(tcp)
    }
}

/// The listeners one target serves; either may be absent.
#[derive(Debug, Default)]
pub struct Listeners {
    /// HTTP/1.1, HTTP/2 with prior knowledge (h2c) and gRPC.
    pub http: Option<TcpListener>,
    /// The framed-TCP echo.
    pub tcp: Option<TcpListener>,
}

/// Runs one target with `config` on every listener in `listeners` until
/// `shutdown` completes, and returns what it answered. The listeners share
/// one error fraction, one queue and one [`TargetStats`]. This is how
/// `volley target` and local mode start the built-in target.
pub async fn run(
    config: TargetConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> io::Result<Arc<TargetStats>> {
    let stats = Arc::new(TargetStats::default());
    Target::new(&config, Arc::clone(&stats))
        .run(listeners, shutdown)
        .await?;
    Ok(stats)
}

/// Serves HTTP/1.1, HTTP/2 with prior knowledge and gRPC on `listener` until
/// `shutdown` completes; see [`Target::serve`]. Use a [`Target`] to share
/// one error counter and queue with a TCP listener.
pub async fn serve(
    listener: TcpListener,
    config: TargetConfig,
    stats: Arc<TargetStats>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    Target::new(&config, stats).serve(listener, shutdown).await
}

/// Serves the framed-TCP echo on `listener` until `shutdown` completes; see
/// [`Target::serve_tcp`].
pub async fn serve_tcp(
    listener: TcpListener,
    config: TargetConfig,
    stats: Arc<TargetStats>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    Target::new(&config, stats)
        .serve_tcp(listener, shutdown)
        .await
}

/// Accepts connections and runs `connection` on each until `shutdown`.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    shared: &Arc<Shared>,
    shutdown: impl Future<Output = ()>,
    connection: F,
) -> io::Result<()>
where
    F: Fn(TcpStream, Arc<Shared>) -> Fut,
    Fut: Future<Output = io::Result<()>> + Send + 'static,
{
    // Owning the connection tasks lets shutdown stop them too, so a stopped
    // target does not keep answering on old connections.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            // Reap finished connections so the set does not grow.
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                // Cancelled tasks cannot occur before shutdown; a panic is a bug.
                if let Err(cause) = joined {
                    warn!(%cause, "target connection task panicked");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
                    let served = connection(stream, Arc::clone(shared));
                    connections.spawn(async move {
                        if let Err(cause) = served.await {
                            debug!(%peer, %cause, "target connection ended with an error");
                        }
                    });
                }
                Err(cause) if is_connection_error(&cause) => {
                    debug!(%cause, "target accept failed");
                }
                Err(cause) => {
                    // Typically EMFILE: pause rather than spin on it.
                    warn!(%cause, "target accept failed; pausing");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    connections.shutdown().await;
    Ok(())
}

/// Errors that concern one incoming connection, not the listener.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Per-server state shared by all connections.
#[derive(Debug)]
struct Shared {
    responses: Responses,
    /// `None` when zero, so the fast path can skip reading the clock.
    delay: Option<Duration>,
    fifo: Option<Fifo>,
    errors: ErrorFraction,
    stats: Arc<TargetStats>,
}

impl Shared {
    fn new(config: &TargetConfig, stats: Arc<TargetStats>) -> Self {
        Self {
            responses: Responses::new(config.body_size),
            delay: Some(config.delay).filter(|d| !d.is_zero()),
            fifo: config.capacity.and_then(|c| Fifo::new(c, Instant::now())),
            errors: ErrorFraction::new(config.error_rate),
            stats,
        }
    }

    /// Whether responses wait for a due time at all.
    fn timed(&self) -> bool {
        self.delay.is_some() || self.fifo.is_some()
    }

    /// When the response to a request arriving at `arrival` may be written:
    /// after the queue (if any), plus the delay.
    fn due(&self, arrival: Instant) -> Instant {
        let served = self
            .fifo
            .as_ref()
            .map_or(arrival, |fifo| fifo.depart(arrival));
        capacity::add_or_far(served, self.delay.unwrap_or_default())
    }
}
