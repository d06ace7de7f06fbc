//! The Volley coordinator and the `volley` CLI.
//!
//! The binary (`main.rs`, `cli.rs`) only parses flags into the settings
//! below (`TryFrom<ServeArgs> for ServeConfig` and the like), starts tracing
//! and calls in here.
//!
//! Pure logic (no tokio, no tonic):
//! - [`scenario`]: the TOML scenario file, parsed and validated into a plan;
//!   every error names the file, the field and what was expected.
//! - [`merge`]: exact merge of the workers' per-second histograms, one
//!   concept per file (merger, accumulators, resources, soak windows,
//!   apportioning).
//! - [`report`]: the report model (the JSON contract), its building from
//!   merged data, its tables (built once), and its Markdown and HTML
//!   renderings, which only draw them.
//! - [`analysis`]: judging a run: threshold verdicts (with warn tiers and
//!   per-second abort checks), regressions against a baseline, and burst
//!   recovery.
//!
//! At the gRPC edge (no I/O, but they speak tonic):
//! - [`wire`]: worker reports from the wire into domain types, validated;
//!   its errors become a `tonic::Status`.
//! - [`registry`]: the connected workers and their run routes (each a tokio
//!   channel of messages or `tonic::Status`es to the worker's stream).
//!
//! Services and orchestration:
//! - [`server`]: `volley serve`: [`ServeConfig`] (the token rule for
//!   listening beyond loopback, TLS) and [`serve`], which runs it.
//! - [`state`]: the coordinator's shared state.
//! - [`store`]: runs written to `--data-dir` as they happen, for resuming
//!   and for fetching their run directory later.
//! - [`runs`]: what `volley workers` and `volley runs` show (run states,
//!   verdicts) and its wire form.
//! - [`uploads`]: data files uploaded ahead of a run.
//! - [`service`]: the gRPC services (worker sessions, run control).
//! - [`run`]: one run, from submission to report.
//! - [`client`]: `volley run --coordinator`: submit, follow, write outputs.
//! - [`operate`]: the operator's commands on a running cluster: `volley
//!   workers`, `runs`, `stop`, `fetch`, `attach`.
//! - `local` (cargo feature `local`, on by default): the embedded default,
//!   coordinator, workers and the built-in target (`volley-target`) in one
//!   process, talking gRPC over loopback exactly as in a cluster; and
//!   `builtin`, `volley target` on the command line's listeners. Without
//!   the feature the crate depends on neither `volley-worker` nor
//!   `volley-target`, and both commands exit 2 saying so.
//! - [`output`]: the run directory and the live lines.
//! - [`metrics`]: Prometheus `/metrics`.
//! - [`otlp`]: the same metrics pushed to an OpenTelemetry collector (`--otlp-endpoint`).
//! - [`exit`]: exit codes of the contract.
//! - [`verdict`]: baseline regression and the exit code a report warrants.

pub mod analysis;
#[cfg(feature = "local")]
pub mod builtin;
pub mod client;
pub mod exit;
#[cfg(feature = "local")]
pub mod local;
pub mod merge;
pub mod metrics;
pub mod operate;
pub mod otlp;
pub mod output;
pub mod registry;
pub mod report;
pub mod run;
pub mod runs;
pub mod scenario;
pub mod server;
pub mod service;
pub mod state;
pub mod store;
pub mod uploads;
pub mod verdict;
pub mod wire;

pub use exit::{CliError, Exit};
pub use server::{serve, ServeConfig};
pub use state::{Coordinator, CoordinatorConfig};
