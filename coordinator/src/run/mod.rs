//! One run, from submission to report.
//!
//! - [`setup`]: wait for workers, measure their clocks (NTP-style), partition
//!   the schedule, assign, wait until every worker is ready, start everyone on
//!   one instant.
//! - [`collect`]: merge what the workers stream back, publish each second,
//!   re-split the share of a lost worker, take in joiners, honour stops and
//!   abort thresholds, and build the report.
//! - [`members`]: who owns which share when (pure bookkeeping).
//! - [`sink`]: the run's events, for the client and for clients that attach
//!   again.
//! - [`resume`]: picking a run up from `--data-dir` after a restart.

pub mod collect;
pub mod members;
pub mod resume;
pub mod setup;
pub mod sink;

use crate::report::Report;
use crate::scenario::Scenario;
use crate::state::Coordinator;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tonic::Status;
use tracing::{info, warn};
use volley_plan::RateCurve;
use volley_proto::pb;
use volley_proto::pb::run_event::Event as Ev;

pub struct RunSpec {
    pub scenario: Scenario,
    pub min_workers: usize,
    pub wait: Duration,
}

/// Where a run's events go (see [`sink`]).
pub type Events = sink::Sink;

/// Why a run could not complete, with whatever report it still has.
pub struct Failure {
    pub message: String,
    pub report: Option<Box<Report>>,
}

pub fn fail(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        report: None,
    }
}

pub async fn send(events: &Events, e: Ev) {
    events.send(e).await;
}

pub async fn say(events: &Events, level: &str, text: impl Into<String>) {
    let m = pb::RunMessage {
        level: level.into(),
        text: text.into(),
    };
    send(events, Ev::Message(m)).await;
}

/// What a coordinator needs to resume a run after a restart.
#[derive(Debug, Clone)]
pub struct Source {
    pub scenario_toml: String,
    pub scenario_name: String,
    pub builtin_target_url: String,
    /// The files the scenario references (`body_file`, `tls_ca`, data
    /// files), by the name it gives them, as the client read them.
    pub files: BTreeMap<String, Vec<u8>>,
    /// `--set NAME=VALUE` overrides of `[vars]`.
    pub vars: Vec<(String, String)>,
    /// The environment variables the scenario names, as the client read
    /// them (the coordinator's own environment is not the user's).
    pub env: Vec<(String, String)>,
}

