//! The `volley` command line (clap derive). Doc comments are the help; every
//! flag has a `VOLLEY_*` environment variable for Kubernetes.
//!
//! The flags become the library's settings here, checked (`TryFrom<ServeArgs>
//! for ServeConfig`, [`RunArgs::submit_options`]), so the library never sees
//! clap.
//!
//! `run --set NAME=VALUE` (repeatable) lands in [`RunArgs::set`], checked by
//! `scenario::parse_set`; the scenario is then read with
//! `scenario::load_with(path, &set, &scenario::process_env)`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use volley_coordinator::client::{Connection, FollowOptions, SubmitOptions};
#[cfg(feature = "local")]
use volley_coordinator::local::LocalOptions;
use volley_coordinator::operate::Listing;
use volley_coordinator::otlp::OtlpConfig;
use volley_coordinator::scenario;
use volley_coordinator::server::{self, ServeConfig};
use volley_coordinator::verdict::Baseline;
use volley_coordinator::{CliError, CoordinatorConfig};

/// Volley: distributed, open-model, coordinated-omission-correct load
/// testing with exact merged percentiles.
#[derive(Debug, Parser)]
#[command(name = "volley", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr: text for people, json for log collectors
    #[arg(long, global = true, env = "VOLLEY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario, locally (embedded coordinator and workers) or on a
    /// coordinator with --coordinator
    Run(RunArgs),
    /// The long-lived coordinator for cluster mode
    Serve(ServeArgs),
    /// The built-in target server for quickstarts, tests and self-checks:
    /// HTTP/1.1, HTTP/2 (h2c) and gRPC echo on --listen, framed-TCP echo on
    /// --tcp-listen
    ///
    /// Answers HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on one port; over
    /// HTTP/2, a request whose content-type starts with application/grpc is a
    /// unary call to an echo service (any method; the reply message is the
    /// request message). --tcp-listen adds an echo of length-prefixed frames (a
    /// 4-byte big-endian length, then the payload). --delay, --error-rate and
    /// --capacity apply to every protocol together: an injected error is HTTP
    /// 500, grpc-status 14 (UNAVAILABLE), or for framed TCP the connection closed
    /// instead of the reply. GET /__volley/stats reports the counts.
    Target(TargetArgs),
    /// Re-render a saved report
    Report(ReportArgs),
    /// List the workers connected to a coordinator: id, host, version,
    /// weight, clock offset, last heartbeat and the run each takes part in
    Workers(ListArgs),
    /// List the runs a coordinator knows, newest first: the one going now
    /// and the ended ones it remembers (in memory, and in its --data-dir
    /// across restarts)
    Runs(ListArgs),
    /// Stop a run from any terminal: the load ends within a second and the
    /// report is kept, marked incomplete, as Ctrl-C on `volley run` does.
    /// Waits until the run has ended
    Stop(RunIdArgs),
    /// Write the run directory of a run that has ended (report.json,
    /// report.md, report.html, latency.hlog, workers.hlog), as `volley run`
    /// wrote it; exits as `volley run` did. A run still going is refused
    /// (exit 3): `volley attach` follows it
    Fetch(FetchArgs),
    /// Follow a run under way (a line per second) and write its run
    /// directory at the end; Ctrl-C detaches and leaves the run going
    Attach(AttachArgs),
    /// Print a JSON Schema: `volley schema report` is report.json's
    /// (docs/report.schema.json), for validating reports in CI
    Schema(SchemaArgs),
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which document's schema
    #[arg(value_enum)]
    pub document: SchemaDocument,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaDocument {
    /// report.json (volley.report.v1)
    Report,
}

/// How to reach a coordinator: one set of flags (and `VOLLEY_*`
/// variables) for `run --coordinator` and the operator's commands.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Coordinator address (http://host:port, or https:// with TLS);
    /// `volley run` without it runs locally
    #[arg(long, env = "VOLLEY_COORDINATOR")]
    pub coordinator: Option<String>,
    /// Shared token for the coordinator
    #[arg(long, env = "VOLLEY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the CA that signed an https:// coordinator's certificate
    #[arg(long, env = "VOLLEY_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

