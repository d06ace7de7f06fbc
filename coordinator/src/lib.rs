//! The Volley coordinator and the `volley` CLI.
//!
//! Pure logic (no tokio, no tonic):
//! - [`scenario`]: the TOML scenario file, parsed and validated into a plan;
//!   every error names the file, the field and what was expected.
//! - [`merge`]: exact merge of the workers' per-second histograms.
//! - [`report`]: the report model (the JSON contract), its building from
//!   merged data, and its Markdown rendering.
//! - [`wire`]: worker reports from the wire into domain types, validated.
//! - [`registry`]: the connected workers and their run routes.
//! - [`analysis`]: judging a run: threshold verdicts (with warn tiers and
//!   per-second abort checks), regressions against a baseline, and burst
//!   recovery.
//!
//! Services and orchestration:
//! - [`state`]: the coordinator's shared state.
//! - [`store`]: runs written to `--data-dir` as they happen, for resuming.
//! - [`service`]: the gRPC services (worker sessions, run control).
//! - [`run`]: one run, from submission to report.
//! - [`client`]: `volley run --coordinator`: submit, follow, write outputs.
//! - `local` (cargo feature `local`, on by default): the embedded default,
//!   coordinator, workers and the built-in target (`volley-target`) in one
//!   process, talking gRPC over loopback exactly as in a cluster. Without
//!   the feature the crate depends on neither `volley-worker` nor
//!   `volley-target`.
//! - [`output`]: the run directory and the live lines.
//! - [`metrics`]: Prometheus `/metrics`.
//! - [`exit`]: exit codes of the contract.
//! - [`verdict`]: baseline regression and the exit code a report warrants.

pub mod analysis;
pub mod client;
pub mod exit;
#[cfg(feature = "local")]
pub mod local;
pub mod merge;
pub mod metrics;
pub mod output;
pub mod registry;
pub mod report;
pub mod run;
pub mod scenario;
pub mod service;
pub mod state;
pub mod store;
pub mod uploads;
pub mod verdict;
pub mod wire;

pub use exit::{CliError, Exit};
pub use state::{Coordinator, CoordinatorConfig};
