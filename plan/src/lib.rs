//! Pure load-plan logic shared by the coordinator and the workers.
//!
//! Nothing here knows about tokio, tonic or sockets, so all of it is tested
//! fast and exhaustively:
//!
//! - [`model`]: the domain types of a plan (target, load settings, stages) and
//!   their validation, the single place that says what a sane plan is.
//! - [`rate`]: the whole-cluster rate curve built from the stages, its integral
//!   (how many requests are due by time *t*) and the inverse (when request *k*
//!   is due).
//! - [`mix`]: which of several weighted request definitions each arrival
//!   sends, exact per block and the same on every worker.
//! - [`partition`]: splitting the one global arrival sequence into interleaved
//!   shares proportional to worker weights (the idea of k6's execution
//!   segments).
//! - [`template`]: `{{ ... }}` in paths, headers and bodies, compiled once
//!   and rendered per arrival as a pure function of (seed, seq).
//! - [`data`]: `[[data]]` sets (CSV, JSON Lines) that templates draw rows
//!   from.
//! - [`expect`]: response checks and their compiled form.
//! - [`outcome`]: how a request ended (the error kinds) and how endings are
//!   counted (per kind, per span, per request definition): the one
//!   vocabulary of workers and coordinator.
//! - [`schedule`]: the send times of one worker's share, uniform or Poisson,
//!   identical to what a single perfect generator would send.

pub mod data;
pub mod expect;
pub mod mix;
pub mod model;
pub mod outcome;
pub mod partition;
pub mod rate;
pub mod schedule;
pub mod template;

pub use data::DataSet;
pub use expect::{Check, Checker, Expect, Rule, StatusMatch};
pub use mix::RequestMix;
pub use model::{
    Arrival, Body, CompiledRequest, Load, Plan, PlanError, Protocol, Request, Stage, Target, Tls,
};
pub use outcome::{Counts, DropCause, DropCounts, ErrorKind, KindCounts, RequestCounts};
pub use partition::{Partition, PartitionError, Share};
pub use rate::RateCurve;
pub use schedule::ShareSchedule;
pub use template::Template;