impl ConnectArgs {
    /// The connection to `coordinator`, the CA file read.
    pub fn connection(&self, coordinator: &str) -> Result<Connection, CliError> {
        let tls_ca = match self.tls_ca.as_deref() {
            Some(p) => Some(
                std::fs::read(p)
                    .map_err(|e| CliError::bad_input(format!("--tls-ca {}: {e}", p.display())))?,
            ),
            None => None,
        };
        Ok(Connection {
            coordinator: if coordinator.contains("://") {
                coordinator.to_string()
            } else {
                format!("http://{coordinator}")
            },
            token: self.token.clone().filter(|t| !t.is_empty()),
            tls_ca,
        })
    }

    /// For a command that needs a coordinator: bad input without one.
    pub fn required(&self, command: &str) -> Result<Connection, CliError> {
        let url = self.coordinator.as_deref().ok_or_else(|| {
            CliError::bad_input(format!(
                "`volley {command}` needs --coordinator URL (or VOLLEY_COORDINATOR)"
            ))
        })?;
        self.connection(url)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// An aligned table (and the usual messages)
    Table,
    /// A JSON array, one object per worker or run, for scripts
    Json,
}

impl From<OutputFormat> for Listing {
    fn from(f: OutputFormat) -> Listing {
        match f {
            OutputFormat::Table => Listing::Table,
            OutputFormat::Json => Listing::Json,
        }
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Output format
    #[arg(long, env = "VOLLEY_OUTPUT", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct RunIdArgs {
    /// The run's id (`volley runs` lists them)
    pub run_id: String,
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    #[command(flatten)]
    pub run: RunIdArgs,
    /// Run directory to write (default runs/<run_id>)
    #[arg(long, env = "VOLLEY_OUT")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    #[command(flatten)]
    pub fetch: FetchArgs,
    /// Do not print a line per second
    #[arg(long, env = "VOLLEY_QUIET")]
    pub quiet: bool,
    #[command(flatten)]
    pub verdict: VerdictArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file (TOML)
    pub scenario: PathBuf,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// With --coordinator: workers required before the run starts
    #[arg(long, env = "VOLLEY_MIN_WORKERS", default_value_t = 1)]
    pub min_workers: u32,
    /// With --coordinator: how long to wait for --min-workers
    #[arg(long, env = "VOLLEY_WAIT", default_value = "30s", value_parser = scenario::parse_duration)]
    pub wait: Duration,
    /// Local mode: number of in-process workers (default: one per core)
    #[arg(long, env = "VOLLEY_LOCAL_WORKERS")]
    pub local_workers: Option<usize>,
    /// Run directory for report.json, report.md, latency.hlog (default runs/<run_id>)
    #[arg(long, env = "VOLLEY_OUT")]
    pub out: Option<PathBuf>,
    /// Do not print a line per second
    #[arg(long, env = "VOLLEY_QUIET")]
    pub quiet: bool,
    /// After the summary, print report.md on stdout too: for logs that
    /// outlive the run directory (a Kubernetes Job's)
    #[arg(long, env = "VOLLEY_PRINT_REPORT")]
    pub print_report: bool,
    /// Before the run, wait until HOST:PORT accepts TCP connections, up to
    /// --wait (repeat for more; exit 3 when one never does): the target and
    /// the coordinator of a fresh Kubernetes install start in any order
    #[arg(long, value_name = "HOST:PORT", env = "VOLLEY_WAIT_FOR", value_delimiter = ',', value_parser = parse_host_port)]
    pub wait_for: Vec<String>,
    /// Local mode: serve Prometheus metrics on this address at /metrics
    #[arg(long, env = "VOLLEY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub otlp: OtlpArgs,
    /// Set a template variable, overriding the scenario's [vars] (repeat for
    /// more; templates read it as {{vars.NAME}}). VOLLEY_SET holds one
    /// NAME=VALUE
    #[arg(long = "set", value_name = "NAME=VALUE", env = "VOLLEY_SET", value_parser = parse_set)]
    pub set: Vec<(String, String)>,
    #[command(flatten)]
    pub verdict: VerdictArgs,
}

/// OpenTelemetry metrics export (`volley serve`, and `volley run` in local
/// mode).
#[derive(Debug, Args)]
pub struct OtlpArgs {
    /// Push the metrics of /metrics to this OpenTelemetry collector (OTLP),
    /// e.g. http://collector:4317 (gRPC) or, with --otlp-protocol
    /// http/protobuf, http://collector:4318
    #[arg(long, env = "VOLLEY_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// OTLP transport: grpc or http/protobuf (POST to /v1/metrics)
    #[arg(long, env = "VOLLEY_OTLP_PROTOCOL", default_value = "grpc")]
    pub otlp_protocol: String,
    /// How often to export (and once more when a run ends)
    #[arg(long, env = "VOLLEY_OTLP_INTERVAL", default_value = "10s", value_parser = scenario::parse_duration)]
    pub otlp_interval: Duration,
}

impl OtlpArgs {
    /// The checked settings, or `None` without --otlp-endpoint.
    pub fn config(&self) -> Result<Option<OtlpConfig>, CliError> {
        // Checked even without an endpoint: a typo is never silently ignored.
        volley_coordinator::otlp::Protocol::parse(&self.otlp_protocol)
            .map_err(|e| CliError::bad_input(format!("--otlp-protocol: {e}")))?;
        self.otlp_endpoint
            .as_deref()
            .map(|e| OtlpConfig::new(e, &self.otlp_protocol, self.otlp_interval))
            .transpose()
    }
}

fn parse_host_port(s: &str) -> Result<String, String> {
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(s.to_string())
        }
        _ => Err(format!(
            "expected HOST:PORT (a port from 1 to 65535), got {s:?}"
        )),
    }
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    volley_coordinator::scenario::parse_set(s)
}

