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
use volley_proto::{auth, pb, MAX_MESSAGE_BYTES, MAX_REPORT_BYTES};

/// Where the coordinator is and how to reach it: what every command that
/// talks to one shares (`run --coordinator`, `workers`, `runs`, `stop`,
/// `fetch`, `attach`).
#[derive(Debug, Clone)]
pub struct Connection {
    /// `http://host:port` (or `https://`) of the coordinator.
    pub coordinator: String,
    pub token: Option<String>,
    /// PEM CA to trust for an `https://` coordinator.
    pub tls_ca: Option<Vec<u8>>,
}

/// What a client following a run does with it.
#[derive(Debug, Clone, Default)]
pub struct FollowOptions {
    /// Run directory; `runs/<run_id>` when not given.
    pub out: Option<PathBuf>,
    /// Print the live line each second.
    pub live: bool,
    /// Print report.md after the summary (`--print-report`).
    pub print_report: bool,
    /// Compare with this saved report (regressions make the exit code 1).
    pub baseline: Option<crate::verdict::Baseline>,
    /// A threshold in its warning band fails the run too.
    pub strict: bool,
    /// Print the closing summary on stdout (not under `--output json`).
    pub summary: bool,
    /// Also write the verdicts as JUnit XML here (`--junit`).
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct SubmitOptions {
    pub conn: Connection,
    pub scenario: PathBuf,
    pub min_workers: u32,
    pub wait: Duration,
    /// Set by local mode when it started the built-in target.
    pub builtin_target_url: Option<String>,
    pub follow: FollowOptions,
    /// `--set NAME=VALUE` overrides of the scenario's `[vars]`.
    pub vars: Vec<(String, String)>,
}

/// Reads and validates a scenario file: exit 2 with file, field and
/// expectation on any problem.
pub fn load_scenario(
    path: &std::path::Path,
    vars: &[(String, String)],
) -> Result<(scenario::Scenario, String), CliError> {
    let loaded = read_scenario(path, vars)?;
    Ok((loaded.scenario, loaded.text))
}

/// Reads and validates a scenario file and the files it references (sent
/// with it, since the coordinator may run elsewhere): exit 2 with file,
/// field and expectation on any problem.
/// `vars` are the `--set` overrides; the warnings (a `--set` no template
/// reads) and notices (data that ends the run early) are printed on stderr,
/// whatever `--quiet` says: they change what the run measures.
pub fn read_scenario(
    path: &std::path::Path,
    vars: &[(String, String)],
) -> Result<scenario::Loaded, CliError> {
    let loaded = scenario::load_with(path, vars, &scenario::process_env)
        .map_err(|e| CliError::bad_input(e.to_string()))?;
    Ok(loaded)
}

/// Prints what parsing the scenario had to say beyond errors.
pub fn print_scenario_notes(s: &scenario::Scenario) {
    for w in &s.warnings {
        eprintln!("warning: {w}");
    }
    for n in &s.notices {
        eprintln!("note: {n}");
    }
}

/// How long the client keeps trying to reach its coordinator again after the
/// stream broke mid-run (the coordinator restarting on its data dir, say).
const RECONNECT: Duration = Duration::from_secs(90);

pub(crate) type Client = RunControlClient<tonic::transport::Channel>;
pub(crate) type Interrupt<'i> =
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + 'i;

impl Connection {
    /// Connects, retrying until `within` has passed: a coordinator may
    /// still be starting (a Kubernetes Job racing its Deployment).
    pub(crate) async fn connect(&self, within: Duration) -> Result<Client, CliError> {
        let endpoint = volley_proto::channel::endpoint(&self.coordinator, self.tls_ca.as_deref())
            .map_err(|e| CliError::bad_input(format!("--coordinator: {e}")))?;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match endpoint.connect().await {
                Ok(ch) => {
                    return Ok(RunControlClient::new(ch)
                        .max_decoding_message_size(MAX_REPORT_BYTES)
                        .max_encoding_message_size(MAX_MESSAGE_BYTES))
                }
                Err(e) if tokio::time::Instant::now() >= deadline || is_tls_failure(&e) => {
                    let mut why = e.to_string();
                    let mut src = std::error::Error::source(&e);
                    while let Some(s) = src {
                        why = format!("{why}: {s}");
                        src = s.source();
                    }
                    return Err(CliError::incomplete(format!(
                        "cannot reach the coordinator at {}: {why}",
                        self.coordinator
                    )));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// `msg` with the token attached.
    pub(crate) fn request<T>(&self, msg: T) -> Result<tonic::Request<T>, CliError> {
        let mut req = tonic::Request::new(msg);
        auth::attach(&mut req, self.token.as_deref())
            .map_err(|s| CliError::bad_input(s.message().to_string()))?;
        Ok(req)
    }
}

/// A refusal from the coordinator as the exit-code table has it: a wrong
/// token, a bad or unknown argument is bad input (2); anything else means
/// the thing asked for could not be done (3), `doing` saying what it was.
pub(crate) fn refused(s: &tonic::Status, doing: &str) -> CliError {
    match s.code() {
        Code::InvalidArgument | Code::Unauthenticated | Code::NotFound => {
            CliError::bad_input(s.message().to_string())
        }
        _ => CliError::incomplete(format!("{doing}: {}", s.message())),
    }
}

/// `--wait-for`: waits until every address accepts a TCP connection, all
/// within `within`. The name is resolved again on each try: a Kubernetes
/// Service's name may not resolve before its pods exist.
pub async fn wait_for(addresses: &[String], within: Duration) -> Result<(), CliError> {
    let deadline = tokio::time::Instant::now() + within;
    for addr in addresses {
        loop {
            let why = match tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect(addr))
                .await
            {
                Ok(Ok(_)) => break,
                Ok(Err(e)) => e.to_string(),
                Err(_) => "timed out connecting".to_string(),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(CliError::incomplete(format!(
                    "--wait-for {addr}: still unreachable after {}s ({why})",
                    within.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

/// A certificate the client does not trust will not start being trusted by
/// retrying: fail at once.
fn is_tls_failure(e: &tonic::transport::Error) -> bool {
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        let text = s.to_string().to_ascii_lowercase();
        if text.contains("certificate") || text.contains("handshake") {
            return true;
        }
        src = s.source();
    }
    false
}

/// Sends the scenario's files in chunks ahead of the run (data files reach
/// 256 MiB; no message may exceed 4 MiB) and returns the upload's id, or
/// an empty id when there is nothing to send.
async fn upload(
    client: &mut Client,
    conn: &Connection,
    files: std::collections::BTreeMap<String, Vec<u8>>,
) -> Result<String, CliError> {
    if files.is_empty() {
        return Ok(String::new());
    }
    // Chunks are cut as the stream is polled, each file dropped once sent:
    // a 256 MiB data file is not copied whole a second time.
    const CHUNK: usize = volley_proto::CHUNK_BYTES;
    let chunks = files.into_iter().flat_map(|(name, data)| {
        let total = data.len();
        let pieces = total.div_ceil(CHUNK).max(1);
        (0..pieces).map(move |i| {
            let at = i * CHUNK;
            pb::FileChunk {
                name: name.clone(),
                offset: at as u64,
                total_size: total as u64,
                data: data[at..(at + CHUNK).min(total)].to_vec(),
            }
        })
    });
    let stream = tokio_stream::iter(chunks);
    match client.upload_files(conn.request(stream)?).await {
        Ok(r) => Ok(r.into_inner().upload_id),
        Err(s) => Err(match s.code() {
            Code::InvalidArgument | Code::Unauthenticated => {
                CliError::bad_input(s.message().to_string())
            }
            _ => CliError::incomplete(format!(
                "the coordinator refused the scenario's files: {}",
                s.message()
            )),
        }),
    }
}

/// Submits and follows a run. When `interrupt` completes (Ctrl-C) the run is
/// asked to stop and its partial report is still written; when it completes a
/// second time the client gives up waiting. A broken stream is not the end:
/// the client attaches to the run again for up to [`RECONNECT`].
pub async fn submit(
    opts: SubmitOptions,
    interrupt: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) -> Result<(Exit, Option<Report>), CliError> {
    let scenario::Loaded {
        scenario,
        text,
        files,
    } = read_scenario(&opts.scenario, &opts.vars)?;
    print_scenario_notes(&scenario);
    if matches!(scenario.target, ScenarioTarget::Builtin(_)) && opts.builtin_target_url.is_none() {
        return Err(CliError::bad_input(format!(
            "{}: target.builtin: the built-in target runs only in local mode (without --coordinator); set target.url",
            opts.scenario.display()
        )));
    }
    let conn = &opts.conn;
    let mut client = conn.connect(opts.wait.min(Duration::from_secs(60))).await?;
    let upload_id = upload(&mut client, conn, files).await?;
    let pairs = |list: &[(String, String)]| -> Vec<pb::Header> {
        list.iter()
            .map(|(name, value)| pb::Header {
                name: name.clone(),
                value: value.clone(),
            })
            .collect()
    };
    let submit = pb::SubmitRunRequest {
        scenario_toml: text,
        scenario_name: opts.scenario.display().to_string(),
        min_workers: opts.min_workers,
        wait_nanos: opts.wait.as_nanos() as u64,
        builtin_target_url: opts.builtin_target_url.clone().unwrap_or_default(),
        files: Vec::new(),
        upload_id,
        vars: pairs(&opts.vars),
        env: pairs(&scenario.plan.env),
    };
    let stream = match client.submit_run(conn.request(submit)?).await {
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
    let mut f = Follower::new(
        conn,
        &opts.follow,
        &scenario.name,
        scenario.plan.duration().as_secs_f64(),
        Some(crate::report::build::load(&scenario.plan)),
        OnInterrupt::Stop,
    );
    f.follow(client, stream, &interrupt).await
}

/// What the first Ctrl-C does to a client following a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnInterrupt {
    /// Stop the run (its submitter: `volley run`).
    Stop,
    /// Leave it running (`volley attach` from another terminal).
    Detach,
}

/// Follows one run's events into the run directory: the run's submitter,
/// and `volley attach` and `volley fetch`, which get the same events.
pub(crate) struct Follower<'a> {
    conn: &'a Connection,
    opts: &'a FollowOptions,
    scenario_name: String,
    dir: Option<RunDir>,
    live: output::Live,
    /// Why requests are dropped, said once per cause.
    drops: output::DropNotices,
    run_id: String,
    /// The next second not yet seen, to attach again from.
    next_t: u32,
    on_interrupt: OnInterrupt,
    /// Say on stderr when the run is accepted and started (not when
    /// fetching one that ended).
    pub(crate) announce: bool,
}

impl<'a> Follower<'a> {
    pub(crate) fn new(
        conn: &'a Connection,
        opts: &'a FollowOptions,
        scenario_name: &str,
        total_s: f64,
        load: Option<crate::report::LoadInfo>,
        on_interrupt: OnInterrupt,
    ) -> Self {
        Follower {
            conn,
            opts,
            scenario_name: scenario_name.to_string(),
            dir: None,
            live: output::Live::new(total_s),
            drops: output::DropNotices::new(load),
            run_id: String::new(),
            next_t: 0,
            on_interrupt,
            announce: true,
        }
    }

    pub(crate) async fn follow(
        &mut self,
        mut client: Client,
        mut stream: tonic::Streaming<pb::RunEvent>,
        interrupt: &Interrupt<'_>,
    ) -> Result<(Exit, Option<Report>), CliError> {
        let mut interrupted = 0;
        loop {
            let next = tokio::select! {
                m = stream.message() => m,
                _ = interrupt() => {
                    interrupted += 1;
                    if interrupted > 1 || self.run_id.is_empty() {
                        return Err(CliError::incomplete(format!("interrupted; run {} abandoned", self.run_id)));
                    }
                    if self.on_interrupt == OnInterrupt::Detach {
                        self.live.done();
                        return Err(CliError::incomplete(format!(
                            "detached from run {}; it goes on (`volley stop {}` ends it)",
                            self.run_id, self.run_id
                        )));
                    }
                    eprintln!("volley: stopping run {} (press Ctrl-C again to quit without the report)", self.run_id);
                    let stop = pb::StopRunRequest { run_id: self.run_id.clone(), reason: "interrupted by the user".into() };
                    // A coordinator slow to answer must not hold back the
                    // second Ctrl-C.
                    tokio::select! {
                        r = client.stop_run(self.conn.request(stop)?) => {
                            if let Err(s) = r {
                                eprintln!("volley: could not stop the run: {}", s.message());
                            }
                        }
                        _ = interrupt() => {
                            return Err(CliError::incomplete(format!("interrupted; run {} abandoned", self.run_id)));
                        }
                    }
                    continue;
                }
            };
            match next {
                Ok(Some(pb::RunEvent { event: Some(ev) })) => {
                    if let Some(done) = self.on_event(ev)? {
                        return Ok(done);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) if !self.run_id.is_empty() => {
                    let why = match next {
                        Err(s) => s.message().to_string(),
                        _ => "the stream ended".into(),
                    };
                    eprintln!(
                        "volley: lost the coordinator during run {} ({why}); reconnecting",
                        self.run_id
                    );
                    (client, stream) = self.reattach().await?;
                }
                Ok(None) => {
                    return Err(CliError::incomplete(
                        "the coordinator ended the run without a word",
                    ))
                }
                Err(s) => {
                    return Err(CliError::incomplete(format!(
                        "lost the coordinator: {}",
                        s.message()
                    )))
                }
            }
        }
    }

    /// Attaches to the run again, from the first second not yet seen.
    async fn reattach(&mut self) -> Result<(Client, tonic::Streaming<pb::RunEvent>), CliError> {
        let deadline = tokio::time::Instant::now() + RECONNECT;
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(CliError::incomplete(format!(
                    "lost the coordinator for good during run {}; if it comes back it stops the load by itself \
                     and keeps the report (volley report / GetReport)",
                    self.run_id
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            // Each try is bounded by what is left of the window: a
            // coordinator that accepts the connection but never answers
            // (overloaded, half-dead) must not hold the client past it.
            let Ok(Ok(mut client)) =
                tokio::time::timeout_at(deadline, self.conn.connect(Duration::ZERO)).await
            else {
                continue;
            };
            let attach = pb::AttachRunRequest {
                run_id: self.run_id.clone(),
                from_t_s: self.next_t,
                only_ended: false,
            };
            let Ok(answer) =
                tokio::time::timeout_at(deadline, client.attach_run(self.conn.request(attach)?))
                    .await
            else {
                continue;
            };
            match answer {
                Ok(r) => {
                    eprintln!("volley: attached to run {} again", self.run_id);
                    return Ok((client, r.into_inner()));
                }
                Err(s) if s.code() == Code::NotFound => {
                    // A restarting coordinator may not have resumed it yet.
                    continue;
                }
                Err(_) => continue,
            }
        }
    }

    /// Handles one event; `Some` when the run is over.
    fn on_event(&mut self, ev: Ev) -> Result<Option<(Exit, Option<Report>)>, CliError> {
        let opts = self.opts;
        match ev {
            Ev::Accepted(a) => {
                if self.run_id.is_empty() {
                    self.run_id = a.run_id;
                    let path = opts
                        .out
                        .clone()
                        .unwrap_or_else(|| PathBuf::from("runs").join(&self.run_id));
                    self.dir = Some(RunDir::create(path.clone()).map_err(|e| {
                        CliError::bad_input(format!(
                            "--out {}: cannot create the run directory: {e}",
                            path.display()
                        ))
                    })?);
                    if self.announce {
                        eprintln!(
                            "volley: run {} accepted ({})",
                            self.run_id, self.scenario_name
                        );
                    }
                }
            }
            Ev::Started(s) => {
                if let Some(d) = self.dir.as_mut().filter(|d| !d.started()) {
                    if let Err(e) = d.start(s.start_at_unix_nanos) {
                        eprintln!("volley: warning: cannot write the interval log: {e}");
                    }
                    if self.announce {
                        eprintln!("volley: started with {} worker(s)", s.workers);
                    }
                }
            }
            Ev::Interval(i) => {
                if i.t_s < self.next_t {
                    return Ok(None); // replayed after attaching again
                }
                self.next_t = i.t_s + 1;
                if opts.live {
                    self.live.second(&i);
                }
                // Whatever --quiet says, like the run's other warnings.
                for notice in self.drops.second(&i) {
                    self.live.done();
                    eprintln!("volley: warn: {notice}");
                }
                if let Some(d) = self.dir.as_mut() {
                    if let Err(e) = d.interval(&i) {
                        eprintln!("volley: warning: cannot append to the interval log: {e}");
                    }
                }
            }
            Ev::Message(m) => {
                self.live.done();
                eprintln!("volley: {}: {}", m.level, m.text);
            }
            Ev::Finished(f) => {
                self.live.done();
                let mut report: Option<Report> = if f.report_json.is_empty() {
                    None
                } else {
                    Some(serde_json::from_slice(&f.report_json).map_err(|e| {
                        CliError::incomplete(format!(
                            "the coordinator sent an unreadable report: {e}"
                        ))
                    })?)
                };
                // As the coordinator wrote it, unless the baseline changed it.
                let mut json = f.report_json;
                if let (Some(r), Some(b)) = (report.as_mut(), opts.baseline.as_ref()) {
                    crate::verdict::apply_baseline(r, b);
                    json = r.to_json().into();
                }
                if let (Some(r), Some(d)) = (report.as_ref(), self.dir.as_ref()) {
                    d.write_report_as(r, &json).map_err(|e| {
                        CliError::incomplete(format!(
                            "cannot write the report to {}: {e}",
                            d.dir.display()
                        ))
                    })?;
                    if opts.summary {
                        println!("{}", output::summary(r, &d.dir));
                        if opts.print_report {
                            println!("{}", output::printed_report(r, &d.dir));
                        }
                    }
                }
                let exit = match report.as_ref() {
                    Some(r) if f.outcome == "completed" => {
                        crate::verdict::exit_code(r, opts.strict)
                    }
                    _ => Exit::Incomplete,
                };
                if let (Some(r), Some(path)) = (report.as_ref(), opts.junit.as_deref()) {
                    crate::verdict::write_junit(path, r, exit, opts.strict)?;
                }
                if f.outcome != "completed" {
                    return Err(CliError::incomplete(format!(
                        "run {} failed: {}",
                        self.run_id, f.error
                    )));
                }
                return Ok(Some((exit, report)));
            }
        }
        Ok(None)
    }
}
