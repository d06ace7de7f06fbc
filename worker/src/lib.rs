//! The Volley worker: the traffic engine and its session with the
//! coordinator. (The built-in target server is the `volley-target` crate: a
//! worker only sends load, so it does not carry one.)
//!
//! - [`engine`]: open-model, coordinated-omission-correct traffic with
//!   per-second HdrHistograms.
//! - [`session`]: the gRPC session a worker holds with its coordinator
//!   (hello, heartbeats, clock pings, assignments, interval reports): the
//!   connection loop and the dispatch of the coordinator's messages.
//! - [`assignment`]: accepting an assignment: plan and share checked, the
//!   target probed before any load starts.
//! - [`inbox`]: a run's data files, as they arrive in chunks.
//! - [`outbox`]: a run's reports kept while the coordinator is away and
//!   resent after a reconnect (free of tokio and tonic).
//! - [`encode`]: the engine's per-second data as wire reports.
//! - [`config`]: the worker's settings, free of clap.
//! - [`resources`]: the worker's own memory and CPU, reported each second.

pub mod assignment;
pub mod config;
pub mod encode;
pub mod engine;
pub mod heartbeat;
pub mod inbox;
pub mod outbox;
pub mod resources;
pub mod session;

pub use config::WorkerConfig;
pub use session::run;
