//! The Volley worker: the traffic engine, its session with the coordinator,
//! and the built-in target server.
//!
//! - [`engine`]: open-model, coordinated-omission-correct traffic with
//!   per-second HdrHistograms.
//! - [`session`]: the gRPC session a worker holds with its coordinator
//!   (hello, heartbeats, clock pings, assignments, interval reports).
//! - [`config`]: the worker's settings, free of clap.
//! - [`resources`]: the worker's own memory and CPU, reported each second.
//! - [`target`]: the built-in target server (`volley target`) used by the
//!   quickstart, the tests and cluster self-checks.

pub mod config;
pub mod engine;
pub mod inbox;
pub mod resources;
pub mod session;
pub mod target;

pub use config::WorkerConfig;
pub use session::run;