/// How a run is judged for CI.
#[derive(Debug, Args)]
pub struct VerdictArgs {
    /// A saved report.json to compare with: a throughput drop or a p99 rise
    /// beyond --threshold exits 1
    #[arg(long, env = "VOLLEY_BASELINE")]
    pub baseline: Option<PathBuf>,
    /// Allowed change against the baseline, in percent ("10%" or "10")
    #[arg(long, env = "VOLLEY_REGRESSION_THRESHOLD", default_value = "10%", value_parser = parse_pct)]
    pub threshold: f64,
    /// A threshold in its warning band fails the run (exit 1)
    #[arg(long, env = "VOLLEY_STRICT")]
    pub strict: bool,
    /// Also write the verdicts as JUnit XML to FILE: a test case per
    /// threshold and per regression row, the run's figures as properties
    #[arg(long, value_name = "FILE", env = "VOLLEY_JUNIT")]
    pub junit: Option<PathBuf>,
}

/// The idle timeout: as given, or five run timeouts. Shorter than the run
/// timeout makes no sense (a worker would be watched more closely when
/// nothing depends on it), so it is refused.
fn idle_timeout(run: Duration, idle: Option<Duration>) -> Result<Duration, CliError> {
    // Workers beat every third of a timeout, at most ten times a second.
    if run < Duration::from_millis(300) {
        return Err(CliError::bad_input(format!(
            "--heartbeat-timeout {run:?}: expected at least 300ms"
        )));
    }
    match idle {
        None => Ok(volley_coordinator::state::default_idle_heartbeat_timeout(
            run,
        )),
        Some(idle) if idle < run => Err(CliError::bad_input(format!(
            "--idle-heartbeat-timeout {idle:?}: expected at least --heartbeat-timeout ({run:?})"
        ))),
        Some(idle) => Ok(idle),
    }
}

