//! `volley run`'s client side: validate the scenario locally, submit it to a
//! coordinator, follow its events, write the run directory, and turn the
//! outcome into an exit code.

use crate::exit::{CliError, Exit};
use crate::output::{self, RunDir};
use crate::report::Report;
use crate::scenario::{self, ScenarioTarget};
use std::path::PathBuf;
use std::time::Duration;
use tonic::Code;
use volley_proto::pb::run_control_client::RunControlClient;
use volley_proto::pb::run_event::Event as Ev;
use volley_proto::{auth, pb, MAX_MESSAGE_BYTES};

#[derive(Debug, Clone)]
pub struct SubmitOptions {
    /// `http://host:port` of the coordinator.
    pub coordinator: String,
    pub token: Option<String>,
    pub scenario: PathBuf,
    pub min_workers: u32,
    pub wait: Duration,
    /// Run directory; `runs/<run_id>` when not given.
    pub out: Option<PathBuf>,
    /// Set by local mode when it started the built-in target.
    pub builtin_target_url: Option<String>,
    /// PEM CA to trust for an `https://` coordinator.
    pub tls_ca: Option<Vec<u8>>,
    /// Print the live line each second.
    pub live: bool,
    /// Compare with this saved report (regressions make the exit code 1).
    pub baseline: Option<crate::verdict::Baseline>,
    /// A threshold in its warning band fails the run too.
    pub strict: bool,
}

/// Reads and validates a scenario file: exit 2 with file, field and
/// expectation on any problem.
pub fn load_scenario(path: &std::path::Path) -> Result<(scenario::Scenario, String), CliError> {
    let scenario = scenario::load(path).map_err(|e| CliError::bad_input(e.to_string()))?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", path.display())))?;
    Ok((scenario, text))
}

/// Submits and follows a run. When `interrupt` completes (Ctrl-C) the run is
/// asked to stop and its partial report is still written; when it completes a
/// second time the client gives up waiting.
pub async fn submit(
    opts: SubmitOptions,
    interrupt: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) -> Result<(Exit, Option<Report>), CliError> {
    let (scenario, text) = load_scenario(&opts.scenario)?;
    if matches!(scenario.target, ScenarioTarget::Builtin(_)) && opts.builtin_target_url.is_none() {
        return Err(CliError::bad_input(format!(
            "{}: target.builtin: the built-in target runs only in local mode (without --coordinator); set target.url",
            opts.scenario.display()
        )));
    }
    let endpoint = volley_proto::channel::endpoint(&opts.coordinator, opts.tls_ca.as_deref())
        .map_err(|e| CliError::bad_input(format!("--coordinator: {e}")))?;
    let channel = endpoint.connect().await.map_err(|e| {
        CliError::incomplete(format!(
            "cannot reach the coordinator at {}: {e}",
            opts.coordinator
        ))
    })?;
    let mut client = RunControlClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let mut req = tonic::Request::new(pb::SubmitRunRequest {
        scenario_toml: text,
        scenario_name: opts.scenario.display().to_string(),
        min_workers: opts.min_workers,
        wait_nanos: opts.wait.as_nanos() as u64,
        builtin_target_url: opts.builtin_target_url.clone().unwrap_or_default(),
    });
    auth::attach(&mut req, opts.token.as_deref())
        .map_err(|s| CliError::bad_input(s.message().to_string()))?;
    let mut stream = match client.submit_run(req).await {
        Ok(r) => r.into_inner(),
        Err(s) => {
            return Err(match s.code() {
                Code::InvalidArgument | Code::Unauthenticated => {
                    CliError::bad_input(s.message().to_string())
                }
                _ => CliError::incomplete(format!(
                    "the coordinator refused the run: {}",
                    s.message()
                )),
            })
        }
    };
    let mut dir: Option<RunDir> = None;
    let mut run_id = String::new();
    let mut interrupted = 0;
    loop {
        let next = tokio::select! {
            m = stream.message() => m,
            _ = interrupt() => {
                interrupted += 1;
                if interrupted > 1 || run_id.is_empty() {
                    return Err(CliError::incomplete(format!("interrupted; run {run_id} abandoned")));
                }
                eprintln!("volley: stopping run {run_id} (press Ctrl-C again to quit without the report)");
                let mut req = tonic::Request::new(pb::StopRunRequest { run_id: run_id.clone(), reason: "interrupted by the user".into() });
                auth::attach(&mut req, opts.token.as_deref()).map_err(|s| CliError::bad_input(s.message().to_string()))?;
                if let Err(s) = client.stop_run(req).await {
                    eprintln!("volley: could not stop the run: {}", s.message());
                }
                continue;
            }
        };
        let ev = match next {
            Ok(Some(pb::RunEvent { event: Some(ev) })) => ev,
            Ok(Some(_)) => continue,
            Ok(None) => {
                return Err(CliError::incomplete(format!(
                    "the coordinator ended run {run_id} without a report"
                )))
            }
            Err(s) => {
                return Err(CliError::incomplete(format!(
                    "lost the coordinator during run {run_id}: {}",
                    s.message()
                )))
            }
        };
        match ev {
            Ev::Accepted(a) => {
                run_id = a.run_id;
                let path = opts
                    .out
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("runs").join(&run_id));
                dir = Some(RunDir::create(path.clone()).map_err(|e| {
                    CliError::bad_input(format!(
                        "--out {}: cannot create the run directory: {e}",
                        path.display()
                    ))
                })?);
                eprintln!("volley: run {run_id} accepted ({})", scenario.name);
            }
            Ev::Started(s) => {
                if let Some(d) = dir.as_mut() {
                    if let Err(e) = d.start(s.start_at_unix_nanos) {
                        eprintln!("volley: warning: cannot write the interval log: {e}");
                    }
                }
                eprintln!("volley: started with {} worker(s)", s.workers);
            }
            Ev::Interval(i) => {
                if opts.live {
                    println!("{}", output::live_line(&i));
                }
                if let Some(d) = dir.as_mut() {
                    if let Err(e) = d.interval(&i) {
                        eprintln!("volley: warning: cannot append to the interval log: {e}");
                    }
                }
            }
            Ev::Message(m) => eprintln!("volley: {}: {}", m.level, m.text),
            Ev::Finished(f) => {
                let mut report: Option<Report> = if f.report_json.is_empty() {
                    None
                } else {
                    Some(serde_json::from_str(&f.report_json).map_err(|e| {
                        CliError::incomplete(format!(
                            "the coordinator sent an unreadable report: {e}"
                        ))
                    })?)
                };
                if let (Some(r), Some(b)) = (report.as_mut(), opts.baseline.as_ref()) {
                    crate::verdict::apply_baseline(r, b);
                }
                if let (Some(r), Some(d)) = (report.as_ref(), dir.as_ref()) {
                    d.write_report(r).map_err(|e| {
                        CliError::incomplete(format!(
                            "cannot write the report to {}: {e}",
                            d.dir.display()
                        ))
                    })?;
                    println!("{}", output::summary(r, &d.dir));
                }
                if f.outcome != "completed" {
                    return Err(CliError::incomplete(format!(
                        "run {run_id} failed: {}",
                        f.error
                    )));
                }
                let exit = report.as_ref().map_or(Exit::Incomplete, |r| {
                    crate::verdict::exit_code(r, opts.strict)
                });
                return Ok((exit, report));
            }
        }
    }
}
