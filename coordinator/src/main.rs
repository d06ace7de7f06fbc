//! `volley`: parses the command line, starts tracing, and calls the library.

mod cli;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;
use volley_coordinator::client::FollowOptions;
use volley_coordinator::report::{html, markdown, Report};
use volley_coordinator::{client, operate, verdict, CliError, Exit, ServeConfig};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `volley run` reports problems itself (they reach the client as run
    // events); its embedded coordinator logs only errors unless RUST_LOG
    // says otherwise. Long-lived servers log warnings.
    init_tracing(
        if matches!(cli.command, Command::Run(_)) {
            // The OTLP exporter's warnings (a collector that cannot be
            // reached) are the user's to see: nothing else reports them.
            "error,volley_coordinator::otlp=warn"
        } else {
            "warn"
        },
        cli.log_format,
    );
    let result = match cli.command {
        Command::Run(a) => runtime(None).block_on(run(a)),
        Command::Serve(a) => runtime(None).block_on(serve(a)),
        Command::Target(a) => {
            let threads = a.threads.unwrap_or_else(cores);
            runtime(Some(threads)).block_on(target(a))
        }
        Command::Report(a) => report(a),
        Command::Workers(a) => runtime(None).block_on(async {
            let conn = a.connect.required("workers")?;
            operate::workers(&conn, a.output.into()).await
        }),
        Command::Runs(a) => runtime(None).block_on(async {
            let conn = a.connect.required("runs")?;
            operate::runs(&conn, a.output.into()).await
        }),
        Command::Stop(a) => runtime(None).block_on(async {
            let conn = a.list.connect.required("stop")?;
            operate::stop(&conn, &a.run_id, a.list.output.into()).await
        }),
        Command::Fetch(a) => runtime(None).block_on(fetch(a)),
        Command::Attach(a) => runtime(None).block_on(attach(a)),
        Command::Schema(a) => {
            match a.document {
                cli::SchemaDocument::Report => {
                    print!("{}", volley_coordinator::report::schema::report_schema())
                }
            }
            Ok(Exit::Ok)
        }
    };
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            eprintln!("volley: {e}");
            ExitCode::from(e.exit.code())
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn runtime(threads: Option<usize>) -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = threads {
        b.worker_threads(t.max(1));
    }
    b.enable_all().build().expect("tokio runtime")
}

fn init_tracing(default: &str, format: cli::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Json => fmt.json().init(),
        cli::LogFormat::Text => fmt.init(),
    }
}

/// The next SIGINT (Ctrl-C) or SIGTERM; see [`volley_proto::signals`].
async fn shutdown_signal() {
    volley_proto::signals::next().await;
}

/// `volley run`'s interrupt: SIGINT (Ctrl-C) and SIGTERM (`timeout`, CI
/// cancellation, Kubernetes) alike. The first stops the load and writes the
/// partial report; the client waits for a second one to quit at once.
fn interrupt() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(shutdown_signal())
}

/// The baseline, read; and `--junit`'s path checked: both before any
/// traffic, so a bad one does not cost a run.
fn baseline(v: &cli::VerdictArgs) -> Result<Option<verdict::Baseline>, CliError> {
    if let Some(p) = v.junit.as_deref() {
        verdict::check_junit_path(p)?;
    }
    v.baseline
        .as_deref()
        .map(|p| verdict::load_baseline(p, v.threshold))
        .transpose()
}

async fn run(a: cli::RunArgs) -> Result<Exit, CliError> {
    // Checked before any traffic: a bad baseline must not cost a run.
    let baseline = baseline(&a.verdict)?;
    if !a.wait_for.is_empty() {
        // A bad scenario is reported at once, not after the wait.
        client::read_scenario(&a.scenario, &a.set)?;
        client::wait_for(&a.wait_for, a.wait).await?;
    }
    let (exit, _) = match a.connect.coordinator.clone() {
        Some(_) if a.otlp.otlp_endpoint.is_some() => {
            return Err(CliError::bad_input(
                "--otlp-endpoint: with --coordinator the coordinator exports \
                 (volley serve --otlp-endpoint); here it applies to local mode only"
                    .to_string(),
            ));
        }
        Some(url) => client::submit(a.submit_options(&url, baseline)?, interrupt).await?,
        #[cfg(feature = "local")]
        None => {
            volley_coordinator::local::run(a.local_options(baseline, cores())?, interrupt).await?
        }
        #[cfg(not(feature = "local"))]
        None => {
            let what = "`volley run` without --coordinator (local mode)";
            return Err(CliError::needs_local(what));
        }
    };
    Ok(exit)
}

async fn fetch(a: cli::FetchArgs) -> Result<Exit, CliError> {
    let conn = a.run.list.connect.required("fetch")?;
    let listing = a.run.list.output.into();
    operate::fetch(&conn, &a.run.run_id, a.out, listing, &interrupt).await
}

async fn attach(a: cli::AttachArgs) -> Result<Exit, CliError> {
    let conn = a.fetch.run.list.connect.required("attach")?;
    let follow = FollowOptions {
        out: a.fetch.out,
        live: !a.quiet,
        print_report: false,
        baseline: baseline(&a.verdict)?,
        strict: a.verdict.strict,
        summary: true,
        junit: a.verdict.junit,
    };
    let listing = a.fetch.run.list.output.into();
    operate::attach(&conn, &a.fetch.run.run_id, follow, listing, &interrupt).await
}

async fn serve(a: cli::ServeArgs) -> Result<Exit, CliError> {
    let config = ServeConfig::try_from(a)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| CliError::bad_input(format!("--listen {}: {e}", config.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::incomplete(e.to_string()))?;
    // Scripts and tests read this line to learn the port of --listen :0.
    println!("volley: coordinator listening on {addr}");
    // The first signal stops the running run and waits for its report; a
    // second one quits at once.
    let shutdown = async {
        shutdown_signal().await;
        tokio::spawn(async {
            shutdown_signal().await;
            eprintln!("volley: second signal; quitting without waiting for the run's report");
            std::process::exit(3);
        });
    };
    volley_coordinator::serve(config, listener, shutdown).await
}

#[cfg(feature = "local")]
async fn target(a: cli::TargetArgs) -> Result<Exit, CliError> {
    let config = (&a).into();
    volley_coordinator::builtin::run(config, a.listen, a.tcp_listen, shutdown_signal()).await
}

#[cfg(not(feature = "local"))]
async fn target(_: cli::TargetArgs) -> Result<Exit, CliError> {
    Err(CliError::needs_local("`volley target`"))
}

fn report(a: cli::ReportArgs) -> Result<Exit, CliError> {
    let text = std::fs::read_to_string(&a.report)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", a.report.display())))?;
    let mut r: Report = serde_json::from_str(&text).map_err(|e| {
        CliError::bad_input(format!("{}: not a Volley report: {e}", a.report.display()))
    })?;
    if let Some(b) = baseline(&a.verdict)? {
        verdict::apply_baseline(&mut r, &b);
    }
    match a.format {
        cli::Format::Md => print!("{}", markdown::render(&r)),
        cli::Format::Json => println!("{}", r.to_json()),
        cli::Format::Html => print!("{}", html::render(&r)),
    }
    let exit = verdict::exit_code(&r, a.verdict.strict);
    if let Some(p) = a.verdict.junit.as_deref() {
        verdict::write_junit(p, &r, exit, a.verdict.strict)?;
    }
    Ok(exit)
}