fn parse_pct(s: &str) -> Result<f64, String> {
    volley_coordinator::analysis::parse_threshold_pct(s)
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on for workers and run submissions
    #[arg(long, env = "VOLLEY_LISTEN", default_value = "127.0.0.1:7700")]
    pub listen: SocketAddr,
    /// Shared token workers and clients must present
    #[arg(long, env = "VOLLEY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A worker in a run silent this long is declared lost and its share
    /// goes to the others
    #[arg(long, env = "VOLLEY_HEARTBEAT_TIMEOUT", default_value = "3s", value_parser = scenario::parse_duration)]
    pub heartbeat_timeout: Duration,
    /// A worker in no run silent this long is dropped from the list
    /// (default: 5 × --heartbeat-timeout; idle workers beat every third of
    /// it, so a longer one costs the coordinator less with many workers)
    #[arg(long, env = "VOLLEY_IDLE_HEARTBEAT_TIMEOUT", value_parser = scenario::parse_duration)]
    pub idle_heartbeat_timeout: Option<Duration>,
    /// Report messages a second the coordinator takes before it asks the
    /// workers of a large run to send their seconds a few at a time (at
    /// most 5): the live view and abort thresholds then lag by up to 4 s,
    /// and a worker's heartbeat timeout grows by a pace per extra second
    #[arg(long, env = "VOLLEY_MAX_REPORTS_PER_SECOND", default_value_t = volley_coordinator::merge::REPORTS_PER_SECOND, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_reports_per_second: usize,
    /// MiB of ended runs' reports kept in memory for `volley fetch`, newest
    /// first (the newest is kept whatever its size; a day-long run's report
    /// is tens of MiB); `--data-dir` keeps every report on disk
    #[arg(long, env = "VOLLEY_KEEP_REPORTS_MIB", default_value_t = volley_coordinator::state::KEEP_REPORT_BYTES / (1024 * 1024))]
    pub keep_reports_mib: usize,
    /// Listen beyond loopback without a token (anyone who can reach the port
    /// can run load from your workers)
    #[arg(long, env = "VOLLEY_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Serve Prometheus metrics on this address at /metrics
    #[arg(long, env = "VOLLEY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub otlp: OtlpArgs,
    /// Directory where runs are written as they happen; a coordinator
    /// restarted on the same directory resumes the run it was running
    #[arg(long, env = "VOLLEY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PEM certificate (chain) to serve TLS with; needs --tls-key
    #[arg(long, env = "VOLLEY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert
    #[arg(long, env = "VOLLEY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// HTTP/1.1, HTTP/2 (h2c) and gRPC listen address
    #[arg(long, env = "VOLLEY_TARGET_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Also serve the framed-TCP echo on this address
    #[arg(long, env = "VOLLEY_TARGET_TCP_LISTEN")]
    pub tcp_listen: Option<SocketAddr>,
    /// Fixed extra latency per request
    #[arg(long, env = "VOLLEY_TARGET_DELAY", default_value = "0s", value_parser = scenario::parse_duration)]
    pub delay: Duration,
    /// Fraction of requests failed (exact, deterministic): HTTP 500,
    /// grpc-status 14, or a closed TCP connection
    #[arg(long, env = "VOLLEY_TARGET_ERROR_RATE", default_value_t = 0.0, value_parser = parse_fraction)]
    pub error_rate: f64,
    /// HTTP response body size in bytes (gRPC and TCP echo the request)
    #[arg(long, env = "VOLLEY_TARGET_BODY_SIZE", default_value_t = 64)]
    pub body_size: usize,
    /// Serve at most this many requests per second, all protocols together,
    /// through a FIFO queue (e.g. 5000 or 5k); overload then shows as
    /// growing latency
    #[arg(long, env = "VOLLEY_TARGET_CAPACITY", value_parser = parse_rate)]
    pub capacity: Option<f64>,
    /// Server threads (default: one per core)
    #[arg(long, env = "VOLLEY_TARGET_THREADS")]
    pub threads: Option<usize>,
}

/// `volley serve`'s flags, checked: the token rule and the TLS files.
impl TryFrom<ServeArgs> for ServeConfig {
    type Error = CliError;