impl Source {
    /// The scenario to run: parsed and validated, its files resolved from
    /// what the client sent, with the built-in target's URL filled in when
    /// the client started one.
    pub fn scenario(&self) -> Result<Scenario, String> {
        let file = if self.scenario_name.is_empty() {
            "scenario"
        } else {
            &self.scenario_name
        };
        let read = |name: &str| {
            self.files
                .get(name)
                .cloned()
                .ok_or_else(|| "the client did not send this file with the scenario".to_owned())
        };
        // The environment is the one the client read, not the
        // coordinator's own.
        let env = |name: &str| {
            self.env
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let inputs = crate::scenario::Inputs {
            files: &read,
            vars: &self.vars,
            env: &env,
        };
        let mut scenario = crate::scenario::parse_with(&self.scenario_toml, file, &inputs)
            .map_err(|e| e.to_string())?;
        if let crate::scenario::ScenarioTarget::Builtin(_) = scenario.target {
            if self.builtin_target_url.is_empty() {
                return Err(format!(
                    "{file}: target.builtin: the built-in target runs only with `volley run` in local mode; \
                     in cluster mode set target.url (for example the chart's target Service)"
                ));
            }
            scenario.plan.target.url = self.builtin_target_url.clone();
            scenario
                .plan
                .validate()
                .map_err(|e| format!("{file}: {e}"))?;
        }
        Ok(scenario)
    }
}

/// Runs a submitted scenario to its end and sends the `finished` event.
pub async fn execute(
    coord: Arc<Coordinator>,
    spec: RunSpec,
    source: Source,
    client: mpsc::Sender<Result<pb::RunEvent, Status>>,
) {
    let run_id = new_run_id();
    info!(run = %run_id, scenario = %spec.scenario.name, "run submitted");
    let events = Arc::new(sink::Sink::new(Some(client)));
    coord.metrics.run_started();
    let info = crate::state::RunInfo {
        scenario: spec.scenario.name.clone(),
        duration_s: RateCurve::new(&spec.scenario.plan.stages).end(),
        start_unix_nanos: None,
    };
    let stop = coord.register_run(&run_id, events.clone(), info);
    let accepted = pb::RunAccepted {
        run_id: run_id.clone(),
    };
    send(&events, Ev::Accepted(accepted)).await;
    let result = run(&coord, &run_id, &spec, &source, &events, stop).await;
    finish(&coord, &run_id, &events, result).await;
}

/// Sends the `finished` event and keeps the report.
pub async fn finish(
    coord: &Coordinator,
    run_id: &str,
    events: &Events,
    result: Result<Report, Failure>,
) {
    coord.registry().release(run_id);
    coord.metrics.run_ended();
    let (outcome, error, report) = match result {
        Ok(report) => ("completed", String::new(), Some(report)),
        Err(f) => {
            warn!(run = %run_id, cause = %f.message, "run failed");
            ("failed", f.message, f.report.map(|r| *r))
        }
    };
    // One copy, shared by the ended run and the event (and every client).
    let report_json = report
        .as_ref()
        .map(|r| bytes::Bytes::from(r.to_json()))
        .unwrap_or_default();
    coord.record_end(
        run_id,
        outcome != "completed",
        error.clone(),
        report.as_ref().map(|r| (r, report_json.clone())),
    );
    let finished = pb::RunFinished {
        run_id: run_id.to_string(),
        outcome: outcome.into(),
        error,
        report_json,
    };
    send(events, Ev::Finished(finished)).await;
}

/// What the user is told when the run's workers send their reports a few
/// seconds at a time (see [`crate::merge::report_every`]).
fn batch_notice(config: &crate::state::CoordinatorConfig, workers: usize) -> Option<String> {
    let every = config.report_every(workers);
    (every > 1).then(|| {
        format!(
            "{workers} workers send their reports {every} seconds at a time, to stay within \
             --max-reports-per-second {}: the live view and abort thresholds lag by up to {} s, \
             and a worker is declared lost after {:?} of silence; every second is still merged exactly",
            config.max_reports_per_second,
            every - 1,
            config.run_timeout(every),
        )
    })
}

async fn run(
    coord: &Coordinator,
    run_id: &str,
    spec: &RunSpec,
    source: &Source,
    events: &Events,
    stop: tokio::sync::watch::Receiver<Option<String>>,
) -> Result<Report, Failure> {
    let data = setup::data_payload(&spec.scenario.plan, &source.files).map_err(fail)?;
    let idle = setup::wait_for_workers(coord, spec, events).await?;
    let mut started = setup::start(coord, run_id, spec, events, idle, &data).await?;
    coord.run_started(run_id, started.start_nanos);
    let warnings = std::mem::take(&mut started.warnings);
    let batched = batch_notice(&coord.config, started.members.len());
    let mut collector = collect::Collector::new(coord, run_id, spec, source, events, started, data);
    for w in &warnings {
        collector.note_at_start("warn", w);
    }
    if let Some(n) = batched {
        say(events, "info", n.clone()).await;
        collector.note_at_start("info", &n);
    }
    for n in &spec.scenario.notices {
        collector.note_at_start("info", n);
    }
    collector.run(stop).await
}

/// `20261127-101500-1a2b3c`: sortable, and unique enough with the suffix.
fn new_run_id() -> String {
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let stamp: String = now
        .chars()
        .filter(|c| c.is_ascii_digit())
        .take(14)
        .collect();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}-{}", &stamp[..8], &stamp[8..], &suffix[..6])
}
