//! The Volley worker: the traffic engine and its session with the
//! coordinator. (The built-in target server is the `volley-target` crate: a
//! worker only sends load, so it does not carry one.)
//!
//! - [`engine`]: open-model, coordinated-omission-correct traffic with
//!   per-second HdrHistograms.
//! - [`session`]: the gRPC session a worker holds with its coordinator
//!   (hello, heartbeats, clock pings, assignments, interval reports).
//! - [`config`]: the worker's settings, free of clap.
//! - [`resources`]: the worker's own memory and CPU, reported each second.

pub mod config;
pub mod engine;
pub mod inbox;
pub mod resources;
pub mod session;

pub use config::WorkerConfig;
pub use session::run;