    fn try_from(a: ServeArgs) -> Result<Self, CliError> {
        let token = a.token.filter(|t| !t.is_empty());
        server::check_exposure(a.listen, token.as_deref(), a.insecure_no_auth)?;
        let tls = match (a.tls_cert.as_deref(), a.tls_key.as_deref()) {
            (Some(cert), Some(key)) => Some(server::read_tls(cert, key)?),
            _ => None,
        };
        let idle_heartbeat_timeout = idle_timeout(a.heartbeat_timeout, a.idle_heartbeat_timeout)?;
        Ok(ServeConfig {
            listen: a.listen,
            coordinator: CoordinatorConfig {
                token,
                heartbeat_timeout: a.heartbeat_timeout,
                idle_heartbeat_timeout,
                data_dir: a.data_dir,
                max_reports_per_second: a.max_reports_per_second,
                keep_reports_bytes: a.keep_reports_mib.saturating_mul(1024 * 1024),
            },
            tls,
            metrics_listen: a.metrics_listen,
            otlp: a.otlp.config()?,
        })
    }
}

impl RunArgs {
    /// `--coordinator URL`: what to submit, and where.
    pub fn submit_options(
        self,
        coordinator: &str,
        baseline: Option<Baseline>,
    ) -> Result<SubmitOptions, CliError> {
        Ok(SubmitOptions {
            conn: self.connect.connection(coordinator)?,
            scenario: self.scenario,
            min_workers: self.min_workers.max(1),
            wait: self.wait,
            builtin_target_url: None,
            follow: FollowOptions {
                out: self.out,
                live: !self.quiet,
                print_report: self.print_report,
                baseline,
                strict: self.verdict.strict,
                summary: true,
                junit: self.verdict.junit,
            },
            vars: self.set,
        })
    }

    /// Without `--coordinator`: the embedded default.
    #[cfg(feature = "local")]
    pub fn local_options(
        self,
        baseline: Option<Baseline>,
        cores: usize,
    ) -> Result<LocalOptions, CliError> {
        Ok(LocalOptions {
            scenario: self.scenario,
            local_workers: self.local_workers.unwrap_or(cores),
            out: self.out,
            live: !self.quiet,
            print_report: self.print_report,
            baseline,
            strict: self.verdict.strict,
            junit: self.verdict.junit,
            vars: self.set,
            metrics_listen: self.metrics_listen,
            otlp: self.otlp.config()?,
        })
    }
}

#[cfg(feature = "local")]
impl From<&TargetArgs> for volley_target::TargetConfig {
    fn from(a: &TargetArgs) -> Self {
        volley_target::TargetConfig {
            delay: a.delay,
            error_rate: a.error_rate,
            body_size: a.body_size,
            capacity: a.capacity,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Md,
    Json,
    /// The self-contained page with charts (as `report.html`)
    Html,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A saved report.json
    pub report: PathBuf,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Md)]
    pub format: Format,
    #[command(flatten)]
    pub verdict: VerdictArgs,
}

/// "5000", "5k", "1.5M" → requests per second.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let v = scenario::parse_rate(s)
        .ok_or_else(|| format!("expected a rate such as 5000, 5k or 1.5M, got {s:?}"))?;
    if !v.is_finite() || v <= 0.0 || v > 1e8 {
        return Err(format!("expected a positive rate up to 100M, got {s:?}"));
    }
    Ok(v)
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a number between 0 and 1, got {s:?}"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("expected a number between 0 and 1, got {s:?}"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_for_takes_host_and_port() {
        for ok in ["load-volley-target:8080", "10.0.0.1:7700", "[::1]:80"] {
            assert_eq!(parse_host_port(ok).as_deref(), Ok(ok));
        }
        for bad in [
            "target",
            "target:",
            ":8080",
            "target:0",
            "target:70000",
            "target:http",
        ] {
            let e = parse_host_port(bad).unwrap_err();
            assert!(e.contains("expected HOST:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn rates_with_units() {
        assert_eq!(parse_rate("5000"), Ok(5000.0));
        assert_eq!(parse_rate("5k"), Ok(5000.0));
        assert_eq!(parse_rate("1.5M"), Ok(1_500_000.0));
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("fast").is_err());
        // The same reading as a scenario's: "5m" is not 5 million.
        assert!(parse_rate("5m").is_err());
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("0").is_err());
    }

    #[test]
    fn set_is_repeatable() {
        let cli =
            Cli::try_parse_from(["volley", "run", "s.toml", "--set", "a=1", "--set", "b=x=y"])
                .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(
            run.set,
            [("a".into(), "1".into()), ("b".into(), "x=y".into())]
        );
        assert!(Cli::try_parse_from(["volley", "run", "s.toml", "--set", "novalue"]).is_err());
    }

    fn serve_args(listen: &str) -> ServeArgs {
        ServeArgs {
            listen: listen.parse().unwrap(),
            token: None,
            heartbeat_timeout: Duration::from_secs(3),
            idle_heartbeat_timeout: None,
            max_reports_per_second: volley_coordinator::merge::REPORTS_PER_SECOND,
            keep_reports_mib: 256,
            insecure_no_auth: false,
            metrics_listen: None,
            otlp: OtlpArgs {
                otlp_endpoint: None,
                otlp_protocol: "grpc".into(),
                otlp_interval: Duration::from_secs(10),
            },
            data_dir: None,
            tls_cert: None,
            tls_key: None,
        }
    }

    #[test]
    fn serve_on_loopback_needs_no_token() {
        let config = ServeConfig::try_from(serve_args("127.0.0.1:7700")).unwrap();
        assert_eq!(config.listen, "127.0.0.1:7700".parse().unwrap());
        assert_eq!(config.coordinator.token, None);
        assert!(config.tls.is_none());
    }

    #[test]
    fn serve_beyond_loopback_without_a_token_is_refused() {
        let err = ServeConfig::try_from(serve_args("0.0.0.0:7700")).unwrap_err();
        assert_eq!(err.exit, volley_coordinator::Exit::BadInput);
        assert!(
            err.message.contains("refusing to listen beyond loopback"),
            "{err}"
        );
        // An empty token is no token.
        let mut args = serve_args("0.0.0.0:7700");
        args.token = Some(String::new());
        assert!(ServeConfig::try_from(args).is_err());
    }

    #[test]
    fn serve_beyond_loopback_with_a_token_or_insecure_no_auth() {
        let mut args = serve_args("0.0.0.0:7700");
        args.token = Some("s3cret".into());
        let config = ServeConfig::try_from(args).unwrap();
        assert_eq!(config.coordinator.token.as_deref(), Some("s3cret"));

        let mut args = serve_args("0.0.0.0:7700");
        args.insecure_no_auth = true;
        let config = ServeConfig::try_from(args).unwrap();
        assert_eq!(config.coordinator.token, None);
    }

    #[test]
    fn the_idle_heartbeat_timeout_is_five_run_timeouts_unless_given() {
        let config = ServeConfig::try_from(serve_args("127.0.0.1:7700")).unwrap();
        assert_eq!(config.coordinator.heartbeat_timeout, Duration::from_secs(3));
        assert_eq!(
            config.coordinator.idle_heartbeat_timeout,
            Duration::from_secs(15)
        );
        assert_eq!(
            config.coordinator.idle_heartbeat_interval(),
            Duration::from_secs(5)
        );
        assert_eq!(
            config.coordinator.heartbeat_interval(),
            Duration::from_secs(1)
        );

        let mut args = serve_args("127.0.0.1:7700");
        args.heartbeat_timeout = Duration::from_secs(10);
        let config = ServeConfig::try_from(args).unwrap();
        assert_eq!(
            config.coordinator.idle_heartbeat_timeout,
            Duration::from_secs(50)
        );

        let mut args = serve_args("127.0.0.1:7700");
        args.idle_heartbeat_timeout = Some(Duration::from_secs(3));
        let config = ServeConfig::try_from(args).unwrap();
        assert_eq!(
            config.coordinator.idle_heartbeat_timeout,
            Duration::from_secs(3)
        );
    }

    #[test]
    fn the_report_budget_is_taken_and_must_be_positive() {
        let parse = |v: &str| {
            Cli::try_parse_from(["volley", "serve", "--max-reports-per-second", v]).map(|c| {
                let Command::Serve(a) = c.command else {
                    panic!("not serve")
                };
                ServeConfig::try_from(a).unwrap().coordinator
            })
        };
        let c = parse("2").unwrap();
        assert_eq!(c.max_reports_per_second, 2);
        assert_eq!(c.report_every(5), 3);
        assert_eq!(c.run_timeout(3), Duration::from_secs(5));
        let err = parse("0").unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        let c = ServeConfig::try_from(serve_args("127.0.0.1:7700")).unwrap();
        assert_eq!(c.coordinator.report_every(2_500), 1);
        assert_eq!(c.coordinator.report_every(10_000), 4);
    }

    #[test]
    fn an_idle_heartbeat_timeout_below_the_run_one_is_refused() {
        let mut args = serve_args("127.0.0.1:7700");
        args.idle_heartbeat_timeout = Some(Duration::from_secs(2));
        let err = ServeConfig::try_from(args).unwrap_err();
        assert_eq!(err.exit, volley_coordinator::Exit::BadInput);
        assert_eq!(
            err.message,
            "--idle-heartbeat-timeout 2s: expected at least --heartbeat-timeout (3s)"
        );

        let mut args = serve_args("127.0.0.1:7700");
        args.heartbeat_timeout = Duration::from_millis(100);
        let err = ServeConfig::try_from(args).unwrap_err();
        assert_eq!(err.exit, volley_coordinator::Exit::BadInput);
        assert!(
            err.message.starts_with("--heartbeat-timeout 100ms"),
            "{err}"
        );
    }

    #[test]
    fn serve_with_an_unreadable_tls_file_says_which() {
        let mut args = serve_args("127.0.0.1:7700");
        args.tls_cert = Some("/nonexistent/volley/cert.pem".into());
        args.tls_key = Some("/nonexistent/volley/key.pem".into());
        let err = ServeConfig::try_from(args).unwrap_err();
        assert_eq!(err.exit, volley_coordinator::Exit::BadInput);
        assert!(
            err.message
                .starts_with("--tls-cert /nonexistent/volley/cert.pem: "),
            "{err}"
        );
    }

    #[test]
    fn every_command_reads_the_same_connection_flags() {
        let flags = [
            "--coordinator",
            "http://c:7700",
            "--token",
            "t",
            "--tls-ca",
            "ca.pem",
        ];
        let with = |args: &[&str]| {
            let mut v = vec!["volley"];
            v.extend_from_slice(args);
            v.extend_from_slice(&flags);
            Cli::try_parse_from(v).unwrap().command
        };
        let connect = |c: &ConnectArgs| {
            (
                c.coordinator.clone().unwrap(),
                c.token.clone().unwrap(),
                c.tls_ca.clone().unwrap(),
            )
        };
        let want = (
            "http://c:7700".to_string(),
            "t".to_string(),
            PathBuf::from("ca.pem"),
        );
        let seen = [
            match with(&["run", "s.toml"]) {
                Command::Run(a) => connect(&a.connect),
                _ => unreachable!(),
            },
            match with(&["workers", "--output", "json"]) {
                Command::Workers(a) => connect(&a.connect),
                _ => unreachable!(),
            },
            match with(&["runs"]) {
                Command::Runs(a) => connect(&a.connect),
                _ => unreachable!(),
            },
            match with(&["stop", "r1"]) {
                Command::Stop(a) => connect(&a.list.connect),
                _ => unreachable!(),
            },
            match with(&["fetch", "r1", "--out", "d"]) {
                Command::Fetch(a) => connect(&a.run.list.connect),
                _ => unreachable!(),
            },
            match with(&["attach", "r1"]) {
                Command::Attach(a) => connect(&a.fetch.run.list.connect),
                _ => unreachable!(),
            },
        ];
        for s in seen {
            assert_eq!(s, want);
        }
        let Command::Runs(a) = Cli::try_parse_from(["volley", "runs"]).unwrap().command else {
            unreachable!()
        };
        let err = a.connect.required("runs").unwrap_err();
        assert_eq!(err.exit, volley_coordinator::Exit::BadInput);
        assert!(
            err.message
                .contains("--coordinator URL (or VOLLEY_COORDINATOR)"),
            "{err}"
        );
        assert!(Cli::try_parse_from(["volley", "runs", "--output", "yaml"]).is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
